//! [`RedisResponseStore`]: entries shared by every replica through Redis.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use claude_tower_core::{Error, StoreFuture};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::key::CacheKey;
use crate::store::{CachedResponse, Lookup, ResponseStore};

/// A response store in Redis: each entry is its JSON under the cache key, with the TTL as
/// Redis expiry (so expired entries are gone: no stale serving from this store).
#[derive(Clone)]
pub struct RedisResponseStore {
    connection: ConnectionManager,
}

impl fmt::Debug for RedisResponseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisResponseStore").finish_non_exhaustive()
    }
}

fn redis_error(error: &redis::RedisError) -> Error {
    claude_tower_core::redis::error("response store", error)
}

impl RedisResponseStore {
    /// Connects (auto-reconnecting) to `url`, e.g. `redis://127.0.0.1:6379/`.
    ///
    /// Commands time out after a second and reconnection is retried once per failing call
    /// ([`claude_tower_core::redis::request_path_config`]), so an unreachable server is
    /// reported quickly; pass your own `ConnectionManager` to [`new`](Self::new) for other
    /// settings.
    ///
    /// # Errors
    /// When the URL is invalid or the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let connection = claude_tower_core::redis::connect(url, "response store").await?;
        Ok(Self { connection })
    }

    /// Uses an existing connection manager.
    #[must_use]
    pub fn new(connection: ConnectionManager) -> Self {
        Self { connection }
    }
}

impl ResponseStore for RedisResponseStore {
    fn get(&self, key: &CacheKey) -> StoreFuture<Result<Option<Lookup>, Error>> {
        let key = key.to_string();
        let mut connection = self.connection.clone();
        StoreFuture::boxed(async move {
            let bytes: Option<Vec<u8>> = connection.get(&key).await.map_err(|e| redis_error(&e))?;
            let Some(bytes) = bytes else { return Ok(None) };
            let response: CachedResponse = serde_json::from_slice(&bytes).map_err(|e| {
                Error::decode(format!(
                    "response store (redis): bad entry under {key}: {e}"
                ))
            })?;
            Ok(Some(Lookup {
                response: Arc::new(response),
                fresh: true,
            }))
        })
    }

    fn put(
        &self,
        key: &CacheKey,
        response: Arc<CachedResponse>,
        ttl: Duration,
    ) -> StoreFuture<Result<(), Error>> {
        let key = key.to_string();
        let mut connection = self.connection.clone();
        StoreFuture::boxed(async move {
            let bytes = serde_json::to_vec(&*response).map_err(|e| Error::decode(e.to_string()))?;
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            connection
                .pset_ex::<_, _, ()>(&key, bytes, millis)
                .await
                .map_err(|e| redis_error(&e))
        })
    }

    fn remove(&self, key: &CacheKey) -> StoreFuture<Result<(), Error>> {
        let key = key.to_string();
        let mut connection = self.connection.clone();
        StoreFuture::boxed(async move {
            connection
                .del::<_, ()>(key)
                .await
                .map_err(|e| redis_error(&e))
        })
    }
}
