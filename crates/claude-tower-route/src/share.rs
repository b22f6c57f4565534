//! Circuits shared between replicas: [`CircuitShare`], and [`RedisCircuits`] (feature
//! `redis`) over the stores' Redis connection helpers.

use std::fmt;
use std::time::Duration;

/// Where a [`CircuitBreaker`](crate::CircuitBreaker) tells other replicas that a circuit
/// opened, and learns that one opened elsewhere (so replicas open together, instead of each
/// paying for the failures that open its own circuit).
///
/// Both methods are on the request path and must not wait on the network: publish in the
/// background, answer from what is already known.
pub trait CircuitShare: fmt::Debug + Send + Sync + 'static {
    /// The circuit of `key` opened here for `cooldown`.
    fn opened(&self, key: &str, cooldown: Duration);

    /// Whether the circuit of `key` is open on another replica (as last known).
    fn open_elsewhere(&self, key: &str) -> bool;
}

#[cfg(feature = "redis")]
pub use redis_share::RedisCircuits;

#[cfg(feature = "redis")]
mod redis_share {
    use std::collections::{HashMap, HashSet};
    use std::fmt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Duration;

    use claude_tower_core::Error;
    use redis::aio::ConnectionManager;
    use tokio::time::Instant;

    use super::CircuitShare;

    /// Most keys one replica follows (model ids and key ids: a handful in practice).
    const MAX_KEYS: usize = 1_024;

    #[derive(Default)]
    struct Known {
        /// Keys asked about, refreshed together.
        keys: HashSet<String>,
        /// Keys open elsewhere, with when that ends.
        open: HashMap<String, Instant>,
        refreshed: Option<Instant>,
    }

    /// Circuits shared through Redis: an open circuit is a key `{prefix}:{key}` that expires
    /// with its cooldown; each replica refreshes what it follows at most every
    /// [`refresh`](Self::refresh) (one pipelined `PTTL` per refresh, in the background), so
    /// a circuit opened on one replica is open on all within that interval. When Redis does
    /// not answer, each replica keeps its own circuits (nothing waits on it).
    #[derive(Clone)]
    pub struct RedisCircuits {
        connection: ConnectionManager,
        prefix: String,
        refresh: Duration,
        known: Arc<Mutex<Known>>,
        refreshing: Arc<AtomicBool>,
    }

    impl fmt::Debug for RedisCircuits {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RedisCircuits")
                .field("prefix", &self.prefix)
                .field("refresh", &self.refresh)
                .finish_non_exhaustive()
        }
    }

    impl RedisCircuits {
        /// Connects to `url` (e.g. `redis://127.0.0.1:6379/`), keys under
        /// `claude-tower:circuit`, refreshed every 250 ms.
        ///
        /// # Errors
        /// When the URL is invalid or the server cannot be reached.
        pub async fn connect(url: &str) -> Result<Self, Error> {
            let connection = claude_tower_core::redis::connect(url, "circuit share").await?;
            Ok(Self::new(connection))
        }

        /// Over an existing connection (e.g. the one the other stores use).
        #[must_use]
        pub fn new(connection: ConnectionManager) -> Self {
            Self {
                connection,
                prefix: "claude-tower:circuit".to_owned(),
                refresh: Duration::from_millis(250),
                known: Arc::default(),
                refreshing: Arc::default(),
            }
        }

        /// How often what other replicas opened is read (default 250 ms).
        #[must_use]
        pub fn refresh(mut self, every: Duration) -> Self {
            self.refresh = every;
            self
        }

        /// Prefix of the keys (default `claude-tower:circuit`).
        #[must_use]
        pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
            self.prefix = prefix.into();
            self
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
            self.known.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// Starts a refresh in the background unless one runs or the last is recent.
        fn maybe_refresh(&self, now: Instant) {
            let keys: Vec<String> = {
                let known = self.lock();
                if known
                    .refreshed
                    .is_some_and(|at| now.duration_since(at) < self.refresh)
                {
                    return;
                }
                known.keys.iter().cloned().collect()
            };
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            if self.refreshing.swap(true, Ordering::AcqRel) {
                return;
            }
            let this = self.clone();
            runtime.spawn(async move {
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("PTTL").arg(format!("{}:{key}", this.prefix));
                }
                let mut connection = this.connection.clone();
                let answer: Result<Vec<i64>, _> = tokio::time::timeout(
                    claude_tower_core::redis::TIMEOUT,
                    pipe.query_async(&mut connection),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out")))
                });
                let now = Instant::now();
                {
                    let mut known = this.lock();
                    known.refreshed = Some(now);
                    if let Ok(ttls) = answer {
                        known.open = keys
                            .into_iter()
                            .zip(ttls)
                            .filter(|(_, ttl)| *ttl > 0)
                            .map(|(key, ttl)| {
                                (key, now + Duration::from_millis(ttl.unsigned_abs()))
                            })
                            .collect();
                    }
                }
                this.refreshing.store(false, Ordering::Release);
            });
        }
    }

    impl CircuitShare for RedisCircuits {
        fn opened(&self, key: &str, cooldown: Duration) {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let millis = u64::try_from(cooldown.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let name = format!("{}:{key}", self.prefix);
            let mut connection = self.connection.clone();
            runtime.spawn(async move {
                let mut command = redis::cmd("SET");
                command.arg(&name).arg(1).arg("PX").arg(millis);
                let set = command.query_async::<()>(&mut connection);
                if let Ok(Err(error)) =
                    tokio::time::timeout(claude_tower_core::redis::TIMEOUT, set).await
                {
                    tracing::warn!(target: "claude_tower::route", %error, "could not share an open circuit");
                }
            });
        }

        fn open_elsewhere(&self, key: &str) -> bool {
            let now = Instant::now();
            let open = {
                let mut known = self.lock();
                if known.keys.len() < MAX_KEYS && !known.keys.contains(key) {
                    known.keys.insert(key.to_owned());
                    // A new key: read it at the next chance.
                    known.refreshed = None;
                }
                known.open.get(key).is_some_and(|until| *until > now)
            };
            self.maybe_refresh(now);
            open
        }
    }
}
