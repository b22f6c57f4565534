//! Where the buckets live: [`RateLimitStore`], with [`MemoryRateLimitStore`] and
//! `RedisRateLimitStore` (feature `redis`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use claude_tower_core::Error;
use claude_tower_core::ratelimit::{Refusal, TokenBucket};
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
#[async_trait]
pub trait RateLimitStore: fmt::Debug + Send + Sync + 'static {
    /// Takes `amounts[i]` from `buckets[i]` (possibly into debt) if the longest wait — over the
    /// buckets and the pause under `pause_key` — is at most `max_wait`; refuses without taking
    /// anything otherwise, or when an amount exceeds its bucket's capacity.
    async fn acquire(
        &self,
        buckets: &[BucketSpec],
        amounts: &[u64],
        pause_key: &str,
        max_wait: Duration,
    ) -> Result<Admission, Error>;

    /// Gives tokens back (positive deltas) or charges more (negative), capped at capacity.
    async fn adjust(&self, buckets: &[BucketSpec], deltas: &[f64]) -> Result<(), Error>;

    /// Lowers a bucket to at most `remaining` (the server's view).
    async fn correct(&self, bucket: &BucketSpec, remaining: u64) -> Result<(), Error>;

    /// Pauses admission under `pause_key` for `duration` (extends, never shortens).
    async fn pause(&self, pause_key: &str, duration: Duration) -> Result<(), Error>;

    /// Tokens available in a bucket now (negative in debt), for tests and metrics.
    async fn available(&self, bucket: &BucketSpec) -> Result<f64, Error>;
}

#[derive(Debug)]
struct MemoryState {
    buckets: HashMap<String, TokenBucket>,
    pauses: HashMap<String, Duration>,
}

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
                buckets: HashMap::new(),
                pauses: HashMap::new(),
            }),
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn bucket<'a>(
        state: &'a mut MemoryState,
        spec: &BucketSpec,
        now: Duration,
    ) -> &'a mut TokenBucket {
        if !state.buckets.contains_key(&*spec.key) {
            state.buckets.insert(
                spec.key.to_string(),
                TokenBucket::full(spec.per_minute, now),
            );
        }
        let bucket = state.buckets.get_mut(&*spec.key).expect("inserted above");
        if bucket.capacity() != spec.per_minute {
            bucket.set_capacity(spec.per_minute, now);
        }
        bucket
    }
}

#[async_trait]
impl RateLimitStore for MemoryRateLimitStore {
    async fn acquire(
        &self,
        buckets: &[BucketSpec],
        amounts: &[u64],
        pause_key: &str,
        max_wait: Duration,
    ) -> Result<Admission, Error> {
        let now = self.now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut wait = state
            .pauses
            .get(pause_key)
            .map_or(Duration::ZERO, |until| until.saturating_sub(now));
        if wait > max_wait {
            return Ok(Admission::Refused {
                bucket: None,
                refusal: Refusal::WouldWait(wait),
            });
        }
        for (index, (spec, amount)) in buckets.iter().zip(amounts).enumerate() {
            match Self::bucket(&mut state, spec, now).wait_for(*amount, now) {
                Ok(w) => wait = wait.max(w),
                Err(refusal) => {
                    return Ok(Admission::Refused {
                        bucket: Some(index),
                        refusal,
                    });
                }
            }
        }
        if wait > max_wait {
            let bucket = buckets.iter().zip(amounts).position(|(spec, amount)| {
                Self::bucket(&mut state, spec, now)
                    .wait_for(*amount, now)
                    .is_ok_and(|w| w == wait)
            });
            return Ok(Admission::Refused {
                bucket,
                refusal: Refusal::WouldWait(wait),
            });
        }
        for (spec, amount) in buckets.iter().zip(amounts) {
            Self::bucket(&mut state, spec, now).take(*amount as f64, now);
        }
        Ok(Admission::Granted { wait })
    }

    async fn adjust(&self, buckets: &[BucketSpec], deltas: &[f64]) -> Result<(), Error> {
        let now = self.now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (spec, delta) in buckets.iter().zip(deltas) {
            Self::bucket(&mut state, spec, now).take(-delta, now);
        }
        Ok(())
    }

    async fn correct(&self, bucket: &BucketSpec, remaining: u64) -> Result<(), Error> {
        let now = self.now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Self::bucket(&mut state, bucket, now).correct(remaining, now);
        Ok(())
    }

    async fn pause(&self, pause_key: &str, duration: Duration) -> Result<(), Error> {
        let until = self.now() + duration;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = state.pauses.entry(pause_key.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
        Ok(())
    }

    async fn available(&self, bucket: &BucketSpec) -> Result<f64, Error> {
        let now = self.now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Self::bucket(&mut state, bucket, now).available(now))
    }
}
