//! [`RateLimitLayer`]: the builder of the layer.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use claude_tower_core::layer_state::{ClonedMutex, FreshOnClone};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::PollSemaphore;
use tower_layer::Layer;

use crate::limits::{Dimension, Limits, OutputReservation};
use crate::service::RateLimit;
use crate::state::{DEFAULT_MAX_WAIT, Shared, default_counts_cache_reads, default_model_class};
use crate::store::{BucketSpec, MemoryRateLimitStore, RateLimitStore};

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
                learned: ClonedMutex::default(),
                learned_version: FreshOnClone::default(),
                output: OutputReservation::MaxTokens,
                counts_reads: Arc::new(default_counts_cache_reads),
                max_wait: DEFAULT_MAX_WAIT,
                max_pause: claude_tower_core::DEFAULT_MAX_RETRY_AFTER,
                adaptive: true,
                fail_open: false,
                prefix: "claude-tower:rl".to_owned(),
                concurrency: None,
                specs: FreshOnClone::default(),
                models: FreshOnClone::default(),
                pool_slots: FreshOnClone::default(),
                key_slots: FreshOnClone::default(),
            }),
        }
    }

    /// A builder edit: on a copy of the shared state when a layer or service still uses it
    /// (which keeps its own), with empty caches.
    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
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

    /// Also limit each key within each pool: the request's `RateLimitScope` (set by a key pool:
    /// the workspace of the API key it was sent with), else the `Attribution` tenant, else its
    /// user, else `metadata.user_id`.
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
