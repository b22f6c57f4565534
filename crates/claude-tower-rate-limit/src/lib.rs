//! Client-side rate limiting for the Claude Messages API, as tower middleware.
//!
//! [`RateLimitLayer`] admits requests against requests, input tokens and output tokens per
//! minute — per **model class** (the API pools limits per class: opus, sonnet, haiku, …) and
//! optionally per **key** (tenant or user) — before they are sent, so the API never has to
//! answer 429:
//!
//! - **Token buckets** that refill continuously, as the API's do ([`TokenBucket`]).
//! - **Reserve, then reconcile**: the estimated input tokens (core estimator) and an output
//!   reservation (`max_tokens` by default) are reserved before sending; after the response,
//!   the end of a stream, an error or a dropped stream, the real usage is charged and the rest
//!   refunded. ITPM is charged `input_tokens + cache_creation_input_tokens` (cache reads are
//!   free except for models that count them), OTPM the real `output_tokens`.
//! - **Adaptive**: limits are learned from `anthropic-ratelimit-*-limit` and buckets lowered to
//!   `*-remaining` on every response (other clients share the org's limits); a 429 with
//!   `retry-after` pauses the whole pool so concurrent callers do not stampede.
//! - **Fair and bounded waits**: reservations are first-come first-served (later ones queue
//!   behind earlier ones); a wait longer than `max_wait` (30 s) — or a request that can never
//!   fit — fails at once with
//!   [`ErrorKind::RateLimited`](claude_tower_core::ErrorKind::RateLimited), a message naming
//!   the limit, and `retry_after` when it would fit later.
//! - **Shared**: buckets live in a [`RateLimitStore`]; [`MemoryRateLimitStore`] by default,
//!   `RedisRateLimitStore` (feature `redis`) for replicas sharing one set of limits. With
//!   the memory store, a request admitted at once goes straight to the inner service (the
//!   response future wraps the inner one; no boxing, no clone), so admission and
//!   reconciliation cost well under a microsecond (`cargo xtask bench`).
//! - **Concurrency**: a global limit ([`RateLimitLayer::max_concurrent`]), taken in
//!   `poll_ready`, and per pool or per key ([`Limits::with_max_concurrent`]), taken in the
//!   call future since they depend on the request (FIFO, within `max_wait`; a slot is held
//!   until the response is read or the stream ends). Concurrency is counted per process, not
//!   through the store. The pools depend on the request's model, so their waits happen in
//!   the call future.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use claude_tower::core::{ErrorKind, MessagesRequest};
//! use claude_tower::mock::MockClaude;
//! use claude_tower::rate_limit::{Limits, RateLimitLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let service = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new().pool("haiku", Limits::new(50, 50_000, 10_000)))
//!     .service(MockClaude::new());
//! let ok = MessagesRequest::new("claude-haiku-4-5", 1_000).user("hi");
//! service.clone().oneshot(ok.into_http()).await.unwrap();
//! // Never fits a 10,000 OTPM bucket: refused before sending.
//! let huge = MessagesRequest::new("claude-haiku-4-5", 20_000).user("hi");
//! let error = service.oneshot(huge.into_http()).await.unwrap_err();
//! assert_eq!(error.kind(), ErrorKind::RateLimited);
//! assert!(error.message().contains("output tokens per minute (limit 10000)"));
//! # }
//! ```
//!
//! # Configuration
//!
//! ```
//! use std::time::Duration;
//! use claude_tower::rate_limit::{Limits, OutputReservation, RateLimitLayer};
//!
//! let layer = RateLimitLayer::new()
//!     .pool("opus", Limits::new(4_000, 2_000_000, 400_000))
//!     .pool("sonnet", Limits::new(4_000, 2_000_000, 400_000).with_max_concurrent(32))
//!     .per_key(Limits::new(100, 200_000, 40_000).with_max_concurrent(4))
//!     .output_reservation(OutputReservation::Percent(50))
//!     .max_wait(Duration::from_secs(10))
//!     .max_concurrent(64);
//! # let _ = layer;
//! ```
//!
//! # Where it goes in the stack
//!
//! Inside retries (each attempt is admitted), outside the transport.
//!
//! # Errors
//!
//! `RateLimited` when a request cannot be admitted within `max_wait` (nothing sent); the
//! store's error when it fails and `fail_open` is off.
//!
//! # Feature flags
//!
//! - `redis`: `RedisRateLimitStore`.
//!
//! [`TokenBucket`]: claude_tower_core::rate_limit::TokenBucket
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admit;
mod body;
mod future;
mod layer;
mod limits;
#[cfg(feature = "redis")]
mod redis_store;
mod reservation;
mod service;
mod state;
pub mod store;

pub use future::ResponseFuture;
pub use layer::RateLimitLayer;
pub use limits::{Dimension, Limits, OutputReservation};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::RedisRateLimitStore;
pub use service::RateLimit;
pub use state::{DEFAULT_MAX_WAIT, default_counts_cache_reads, default_model_class};
pub use store::{Admission, BucketSpec, MemoryRateLimitStore, RateLimitStore};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
