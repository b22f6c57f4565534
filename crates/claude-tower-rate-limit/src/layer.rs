//! [`RateLimitLayer`] and [`RateLimit`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use claude_tower_core::rate_limit::RateLimitHeaders;
use claude_tower_core::{Error, MessagesBody, MessagesRequest};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;
use tower_layer::Layer;
use tower_service::Service;

use crate::admit::{self, Admitted, Permits, StoreOp};
use crate::future::ResponseFuture;
use crate::limits::{Dimension, Limits, OutputReservation};
use crate::store::{BucketSpec, MemoryRateLimitStore, RateLimitStore};

type ClassFn = Arc<dyn Fn(&str) -> String + Send + Sync>;
type CountsReadsFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn RateLimitStore>,
    pub(crate) classify: ClassFn,
    pub(crate) pools: HashMap<String, Limits>,
    pub(crate) default_limits: Limits,
    pub(crate) per_key: Option<Limits>,
    pub(crate) learned: Mutex<HashMap<String, Limits>>,
    /// Bumped whenever `learned` changes, so cached pool specs know when to rebuild.
    pub(crate) learned_version: std::sync::atomic::AtomicU64,
    pub(crate) output: OutputReservation,
    pub(crate) counts_reads: CountsReadsFn,
    pub(crate) max_wait: Duration,
    /// Longest pool pause a 429's hint may cause.
    pub(crate) max_pause: Duration,
    pub(crate) adaptive: bool,
    pub(crate) fail_open: bool,
    pub(crate) prefix: String,
    pub(crate) concurrency: Option<Arc<Semaphore>>,
    /// Per pool: the limits the specs were built for, the pool's bucket specs and pause key.
    pub(crate) specs: Mutex<HashMap<String, Arc<PoolSpecs>>>,
    /// Per model id: its pool's specs and whether it counts cache reads (so a call does not
    /// classify, allocate or look up its pool by name). Bounded by [`MODEL_CACHE_SIZE`].
    pub(crate) models: Mutex<HashMap<Box<str>, (Arc<PoolSpecs>, bool)>>,
    /// Concurrency slots of each pool with `max_concurrent` (kept across spec rebuilds).
    pub(crate) pool_slots: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
    /// Concurrency slots of each key (`"{class}\0{key}"`), pruned of idle ones when large.
    pub(crate) key_slots: Mutex<HashMap<Box<str>, Arc<Semaphore>>>,
}

/// Key slot count above which idle key semaphores are dropped.
const KEY_SLOTS_PRUNE_AT: usize = 4096;

/// Most model ids remembered by a layer (cleared when full: a pool's specs are shared, so
/// re-learning a model costs one classification).
const MODEL_CACHE_SIZE: usize = 1024;

#[derive(Debug)]
pub(crate) struct PoolSpecs {
    /// The model class (pool name).
    pub(crate) class: Arc<str>,
    pub(crate) limits: Limits,
    /// The `learned_version` these specs were built at.
    pub(crate) version: u64,
    /// The pool's buckets and their dimensions (shared by every call, never copied).
    pub(crate) buckets: Arc<[BucketSpec]>,
    pub(crate) dimensions: Arc<[Dimension]>,
    pub(crate) pause_key: Arc<str>,
    /// The pool's concurrency slots, when it has `max_concurrent`.
    pub(crate) slots: Option<Arc<Semaphore>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("store", &self.store)
            .field("pools", &self.pools)
            .field("default_limits", &self.default_limits)
            .field("per_key", &self.per_key)
            .field("output", &self.output)
            .field("max_wait", &self.max_wait)
            .field("adaptive", &self.adaptive)
            .field("fail_open", &self.fail_open)
            .field(
                "max_concurrent",
                &self.concurrency.as_ref().map(|s| s.available_permits()),
            )
            .finish_non_exhaustive()
    }
}

/// The default model classes: `opus`, `sonnet`, `haiku`, `fable`, `mythos` by the model id
/// (the API pools limits per class across versions), else the id itself.
#[must_use]
pub fn default_model_class(model: &str) -> String {
    ["opus", "sonnet", "haiku", "fable", "mythos"]
        .into_iter()
        .find(|class| model.contains(class))
        .unwrap_or(model)
        .to_owned()
}

/// Models whose cache reads count toward ITPM (the rate-limits docs: Haiku 3.5, Haiku 3 and older
/// 3.x): every `claude-3-*` id.
#[must_use]
pub fn default_counts_cache_reads(model: &str) -> bool {
    model.starts_with("claude-3-")
}

/// Default longest wait for capacity before failing with `RateLimited`.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// Client-side rate limiting; see the [crate docs](crate).
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl Default for RateLimitLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimitLayer {
    /// In-memory buckets, limits learned from the response headers until configured.
    #[must_use]
    pub fn new() -> Self {
        Self::with_store(MemoryRateLimitStore::new())
    }

    /// Buckets in `store` (e.g. Redis, shared by replicas).
    #[must_use]
    pub fn with_store(store: impl RateLimitStore) -> Self {
        Self {
            shared: Arc::new(Shared {
                store: Arc::new(store),
                classify: Arc::new(default_model_class),
                pools: HashMap::new(),
                default_limits: Limits::learn(),
                per_key: None,
                learned: Mutex::new(HashMap::new()),
                learned_version: std::sync::atomic::AtomicU64::new(0),
                output: OutputReservation::MaxTokens,
                counts_reads: Arc::new(default_counts_cache_reads),
                max_wait: DEFAULT_MAX_WAIT,
                max_pause: claude_tower_core::DEFAULT_MAX_RETRY_AFTER,
                adaptive: true,
                fail_open: false,
                prefix: "claude-tower:rl".to_owned(),
                concurrency: None,
                specs: Mutex::new(HashMap::new()),
                models: Mutex::new(HashMap::new()),
                pool_slots: Mutex::new(HashMap::new()),
                key_slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn edit(self, f: impl FnOnce(&mut Shared)) -> Self {
        let old = &self.shared;
        let mut shared = Shared {
            store: Arc::clone(&old.store),
            classify: Arc::clone(&old.classify),
            pools: old.pools.clone(),
            default_limits: old.default_limits,
            per_key: old.per_key,
            learned: Mutex::new(
                old.learned
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            ),
            learned_version: std::sync::atomic::AtomicU64::new(0),
            output: old.output,
            counts_reads: Arc::clone(&old.counts_reads),
            max_wait: old.max_wait,
            max_pause: old.max_pause,
            adaptive: old.adaptive,
            fail_open: old.fail_open,
            prefix: old.prefix.clone(),
            concurrency: old.concurrency.clone(),
            specs: Mutex::new(HashMap::new()),
            models: Mutex::new(HashMap::new()),
            pool_slots: Mutex::new(HashMap::new()),
            key_slots: Mutex::new(HashMap::new()),
        };
        f(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Limits of one model class (pool), e.g. `"sonnet"`.
    #[must_use]
    pub fn pool(self, class: impl Into<String>, limits: Limits) -> Self {
        let class = class.into();
        self.edit(|s| {
            s.pools.insert(class, limits);
        })
    }

    /// Limits of every pool not configured with [`pool`](Self::pool).
    #[must_use]
    pub fn default_limits(self, limits: Limits) -> Self {
        self.edit(|s| s.default_limits = limits)
    }

    /// Also limit each key (the `Attribution` tenant, else its user, else `metadata.user_id`)
    /// within each pool.
    #[must_use]
    pub fn per_key(self, limits: Limits) -> Self {
        self.edit(|s| s.per_key = Some(limits))
    }

    /// Maps a model id to its pool (default: [`default_model_class`]).
    #[must_use]
    pub fn model_class(self, classify: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.edit(|s| s.classify = Arc::new(classify))
    }

    /// Which models count cache reads toward ITPM (default: [`default_counts_cache_reads`]).
    #[must_use]
    pub fn counts_cache_reads(self, counts: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.edit(|s| s.counts_reads = Arc::new(counts))
    }

    /// The output reservation (default: `max_tokens`).
    #[must_use]
    pub fn output_reservation(self, output: OutputReservation) -> Self {
        self.edit(|s| s.output = output)
    }

    /// Longest wait for capacity (default 30 s); longer → `RateLimited` at once.
    #[must_use]
    pub fn max_wait(self, max_wait: Duration) -> Self {
        self.edit(|s| s.max_wait = max_wait)
    }

    /// Longest pause of a pool after an upstream 429 (default
    /// [`DEFAULT_MAX_RETRY_AFTER`](claude_tower_core::DEFAULT_MAX_RETRY_AFTER), 60 s): a longer
    /// `retry-after` hint is capped here, so one header can never stop a pool for longer.
    #[must_use]
    pub fn max_pause(self, max_pause: Duration) -> Self {
        self.edit(|s| s.max_pause = max_pause)
    }

    /// Whether to correct the buckets from the `anthropic-ratelimit-*` headers (default on).
    ///
    /// Learning is sanitised: a learned limit of `0` is ignored (it would refuse every request
    /// forever, and nothing would be sent to correct it), and a bucket correction or usage
    /// report moves a bucket by at most its capacity, so the pool is never blocked for longer
    /// than a minute of refill without sending.
    #[must_use]
    pub fn adaptive(self, adaptive: bool) -> Self {
        self.edit(|s| s.adaptive = adaptive)
    }

    /// When the store fails: refuse (`false`, default) or let requests through (`true`); both
    /// log a `tracing` warning.
    #[must_use]
    pub fn fail_open(self, fail_open: bool) -> Self {
        self.edit(|s| s.fail_open = fail_open)
    }

    /// At most `n` requests in flight (taken in `poll_ready`; shared by every service of this
    /// layer).
    #[must_use]
    pub fn max_concurrent(self, n: usize) -> Self {
        self.edit(|s| s.concurrency = Some(Arc::new(Semaphore::new(n))))
    }

    /// Prefix of the store keys (default `claude-tower:rl`).
    #[must_use]
    pub fn key_prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.edit(|s| s.prefix = prefix)
    }

    /// The bucket a dimension of a pool uses (for inspecting a store).
    #[must_use]
    pub fn bucket(&self, class: &str, dimension: Dimension) -> Option<BucketSpec> {
        let limits = self.shared.limits(class);
        self.shared.spec(class, None, dimension, &limits)
    }
}

impl Shared {
    pub(crate) fn limits(&self, class: &str) -> Limits {
        let configured = self
            .pools
            .get(class)
            .copied()
            .unwrap_or(self.default_limits);
        match self
            .learned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(class)
        {
            Some(learned) => configured.min(*learned),
            None => configured,
        }
    }

    pub(crate) fn spec(
        &self,
        class: &str,
        key: Option<&str>,
        dimension: Dimension,
        limits: &Limits,
    ) -> Option<BucketSpec> {
        let per_minute = dimension.of(limits)?;
        let key = match key {
            Some(key) => format!("{}:{class}:key:{key}:{}", self.prefix, dimension.suffix()),
            None => format!("{}:{class}:{}", self.prefix, dimension.suffix()),
        };
        Some(BucketSpec {
            key: key.into(),
            per_minute,
        })
    }

    /// The pool's bucket specs, built once per pool (and again when its limits change).
    pub(crate) fn pool_specs(&self, class: &str) -> Arc<PoolSpecs> {
        // Read the version before the limits: a concurrent change makes the next call rebuild.
        let version = self
            .learned_version
            .load(std::sync::atomic::Ordering::Acquire);
        let mut specs = self.specs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = specs.get(class)
            && existing.version == version
        {
            return Arc::clone(existing);
        }
        let limits = self.limits(class);
        let (dimensions, buckets): (Vec<Dimension>, Vec<BucketSpec>) = Dimension::ALL
            .into_iter()
            .filter_map(|d| self.spec(class, None, d, &limits).map(|spec| (d, spec)))
            .unzip();
        let class: Arc<str> = class.into();
        let slots = limits.max_concurrent.map(|n| {
            let mut slots = self
                .pool_slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                slots
                    .entry(Arc::clone(&class))
                    .or_insert_with(|| Arc::new(Semaphore::new(n))),
            )
        });
        let built = Arc::new(PoolSpecs {
            class: Arc::clone(&class),
            slots,
            limits,
            version,
            buckets: buckets.into(),
            dimensions: dimensions.into(),
            pause_key: format!("{}:{class}:pause", self.prefix).into(),
        });
        specs.insert(class.to_string(), Arc::clone(&built));
        built
    }

    /// The concurrency slots of `key` within `class` (per-key `max_concurrent`).
    pub(crate) fn key_slots(&self, class: &str, key: &str, n: usize) -> Arc<Semaphore> {
        let mut slots = self
            .key_slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let name = format!("{class}\0{key}");
        if let Some(existing) = slots.get(name.as_str()) {
            return Arc::clone(existing);
        }
        if slots.len() >= KEY_SLOTS_PRUNE_AT {
            // Only the map holds an idle key's semaphore (a waiter or a permit holds a clone).
            slots.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
        }
        let semaphore = Arc::new(Semaphore::new(n));
        slots.insert(name.into(), Arc::clone(&semaphore));
        semaphore
    }

    /// The specs of a model's pool and whether the model counts cache reads toward ITPM.
    pub(crate) fn model_specs(&self, model: &str) -> (Arc<PoolSpecs>, bool) {
        let version = self
            .learned_version
            .load(std::sync::atomic::Ordering::Acquire);
        if let Some((specs, counts_reads)) = self
            .models
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(model)
            && specs.version == version
        {
            return (Arc::clone(specs), *counts_reads);
        }
        let specs = self.pool_specs(&(self.classify)(model));
        let counts_reads = (self.counts_reads)(model);
        let mut models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        if models.len() >= MODEL_CACHE_SIZE && !models.contains_key(model) {
            models.clear();
        }
        models.insert(model.into(), (Arc::clone(&specs), counts_reads));
        (specs, counts_reads)
    }

    pub(crate) fn output_reservation(&self, max_tokens: u64) -> u64 {
        match self.output {
            OutputReservation::MaxTokens => max_tokens,
            OutputReservation::Percent(p) => {
                (max_tokens * u64::from(p.clamp(1, 100))).div_ceil(100)
            }
            OutputReservation::Fixed(n) => n.min(max_tokens),
        }
    }

    /// Learns limits from headers and lowers the pool buckets to the server's remaining (the
    /// store updates go to `sink`).
    /// Drops the limits learned for `class` (see the `TooLarge` refusal in `admit`).
    pub(crate) fn forget_learned(&self, class: &str) {
        let removed = self
            .learned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(class);
        if removed.is_some() {
            tracing::debug!(target: "claude_tower::rate_limit", %class, "a request can never fit the learned limits: forgetting them");
            self.learned_version
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }

    pub(crate) fn adapt(
        &self,
        class: &str,
        headers: &http::HeaderMap,
        sink: &mut dyn FnMut(StoreOp),
    ) {
        if !self.adaptive || headers.is_empty() {
            return;
        }
        let parsed = RateLimitHeaders::parse(headers, SystemTime::now());
        if parsed.is_empty() {
            return;
        }
        // A limit of 0 would refuse every request forever ("can never fit"), and since nothing
        // is sent then, it would never be corrected: ignored, as if absent.
        let sane = |limit: Option<u64>| limit.filter(|&l| l > 0);
        let learned = Limits {
            requests_per_minute: sane(parsed.requests.limit),
            input_tokens_per_minute: sane(parsed.input_tokens.limit),
            output_tokens_per_minute: sane(parsed.output_tokens.limit),
            max_concurrent: None,
        };
        let previous = self
            .learned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(class.to_owned(), learned);
        if previous != Some(learned) {
            self.learned_version
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        let pool = self.pool_specs(class);
        for (bucket, dimension) in pool.buckets.iter().zip(pool.dimensions.iter()) {
            let remaining = match dimension {
                Dimension::Requests => parsed.requests.remaining,
                Dimension::InputTokens => parsed.input_tokens.remaining,
                Dimension::OutputTokens => parsed.output_tokens.remaining,
            };
            if let Some(remaining) = remaining {
                sink(StoreOp::Correct {
                    bucket: bucket.clone(),
                    remaining,
                });
            }
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            semaphore: self.shared.concurrency.clone().map(PollSemaphore::new),
            permit: None,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of a [`RateLimitLayer`].
///
/// # Clone
///
/// A request admitted at once (the in-memory store, no wait) is sent through the inner service
/// directly; one that must wait, or whose store answers asynchronously (Redis), is sent from
/// a boxed future that owns a clone of the inner service (clone-and-swap), so `S: Clone`. A
/// clone never copies a concurrency permit taken by `poll_ready`.
pub struct RateLimit<S> {
    inner: S,
    semaphore: Option<PollSemaphore>,
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            semaphore: self.semaphore.clone(),
            permit: None,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("has_permit", &self.permit.is_some())
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S> Service<http::Request<MessagesRequest>> for RateLimit<S>
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
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(semaphore) = &mut self.semaphore
            && self.permit.is_none()
        {
            match semaphore.poll_acquire(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(permit) => self.permit = permit,
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        let permit = if self.semaphore.is_some() {
            Some(
                self.permit
                    .take()
                    .expect("poll_ready must be called (and return Ready) before call"),
            )
        } else {
            None
        };
        let mut permits = Permits::new(permit);
        let shared = &self.shared;
        let prepared = admit::prepare(shared, &request);
        let admission = if prepared.try_take_slots(&mut permits) {
            prepared.acquire_now(shared, shared.max_wait)
        } else {
            None
        };
        let Some(admission) = admission else {
            // A concurrency slot must be waited for, or the store answers asynchronously:
            // admit inside a boxed future (clone-and-swap, so the service that was polled
            // ready is the one called).
            let clone = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, clone);
            return ResponseFuture::boxed(admit::admit_and_call(
                Arc::clone(shared),
                inner,
                request,
                prepared,
                permits,
            ));
        };
        match prepared.admit(shared, admission, permits) {
            Err(error) => ResponseFuture::failed(error),
            // Admitted at once: no future of our own, just the inner one, finished in `poll`.
            Ok(Admitted { wait, after }) if wait.is_zero() => {
                ResponseFuture::admitted(self.inner.call(request), after)
            }
            Ok(Admitted { wait, after }) => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::boxed(admit::call_and_finish(inner, request, wait, after))
            }
        }
    }
}
