//! [`DeferStore`]: where a [`DeferLayer`](crate::DeferLayer) records the batches it submitted,
//! so a restarted process collects their results (exactly once).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use claude_tower_core::{Error, StoreFuture};

/// A batch this process (or an earlier one) submitted and has not finished collecting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubmittedBatch {
    /// The batch id.
    pub id: String,
    /// Its batch-wide, non-secret headers (`anthropic-version`, `anthropic-beta`), as
    /// (name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// Its items' `custom_id`s.
    pub custom_ids: Vec<String>,
}

/// Where submitted batches and delivered items are recorded. `claim` is the exactly-once
/// point: an item's result goes to whoever claims it first (a waiting caller, or the sink after
/// a restart), never to both.
pub trait DeferStore: fmt::Debug + Send + Sync + 'static {
    /// Records a submitted batch (before its results can exist).
    fn submitted(&self, batch: SubmittedBatch) -> StoreFuture<Result<(), Error>>;
    /// Claims item `custom_id` of `batch_id` for delivery: `true` the first time only.
    fn claim(&self, batch_id: &str, custom_id: &str) -> StoreFuture<Result<bool, Error>>;
    /// The batch is fully collected: forget it.
    fn finished(&self, batch_id: &str) -> StoreFuture<Result<(), Error>>;
    /// Batches submitted and not finished (what a restarted process collects).
    fn pending(&self) -> StoreFuture<Result<Vec<SubmittedBatch>, Error>>;
}

/// A store in memory (one process; clones of a layer share it).
#[derive(Debug, Default)]
pub struct MemoryDeferStore {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    batches: HashMap<String, SubmittedBatch>,
    claimed: HashMap<String, HashSet<String>>,
}

impl MemoryDeferStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DeferStore for MemoryDeferStore {
    fn submitted(&self, batch: SubmittedBatch) -> StoreFuture<Result<(), Error>> {
        self.lock().batches.insert(batch.id.clone(), batch);
        StoreFuture::ready(Ok(()))
    }

    fn claim(&self, batch_id: &str, custom_id: &str) -> StoreFuture<Result<bool, Error>> {
        let first = self
            .lock()
            .claimed
            .entry(batch_id.to_owned())
            .or_default()
            .insert(custom_id.to_owned());
        StoreFuture::ready(Ok(first))
    }

    fn finished(&self, batch_id: &str) -> StoreFuture<Result<(), Error>> {
        let mut state = self.lock();
        state.batches.remove(batch_id);
        state.claimed.remove(batch_id);
        StoreFuture::ready(Ok(()))
    }

    fn pending(&self) -> StoreFuture<Result<Vec<SubmittedBatch>, Error>> {
        StoreFuture::ready(Ok(self.lock().batches.values().cloned().collect()))
    }
}

impl<T: DeferStore + ?Sized> DeferStore for std::sync::Arc<T> {
    fn submitted(&self, batch: SubmittedBatch) -> StoreFuture<Result<(), Error>> {
        (**self).submitted(batch)
    }
    fn claim(&self, batch_id: &str, custom_id: &str) -> StoreFuture<Result<bool, Error>> {
        (**self).claim(batch_id, custom_id)
    }
    fn finished(&self, batch_id: &str) -> StoreFuture<Result<(), Error>> {
        (**self).finished(batch_id)
    }
    fn pending(&self) -> StoreFuture<Result<Vec<SubmittedBatch>, Error>> {
        (**self).pending()
    }
}

#[cfg(feature = "redis")]
pub use redis_store::RedisDeferStore;

#[cfg(feature = "redis")]
mod redis_store {
    use claude_tower_core::{Error, StoreFuture};
    use redis::aio::ConnectionManager;

    use super::{DeferStore, SubmittedBatch};

    /// How long an item's claim is kept (results are downloadable for 29 days).
    const CLAIM_TTL_SECONDS: u64 = 30 * 86_400;

    /// A [`DeferStore`] in Redis: submitted batches in one hash, each batch's claimed items in
    /// a set (`SADD` is the exactly-once point, atomic across processes).
    #[derive(Clone)]
    pub struct RedisDeferStore {
        connection: ConnectionManager,
        prefix: String,
    }

    impl std::fmt::Debug for RedisDeferStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisDeferStore")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    fn error(e: &redis::RedisError) -> Error {
        claude_tower_core::redis::error("defer store", e)
    }

    impl RedisDeferStore {
        /// Connects to `url` (e.g. `redis://127.0.0.1:6379/`), keys under
        /// `claude-tower:defer`.
        ///
        /// # Errors
        /// When the URL is invalid or the server cannot be reached.
        pub async fn connect(url: &str) -> Result<Self, Error> {
            Ok(Self::new(
                claude_tower_core::redis::connect(url, "defer store").await?,
            ))
        }

        /// Over an existing connection.
        #[must_use]
        pub fn new(connection: ConnectionManager) -> Self {
            Self {
                connection,
                prefix: "claude-tower:defer".to_owned(),
            }
        }

        /// Prefix of the keys.
        #[must_use]
        pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
            self.prefix = prefix.into();
            self
        }

        fn batches_key(&self) -> String {
            format!("{}:batches", self.prefix)
        }

        fn claimed_key(&self, batch_id: &str) -> String {
            format!("{}:claimed:{batch_id}", self.prefix)
        }
    }

    fn encode(batch: &SubmittedBatch) -> String {
        serde_json::json!({
            "id": batch.id,
            "headers": batch.headers,
            "custom_ids": batch.custom_ids,
        })
        .to_string()
    }

    fn decode(text: &str) -> Option<SubmittedBatch> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
            v.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        Some(SubmittedBatch {
            id: value.get("id")?.as_str()?.to_owned(),
            headers: value
                .get("headers")?
                .as_array()?
                .iter()
                .filter_map(|pair| {
                    let pair = strings(pair)?;
                    Some((pair.first()?.clone(), pair.get(1)?.clone()))
                })
                .collect(),
            custom_ids: strings(value.get("custom_ids")?)?,
        })
    }

    impl DeferStore for RedisDeferStore {
        fn submitted(&self, batch: SubmittedBatch) -> StoreFuture<Result<(), Error>> {
            let mut connection = self.connection.clone();
            let key = self.batches_key();
            StoreFuture::boxed(async move {
                redis::cmd("HSET")
                    .arg(&key)
                    .arg(&batch.id)
                    .arg(encode(&batch))
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(|e| error(&e))
            })
        }

        fn claim(&self, batch_id: &str, custom_id: &str) -> StoreFuture<Result<bool, Error>> {
            let mut connection = self.connection.clone();
            let key = self.claimed_key(batch_id);
            let custom_id = custom_id.to_owned();
            StoreFuture::boxed(async move {
                let (added, _): (u64, u64) = redis::pipe()
                    .atomic()
                    .cmd("SADD")
                    .arg(&key)
                    .arg(&custom_id)
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(CLAIM_TTL_SECONDS)
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| error(&e))?;
                Ok(added == 1)
            })
        }

        fn finished(&self, batch_id: &str) -> StoreFuture<Result<(), Error>> {
            let mut connection = self.connection.clone();
            let batches = self.batches_key();
            let batch_id = batch_id.to_owned();
            StoreFuture::boxed(async move {
                // The claims stay (until their TTL): a late repeated collection still finds
                // every item claimed.
                redis::cmd("HDEL")
                    .arg(&batches)
                    .arg(&batch_id)
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(|e| error(&e))
            })
        }

        fn pending(&self) -> StoreFuture<Result<Vec<SubmittedBatch>, Error>> {
            let mut connection = self.connection.clone();
            let key = self.batches_key();
            StoreFuture::boxed(async move {
                let entries: Vec<(String, String)> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| error(&e))?;
                Ok(entries
                    .iter()
                    .filter_map(|(_, text)| decode(text))
                    .collect())
            })
        }
    }
}
