//! An exact-match response cache for the Claude Messages API, as tower middleware.
//!
//! [`ResponseCacheLayer`] answers a request from a previous identical one:
//!
//! - **Keys** ([`cache_key`]): a canonical 128-bit hash of everything that can change the
//!   answer (model, system, messages, tools, `tool_choice`, thinking, sampling parameters, stop
//!   sequences, `max_tokens`, `output_config`, unknown fields, `anthropic-version` and
//!   `anthropic-beta`), not of what cannot (`metadata` unless per-user partitioning is on,
//!   `stream`, `cache_control` markers). Keys are **credential-scoped**: a request's own
//!   `x-api-key`/`authorization` enters as a SHA-256 fingerprint; see [`KeyScope`] for stores
//!   shared by services with different configured credentials.
//! - **Policy** ([`CachePolicy`], default [`DeterministicPolicy`]): cache requests with
//!   `temperature == 0` or opted in ([`ResponseCacheMode::OptIn`]); never errors, refusals or
//!   `max_tokens`-truncated replies unless configured; per-request [`ResponseCacheMode::Bypass`] and
//!   [`ResponseCacheMode::Refresh`].
//! - **Stores** ([`ResponseStore`]): [`MemoryResponseStore`] (moka, bounded by bytes, TTL on
//!   tokio's clock) and `RedisResponseStore` (feature `redis`, shared by replicas).
//! - **Single-flight**: concurrent identical misses make one upstream call; the others wait
//!   for it and share its reply (or its error, which is never cached).
//! - **Streams**: a miss streams through while being recorded (pings left out, at most
//!   [`DEFAULT_MAX_RECORDED_BYTES`] by default, else not cached); a hit replays the recorded
//!   events; a streamed entry serves a non-stream request and vice versa.
//! - [`ResponseCacheStatus`](claude_tower_core::ext::ResponseCacheStatus) (hit / miss / bypass / stale) in the
//!   response extensions; a hit keeps the original usage, and the cost meter charges it 0.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use claude_tower::core::{MessagesRequest, ext::ResponseCacheStatus};
//! use claude_tower::mock::MockClaude;
//! use claude_tower::response_cache::ResponseCacheLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let mock = MockClaude::new();
//! let service = ServiceBuilder::new()
//!     .layer(ResponseCacheLayer::in_memory(64 * 1024 * 1024))
//!     .service(mock.clone());
//! let request = MessagesRequest::new("claude-haiku-4-5", 100).user("2 + 2?").temperature(0.0);
//!
//! let first = service.clone().oneshot(request.clone().into_http()).await.unwrap();
//! assert_eq!(first.extensions().get::<ResponseCacheStatus>(), Some(&ResponseCacheStatus::Miss));
//! let second = service.oneshot(request.into_http()).await.unwrap();
//! assert_eq!(second.extensions().get::<ResponseCacheStatus>(), Some(&ResponseCacheStatus::Hit));
//! assert_eq!(mock.request_count(), 1);
//! # }
//! ```
//!
//! # Configuration
//!
//! ```
//! use std::time::Duration;
//! use claude_tower::response_cache::{DeterministicPolicy, ResponseCacheLayer};
//!
//! let layer = ResponseCacheLayer::in_memory(256 * 1024 * 1024)
//!     .ttl(Duration::from_secs(3600))
//!     .policy(DeterministicPolicy::new().cache_truncated(true))
//!     .partition_by_user(true)
//!     .serve_stale_on_error(true);
//! # let _ = layer;
//! ```
//!
//! # Where it goes in the stack
//!
//! Inside tracing and the cost meter (a hit is visible and costs 0), outside trimming,
//! prompt-cache layout, rate limiting and retries (a hit skips all of them).
//!
//! # Errors
//!
//! The inner service's errors, shared by coalesced callers; store failures are logged and
//! treated as misses.
//!
//! # Feature flags
//!
//! - `moka` (default): [`MemoryResponseStore`].
//! - `redis`: `RedisResponseStore`.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod canonical;
mod flight;
mod key;
mod policy;
#[cfg(feature = "redis")]
mod redis_store;
mod service;
pub mod store;

pub use key::{CacheKey, IGNORED_FIELDS, KEYED_HEADERS, KeyScope, cache_key, cache_key_with};
pub use policy::{CachePolicy, DeterministicPolicy, ResponseCacheMode};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::RedisResponseStore;
pub use service::{
    DEFAULT_MAX_RECORDED_BYTES, DEFAULT_TTL, ResponseCache, ResponseCacheLayer, ResponseFuture,
};
#[cfg(feature = "moka")]
#[cfg_attr(docsrs, doc(cfg(feature = "moka")))]
pub use store::MemoryResponseStore;
pub use store::{CachedResponse, Lookup, ResponseStore};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
