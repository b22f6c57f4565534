//! Automatic prompt-cache breakpoints for the Claude Messages API, as tower middleware.
//!
//! [`PromptCacheLayer`] adds `cache_control` markers ([`place_breakpoints`]) so that every
//! turn reads what the previous one wrote and writes what the next one will read:
//!
//! - the **stable prefix**: the end of the tools and of the system prompt (1h by default);
//! - the **tail**: the last block, written for the next turn (5m by default);
//! - the **previous turn's tail**: an exact hit on what the previous request wrote, however
//!   many blocks the new turn added — the 20-block lookback can never lose the prefix;
//!
//! never more than 4 markers in all (the caller's and the top-level automatic one count),
//! never moving or removing the caller's, 1h before 5m, and no breakpoint below the model's
//! minimum cacheable length (from the core model table). Tool definitions serialize with
//! sorted keys (`serde_json` maps), so equal prefixes are byte-equal.
//!
//! [`PromptCacheReport`] (read, written 5m/1h, uncached, token-weighted hit ratio) goes in the
//! response extensions, a [`PromptCacheStats`] handle keeps running totals, and [`warm`]
//! pre-warms a prefix with `max_tokens: 0`.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use claude_tower::core::MessagesRequest;
//! use claude_tower::mock::MockClaude; // simulates Anthropic's prompt cache
//! use claude_tower::prompt_cache::{PromptCacheReport, PromptCacheLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let layer = PromptCacheLayer::new();
//! let stats = layer.stats();
//! let service = ServiceBuilder::new().layer(layer).service(MockClaude::new());
//! let system = "You are a meticulous assistant. ".repeat(300); // ~2,500 tokens
//! let first = MessagesRequest::new("claude-sonnet-4-6", 200).system(system).user("Question one");
//! let reply = service.clone().oneshot(first.clone().into_http()).await.unwrap();
//! let answer = reply.into_body().into_message().await.unwrap();
//! let second = first.message(answer.to_param()).user("Question two");
//! let response = service.oneshot(second.into_http()).await.unwrap();
//! let report = *response.extensions().get::<PromptCacheReport>().unwrap();
//! assert!(report.hit_ratio() > 0.9);
//! assert_eq!(stats.responses(), 2);
//! # }
//! ```
//!
//! # Configuration
//!
//! ```
//! use claude_tower::core::CacheTtl;
//! use claude_tower::prompt_cache::{PromptCacheLayer, TtlPolicy};
//!
//! let layer = PromptCacheLayer::new().ttl(TtlPolicy::uniform(CacheTtl::FiveMinutes));
//! # let _ = layer;
//! ```
//!
//! # Where it goes in the stack
//!
//! Inside trimming (it marks the request that is really sent) and outside retries and the
//! transport.
//!
//! # Errors
//!
//! None of its own.
//!
//! # Feature flags
//!
//! None.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod layer;
mod plan;

pub use layer::{
    CacheMissReason, PromptCache, PromptCacheLayer, PromptCacheReport, PromptCacheReportHandle,
    PromptCacheStats, ResponseFuture, warm,
};
pub use plan::{ANCHOR_EVERY_TURNS, TtlPolicy, place_breakpoints, place_breakpoints_owned};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
