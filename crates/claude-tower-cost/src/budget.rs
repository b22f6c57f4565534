//! [`BudgetLayer`] / [`Budget`]: budgets that are never overspent, even under concurrency.
//!
//! Before a request is sent, its cost is reserved on every budget it counts against (global,
//! its tenant, its user, its feature; each over its window): its input as it can really be
//! billed, plus `max_tokens` of output, plus the web searches its tools allow. The input is
//! the estimate raised to its documented error bound
//! (`claude_tower::core::estimate::upper_bound`), split by rate:
//!
//! - tokens up to a `cache_control` marker whose prefix reaches the model's minimum cacheable
//!   length at that marker's **write** rate (1 h before 5 min);
//! - tokens up to a prefix this layer saw cached within its TTL at the **read** rate (see
//!   [`BudgetLayer::expect_cache_reads`]);
//! - the rest at the input rate.
//!
//! A reservation that does not fit fails at once with [`ErrorKind::BudgetExceeded`](claude_tower_core::ErrorKind::BudgetExceeded), before
//! anything is sent. When the response completes (a message, the end of a stream, an error, a
//! dropped stream or a cancelled call) the real cost is settled and the rest refunded.
//! [`BudgetLayer::reservation_stats`] reports reservations against real costs.
//!
//! Reservations are atomic in the store (a mutex in memory, a Lua script in Redis), so N
//! concurrent requests can never together reserve more than the limit. Settled spend stays
//! within the limit as long as each reservation covers its request: a call that costs more
//! (an estimate beyond its bound, a prefix the API evicted early) is charged in full and
//! counted in [`BudgetLayer::overshoots`].
//!
//! # Where it goes
//!
//! Inside the response cache (a hit reserves nothing) and after the trim and prompt-cache
//! layers (it prices the request really sent, with its markers), outside retry (one
//! reservation per logical request).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

mod body;
mod future;
mod lines;
mod reserve;
mod service;
mod settlement;
mod stats;

use claude_tower_core::layer_state::FreshOnClone;
pub use future::ResponseFuture;
use reserve::CacheMemory;
pub use service::Budget;
pub use stats::ReservationStats;
use stats::StatsCells;

use crate::money::Usd;
use crate::pricing::PriceTable;
use crate::store::{BudgetLine, BudgetStore};

/// The period a budget covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Window {
    /// Forever.
    Total,
    /// The UTC calendar day.
    Day,
    /// The UTC calendar month.
    Month,
}

/// Whom a budget applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// Every request.
    Global,
    /// Each tenant ([`Attribution::tenant`](claude_tower_core::ext::Attribution::tenant)) separately.
    Tenant,
    /// Each user ([`Attribution::user`](claude_tower_core::ext::Attribution::user) or `metadata.user_id`) separately.
    User,
    /// Each feature tag separately.
    Feature,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    scope: Scope,
    window: Window,
    limit: Usd,
}

/// Crossing of a soft threshold, passed to the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetAlert {
    /// The store key of the budget.
    pub key: String,
    /// Spend after the request that crossed the threshold.
    pub spent: Usd,
    /// The budget's limit.
    pub limit: Usd,
}

type AlertFn = Arc<dyn Fn(&BudgetAlert) + Send + Sync>;
type ClockFn = Arc<dyn Fn() -> SystemTime + Send + Sync>;

#[derive(Clone)]
struct Shared {
    table: Arc<PriceTable>,
    store: Arc<dyn BudgetStore>,
    /// The store's [`answers_ready`](BudgetStore::answers_ready), read once.
    store_ready: bool,
    rules: Vec<Rule>,
    /// A flat factor on the input estimate instead of its documented error bound.
    margin_percent: Option<u64>,
    /// Prefixes seen cached (expected reads); `None` to price every prefix as a write.
    memory: Option<Arc<CacheMemory>>,
    stats: Arc<StatsCells>,
    soft: Option<(u64, AlertFn)>,
    clock: ClockFn,
    prefix: String,
    fail_open: bool,
    lease: Duration,
    settle_retry_for: Duration,
    unknown_input: UnknownInput,
    overshoots: Arc<AtomicU64>,
    /// Requests a per-tenant/user/feature rule could not apply to (no such attribution).
    unattributed: Arc<AtomicU64>,
    /// When every rule is global, the lines are the same for every request of a day: built
    /// once per day (the day number since the epoch, and the lines).
    global_lines: FreshOnClone<Mutex<Option<(u64, Arc<[BudgetLine]>)>>>,
    /// When every rule is global and lifetime (`Window::Total`), the lines never change:
    /// built once (no lock per request).
    total_lines: FreshOnClone<std::sync::OnceLock<Arc<[BudgetLine]>>>,
}

/// How a budget reserves for inputs whose size cannot be known before sending: documents and
/// images given by URL or file id, and server tools that add input (web fetch, web search,
/// code execution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnknownInput {
    /// Reserve a worst case per item (the default): `document_tokens` per document (capped
    /// at the model's context window), `image_tokens` per image, and `tool_use_tokens` per
    /// allowed use of an input-adding server tool (`max_uses`, else 10).
    Reserve {
        /// Per URL/file document (default [`DEFAULT_UNKNOWN_DOCUMENT_TOKENS`]).
        document_tokens: u64,
        /// Per URL/file image (default [`DEFAULT_UNKNOWN_IMAGE_TOKENS`]).
        image_tokens: u64,
        /// Per allowed use of an input-adding server tool (default
        /// [`DEFAULT_UNKNOWN_TOOL_USE_TOKENS`]).
        tool_use_tokens: u64,
    },
    /// Refuse such requests with [`ErrorKind::BudgetExceeded`](claude_tower_core::ErrorKind::BudgetExceeded) (nothing sent).
    Refuse,
}

/// Default worst case of a document given by URL or file id: 100 pages (the API's PDF limit)
/// at about 2,600 tokens a page (text plus the page image), capped by the context window.
pub const DEFAULT_UNKNOWN_DOCUMENT_TOKENS: u64 = 260_000;
/// Default worst case of an image given by URL or file id (a large image at the highest
/// resolution current models accept).
pub const DEFAULT_UNKNOWN_IMAGE_TOKENS: u64 = 5_000;
/// Default worst case of one use of a server tool that adds input (a fetched page, search
/// results, tool output).
pub const DEFAULT_UNKNOWN_TOOL_USE_TOKENS: u64 = 25_000;
/// Default lease of a reservation: an hour, above the longest request the defaults allow
/// (600 s total timeout; long streams). Unsettled reservations stop counting after it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(3600);
/// Default time a failed settle is retried in the background.
pub const DEFAULT_SETTLE_RETRY_FOR: Duration = Duration::from_secs(60);

impl Default for UnknownInput {
    fn default() -> Self {
        Self::Reserve {
            document_tokens: DEFAULT_UNKNOWN_DOCUMENT_TOKENS,
            image_tokens: DEFAULT_UNKNOWN_IMAGE_TOKENS,
            tool_use_tokens: DEFAULT_UNKNOWN_TOOL_USE_TOKENS,
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetLayer")
            .field("store", &self.store)
            .field("rules", &self.rules)
            .field("input_margin_percent", &self.margin_percent)
            .field("soft_percent", &self.soft.as_ref().map(|s| s.0))
            .field("fail_open", &self.fail_open)
            .field("lease", &self.lease)
            .field("unknown_input", &self.unknown_input)
            .finish_non_exhaustive()
    }
}

/// Enforces budgets; see the [module docs](self).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use claude_tower::core::{ErrorKind, MessagesRequest};
/// use claude_tower::cost::{BudgetLayer, MemoryBudgetStore, Usd, Window};
/// use claude_tower::mock::MockClaude;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let service = ServiceBuilder::new()
///     .layer(BudgetLayer::new(MemoryBudgetStore::new()).global(Usd::from_cents(1), Window::Day))
///     .service(MockClaude::new());
/// // Worst case of 100,000 output tokens on Haiku 4.5 is $0.50: over a 1 cent budget.
/// let big = MessagesRequest::new("claude-haiku-4-5", 100_000).user("hi");
/// let error = service.clone().oneshot(big.into_http()).await.unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::BudgetExceeded);
/// let small = MessagesRequest::new("claude-haiku-4-5", 100).user("hi");
/// service.oneshot(small.into_http()).await.unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct BudgetLayer {
    shared: Shared2,
}

type Shared2 = Arc<Shared>;

impl fmt::Debug for BudgetLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl BudgetLayer {
    /// Budgets kept in `store`, priced with the shipped table; add budgets with
    /// [`global`](Self::global), [`per_tenant`](Self::per_tenant), …
    #[must_use]
    pub fn new(store: impl BudgetStore) -> Self {
        Self {
            shared: Arc::new(Shared {
                table: Arc::new(PriceTable::builtin()),
                store_ready: store.answers_ready(),
                store: Arc::new(store),
                rules: Vec::new(),
                margin_percent: None,
                memory: Some(Arc::new(CacheMemory::default())),
                stats: Arc::new(StatsCells::default()),
                soft: None,
                clock: Arc::new(SystemTime::now),
                prefix: "claude-tower:budget".to_owned(),
                fail_open: false,
                lease: DEFAULT_LEASE,
                settle_retry_for: DEFAULT_SETTLE_RETRY_FOR,
                unknown_input: UnknownInput::default(),
                overshoots: Arc::new(AtomicU64::new(0)),
                unattributed: Arc::new(AtomicU64::new(0)),
                global_lines: FreshOnClone::default(),
                total_lines: FreshOnClone::default(),
            }),
        }
    }

    /// A builder edit: on a copy of the shared state when a layer or service still uses it
    /// (which keeps its own; the statistics and counters stay shared).
    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    fn rule(self, scope: Scope, limit: Usd, window: Window) -> Self {
        self.edit(|s| {
            s.rules.push(Rule {
                scope,
                window,
                limit,
            })
        })
    }

    /// A budget on all requests together.
    #[must_use]
    pub fn global(self, limit: Usd, window: Window) -> Self {
        self.rule(Scope::Global, limit, window)
    }

    /// A budget per tenant.
    #[must_use]
    pub fn per_tenant(self, limit: Usd, window: Window) -> Self {
        self.rule(Scope::Tenant, limit, window)
    }

    /// A budget per user.
    #[must_use]
    pub fn per_user(self, limit: Usd, window: Window) -> Self {
        self.rule(Scope::User, limit, window)
    }

    /// A budget per feature tag.
    #[must_use]
    pub fn per_feature(self, limit: Usd, window: Window) -> Self {
        self.rule(Scope::Feature, limit, window)
    }

    /// Prices with this table.
    #[must_use]
    pub fn table(self, table: PriceTable) -> Self {
        self.edit(|s| s.table = Arc::new(table))
    }

    /// A flat safety factor on the input estimate, in percent (at least 100), instead of the
    /// default: the estimate's documented error bound
    /// (`claude_tower::core::estimate::upper_bound`, ×1.12 or ×1.46 by tokenizer, +64).
    #[must_use]
    pub fn input_margin_percent(self, percent: u64) -> Self {
        self.edit(|s| s.margin_percent = Some(percent.max(100)))
    }

    /// Whether a prefix this layer saw cached (a response that read or wrote the prompt
    /// cache, within the marker's TTL) is reserved at the cache-read rate (default `true`).
    /// With `false` every cacheable prefix is reserved at its write rate: never short, even
    /// when the API evicts a prefix early, but several times the usual cost of a long
    /// conversation. With `true`, an early eviction makes that call cost more than its
    /// reservation: it is settled at its real cost and counted in
    /// [`overshoots`](Self::overshoots).
    #[must_use]
    pub fn expect_cache_reads(self, expect: bool) -> Self {
        self.edit(|s| s.memory = expect.then(|| Arc::new(CacheMemory::default())))
    }

    /// Reservations against what the requests really cost, since the layer was built: the
    /// ratio a budget's limit should be sized with (see [`ReservationStats`]).
    #[must_use]
    pub fn reservation_stats(&self) -> ReservationStats {
        self.shared.stats.snapshot()
    }

    /// Calls `alert` (and logs a `tracing` warning) when a request makes a budget's spend
    /// cross `percent` of its limit.
    #[must_use]
    pub fn soft_limit(
        self,
        percent: u64,
        alert: impl Fn(&BudgetAlert) + Send + Sync + 'static,
    ) -> Self {
        self.edit(|s| s.soft = Some((percent, Arc::new(alert))))
    }

    /// When the store fails (e.g. Redis unreachable): `false` (default) refuses the request,
    /// `true` lets it through unbudgeted; both log a `tracing` warning.
    #[must_use]
    pub fn fail_open(self, fail_open: bool) -> Self {
        self.edit(|s| s.fail_open = fail_open)
    }

    /// How long a reservation holds if it is never settled (default [`DEFAULT_LEASE`]): set it
    /// above the longest request (its total timeout plus a margin). After it, a reservation
    /// left by a crash, a cancelled caller or a failed settle stops counting.
    #[must_use]
    pub fn lease(self, lease: Duration) -> Self {
        self.edit(|s| s.lease = lease)
    }

    /// How long a settle that failed (store unreachable) is retried in the background
    /// (default [`DEFAULT_SETTLE_RETRY_FOR`]); settles are idempotent, so retries never
    /// double-charge.
    #[must_use]
    pub fn settle_retry_for(self, duration: Duration) -> Self {
        self.edit(|s| s.settle_retry_for = duration)
    }

    /// How to reserve for inputs of unknown size (default [`UnknownInput::Reserve`] with the
    /// documented per-item worst cases).
    #[must_use]
    pub fn unknown_input(self, policy: UnknownInput) -> Self {
        self.edit(|s| s.unknown_input = policy)
    }

    /// How many settled requests cost more than their reservation (an estimate that was too
    /// low); each also logs a `tracing` warning.
    #[must_use]
    pub fn overshoots(&self) -> u64 {
        self.shared.overshoots.load(Ordering::Relaxed)
    }

    /// How many requests a per-tenant, per-user or per-feature budget could not apply to
    /// because the request had no such attribution (no [`Attribution`](claude_tower_core::ext::Attribution) extension, header or
    /// `metadata.user_id`). The first one also logs a `tracing` warning: such a budget is
    /// configured but not enforced for those requests.
    #[must_use]
    pub fn unattributed(&self) -> u64 {
        self.shared.unattributed.load(Ordering::Relaxed)
    }

    /// The wall clock for day/month windows (tests).
    #[must_use]
    pub fn clock(self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.edit(|s| s.clock = Arc::new(clock))
    }

    /// Prefix of the store keys (default `claude-tower:budget`).
    #[must_use]
    pub fn key_prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.edit(|s| s.prefix = prefix)
    }

    /// The store key of a budget, e.g. for reading its balance.
    #[must_use]
    pub fn key(&self, scope: Scope, who: Option<&str>, window: Window) -> String {
        self.shared.key(scope, who, window)
    }
}
