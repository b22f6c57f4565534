//! The reqwest leaf `tower::Service` of claude-tower: [`Transport`] sends
//! `http::Request<MessagesRequest>` to the Messages API and returns
//! `http::Response<MessagesBody>` — a complete message, or typed SSE events decoded as bytes
//! arrive.
//!
//! # Example
//!
//! Against the built-in mock server (the real API is the default base URL):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use claude_tower::core::MessagesRequest;
//! use claude_tower::mock::MockServer;
//! use claude_tower::transport::Transport;
//! use tower::ServiceExt;
//!
//! let server = MockServer::start().await?;
//! let transport = Transport::builder()
//!     .api_key("sk-ant-test")
//!     .base_url(server.base_url())
//!     .build()?;
//!
//! let request = MessagesRequest::new("claude-haiku-4-5", 128).user("Hello");
//! let response = transport.oneshot(request.into_http()).await?;
//! let request_id = response.headers()["request-id"].to_str()?.to_owned();
//! let message = response.into_body().into_message().await?;
//! println!("{} ({request_id}, {} output tokens)", message.text(), message.usage.output_tokens);
//! # Ok(())
//! # }
//! ```
//!
//! # Configuration
//!
//! ```
//! # fn main() -> Result<(), claude_tower::core::Error> {
//! use std::time::Duration;
//! use claude_tower::transport::Transport;
//!
//! let transport = Transport::builder()
//!     .auth_token("oauth-token")                 // Authorization: Bearer …
//!     .base_url("https://gateway.example/anthropic") // a path prefix is kept
//!     .api_version("2026-10-21")
//!     .connect_timeout(Duration::from_secs(3))
//!     .timeout(Duration::from_secs(120))
//!     .read_timeout(Duration::from_secs(30))
//!     .build()?;
//! assert_eq!(transport.base_url(), "https://gateway.example/anthropic");
//! # Ok(())
//! # }
//! ```
//!
//! Without `api_key`/`auth_token`, [`TransportBuilder::build`] reads `ANTHROPIC_API_KEY`, then
//! `ANTHROPIC_AUTH_TOKEN`, and `ANTHROPIC_BASE_URL`; no credentials at all is an
//! [`ErrorKind::Config`](claude_tower_core::ErrorKind::Config) error at construction.
//!
//! # Where it goes in the stack
//!
//! Innermost: every other layer wraps it.
//!
//! # Errors
//!
//! [`claude_tower_core::Error`]: API errors with status, type, request id and retry hints;
//! `Timeout`, `Connect`, `Decode`, `StreamInterrupted` (a stream that broke or ended before
//! `message_stop`), `InvalidRequest` (refused before sending), `TooLarge` (a body or event
//! over its cap; the connection is dropped).
//!
//! # Hostile upstreams
//!
//! Every byte from the network is bounded in size (`max_body_bytes`, `max_error_body_bytes`,
//! `max_event_bytes`) and in time (the total timeout covers the error body of a stream too;
//! the read timeout covers every chunk); redirects are never followed, so credentials never
//! leave the configured origin. The facade's `tests/hostile.rs` checks each of these against
//! a raw loopback server.
//!
//! # Feature flags
//!
//! None; reqwest is built with rustls, HTTP/2 and streaming only.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod batches;
mod config;
pub mod future;
mod service;
pub mod sse;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_ERROR_BODY_BYTES,
    DEFAULT_MAX_EVENT_BYTES, DEFAULT_TIMEOUT, TransportBuilder,
};
pub use service::Transport;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
