//! Fallback chains and circuit breaking for the Claude Messages API, as tower middleware.
//!
//! - [`FallbackLayer`]: an ordered chain of [`Candidate`] models (each with optional
//!   parameter overrides). A request moves to the next candidate when a model is overloaded
//!   or failing (after the retry layer below gave up), when its prompt is too long for the
//!   model's window (candidates with a smaller window are skipped **before** sending), or when
//!   it refuses (client-side with the refusal's credit token, or with the API's server-side
//!   `fallbacks`). Never on 400/401/403/404/413, rate limits or spend caps. The response
//!   carries a [`FallbackReport`].
//! - [`CircuitBreaker`]: per model (or key) failure rate over a sliding window with a
//!   minimum number of calls, plus a consecutive-failure trip; open → one half-open probe
//!   → closed, the cooldown doubling while probes fail. The fallback chain skips open
//!   circuits instead of sending; with [`CircuitBreaker::shared`] (e.g. `RedisCircuits`,
//!   feature `redis`) replicas open together. [`is_breaker_failure`] is the classifier: overloads, 5xx, connection errors and timeouts count; 4xx,
//!   rate limits, spend caps and refusals never do.
//!
//! - [`RouterLayer`]: chooses each request's model from a policy closure or [`Route`]s on a
//!   [`TaskHint`], the estimated input, tools and thinking — the cheapest model (by
//!   [`ModelPrice`]) whose window holds the request — with an optional downgrade switch (e.g.
//!   a budget past its soft limit). The response carries a [`RouteReport`].
//!
//! - [`KeyPool`] / [`KeyPoolLayer`]: several API keys grouped by workspace, sticky per
//!   conversation (the prompt cache is per workspace), moved only on 429/529, swapped at run
//!   time without a restart.
//!
//! Why not `tower-resilience`'s circuit breaker: it wraps one service and decides per call,
//! while a fallback chain must *ask* a model's circuit before choosing it (and skip it without
//! sending), keyed by model id across one inner service; and its clock is `std`'s, so paused
//! tokio-clock tests could not drive it. The breaker here is ~300 lines on tokio's clock.
//!
//! Place it above the retry layer: `Trace → Cost → Fallback → … → Retry → Transport`, so
//! a candidate is left only after its own retries, cost and trace see the model that
//! answered, and layers that depend on the model (trim, prompt cache, budget, rate limit) see
//! the candidate's model.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use claude_tower::core::MessagesRequest;
//! use claude_tower::mock::{Attempt, MockClaude};
//! use claude_tower::route::{BreakerConfig, Candidate, CircuitBreaker, FallbackLayer, FallbackReport};
//! use tower::{Layer, ServiceExt};
//!
//! // The primary is overloaded for a minute.
//! let mock = MockClaude::new().with_model_outage("claude-opus-4-5", Attempt::overloaded(), std::time::Duration::from_secs(60));
//! let breaker = CircuitBreaker::new(BreakerConfig::default());
//! let service = FallbackLayer::new([
//!     Candidate::new("claude-opus-4-5"),
//!     Candidate::new("claude-sonnet-4-5").max_tokens(8_192),
//! ])
//! .breaker(breaker.clone())
//! .layer(mock.clone());
//!
//! for _ in 0..10 {
//!     let request = MessagesRequest::new("claude-opus-4-5", 1_000).user("hi");
//!     let response = service.clone().oneshot(request.into_http()).await.unwrap();
//!     assert_eq!(response.extensions().get::<FallbackReport>().unwrap().model, "claude-sonnet-4-5");
//! }
//! // Three failures opened the primary's circuit: the other seven were not sent to it.
//! assert_eq!(mock.request_count(), 10 + 3);
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod breaker;
mod candidate;
mod classify;
mod fallback;
mod keys;
mod report;
mod router;
mod share;

pub use breaker::{BreakerConfig, CallPermit, CircuitBreaker, CircuitState};
pub use candidate::Candidate;
pub use classify::{SkipReason, is_breaker_failure, is_prompt_too_long};
pub use fallback::{
    ConversationId, FALLBACK_CREDIT_BETA, Fallback, FallbackLayer, OnRefusal,
    SERVER_SIDE_FALLBACK_BETA,
};
pub use keys::{ApiKey, KeyPool, KeyPoolLayer, KeyPoolService, KeyReport};
pub use report::{FallbackReport, Hop};
pub use router::{ModelPrice, Route, RouteReason, RouteReport, Router, RouterLayer, TaskHint};
pub use share::CircuitShare;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use share::RedisCircuits;
