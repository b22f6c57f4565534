//! Single-flight: concurrent identical misses share one upstream call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use claude_tower_core::Error;
use tokio::sync::watch;

use crate::key::CacheKey;
use crate::store::CachedResponse;

/// How a flight ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The leader got a reply: everyone shares it.
    Done(Arc<CachedResponse>),
    /// The upstream call failed: everyone gets the error (never cached).
    Failed(Error),
    /// The leader went away (stream dropped or broken mid-way): followers try again.
    Abandoned,
}

type Slot = watch::Sender<Option<Arc<Outcome>>>;

#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<CacheKey, Arc<Slot>>>,
}

pub(crate) enum Role {
    Leader(LeaderGuard),
    Follower(watch::Receiver<Option<Arc<Outcome>>>),
}

impl Flights {
    pub(crate) fn join(self: &Arc<Self>, key: CacheKey) -> Role {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get(&key) {
            return Role::Follower(slot.subscribe());
        }
        let (sender, _) = watch::channel(None);
        let slot = Arc::new(sender);
        map.insert(key, Arc::clone(&slot));
        Role::Leader(LeaderGuard {
            flights: Arc::clone(self),
            key,
            slot,
            finished: false,
        })
    }

    /// Requests currently in flight.
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Held by the one request that goes upstream; tells the followers how it ended (on drop:
/// abandoned).
pub(crate) struct LeaderGuard {
    flights: Arc<Flights>,
    key: CacheKey,
    slot: Arc<Slot>,
    finished: bool,
}

impl LeaderGuard {
    /// Whether anyone waits for this flight right now. A follower that joins after this
    /// returned `false` and before `finish` sees `Abandoned` and simply goes upstream itself.
    pub(crate) fn has_followers(&self) -> bool {
        self.slot.receiver_count() > 0
    }

    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.publish(outcome);
    }

    fn publish(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        {
            let mut map = self
                .flights
                .map
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if map
                .get(&self.key)
                .is_some_and(|slot| Arc::ptr_eq(slot, &self.slot))
            {
                map.remove(&self.key);
            }
        }
        self.slot.send_replace(Some(Arc::new(outcome)));
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        self.publish(Outcome::Abandoned);
    }
}

/// Waits for a flight's outcome.
pub(crate) async fn wait(mut receiver: watch::Receiver<Option<Arc<Outcome>>>) -> Arc<Outcome> {
    match receiver.wait_for(Option::is_some).await {
        Ok(outcome) => outcome
            .clone()
            .unwrap_or_else(|| Arc::new(Outcome::Abandoned)),
        Err(_) => Arc::new(Outcome::Abandoned),
    }
}
