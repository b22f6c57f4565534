//! Exact cost metering, attribution and budgets for the Claude Messages API, as tower
//! middleware.
//!
//! - [`PriceTable`]: prices as **data** (`data/prices.json`, one row per model with its
//!   source and date), overridable at run time. Input, output, 5m and 1h cache writes, cache
//!   reads with their per-model ratio, batch, US-only inference, fast mode, long-context
//!   tiers, web search.
//! - [`CostLayer`]: the exact cost of every response (integer pico-dollars, no float drift),
//!   as a [`Cost`] in the response extensions (plus a [`CostHandle`] that streams fill when
//!   they end, with `message_delta`'s overwrite semantics); response-cache hits cost 0.
//!   Optional [`CostLedger`] with totals per tenant, user, feature and model.
//! - [`BudgetLayer`]: budgets per tenant, user, feature or global, per day, month or in
//!   total, that reserve the worst case before sending and settle the real cost after, so
//!   they are never overspent even under concurrency; in memory or in Redis (feature
//!   `redis`) so replicas share them. Reservations cannot leak: each has an id and a lease
//!   ([`BudgetLayer::lease`]), is released if its caller is cancelled at any point, and is
//!   settled at most once (settles are retried); inputs of unknown size (documents by URL, …)
//!   are reserved at a documented worst case ([`UnknownInput`]) or refused.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use claude_tower::core::{MessagesRequest, ext::Attribution};
//! use claude_tower::cost::{Cost, CostLayer, CostLedger};
//! use claude_tower::mock::MockClaude;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let ledger = CostLedger::new();
//! let service = ServiceBuilder::new()
//!     .layer(CostLayer::new().ledger(ledger.clone()))
//!     .service(MockClaude::new());
//!
//! let mut request = MessagesRequest::new("claude-sonnet-4-6", 256).user("Hello").into_http();
//! request.extensions_mut().insert(Attribution::tenant("acme"));
//! let response = service.oneshot(request).await.unwrap();
//! let cost = response.extensions().get::<Cost>().unwrap().clone();
//! assert!(cost.total > claude_tower::cost::Usd::ZERO);
//! assert_eq!(ledger.snapshot().by_tenant["acme"].cost, cost.total);
//! # }
//! ```
//!
//! # Configuration
//!
//! ```
//! use claude_tower::cost::{BudgetLayer, CostLayer, MemoryBudgetStore, PriceTable, Usd, Window};
//!
//! let table = PriceTable::builtin(); // or PriceTable::from_json(..), .with_row(..)
//! let budgets = BudgetLayer::new(MemoryBudgetStore::new())
//!     .table(table.clone())
//!     .global("500".parse::<Usd>().unwrap(), Window::Month)
//!     .per_tenant("20".parse::<Usd>().unwrap(), Window::Day)
//!     .soft_limit(80, |alert| eprintln!("budget {} at {}", alert.key, alert.spent));
//! let meter = CostLayer::new().table(table);
//! # let _ = (budgets, meter);
//! ```
//!
//! # Where it goes in the stack
//!
//! Outside the response cache (a hit costs 0) and the retry layer (one logical request is
//! reserved once), inside tracing.
//!
//! # Errors
//!
//! [`ErrorKind::BudgetExceeded`](claude_tower_core::ErrorKind::BudgetExceeded) when a
//! reservation does not fit, or with [`UnknownInput::Refuse`] for inputs of unknown size
//! (nothing sent); `Config` for a model the table does not know (unless a fallback row is
//! set), also before sending.
//!
//! # Feature flags
//!
//! - `redis`: [`RedisBudgetStore`].
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod budget;
mod ledger;
mod meter;
mod money;
mod pricing;
#[cfg(feature = "redis")]
mod redis_store;
pub mod store;

pub use budget::{
    BudgetAlert, BudgetLayer, DEFAULT_LEASE, DEFAULT_SETTLE_RETRY_FOR,
    DEFAULT_UNKNOWN_DOCUMENT_TOKENS, DEFAULT_UNKNOWN_IMAGE_TOKENS, DEFAULT_UNKNOWN_TOOL_USE_TOKENS,
    ReservationStats, Scope, UnknownInput, Window,
};
pub use ledger::{CostLedger, LedgerSnapshot, Totals};
pub use meter::{CostHandle, CostLayer, CostMeter, ResponseFuture};
pub use money::{Multiplier, ParseAmountError, PerMillion, Usd};
pub use pricing::{
    BUILTIN_PRICES, Cost, InputSplit, Modifiers, PriceRow, PriceTable, PriceTier, UnknownModel,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::{DEFAULT_SETTLED_MEMORY, RedisBudgetStore};
pub use store::{Balance, BudgetLine, BudgetStore, MemoryBudgetStore, Reservation, ReservationId};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
