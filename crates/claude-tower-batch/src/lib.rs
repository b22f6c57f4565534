//! Half price for work that can wait: a [`DeferLayer`] that turns ordinary Claude calls into
//! Message Batches items and answers each caller with its result as an ordinary response.
//!
//! The batch endpoints and types are in `claude_tower::core::batch` (`BatchApi`, implemented
//! by the mock in process); [`DeferStore`] records submitted batches so a restarted process
//! collects their results exactly once ([`DeferLayer::recover`]).
//!
//! Place it below the budget and above the retry layer: cost, budget, prompt cache and trimming
//! see the deferred call like any other; retries and rate limits do not apply to batch items.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use claude_tower::batch::{DeferLayer, DeferReport};
//! use claude_tower::core::{MessagesRequest, ext::Deferred};
//! use claude_tower::mock::MockClaude;
//! use tower::{Layer, ServiceExt};
//!
//! let mock = MockClaude::new().with_batch_processing_time(Duration::from_secs(600));
//! let service = DeferLayer::new(mock.clone()).layer(mock.clone());
//! let mut request = MessagesRequest::new("claude-haiku-4-5", 64).user("classify: spam?").into_http();
//! request.extensions_mut().insert(Deferred::new());
//! let response = service.oneshot(request).await.unwrap();
//! assert!(response.extensions().get::<DeferReport>().is_some());
//! let message = response.into_body().into_message().await.unwrap();
//! assert_eq!(message.usage.service_tier.as_deref(), Some("batch"));
//! assert_eq!(mock.batch_count(), 1);
//! assert_eq!(mock.request_count(), 0); // nothing went to the Messages endpoint
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod defer;
mod store;

pub use defer::{Defer, DeferLayer, DeferReport, ResultSink};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::RedisDeferStore;
pub use store::{DeferStore, MemoryDeferStore, SubmittedBatch};
