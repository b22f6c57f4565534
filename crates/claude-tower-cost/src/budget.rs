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
//! A reservation that does not fit fails at once with [`ErrorKind::BudgetExceeded`], before
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
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use claude_tower_core::clock::utc_date;
use claude_tower_core::ext::{Attribution, ResponseCacheStatus};
use claude_tower_core::readiness::call_when_ready;
use claude_tower_core::{
    Error, ErrorKind, EventStream, MessagesBody, MessagesRequest, StreamEvent, Usage,
};
use futures_core::Stream;
use tower_layer::Layer;
use tower_service::Service;

mod reserve;
mod settlement;

use reserve::{CacheMemory, InputPlan};
use settlement::Settlement;

use crate::meter::Metering;
use crate::money::Usd;
use crate::pricing::{Modifiers, PriceTable};
use crate::store::{BudgetLine, BudgetStore, Reservation};

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
    /// Each tenant ([`Attribution::tenant`]) separately.
    Tenant,
    /// Each user ([`Attribution::user`] or `metadata.user_id`) separately.
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

struct Shared {
    table: Arc<PriceTable>,
    store: Arc<dyn BudgetStore>,
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
    /// Refuse such requests with [`ErrorKind::BudgetExceeded`] (nothing sent).
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
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => f(shared),
            None => {
                let old = &self.shared;
                let mut shared = Shared {
                    table: Arc::clone(&old.table),
                    store: Arc::clone(&old.store),
                    rules: old.rules.clone(),
                    margin_percent: old.margin_percent,
                    memory: old.memory.clone(),
                    stats: Arc::clone(&old.stats),
                    soft: old.soft.clone(),
                    clock: Arc::clone(&old.clock),
                    prefix: old.prefix.clone(),
                    fail_open: old.fail_open,
                    lease: old.lease,
                    settle_retry_for: old.settle_retry_for,
                    unknown_input: old.unknown_input,
                    overshoots: Arc::clone(&old.overshoots),
                    unattributed: Arc::clone(&old.unattributed),
                };
                f(&mut shared);
                self.shared = Arc::new(shared);
            }
        }
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
    /// because the request had no such attribution (no [`Attribution`] extension, header or
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

impl Shared {
    fn key(&self, scope: Scope, who: Option<&str>, window: Window) -> String {
        let scope = match (scope, who) {
            (Scope::Global, _) | (_, None) => "global".to_owned(),
            (Scope::Tenant, Some(who)) => format!("tenant:{who}"),
            (Scope::User, Some(who)) => format!("user:{who}"),
            (Scope::Feature, Some(who)) => format!("feature:{who}"),
        };
        let (year, month, day) = utc_date((self.clock)());
        let window = match window {
            Window::Total => "total".to_owned(),
            Window::Day => format!("day:{year:04}-{month:02}-{day:02}"),
            Window::Month => format!("month:{year:04}-{month:02}"),
        };
        format!("{}:{scope}:{window}", self.prefix)
    }

    fn lines(&self, attribution: &Attribution) -> Vec<BudgetLine> {
        self.rules
            .iter()
            .filter_map(|rule| {
                let who = match rule.scope {
                    Scope::Global => None,
                    Scope::Tenant => Some(attribution.tenant.as_deref()),
                    Scope::User => Some(attribution.user.as_deref()),
                    Scope::Feature => Some(attribution.feature.as_deref()),
                };
                let who = match who {
                    None => None,
                    Some(Some(who)) => Some(who),
                    Some(None) => {
                        // Configured but not applicable: say so (once), never silently.
                        if self.unattributed.fetch_add(1, Ordering::Relaxed) == 0 {
                            tracing::warn!(
                                target: "claude_tower::budget",
                                scope = ?rule.scope,
                                "a {:?} budget is configured but a request has no such attribution: \
                                 it is not enforced for that request (set an Attribution extension, \
                                 e.g. with Client::messages().attribution(…))",
                                rule.scope
                            );
                        }
                        return None;
                    }
                };
                let ttl = match rule.window {
                    Window::Total => None,
                    Window::Day => Some(Duration::from_secs(2 * 86_400)),
                    Window::Month => Some(Duration::from_secs(32 * 86_400)),
                };
                Some(BudgetLine {
                    key: self.key(rule.scope, who, rule.window),
                    limit: rule.limit.nanodollars_floor(),
                    ttl,
                })
            })
            .collect()
    }

    /// The reservation for `request`: (total, input side, the plan behind it).
    fn reservation(&self, request: &MessagesRequest) -> Result<(Usd, Usd, InputPlan), Error> {
        let mut plan = reserve::plan(
            request,
            self.memory.as_deref(),
            self.margin_percent,
            (self.clock)(),
        );
        let unknown = request.unknown_size_inputs();
        if !unknown.is_empty() {
            match self.unknown_input {
                UnknownInput::Refuse => {
                    return Err(Error::new(
                        ErrorKind::BudgetExceeded,
                        format!(
                            "the request has inputs whose size cannot be known before sending ({unknown}) and the budget refuses them (nothing was sent)"
                        ),
                    ));
                }
                UnknownInput::Reserve {
                    document_tokens,
                    image_tokens,
                    tool_use_tokens,
                } => {
                    let window = claude_tower_core::models::ModelTable::builtin()
                        .context_window(&request.model);
                    let documents = unknown
                        .documents
                        .saturating_mul(document_tokens)
                        .min(window.max(document_tokens));
                    let extra = documents
                        .saturating_add(unknown.images.saturating_mul(image_tokens))
                        .saturating_add(unknown.tool_uses.saturating_mul(tool_use_tokens));
                    // At the highest rate the request can be billed at.
                    let split = &mut plan.split;
                    let part = if split.write_1h > 0 {
                        &mut split.write_1h
                    } else if split.write_5m > 0 {
                        &mut split.write_5m
                    } else {
                        &mut split.input
                    };
                    *part = part.saturating_add(extra);
                }
            }
        }
        let searches = request
            .tools
            .iter()
            .flat_map(|t| t.iter())
            .filter(|t| {
                t.kind
                    .as_deref()
                    .is_some_and(|k| k.starts_with("web_search"))
            })
            .map(|t| {
                t.extra
                    .get("max_uses")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(10)
            })
            .sum();
        let modifiers = Modifiers {
            us_only: request.inference_geo.as_deref() == Some("us"),
            ..Modifiers::of(Some(request), None)
        };
        let (input, total) = self.table.reservation(
            &request.model,
            &plan.split,
            u64::from(request.max_tokens),
            searches,
            modifiers,
        )?;
        Ok((total, input, plan))
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Budget {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of a [`BudgetLayer`].
///
/// # Clone
///
/// The call future owns the inner service (clone-and-swap), so `S: Clone`.
#[derive(Clone)]
pub struct Budget<S> {
    inner: S,
    shared: Arc<Shared>,
}

claude_tower_core::inner_service_accessors!(Budget<S>);

impl<S: fmt::Debug> fmt::Debug for Budget<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

claude_tower_core::boxed_response_future! {
    /// Response future of [`Budget`]: the store I/O makes it multi-step, so it boxes an async
    /// block (one allocation per request) behind this opaque type.
    ResponseFuture
}

impl<S> Service<http::Request<MessagesRequest>> for Budget<S>
where
    S: Service<
            http::Request<MessagesRequest>,
            Response = http::Response<MessagesBody>,
            Error = Error,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = ResponseFuture;

    /// Always ready: the inner service's readiness is taken only after the reservation, so an
    /// inner permit never idles while the budget store answers.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        let mut inner = self.inner.clone();
        let shared = Arc::clone(&self.shared);
        ResponseFuture::new(async move { call(shared, &mut inner, request).await })
    }
}

async fn call<S>(
    shared: Arc<Shared>,
    inner: &mut S,
    request: http::Request<MessagesRequest>,
) -> Result<http::Response<MessagesBody>, Error>
where
    S: Service<
            http::Request<MessagesRequest>,
            Response = http::Response<MessagesBody>,
            Error = Error,
        >,
{
    let attribution = Attribution::of(&request);
    let lines = shared.lines(&attribution);
    if lines.is_empty() {
        return call_when_ready(inner, request).await;
    }
    let (worst, input_side, plan) = shared.reservation(request.body())?;
    let amount = worst.nanodollars_ceil();
    // The guard exists before the reserve is awaited: cancelled from here on, it releases.
    let mut settlement = Settlement::new(Arc::clone(&shared), lines, amount);
    let lines = &settlement.lines;
    match shared
        .store
        .reserve(lines, &settlement.id, amount, shared.lease)
        .await
    {
        Ok(Reservation::Granted) => {}
        Ok(Reservation::Refused { line, balance }) => {
            let Some(line) = lines.get(line).or(lines.last()) else {
                return Err(Error::new(ErrorKind::Other, "budget store refused no line"));
            };
            let error = Error::new(
                ErrorKind::BudgetExceeded,
                format!(
                    "{}: spent {}, reserved {}, limit {}; this request may cost up to {} (nothing was sent)",
                    line.key,
                    Usd::from_nanodollars(balance.spent),
                    Usd::from_nanodollars(balance.reserved),
                    Usd::from_nanodollars(line.limit),
                    worst
                ),
            );
            // Nothing was reserved.
            settlement.done = true;
            return Err(error);
        }
        Err(error) if shared.fail_open => {
            // Sent unbudgeted; the settlement still charges what it costs (and releases a
            // reserve that may have gone through after all).
            tracing::warn!(target: "claude_tower::cost", %error, "budget store failed; letting the request through (fail open)");
        }
        Err(error) => {
            tracing::warn!(target: "claude_tower::cost", %error, "budget store failed; refusing the request (fail closed)");
            return Err(error);
        }
    }
    let metering = Metering::new(Arc::clone(&shared.table), None, &request);
    let reserved = Reserved {
        plan,
        input: input_side.nanodollars_ceil(),
        total: amount,
    };
    let response = match call_when_ready(inner, request).await {
        Ok(response) => response,
        Err(error) => {
            settlement.settle(0).await;
            return Err(error);
        }
    };
    let cached =
        response.extensions().get::<ResponseCacheStatus>() == Some(&ResponseCacheStatus::Hit);
    let (parts, body) = response.into_parts();
    let body = match body {
        MessagesBody::Message(message) => {
            let actual = shared.finish(
                &reserved,
                &metering,
                Some(&message.model),
                &message.usage,
                cached,
            );
            // Known before any await: a cancellation from here on still charges it.
            settlement.actual = actual;
            settlement.settle(actual).await;
            MessagesBody::Message(message)
        }
        MessagesBody::Stream(stream) => MessagesBody::Stream(EventStream::new(SettlingStream {
            inner: stream,
            settlement: Some(settlement),
            metering,
            reserved,
            shared: Arc::clone(&shared),
            usage: Usage::default(),
            model: None,
            cached,
            settling: None,
        })),
    };
    Ok(http::Response::from_parts(parts, body))
}

/// Settles the reservation when the stream ends (before yielding its end), fails, or is
/// dropped.
struct SettlingStream {
    inner: EventStream,
    settlement: Option<Settlement>,
    metering: Metering,
    reserved: Reserved,
    shared: Arc<Shared>,
    usage: Usage,
    model: Option<String>,
    cached: bool,
    settling: Option<(
        Pin<Box<dyn Future<Output = ()> + Send>>,
        Option<Result<StreamEvent, Error>>,
    )>,
}

impl Stream for SettlingStream {
    type Item = Result<StreamEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some((future, last)) = this.settling.as_mut() {
                if future.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let last = last.take();
                this.settling = None;
                return Poll::Ready(last);
            }
            let item = match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            match &item {
                Some(Ok(StreamEvent::MessageStart(start))) => {
                    this.usage = start.message.usage.clone();
                    this.model = Some(start.message.model.clone());
                }
                Some(Ok(StreamEvent::MessageDelta(delta))) => this.usage.apply_delta(&delta.usage),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    if let Some(mut settlement) = this.settlement.take() {
                        let actual = this.shared.finish(
                            &this.reserved,
                            &this.metering,
                            this.model.as_deref(),
                            &this.usage,
                            this.cached,
                        );
                        settlement.actual = actual;
                        this.settling = Some((Box::pin(settlement.settle(actual)), item));
                        continue;
                    }
                }
            }
            return Poll::Ready(item);
        }
    }
}

impl Drop for SettlingStream {
    fn drop(&mut self) {
        if let Some(mut settlement) = self.settlement.take() {
            // Dropped mid-stream: charge what is known to have been used so far (the
            // settlement's own drop settles it in the background).
            settlement.actual = self.shared.finish(
                &self.reserved,
                &self.metering,
                self.model.as_deref(),
                &self.usage,
                self.cached,
            );
        }
    }
}

/// What a request reserved: the plan behind it (for the cache memory) and the amounts (for
/// the stats), in nano-dollars.
struct Reserved {
    plan: InputPlan,
    input: u64,
    total: u64,
}

impl Shared {
    /// The real cost of a response in nano-dollars (rounded up), recorded in the stats and,
    /// when it used the prompt cache, in the cache memory.
    fn finish(
        &self,
        reserved: &Reserved,
        metering: &Metering,
        model: Option<&str>,
        usage: &Usage,
        cached: bool,
    ) -> u64 {
        let cost = metering.price(model, usage, cached);
        let input = cost.input + cost.cache_write_5m + cost.cache_write_1h + cost.cache_read;
        let actual = cost.total.nanodollars_ceil();
        self.stats
            .record(reserved, input.nanodollars_ceil(), actual);
        if let Some(memory) = &self.memory {
            memory.remember(&reserved.plan, usage, (self.clock)());
        }
        actual
    }
}

#[derive(Debug, Default)]
struct StatsCells {
    requests: AtomicU64,
    reserved_input: AtomicU64,
    reserved: AtomicU64,
    actual_input: AtomicU64,
    actual: AtomicU64,
}

impl StatsCells {
    fn record(&self, reserved: &Reserved, actual_input: u64, actual: u64) {
        let add = |cell: &AtomicU64, value: u64| {
            let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_add(value))
            });
        };
        add(&self.requests, 1);
        add(&self.reserved_input, reserved.input);
        add(&self.reserved, reserved.total);
        add(&self.actual_input, actual_input);
        add(&self.actual, actual);
    }

    fn snapshot(&self) -> ReservationStats {
        let usd = |cell: &AtomicU64| Usd::from_nanodollars(cell.load(Ordering::Relaxed));
        ReservationStats {
            requests: self.requests.load(Ordering::Relaxed),
            reserved_input: usd(&self.reserved_input),
            reserved: usd(&self.reserved),
            actual_input: usd(&self.actual_input),
            actual: usd(&self.actual),
        }
    }
}

/// Reservations against real costs over the settled requests of a [`BudgetLayer`] (see
/// [`BudgetLayer::reservation_stats`]). The input side is what the prompt is billed (input,
/// cache writes and reads); the rest of a reservation is `max_tokens` of output and the web
/// searches the tools allow, which a reply rarely uses in full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReservationStats {
    /// Requests settled.
    pub requests: u64,
    /// Reserved for their input side.
    pub reserved_input: Usd,
    /// Reserved in total.
    pub reserved: Usd,
    /// What their input side really cost.
    pub actual_input: Usd,
    /// What they really cost.
    pub actual: Usd,
}

impl ReservationStats {
    /// Input-side reservation ÷ real input-side cost (`None` before any cost).
    #[must_use]
    pub fn input_ratio(&self) -> Option<f64> {
        ratio(self.reserved_input, self.actual_input)
    }

    /// Total reservation ÷ real cost (`None` before any cost).
    #[must_use]
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.reserved, self.actual)
    }
}

fn ratio(reserved: Usd, actual: Usd) -> Option<f64> {
    (actual > Usd::ZERO).then(|| reserved.picodollars() as f64 / actual.picodollars() as f64)
}
