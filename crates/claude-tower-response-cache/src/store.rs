//! Where entries live: [`ResponseStore`], with [`MemoryResponseStore`] (moka) and
//! `RedisResponseStore` (feature `redis`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use claude_tower_core::{ContentBlock, Error, Message, StoreFuture, StreamEvent};

use crate::key::CacheKey;
use serde::{Deserialize, Serialize};

/// A cached reply: the message, and the recorded event sequence when it was streamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CachedResponse {
    /// The complete message (accumulated, for a streamed reply).
    pub message: Message,
    /// The events exactly as streamed, when the reply was a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<StreamEvent>>,
}

impl CachedResponse {
    /// An entry for a complete message.
    #[must_use]
    pub fn from_message(message: Message) -> Self {
        Self {
            message,
            events: None,
        }
    }

    /// An entry for a recorded stream.
    #[must_use]
    pub fn from_stream(message: Message, events: Vec<StreamEvent>) -> Self {
        Self {
            message,
            events: Some(events),
        }
    }

    /// Approximate size in bytes (for the memory store's bound): text lengths for text and
    /// thinking blocks, the JSON length of other blocks.
    #[must_use]
    pub fn weight(&self) -> u32 {
        let text: usize = self
            .message
            .content
            .iter()
            .map(|block| match block {
                ContentBlock::Text(text) if text.citations.is_none() => 64 + text.text.len(),
                ContentBlock::Thinking(thinking) => {
                    64 + thinking.thinking.len() + thinking.signature.len()
                }
                other => serde_json::to_vec(other).map_or(64, |json| json.len()),
            })
            .sum();
        let events = self.events.as_ref().map_or(0, |e| e.len() * 96 + text);
        u32::try_from(256 + text + events).unwrap_or(u32::MAX)
    }
}

/// An entry read from a store.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The entry.
    pub response: Arc<CachedResponse>,
    /// `false` once its TTL passed (only stores that keep stale entries return those).
    pub fresh: bool,
}

/// A response store. Implementations must be safe to share between tasks.
///
/// One method per operation, each returning a [`StoreFuture`]: a store in memory answers
/// [ready](StoreFuture::ready) (the hit path then allocates nothing for the lookup), a store
/// across the network [boxed](StoreFuture::boxed).
pub trait ResponseStore: fmt::Debug + Send + Sync + 'static {
    /// The entry under `key`, if any.
    fn get(&self, key: &CacheKey) -> StoreFuture<Result<Option<Lookup>, Error>>;
    /// Stores an entry for `ttl`.
    fn put(
        &self,
        key: &CacheKey,
        response: Arc<CachedResponse>,
        ttl: Duration,
    ) -> StoreFuture<Result<(), Error>>;
    /// Removes an entry.
    fn remove(&self, key: &CacheKey) -> StoreFuture<Result<(), Error>>;
}

#[cfg(feature = "moka")]
pub use memory::MemoryResponseStore;

#[cfg(feature = "moka")]
mod memory {
    use super::{
        Arc, CacheKey, CachedResponse, Duration, Error, Lookup, ResponseStore, StoreFuture, fmt,
    };
    use tokio::time::Instant;

    #[derive(Clone)]
    struct Slot {
        response: Arc<CachedResponse>,
        expires_at: Instant,
        stale_until: Instant,
    }

    /// An in-process store on [moka](https://docs.rs/moka), bounded by (approximate) bytes.
    ///
    /// Freshness is checked on tokio's clock (so paused-clock tests see TTLs expire); expired
    /// entries stay up to one more TTL as *stale* (see
    /// [`serve_stale_on_error`](crate::ResponseCacheLayer::serve_stale_on_error)) and are then
    /// evicted by moka.
    #[derive(Clone)]
    pub struct MemoryResponseStore {
        cache: moka::sync::Cache<u128, Slot, crate::key::KeyHasher>,
        max_bytes: u64,
    }

    impl fmt::Debug for MemoryResponseStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("MemoryResponseStore")
                .field("entries", &self.cache.entry_count())
                .field("bytes", &self.cache.weighted_size())
                .field("max_bytes", &self.max_bytes)
                .finish()
        }
    }

    impl MemoryResponseStore {
        /// A store holding at most about `max_bytes` of entries.
        #[must_use]
        pub fn new(max_bytes: u64) -> Self {
            let cache = moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_key: &u128, slot: &Slot| slot.response.weight())
                .build_with_hasher(crate::key::KeyHasher::default());
            Self { cache, max_bytes }
        }

        /// Entries currently held (after pending maintenance).
        pub async fn entry_count(&self) -> u64 {
            self.cache.run_pending_tasks();
            self.cache.entry_count()
        }

        fn lookup(&self, key: &CacheKey) -> Option<Lookup> {
            let slot = self.cache.get(&key.as_u128())?;
            let now = Instant::now();
            if now >= slot.stale_until {
                self.cache.invalidate(&key.as_u128());
                return None;
            }
            Some(Lookup {
                response: slot.response,
                fresh: now < slot.expires_at,
            })
        }
    }

    /// moka's synchronous cache: every operation is in memory and short, so every answer is
    /// ready at once.
    impl ResponseStore for MemoryResponseStore {
        fn get(&self, key: &CacheKey) -> StoreFuture<Result<Option<Lookup>, Error>> {
            StoreFuture::ready(Ok(self.lookup(key)))
        }

        fn put(
            &self,
            key: &CacheKey,
            response: Arc<CachedResponse>,
            ttl: Duration,
        ) -> StoreFuture<Result<(), Error>> {
            let expires_at = Instant::now() + ttl;
            let slot = Slot {
                response,
                expires_at,
                stale_until: expires_at + ttl,
            };
            self.cache.insert(key.as_u128(), slot);
            StoreFuture::ready(Ok(()))
        }

        fn remove(&self, key: &CacheKey) -> StoreFuture<Result<(), Error>> {
            self.cache.invalidate(&key.as_u128());
            StoreFuture::ready(Ok(()))
        }
    }
}
