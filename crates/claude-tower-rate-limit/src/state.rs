//! The layer's shared state: pools, learned limits, per-key semaphores, the store. The first
//! module of the crate's one-way chain: `state` → `reservation` → `body` → `admit` →
//! `future` → `service` → `layer`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use claude_tower_core::layer_state::{ClonedMutex, FreshOnClone};
use tokio::sync::Semaphore;

use crate::limits::{Dimension, Limits, OutputReservation};
use crate::store::{BucketSpec, RateLimitStore};

pub(crate) type ClassFn = Arc<dyn Fn(&str) -> String + Send + Sync>;

pub(crate) type CountsReadsFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn RateLimitStore>,
    pub(crate) classify: ClassFn,
    pub(crate) pools: HashMap<String, Limits>,
    pub(crate) default_limits: Limits,
    pub(crate) per_key: Option<Limits>,
    pub(crate) learned: ClonedMutex<HashMap<String, Limits>>,
    /// Bumped whenever `learned` changes, so cached pool specs know when to rebuild.
    pub(crate) learned_version: FreshOnClone<std::sync::atomic::AtomicU64>,
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
    pub(crate) specs: FreshOnClone<Mutex<HashMap<String, Arc<PoolSpecs>>>>,
    /// Per model id: its pool's specs and whether it counts cache reads (so a call does not
    /// classify, allocate or look up its pool by name). Bounded by [`MODEL_CACHE_SIZE`].
    pub(crate) models: FreshOnClone<Mutex<HashMap<Box<str>, (Arc<PoolSpecs>, bool)>>>,
    /// Concurrency slots of each pool with `max_concurrent` (kept across spec rebuilds).
    pub(crate) pool_slots: FreshOnClone<Mutex<HashMap<Arc<str>, Arc<Semaphore>>>>,
    /// Concurrency slots of each key (`"{class}\0{key}"`), pruned of idle ones when large.
    pub(crate) key_slots: FreshOnClone<Mutex<HashMap<Box<str>, Arc<Semaphore>>>>,
}

/// Key slot count above which idle key semaphores are dropped.
pub(crate) const KEY_SLOTS_PRUNE_AT: usize = 4096;

/// Most model ids remembered by a layer (cleared when full: a pool's specs are shared, so
/// re-learning a model costs one classification).
pub(crate) const MODEL_CACHE_SIZE: usize = 1024;

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
}
