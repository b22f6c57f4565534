//! Where the buckets live: [`RateLimitStore`], with [`MemoryRateLimitStore`] and
//! `RedisRateLimitStore` (feature `redis`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use claude_tower_core::rate_limit::{Refusal, TokenBucket};
use claude_tower_core::{Error, StoreFuture};
use tokio::time::Instant;

/// One bucket: its store key and its per-minute limit (the capacity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    /// Store key, e.g. `claude-tower:rl:sonnet:input` (shared, cheap to clone).
    pub key: std::sync::Arc<str>,
    /// Per-minute limit.
    pub per_minute: u64,
}

/// The outcome of an admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Reserved on every bucket; the caller waits `wait` before sending.
    Granted {
        /// How long to wait (FIFO behind earlier reservations, or a pause).
        wait: Duration,
    },
    /// Nothing reserved.
    Refused {
        /// The bucket that refused (`None` when the pause alone is too long).
        bucket: Option<usize>,
        /// Why.
        refusal: Refusal,
    },
}

/// Where buckets live. `acquire` is atomic across its buckets and with respect to every
/// other call on the same store, so admission is first-come first-served across all callers
/// (and replicas, for a shared store).
///
/// One method per operation, each returning a [`StoreFuture`]: a store in memory answers
/// [ready](StoreFuture::ready) (the layer then admits, sends and reconciles without a future
/// of its own), a store across the network [boxed](StoreFuture::boxed).
pub trait RateLimitStore: fmt::Debug + Send + Sync + 'static {
    /// Takes `amounts[i]` from `buckets[i]` (possibly into debt) if the longest wait — over the
    /// buckets and the pause under `pause_key` — is at most `max_wait`; refuses without taking
    /// anything otherwise, or when an amount exceeds its bucket's capacity.
    fn acquire(
        &self,
        buckets: &[BucketSpec],
        amounts: &[u64],
        pause_key: &str,
        max_wait: Duration,
    ) -> StoreFuture<Result<Admission, Error>>;

    /// Gives tokens back (positive deltas) or charges more (negative), capped at capacity.
    fn adjust(&self, buckets: &[BucketSpec], deltas: &[f64]) -> StoreFuture<Result<(), Error>>;

    /// Lowers a bucket to at most `remaining` (the server's view).
    fn correct(&self, bucket: &BucketSpec, remaining: u64) -> StoreFuture<Result<(), Error>>;

    /// Pauses admission under `pause_key` for `duration` (extends, never shortens).
    fn pause(&self, pause_key: &str, duration: Duration) -> StoreFuture<Result<(), Error>>;

    /// Tokens available in a bucket now (negative in debt), for tests and metrics.
    fn available(&self, bucket: &BucketSpec) -> StoreFuture<Result<f64, Error>>;
}

/// Buckets in a `Vec`, found through an index by key: each call hashes each key once.
#[derive(Debug)]
struct MemoryState {
    index: HashMap<std::sync::Arc<str>, usize>,
    /// Recently used slots by their key's allocation: the layer shares one `Arc<str>` per pool
    /// bucket across calls, so a pointer comparison usually finds a slot without hashing the
    /// key. Holding the `Arc`s keeps their addresses from being reused by another key.
    recent: [Option<(std::sync::Arc<str>, usize)>; RECENT],
    next_recent: usize,
    buckets: Vec<TokenBucket>,
    pauses: HashMap<String, Duration>,
}

/// Size of [`MemoryState::recent`] (a few pools × three dimensions).
const RECENT: usize = 12;

/// An in-process store on tokio's clock (so paused-clock simulations are exact).
pub struct MemoryRateLimitStore {
    epoch: Instant,
    state: Mutex<MemoryState>,
}

impl Default for MemoryRateLimitStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryRateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buckets = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .buckets
            .len();
        f.debug_struct("MemoryRateLimitStore")
            .field("buckets", &buckets)
            .finish()
    }
}

impl MemoryRateLimitStore {
    /// An empty store (buckets start full when first used).
    #[must_use]
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            state: Mutex::new(MemoryState {
                index: HashMap::new(),
                recent: Default::default(),
                next_recent: 0,
                buckets: Vec::new(),
                pauses: HashMap::new(),
            }),
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The position of a bucket (created full on first use).
    fn find(state: &mut MemoryState, spec: &BucketSpec, now: Duration) -> usize {
        let recent = state.recent.iter().flatten();
        if let Some(&(_, slot)) = recent
            .into_iter()
            .find(|(key, _)| std::sync::Arc::ptr_eq(key, &spec.key))
        {
            return slot;
        }
        let slot = if let Some(&slot) = state.index.get(&*spec.key) {
            slot
        } else {
            state.buckets.push(TokenBucket::full(spec.per_minute, now));
            let slot = state.buckets.len() - 1;
            state.index.insert(std::sync::Arc::clone(&spec.key), slot);
            slot
        };
        let next = state.next_recent;
        state.recent[next] = Some((std::sync::Arc::clone(&spec.key), slot));
        state.next_recent = (next + 1) % RECENT;
        slot
    }

    /// The position of a bucket whose capacity follows the spec (admission and correction,
    /// which carry the current limits).
    fn slot(state: &mut MemoryState, spec: &BucketSpec, now: Duration) -> usize {
        let slot = Self::find(state, spec, now);
        // A no-op unless the limit changed (compared as the bucket stores it: a limit above
        // 2^53 does not round-trip through `capacity()`).
        state.buckets[slot].set_capacity(spec.per_minute, now);
        slot
    }

    fn bucket<'a>(
        state: &'a mut MemoryState,
        spec: &BucketSpec,
        now: Duration,
    ) -> &'a mut TokenBucket {
        let slot = Self::slot(state, spec, now);
        &mut state.buckets[slot]
    }

    fn acquire_sync(
        &self,
        buckets: &[BucketSpec],
        amounts: &[u64],
        pause_key: &str,
        max_wait: Duration,
    ) -> Admission {
        let now = self.now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut wait = state
            .pauses
            .get(pause_key)
            .map_or(Duration::ZERO, |until| until.saturating_sub(now));
        if wait > max_wait {
            return Admission::Refused {
                bucket: None,
                refusal: Refusal::WouldWait(wait),
            };
        }
        // Each bucket is looked up once; the walk is repeated on the slots (inline for the
        // usual few buckets, so admission does not allocate).
        const INLINE: usize = 8;
        let mut inline = [(0_usize, 0_u64, Duration::ZERO); INLINE];
        let mut spilled = Vec::new();
        for (index, (spec, amount)) in buckets.iter().zip(amounts).enumerate() {
            let slot = Self::slot(&mut state, spec, now);
            match state.buckets[slot].wait_for(*amount, now) {
                Ok(w) => {
                    wait = wait.max(w);
                    if index < INLINE {
                        inline[index] = (slot, *amount, w);
                    } else {
                        spilled.push((slot, *amount, w));
                    }
                }
                Err(refusal) => {
                    return Admission::Refused {
                        bucket: Some(index),
                        refusal,
                    };
                }
            }
        }
        let taken = buckets.len().min(amounts.len());
        let slots = || inline[..taken.min(INLINE)].iter().chain(&spilled);
        if wait > max_wait {
            return Admission::Refused {
                bucket: slots().position(|(_, _, w)| *w == wait),
                refusal: Refusal::WouldWait(wait),
            };
        }
        for &(slot, amount, _) in slots() {
            state.buckets[slot].take(amount as f64, now);
        }
        Admission::Granted { wait }
    }

    fn correct_sync(&self, bucket: &BucketSpec, remaining: u64) {
        let now = self.now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Self::bucket(&mut state, bucket, now).correct(remaining, now);
    }

    fn pause_sync(&self, pause_key: &str, duration: Duration) {
        let until = self.now() + duration;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.pauses.get_mut(pause_key) {
            Some(entry) => *entry = (*entry).max(until),
            None => {
                state.pauses.insert(pause_key.to_owned(), until);
            }
        }
    }

    fn adjust_sync(&self, buckets: &[BucketSpec], deltas: &[f64]) {
        let now = self.now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // The specs are the reservation's, possibly older than a limit learned since: they do
        // not change the capacity.
        for (spec, delta) in buckets.iter().zip(deltas) {
            let slot = Self::find(&mut state, spec, now);
            state.buckets[slot].take(-delta, now);
        }
    }
}

impl RateLimitStore for MemoryRateLimitStore {
    fn acquire(
        &self,
        buckets: &[BucketSpec],
        amounts: &[u64],
        pause_key: &str,
        max_wait: Duration,
    ) -> StoreFuture<Result<Admission, Error>> {
        StoreFuture::ready(Ok(self.acquire_sync(buckets, amounts, pause_key, max_wait)))
    }

    fn adjust(&self, buckets: &[BucketSpec], deltas: &[f64]) -> StoreFuture<Result<(), Error>> {
        self.adjust_sync(buckets, deltas);
        StoreFuture::ready(Ok(()))
    }

    fn correct(&self, bucket: &BucketSpec, remaining: u64) -> StoreFuture<Result<(), Error>> {
        self.correct_sync(bucket, remaining);
        StoreFuture::ready(Ok(()))
    }

    fn pause(&self, pause_key: &str, duration: Duration) -> StoreFuture<Result<(), Error>> {
        self.pause_sync(pause_key, duration);
        StoreFuture::ready(Ok(()))
    }

    fn available(&self, bucket: &BucketSpec) -> StoreFuture<Result<f64, Error>> {
        let now = self.now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        StoreFuture::ready(Ok(Self::bucket(&mut state, bucket, now).available(now)))
    }
}

/// A store behind an `Arc` is a store (keep a handle to inspect it while a layer uses it).
impl<T: RateLimitStore + ?Sized> RateLimitStore for std::sync::Arc<T> {
    fn acquire(
        &self,
        buckets: &[BucketSpec],
        amounts: &[u64],
        pause_key: &str,
        max_wait: Duration,
    ) -> StoreFuture<Result<Admission, Error>> {
        (**self).acquire(buckets, amounts, pause_key, max_wait)
    }

    fn adjust(&self, buckets: &[BucketSpec], deltas: &[f64]) -> StoreFuture<Result<(), Error>> {
        (**self).adjust(buckets, deltas)
    }

    fn correct(&self, bucket: &BucketSpec, remaining: u64) -> StoreFuture<Result<(), Error>> {
        (**self).correct(bucket, remaining)
    }

    fn pause(&self, pause_key: &str, duration: Duration) -> StoreFuture<Result<(), Error>> {
        (**self).pause(pause_key, duration)
    }

    fn available(&self, bucket: &BucketSpec) -> StoreFuture<Result<f64, Error>> {
        (**self).available(bucket)
    }
}
