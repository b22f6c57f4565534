//! [`PromptCacheLayer`], [`PromptCacheReport`], [`PromptCacheStats`] and [`warm`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use claude_tower_core::MessagesService;
use claude_tower_core::end::{OnEnd, ResponseEnd, Settle};
use claude_tower_core::ext::Deferred;
use claude_tower_core::ext::Late;
use claude_tower_core::models::ModelTable;
use claude_tower_core::{Error, Message, MessagesBody, MessagesRequest, StreamEvent, Usage};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::plan::{TtlPolicy, place_breakpoints_reporting};

/// What the prompt cache did for one response (from its usage).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct PromptCacheReport {
    /// Tokens read from the cache.
    pub read: u64,
    /// Tokens written with the 5 minute lifetime.
    pub written_5m: u64,
    /// Tokens written with the 1 hour lifetime.
    pub written_1h: u64,
    /// Tokens neither read nor written (after the last breakpoint).
    pub uncached: u64,
    /// Why the server missed the cache, when the request asked for `diagnostics`
    /// (`diagnostics.cache_miss_reason` in the response, Dec-2026 API, SDK 2.16.0): a free server-side
    /// check of the layout.
    pub miss_reason: Option<CacheMissReason>,
    /// `cache_missed_input_tokens` of that reason, when given.
    pub missed_tokens: Option<u64>,
    /// Set by the layer when the whole prompt was shorter than the model's minimum cacheable
    /// length (this value): no marker can cache anything, so none was placed and the hit ratio
    /// stays 0. Not an error: the API silently caches nothing below the minimum.
    pub below_minimum: Option<u64>,
}

/// `diagnostics.cache_miss_reason` of a response (an open set upstream; values this crate does
/// not know are [`Other`](Self::Other), and the message keeps the raw JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheMissReason {
    /// `model_changed`
    ModelChanged,
    /// `system_changed`
    SystemChanged,
    /// `tools_changed`
    ToolsChanged,
    /// `messages_changed`
    MessagesChanged,
    /// `previous_message_not_found`
    PreviousMessageNotFound,
    /// `unavailable`
    Unavailable,
    /// `null`: the diagnosis is still pending.
    Pending,
    /// A value this crate does not know.
    Other,
}

impl CacheMissReason {
    /// Reads `diagnostics.cache_miss_reason` of a message (a string, or an object with a
    /// `type`), with its `cache_missed_input_tokens`.
    #[must_use]
    pub fn of(message: &Message) -> Option<(Self, Option<u64>)> {
        let miss = message.cache_miss()?;
        let kind = match miss.reason {
            None => Self::Pending,
            Some("model_changed") => Self::ModelChanged,
            Some("system_changed") => Self::SystemChanged,
            Some("tools_changed") => Self::ToolsChanged,
            Some("messages_changed") => Self::MessagesChanged,
            Some("previous_message_not_found") => Self::PreviousMessageNotFound,
            Some("unavailable") => Self::Unavailable,
            Some(_) => Self::Other,
        };
        Some((kind, miss.missed_input_tokens))
    }

    /// The wire name (`other` for unknown values).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ModelChanged => "model_changed",
            Self::SystemChanged => "system_changed",
            Self::ToolsChanged => "tools_changed",
            Self::MessagesChanged => "messages_changed",
            Self::PreviousMessageNotFound => "previous_message_not_found",
            Self::Unavailable => "unavailable",
            Self::Pending => "pending",
            Self::Other => "other",
        }
    }
}

impl PromptCacheReport {
    /// From a response's usage.
    #[must_use]
    pub fn from_usage(usage: &Usage) -> Self {
        let split = usage.cache_creation.clone().unwrap_or_default();
        let written = usage.cache_write_tokens();
        let written_1h = split.ephemeral_1h_input_tokens.min(written);
        Self {
            read: usage.cache_read_tokens(),
            written_5m: written - written_1h,
            written_1h,
            uncached: usage.input_tokens,
            miss_reason: None,
            missed_tokens: None,
            below_minimum: None,
        }
    }

    /// From a response: its usage and its `diagnostics.cache_miss_reason`.
    #[must_use]
    pub fn from_message(message: &Message) -> Self {
        let mut report = Self::from_usage(&message.usage);
        if let Some((reason, missed)) = CacheMissReason::of(message) {
            report.miss_reason = Some(reason);
            report.missed_tokens = missed;
        }
        report
    }

    /// The whole prompt.
    #[must_use]
    pub fn prompt_tokens(&self) -> u64 {
        self.read
            .saturating_add(self.written_5m)
            .saturating_add(self.written_1h)
            .saturating_add(self.uncached)
    }

    /// Token-weighted hit ratio: `read / prompt` (0 for an empty prompt).
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        let prompt = self.prompt_tokens();
        if prompt == 0 {
            0.0
        } else {
            self.read as f64 / prompt as f64
        }
    }
}

/// The [`PromptCacheReport`] of a response, in its extensions: set at once for a complete
/// message, at `message_start` (where the cache figures are) for a stream.
pub type PromptCacheReportHandle = Late<PromptCacheReport>;

/// Running totals over every response of a layer (shared by its clones).
#[derive(Debug, Clone, Default)]
pub struct PromptCacheStats(Arc<Mutex<(u64, PromptCacheReport)>>);

impl PromptCacheStats {
    fn add(&self, report: &PromptCacheReport) {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Usage numbers are untrusted: the totals saturate.
        guard.0 = guard.0.saturating_add(1);
        let total = &mut guard.1;
        total.read = total.read.saturating_add(report.read);
        total.written_5m = total.written_5m.saturating_add(report.written_5m);
        total.written_1h = total.written_1h.saturating_add(report.written_1h);
        total.uncached = total.uncached.saturating_add(report.uncached);
    }

    /// Responses counted.
    #[must_use]
    pub fn responses(&self) -> u64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    /// The summed report (its `hit_ratio` is the token-weighted ratio over all responses).
    #[must_use]
    pub fn totals(&self) -> PromptCacheReport {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).1
    }
}

/// The marker lifetimes of a deferred call (`ext::Deferred`): 1 h everywhere, as the batch
/// docs recommend for shared context.
static DEFERRED_TTL: std::sync::LazyLock<TtlPolicy> =
    std::sync::LazyLock::new(|| TtlPolicy::uniform(claude_tower_core::CacheTtl::OneHour));

#[derive(Debug)]
struct Shared {
    ttl: TtlPolicy,
    models: ModelTable,
    stats: PromptCacheStats,
}

/// Places prompt-cache breakpoints automatically; see the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct PromptCacheLayer {
    shared: Arc<Shared>,
}

impl Default for PromptCacheLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl PromptCacheLayer {
    /// Defaults: 1h on tools and system, 5m on the tail; the shipped model table.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                ttl: TtlPolicy::default(),
                models: ModelTable::builtin().clone(),
                stats: PromptCacheStats::default(),
            }),
        }
    }

    /// Marker lifetimes.
    #[must_use]
    pub fn ttl(self, ttl: TtlPolicy) -> Self {
        Self {
            shared: Arc::new(Shared {
                ttl,
                models: self.shared.models.clone(),
                stats: self.shared.stats.clone(),
            }),
        }
    }

    /// Minimum cacheable lengths from this table.
    #[must_use]
    pub fn models(self, models: ModelTable) -> Self {
        Self {
            shared: Arc::new(Shared {
                ttl: self.shared.ttl.clone(),
                models,
                stats: self.shared.stats.clone(),
            }),
        }
    }

    /// The running totals of this layer.
    #[must_use]
    pub fn stats(&self) -> PromptCacheStats {
        self.shared.stats.clone()
    }
}

claude_tower_core::layer_service!(
    /// The service of a [`PromptCacheLayer`].
    #[derive(Debug)]
    PromptCacheLayer => PromptCache, shared: Shared
);

impl<S> Service<http::Request<MessagesRequest>> for PromptCache<S>
where
    S: MessagesService,
{
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        let (parts, body) = request.into_parts();
        // A deferred call waits for its batch (often longer than 5 minutes): 1 h everywhere.
        let ttl = if parts.extensions.get::<Deferred>().is_some() {
            &*DEFERRED_TTL
        } else {
            &self.shared.ttl
        };
        let (body, below_minimum) = place_breakpoints_reporting(body, ttl, &self.shared.models);
        let future = self.inner.call(http::Request::from_parts(parts, body));
        ResponseFuture {
            future,
            stats: Some(self.shared.stats.clone()),
            below_minimum,
        }
    }
}

pin_project! {
    /// Response future of [`PromptCache`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        stats: Option<PromptCacheStats>,
        below_minimum: Option<u64>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<MessagesBody>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.future.poll(cx))?;
        let stats = this
            .stats
            .take()
            .expect("ResponseFuture polled after completion");
        let handle = PromptCacheReportHandle::default();
        response.extensions_mut().insert(handle.clone());
        let (mut parts, body) = response.into_parts();
        let (body, _done) = body.on_end(Report {
            handle: Some(handle.clone()),
            stats,
            below_minimum: *this.below_minimum,
        });
        if let Some(report) = handle.get() {
            parts.extensions.insert(*report);
        }
        Poll::Ready(Ok(http::Response::from_parts(parts, body)))
    }
}

/// Reports the cache figures of the response: a complete message's, or a stream's
/// `message_start` (they are known there, long before the stream ends).
struct Report {
    handle: Option<PromptCacheReportHandle>,
    stats: PromptCacheStats,
    below_minimum: Option<u64>,
}

impl Report {
    fn report(&mut self, message: &Message) {
        if let Some(handle) = self.handle.take() {
            let mut report = PromptCacheReport::from_message(message);
            report.below_minimum = self.below_minimum;
            self.stats.add(&report);
            handle.set(report);
        }
    }
}

impl OnEnd for Report {
    fn on_event(&mut self, event: &StreamEvent) {
        if let StreamEvent::MessageStart(start) = event {
            self.report(&start.message);
        }
    }

    fn on_end(&mut self, end: ResponseEnd<'_>) -> Settle {
        if let Some(message) = end.message {
            self.report(message);
        }
        Settle::done()
    }
}

/// Pre-warms the cache with `request`'s prefix: sends it with `max_tokens: 0` (no output is
/// generated and billed) and returns what was written.
///
/// # Errors
/// The service's error.
pub async fn warm<S>(mut service: S, request: MessagesRequest) -> Result<PromptCacheReport, Error>
where
    S: MessagesService,
{
    let mut request = request;
    request.max_tokens = 0;
    request.stream = None;
    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
    let message = service
        .call(request.into_http())
        .await?
        .into_body()
        .into_message()
        .await?;
    Ok(PromptCacheReport::from_message(&message))
}
