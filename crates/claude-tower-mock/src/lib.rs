//! A scriptable mock of the Claude Messages API for claude-tower: [`MockClaude`], an
//! in-process `tower::Service`, and [`MockServer`], the same behaviour over real HTTP on a
//! loopback port. It is the default backend of the examples and the harness of every test.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use claude_tower::core::{ErrorKind, MessagesRequest};
//! use claude_tower::mock::{Attempt, MockClaude};
//! use std::time::Duration;
//! use tower::ServiceExt;
//!
//! // First attempt: 429 with retry-after; second: a normal answer.
//! let mock = MockClaude::new().with_script([Attempt::rate_limited(Some(Duration::from_secs(2)))]);
//! let request = MessagesRequest::new("claude-haiku-4-5", 64).user("ping");
//!
//! let error = mock.clone().oneshot(request.clone().into_http()).await.unwrap_err();
//! assert_eq!(error.kind(), ErrorKind::RateLimited);
//! assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
//!
//! let reply = mock.clone().oneshot(request.into_http()).await.unwrap();
//! let message = reply.into_body().into_message().await.unwrap();
//! assert!(message.text().contains("ping"));
//! assert_eq!(mock.requests().len(), 2);
//! # }
//! ```
//!
//! # Over HTTP
//!
//! [`MockServer::start`] binds `127.0.0.1:0`; point any client at [`MockServer::base_url`].
//! The binary does the same for other tools (e.g. an official SDK with
//! `ANTHROPIC_BASE_URL`):
//!
//! ```text
//! cargo run -p claude-tower-mock -- --addr 127.0.0.1:4010
//! ```
//!
//! # Feature flags
//!
//! None.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod batch_state;
mod batches;
mod cache_sim;
pub mod fixtures;
pub mod hostile;
mod limits;
mod log_capture;
mod model_script;
mod models;
mod plan;
mod recorded;
mod redis_server;
mod reply;
mod script;
mod server;
mod server_batches;
mod service;

pub use batch_state::ItemFault;
pub use cache_sim::LOOKBACK_POSITIONS;
pub use limits::MockLimits;
pub use log_capture::LogCapture;
pub use redis_server::{INSTALL_HINT, RedisServer};
pub use script::{Attempt, MOCK_ATTEMPT_HEADER};
pub use server::{MockServer, MockServerBuilder};
pub use service::{MockClaude, RecordedRequest};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
