//! Composable [tower](https://docs.rs/tower) middleware for production use of the Claude
//! Messages API: the facade of the claude-tower crates, one cargo feature per layer.
//!
//! Every layer is a `tower::Service<http::Request<MessagesRequest>>` returning
//! `http::Response<MessagesBody>`; stack only the ones you need, in the canonical order below,
//! with `tower::ServiceBuilder` and [`ServiceBuilderExt`].
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), claude_tower::Error> {
//! # #[cfg(feature = "mock")] {
//! use claude_tower::mock::MockClaude; // feature `mock`
//! use claude_tower::prelude::*;
//!
//! let stack = ServiceBuilder::new()
//!     .claude_trace(TraceLayer::new())
//!     .claude_retry(RetryLayer::new())
//!     .service(MockClaude::new()); // or Transport::from_env()?
//! let client = Client::new(stack);
//! let reply = client.messages().create(MessagesRequest::new("claude-haiku-4-5", 256).user("Hello")).await?;
//! assert!(!reply.text().is_empty());
//! # }
//! # Ok(())
//! # }
//! ```
//!
//! With only `claude-tower` as a dependency:
//!
//! ```toml
//! [dependencies]
//! claude-tower = { version = "0.1", features = ["cost", "mock"] } # pick the layers you use
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! # The canonical layer order
//!
//! Outermost first (the first `.layer` call is the outermost). [`Stack`] places the layers in
//! this order whatever order they are given in:
//!
//! | # | layer | feature | why here |
//! |---|---|---|---|
//! | 1 | [`TraceLayer`](trace::TraceLayer) | `trace` | sees the whole logical call: retries, budgets, cache hits, and what every inner layer put in the extensions |
//! | 2 | [`RouterLayer`](route::RouterLayer) | `route` | chooses the model first: everything below (the fallback chain included) works for the chosen model |
//! | 3 | [`FallbackLayer`](route::FallbackLayer) | `route` | each candidate model goes through every layer below as its own request: priced, cached, trimmed, marked, budgeted, retried and rate limited **for that model**; a candidate is left only after its retries |
//! | 4 | [`KeyPoolLayer`](route::KeyPoolLayer) | `route` | one key per attempt (sticky per conversation, moved on 429/529), set before the response cache so entries never mix credentials |
//! | 5 | [`CostLayer`](cost::CostLayer) | `cost` | prices what really happened (each fallback attempt at the model that answered it), a response-cache hit at 0 |
//! | 6 | [`ResponseCacheLayer`](response_cache::ResponseCacheLayer) | `response-cache` | a hit skips everything below (budget, trimming, rate limits, the network) |
//! | 7 | [`TrimLayer`](trim::TrimLayer) | `trim` | fits the conversation before it is marked and sent |
//! | 8 | [`PromptCacheLayer`](prompt_cache::PromptCacheLayer) | `prompt-cache` | marks the request that is really sent (after trimming) |
//! | 9 | [`BudgetLayer`](cost::BudgetLayer) | `cost` | reserves once per logical request, pricing the trimmed, marked request as it can really be billed (cache writes only where markers are) |
//! | 10 | [`DeferLayer`](batch::DeferLayer) | `batch` | a call marked `Deferred` leaves here as a Message Batch item (half price): everything above (budget at batch prices, cost, caches) sees it as any call; retries and rate limits below do not apply to batch items |
//! | 11 | [`RetryLayer`](retry::RetryLayer) | `retry` | each attempt goes through the rate limiter again |
//! | 12 | [`RateLimitLayer`](rate_limit::RateLimitLayer) | `rate-limit` | admits each attempt against the buckets, reconciles with its real usage |
//! | 13 | [`TimeoutLayer`](retry::TimeoutLayer) | `retry` | per-attempt limits, retried by the layer above: `total` for every call; time to first event and idle for **streams only** |
//! | 14 | [`Transport`](transport::Transport) (or the mock) | `transport` | the network |
//!
//! What the layers tell each other and the caller (the extensions each writes and reads): the
//! [extension protocol table](ext#the-extension-protocol).
//!
//! Which layers to pick, what each adds in latency, dependencies and cost, and three
//! recipes: the [Choosing layers guide](guide).
//!
//! # Feature flags
//!
//! `transport`, `retry`, `trace` (default); `route` (fallback chains, circuit breaker), `batch` (deferred calls as Message Batches), `rate-limit`, `prompt-cache`, `response-cache`,
//! `cost`, `trim`, `mock`, `redis` (the Redis stores), `otel` (the trace layer continues an
//! inbound `traceparent`), `legacy-tokenizer`; `full` for everything.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod client;
pub mod guide;
mod stack;

pub use builder::ServiceBuilderExt;
pub use claude_tower_core as core;
pub use claude_tower_core::{
    Delta, Error, ErrorKind, EventStream, Message, MessageAccumulator, MessagesBody,
    MessagesRequest, StreamEvent, Usage, ext,
};
pub use client::{ClaudeService, Client, Messages, TextStream};
pub use stack::Stack;
/// tower itself, so a crate that depends only on `claude-tower` can build stacks.
pub use tower;

/// Deferring calls into Message Batches (`claude-tower-batch`).
#[cfg(feature = "batch")]
#[cfg_attr(docsrs, doc(cfg(feature = "batch")))]
pub use claude_tower_batch as batch;
/// The cost meter and budgets (`claude-tower-cost`).
#[cfg(feature = "cost")]
#[cfg_attr(docsrs, doc(cfg(feature = "cost")))]
pub use claude_tower_cost as cost;
/// The mock (`claude-tower-mock`).
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use claude_tower_mock as mock;
/// The prompt-cache layout (`claude-tower-prompt-cache`).
#[cfg(feature = "prompt-cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "prompt-cache")))]
pub use claude_tower_prompt_cache as prompt_cache;
/// Rate limits (`claude-tower-rate-limit`).
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub use claude_tower_rate_limit as rate_limit;
/// The response cache (`claude-tower-response-cache`).
#[cfg(feature = "response-cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "response-cache")))]
pub use claude_tower_response_cache as response_cache;
/// Retries and timeouts (`claude-tower-retry`).
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub use claude_tower_retry as retry;
/// Fallback chains and circuit breaking (`claude-tower-route`).
#[cfg(feature = "route")]
#[cfg_attr(docsrs, doc(cfg(feature = "route")))]
pub use claude_tower_route as route;
/// List prices for a [`RouterLayer`](route::RouterLayer) from the cost crate's price table
/// (the routes then choose their cheapest model that fits).
///
/// ```
/// use claude_tower::cost::PriceTable;
/// use claude_tower::route::RouterLayer;
/// let prices = claude_tower::router_prices(PriceTable::builtin());
/// let haiku = prices("claude-haiku-4-5").unwrap();
/// assert!(haiku.input_per_million > 0.0);
/// let router = RouterLayer::new().prices(prices);
/// # let _ = router;
/// ```
#[cfg(all(feature = "route", feature = "cost"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "route", feature = "cost"))))]
pub fn router_prices(
    table: cost::PriceTable,
) -> impl Fn(&str) -> Option<route::ModelPrice> + Send + Sync + 'static {
    move |model| {
        let row = table.row(model)?;
        let usd = |p: cost::PerMillion| p.picodollars_per_token() as f64 / 1_000_000.0;
        Some(route::ModelPrice {
            input_per_million: usd(row.input),
            output_per_million: usd(row.output),
        })
    }
}

/// Tracing (`claude-tower-trace`).
#[cfg(feature = "trace")]
#[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
pub use claude_tower_trace as trace;
/// The transport (`claude-tower-transport`).
#[cfg(feature = "transport")]
#[cfg_attr(docsrs, doc(cfg(feature = "transport")))]
pub use claude_tower_transport as transport;
/// Trimming (`claude-tower-trim`).
#[cfg(feature = "trim")]
#[cfg_attr(docsrs, doc(cfg(feature = "trim")))]
pub use claude_tower_trim as trim;

/// The common imports: the request types, the client, the builder extension and every enabled
/// layer.
pub mod prelude {
    pub use crate::{
        ClaudeService, Client, Error, ErrorKind, Message, MessagesRequest, ServiceBuilderExt, Stack,
    };
    #[cfg(feature = "batch")]
    pub use claude_tower_batch::DeferLayer;
    #[cfg(feature = "cost")]
    pub use claude_tower_cost::{BudgetLayer, CostLayer, CostLedger, Usd, Window};
    #[cfg(feature = "prompt-cache")]
    pub use claude_tower_prompt_cache::PromptCacheLayer;
    #[cfg(feature = "rate-limit")]
    pub use claude_tower_rate_limit::{Limits, RateLimitLayer};
    #[cfg(feature = "response-cache")]
    pub use claude_tower_response_cache::ResponseCacheLayer;
    #[cfg(feature = "retry")]
    pub use claude_tower_retry::{RetryLayer, TimeoutLayer};
    #[cfg(feature = "route")]
    pub use claude_tower_route::{
        Candidate, CircuitBreaker, FallbackLayer, KeyPool, KeyPoolLayer, Route, RouterLayer,
        TaskHint,
    };
    #[cfg(feature = "trace")]
    pub use claude_tower_trace::TraceLayer;
    #[cfg(feature = "transport")]
    pub use claude_tower_transport::Transport;
    #[cfg(feature = "trim")]
    pub use claude_tower_trim::TrimLayer;
    pub use tower::ServiceBuilder;
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
