//! SDK-exact retries for the Claude Messages API as tower middleware.
//!
//! [`RetryLayer`] retries what the official SDKs retry (408, 409, 429, ≥ 500 incl. 529,
//! connection errors, timeouts; `x-should-retry` wins), waits what they wait (`retry-after-ms`,
//! `retry-after`, else 0.5 s doubling to 8 s with jitter), and adds what they lack:
//!
//! - **streams are retried before content**: events are held back until the first content
//!   event; a stream that fails before it (a mid-stream `overloaded_error`, a dropped
//!   connection, an idle timeout) is retried transparently and the caller sees one clean
//!   stream. After content went downstream, the stream ends with
//!   [`ErrorKind::StreamInterrupted`](claude_tower_core::ErrorKind::StreamInterrupted)
//!   carrying the partial message ([`Error::partial_message`](claude_tower_core::Error::partial_message)).
//! - **a retry budget** shared by all clones of the layer ([`RetryBudget`]), so a 529 storm
//!   cannot multiply load;
//! - **server hints above `max_server_delay`** (60 s) give up at once with the error, which
//!   carries `retry_after`, instead of sleeping;
//! - an overall deadline (`max_elapsed`) and [`Attempts`](claude_tower_core::ext::Attempts) in
//!   the response extensions;
//! - [`TimeoutLayer`]: total, time-to-first-event and idle-between-events timeouts, errors of
//!   kind `Timeout` that the policy retries.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use claude_tower::core::{MessagesRequest, ext::Attempts};
//! use claude_tower::mock::{Attempt, MockClaude};
//! use claude_tower::retry::RetryLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let mock = MockClaude::new().with_script([Attempt::overloaded(), Attempt::server_error()]);
//! let service = ServiceBuilder::new().layer(RetryLayer::new()).service(mock.clone());
//!
//! let request = MessagesRequest::new("claude-haiku-4-5", 100).user("hi");
//! let response = service.oneshot(request.into_http()).await.unwrap();
//! let attempts = response.extensions().get::<Attempts>().unwrap();
//! assert_eq!(attempts.count, 3);
//! assert_eq!(mock.request_count(), 3);
//! # }
//! ```
//!
//! # Configuration
//!
//! ```
//! use std::time::Duration;
//! use claude_tower::retry::{RetryBudget, RetryLayer, TimeoutLayer};
//! use tower::ServiceBuilder;
//!
//! let retry = RetryLayer::new()
//!     .max_retries(4)
//!     .max_backoff(Duration::from_secs(20))
//!     .max_server_delay(Duration::from_secs(30))
//!     .max_elapsed(Duration::from_secs(120))
//!     .budget(RetryBudget::new(Duration::from_secs(10), 2, 0.2).unwrap());
//! // Per-attempt timeouts sit inside the retry layer, so a timed-out attempt is retried.
//! let timeouts = TimeoutLayer::new()
//!     .first_event(Duration::from_secs(30))
//!     .idle(Duration::from_secs(60))
//!     .total(Duration::from_secs(600));
//! let _builder = ServiceBuilder::new().layer(retry).layer(timeouts);
//! ```
//!
//! Presets: [`RetryLayer::sdk_compatible`] (the default), [`RetryLayer::aggressive`],
//! [`RetryLayer::none`]; custom rules implement [`Policy`].
//!
//! # Where it goes in the stack
//!
//! Outside the rate limiter and the transport (each retry is admitted and sent again), inside
//! cost/budget and tracing (they see one logical request). Put [`TimeoutLayer`] inside it for
//! per-attempt timeouts, outside it for an overall one.
//!
//! # Errors
//!
//! The last attempt's error, unchanged (give-ups keep the server's `retry_after`), or
//! `StreamInterrupted` for a stream that broke after content.
//!
//! # Feature flags
//!
//! None.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
pub mod budget;
pub mod error;
pub mod future;
mod layer;
mod policy;
mod service;
mod state;
pub mod timeout;

pub use body::MAX_PARTIAL_BYTES;
pub use budget::RetryBudget;
pub use error::InvalidConfig;
pub use layer::RetryLayer;
pub use policy::{NoRetry, Policy, SdkPolicy};
pub use service::Retry;
pub use timeout::{Timeout, TimeoutLayer};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
