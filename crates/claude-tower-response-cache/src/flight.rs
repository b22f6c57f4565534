//! Single-flight: concurrent identical misses share one upstream call.
//!
//! The leader registers its flight; the channel that carries the outcome is only created when
//! a follower arrives, so a miss nobody waits for costs one map insert and one remove.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use claude_tower_core::Error;
use tokio::sync::watch;

use crate::key::{CacheKey, KeyHasher};
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

/// One flight in the table: its identity (a key can be flown again after it landed) and the
/// followers' channel, once there is one.
#[derive(Debug)]
struct Flight {
    id: u64,
    followers: Option<Slot>,
}

#[derive(Debug, Default)]
struct Table {
    flights: HashMap<CacheKey, Flight, KeyHasher>,
    next_id: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Flights {
    table: Mutex<Table>,
}

pub(crate) enum Role {
    Leader(LeaderGuard),
    Follower(watch::Receiver<Option<Arc<Outcome>>>),
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn join(self: &Arc<Self>, key: CacheKey) -> Role {
        let mut table = self.lock();
        if let Some(flight) = table.flights.get_mut(&key) {
            let slot = flight
                .followers
                .get_or_insert_with(|| watch::channel(None).0);
            return Role::Follower(slot.subscribe());
        }
        let id = table.next_id;
        table.next_id += 1;
        table.flights.insert(
            key,
            Flight {
                id,
                followers: None,
            },
        );
        Role::Leader(LeaderGuard {
            flights: Arc::clone(self),
            key,
            id,
            finished: false,
        })
    }

    /// Requests currently in flight.
    pub(crate) fn len(&self) -> usize {
        self.lock().flights.len()
    }
}

/// Held by the one request that goes upstream; tells the followers how it ended (on drop:
/// abandoned).
pub(crate) struct LeaderGuard {
    flights: Arc<Flights>,
    key: CacheKey,
    id: u64,
    finished: bool,
}

impl LeaderGuard {
    /// Whether anyone waits for this flight right now. A follower that joins after this
    /// returned `false` and before `finish` sees `Abandoned` and simply goes upstream itself.
    pub(crate) fn has_followers(&self) -> bool {
        self.flights
            .lock()
            .flights
            .get(&self.key)
            .filter(|flight| flight.id == self.id)
            .and_then(|flight| flight.followers.as_ref())
            .is_some_and(|slot| slot.receiver_count() > 0)
    }

    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.publish(outcome);
    }

    fn publish(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        let followers = {
            let mut table = self.flights.lock();
            if table
                .flights
                .get(&self.key)
                .is_some_and(|flight| flight.id == self.id)
            {
                table
                    .flights
                    .remove(&self.key)
                    .and_then(|flight| flight.followers)
            } else {
                None
            }
        };
        // Nobody can subscribe any more (the flight left the table under the lock).
        if let Some(slot) = followers {
            slot.send_replace(Some(Arc::new(outcome)));
        }
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

#[cfg(test)]
mod tests {
    use super::{Flights, Outcome, Role};
    use std::sync::Arc;

    fn key(n: u128) -> crate::key::CacheKey {
        crate::key::CacheKey::from_u128(n)
    }

    #[tokio::test]
    async fn followers_get_the_outcome_and_a_landed_key_flies_again() {
        let flights = Arc::new(Flights::default());
        let Role::Leader(leader) = flights.join(key(1)) else {
            panic!("first is the leader")
        };
        assert!(!leader.has_followers());
        let Role::Follower(follower) = flights.join(key(1)) else {
            panic!("second follows")
        };
        assert!(leader.has_followers());
        // Another key is its own flight.
        assert!(matches!(flights.join(key(2)), Role::Leader(_)));
        leader.finish(Outcome::Failed(claude_tower_core::Error::decode(
            "upstream broke",
        )));
        assert!(matches!(&*super::wait(follower).await, Outcome::Failed(_)));
        assert_eq!(flights.len(), 0, "the dropped leader of key 2 left too");
        let Role::Leader(again) = flights.join(key(1)) else {
            panic!("a landed key flies again")
        };
        drop(again);
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_its_followers() {
        let flights = Arc::new(Flights::default());
        let leader = flights.join(key(7));
        let Role::Follower(follower) = flights.join(key(7)) else {
            panic!("follows")
        };
        drop(leader);
        assert!(matches!(&*super::wait(follower).await, Outcome::Abandoned));
    }
}
