//! What one admitted call holds until it is reconciled: its reservation on the buckets, its
//! concurrency permits, and the store operations that release or correct them.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use claude_tower_core::end::Settle;
use claude_tower_core::rate_limit::RateLimitHeaders;
use claude_tower_core::{Error, StoreFuture, Usage};
use tokio::sync::OwnedSemaphorePermit;

use crate::limits::{Dimension, Limits};
use crate::state::Shared;
use crate::store::{BucketSpec, RateLimitStore};

/// Most buckets one request touches: three of its pool, three of its key.
pub(crate) const MAX_BUCKETS: usize = 6;

/// One value per bucket, inline (no allocation per request).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PerBucket<T> {
    pub(crate) values: [T; MAX_BUCKETS],
    pub(crate) len: usize,
}

impl<T: Copy + Default> PerBucket<T> {
    pub(crate) fn new() -> Self {
        Self {
            values: [T::default(); MAX_BUCKETS],
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, value: T) {
        self.values[self.len] = value;
        self.len += 1;
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        &self.values[..self.len]
    }
}

/// Concurrency permits a request holds until its response is read or its stream ends.
#[derive(Default)]
pub(crate) struct Permits {
    /// The layer's `max_concurrent` (taken in `poll_ready`), held for its `Drop`.
    pub(crate) _global: Option<OwnedSemaphorePermit>,
    /// The pool's `Limits::max_concurrent`.
    pub(crate) pool: Option<OwnedSemaphorePermit>,
    /// The key's `Limits::max_concurrent`.
    pub(crate) key: Option<OwnedSemaphorePermit>,
}

impl Permits {
    /// With the layer's permit from `poll_ready`, if any.
    pub(crate) fn new(global: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            _global: global,
            pool: None,
            key: None,
        }
    }
}

/// Work for the store after a response.
pub(crate) enum StoreOp {
    /// Pause a pool after a 429.
    Pause { key: Arc<str>, duration: Duration },
    /// Lower a bucket to the server's remaining.
    Correct { bucket: BucketSpec, remaining: u64 },
    /// Refund (positive) or charge (negative) the difference to the real usage.
    Adjust {
        buckets: Arc<[BucketSpec]>,
        deltas: PerBucket<f64>,
    },
}

impl StoreOp {
    /// Runs it on `store`: ready at once for a store in memory.
    pub(crate) fn run(&self, store: &dyn RateLimitStore) -> StoreFuture<Result<(), Error>> {
        match self {
            Self::Pause { key, duration } => store.pause(key, *duration),
            Self::Correct { bucket, remaining } => store.correct(bucket, *remaining),
            Self::Adjust { buckets, deltas } => store.adjust(buckets, deltas.as_slice()),
        }
    }

    /// Runs it: done now where the store answers ready, else the store's future to await.
    pub(crate) fn start(self, shared: &Arc<Shared>) -> Settle {
        self.run(&*shared.store)
            .then_settle(move |done| self.report(done))
    }

    pub(crate) fn report(&self, result: Result<(), Error>) {
        if let Err(error) = result {
            let what = match self {
                Self::Pause { .. } => "could not pause the pool",
                Self::Correct { .. } => "could not correct a bucket",
                Self::Adjust { .. } => "could not reconcile a reservation",
            };
            tracing::warn!(target: "claude_tower::rate_limit", %error, "{what}");
        }
    }
}

/// Runs `op` at once when the store can, else in a spawned task (outside a runtime, where
/// nothing can be spawned, it is dropped with a warning).
pub(crate) fn run_now_or_spawn(shared: &Arc<Shared>, op: StoreOp) {
    if !op.start(shared).detach() {
        tracing::warn!(target: "claude_tower::rate_limit", "no tokio runtime: a rate-limit store update was skipped");
    }
}

/// What was reserved, to reconcile later.
pub(crate) struct Reservation {
    pub(crate) shared: Arc<Shared>,
    pub(crate) buckets: Arc<[BucketSpec]>,
    pub(crate) dimensions: Arc<[Dimension]>,
    pub(crate) amounts: PerBucket<u64>,
    pub(crate) counts_reads: bool,
    pub(crate) done: bool,
}

impl Reservation {
    /// Deltas that turn the reservation into the real charge.
    pub(crate) fn deltas(&self, usage: Option<&Usage>) -> PerBucket<f64> {
        let mut deltas = PerBucket::new();
        let buckets = self.buckets.iter();
        for ((dimension, reserved), bucket) in self
            .dimensions
            .iter()
            .zip(self.amounts.as_slice())
            .zip(buckets)
        {
            // Usage numbers are untrusted: saturating sums, and one settlement moves a bucket
            // by at most its capacity (as `TokenBucket::take` does for the memory store).
            let actual = match (dimension, usage) {
                (Dimension::Requests, _) => *reserved,
                (_, None) => 0,
                // Compaction (usage.iterations) is billed and limited but not in the totals.
                (Dimension::InputTokens, Some(u)) => u
                    .input_tokens
                    .saturating_add(u.cache_write_tokens())
                    .saturating_add(if self.counts_reads {
                        u.cache_read_tokens()
                    } else {
                        0
                    })
                    .saturating_add(u.compaction_tokens().0),
                (Dimension::OutputTokens, Some(u)) => {
                    u.output_tokens.saturating_add(u.compaction_tokens().1)
                }
            };
            let capacity = bucket.per_minute as f64;
            deltas.push((*reserved as f64 - actual as f64).clamp(-capacity, capacity));
        }
        deltas
    }

    /// The store update that charges the real usage (`None`: nothing known, refund all).
    pub(crate) fn settle(mut self, usage: Option<&Usage>) -> StoreOp {
        self.done = true;
        StoreOp::Adjust {
            buckets: Arc::clone(&self.buckets),
            deltas: self.deltas(usage),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            // Cancelled before a response: give the tokens back.
            let op = StoreOp::Adjust {
                buckets: Arc::clone(&self.buckets),
                deltas: self.deltas(None),
            };
            run_now_or_spawn(&self.shared, op);
        }
    }
}

/// Where [`finish`] puts the store's work.
pub(crate) enum Sink<'a> {
    /// Run it now where the store can, else in a spawned task.
    Now,
    /// Collect it (to await it, in order).
    Collect(&'a mut Vec<StoreOp>),
}

impl Sink<'_> {
    pub(crate) fn put(&mut self, shared: &Arc<Shared>, op: StoreOp) {
        match self {
            Self::Now => run_now_or_spawn(shared, op),
            Self::Collect(ops) => ops.push(op),
        }
    }
}

/// Learning from response headers produces store corrections, so it lives with them.
impl Shared {
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
