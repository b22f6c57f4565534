//! Budget stores: where reservations and spend live. [`MemoryBudgetStore`] for one process,
//! `RedisBudgetStore` (feature `redis`) for replicas that share budgets.
//!
//! Amounts are integer **nano-dollars** (reservations are rounded up, so they are never
//! short).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use claude_tower_core::{Error, StoreFuture};
use tokio::time::Instant;

/// One budget a request is charged against: a store key, its limit, and how long the key
/// must live (its window plus a margin; `None` for lifetime budgets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLine {
    /// The store key, e.g. `claude-tower:budget:tenant:acme:day:2026-11-23`.
    pub key: String,
    /// The limit in nano-dollars.
    pub limit: u64,
    /// Lifetime of the key.
    pub ttl: Option<Duration>,
}

/// Spent and reserved amounts of one key, in nano-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    /// Settled spend.
    pub spent: u64,
    /// Reserved by requests in flight.
    pub reserved: u64,
}

/// The outcome of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reservation {
    /// Reserved on every line.
    Granted,
    /// Nothing reserved: line `line` would exceed its limit.
    Refused {
        /// Index of the line that did not fit.
        line: usize,
        /// Its balance.
        balance: Balance,
    },
}

/// The id of one budget reservation: 127 random bits, unique per request. A store keyed by
/// strings (Redis) uses its 32 lowercase hex digits ([`Display`](fmt::Display)); the memory
/// store keys the number itself (no string, no hash per request).
///
/// ```
/// use claude_tower::cost::store::ReservationId;
/// let id = ReservationId::from_u128(0xab);
/// assert_eq!(id.to_string(), "000000000000000000000000000000ab");
/// assert_ne!(ReservationId::random(), ReservationId::random());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReservationId(u128);

impl ReservationId {
    /// A fresh random id (127 bits).
    #[must_use]
    pub fn random() -> Self {
        Self(fastrand::u128(..) >> 1)
    }

    /// An id from a number (tests, or a store that hands out its own).
    #[must_use]
    pub const fn from_u128(id: u128) -> Self {
        Self(id)
    }

    /// The id as a number.
    #[must_use]
    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Where budgets live. Reservations are all-or-nothing across lines and atomic with respect
/// to every other reservation on the same store, so concurrent requests never overspend.
///
/// **Leases.** Every reservation has an id and a lease: a reservation that is not settled
/// within its lease (a crashed process, a cancelled caller whose refund never ran, a reserve
/// executed by the store after the caller gave up, a settle that kept failing) stops counting
/// and is reclaimed by the store. **Idempotence.** `settle` applies at most once per id, and
/// a `reserve` arriving after its id was settled reserves nothing, so callers may retry both
/// freely.
///
/// One method per operation, each returning a [`StoreFuture`]: a store in memory answers
/// [ready](StoreFuture::ready) (the layer then reserves and settles without futures of its
/// own), a store across the network [boxed](StoreFuture::boxed).
pub trait BudgetStore: fmt::Debug + Send + Sync + 'static {
    /// Reserves `amount` under `id` on every line if, on each,
    /// `spent + reserved + amount <= limit`; the reservation lapses after `lease`.
    fn reserve(
        &self,
        lines: &[BudgetLine],
        id: ReservationId,
        amount: u64,
        lease: Duration,
    ) -> StoreFuture<Result<Reservation, Error>>;

    /// Releases reservation `id` (of `reserved`) and adds `actual` to the spend of every line;
    /// returns each line's spend afterwards. A second settle of the same id changes nothing;
    /// a settle after the lease lapsed still adds `actual` (the money was spent).
    fn settle(
        &self,
        lines: &[BudgetLine],
        id: ReservationId,
        reserved: u64,
        actual: u64,
    ) -> StoreFuture<Result<Vec<u64>, Error>>;

    /// The balance of a key (lapsed reservations not counted).
    fn balance(&self, key: &str) -> StoreFuture<Result<Balance, Error>>;

    /// `true` when every answer of this store is [ready](StoreFuture::ready) (a store in
    /// memory). The layer then forwards the inner service's readiness in `poll_ready` and calls
    /// it from `call` (no clone, no future of its own); otherwise it answers `poll_ready` at
    /// once and waits for the inner service only after the store answered, so an inner permit
    /// never idles across a network round trip. Default `false`. A store that says `true` and
    /// then answers later still works, but holds the inner readiness while it answers.
    fn answers_ready(&self) -> bool {
        false
    }
}

/// A shared store is a store: keep an `Arc` to read balances while a layer uses it.
impl<T: BudgetStore + ?Sized> BudgetStore for std::sync::Arc<T> {
    fn reserve(
        &self,
        lines: &[BudgetLine],
        id: ReservationId,
        amount: u64,
        lease: Duration,
    ) -> StoreFuture<Result<Reservation, Error>> {
        (**self).reserve(lines, id, amount, lease)
    }

    fn settle(
        &self,
        lines: &[BudgetLine],
        id: ReservationId,
        reserved: u64,
        actual: u64,
    ) -> StoreFuture<Result<Vec<u64>, Error>> {
        (**self).settle(lines, id, reserved, actual)
    }

    fn balance(&self, key: &str) -> StoreFuture<Result<Balance, Error>> {
        (**self).balance(key)
    }

    fn answers_ready(&self) -> bool {
        (**self).answers_ready()
    }
}

/// The most settled ids the memory store remembers. Its settles never fail, so none is
/// retried; a repeat can only come from a wrapper store within moments, and a small set stays
/// in cache (the settle path is on every request).
const MAX_SETTLED_REMEMBERED: usize = 4_096;

/// An in-process store: one mutex around a map (reservations are atomic across lines). Leases
/// run on tokio's clock (so tests can pause it).
///
/// Window keys are not expired: a process running for years keeps one small entry per
/// (scope, day/month).
#[derive(Default)]
pub struct MemoryBudgetStore {
    state: Mutex<MemoryState>,
}

/// The memory store's maps: ahash (DoS-resistant, several times faster than SipHash on the
/// short keys here; it is on every request's path twice).
type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;

#[derive(Default)]
struct MemoryState {
    balances: FastMap<String, KeyState>,
    /// The last settled ids, and the same oldest first (forgotten beyond
    /// [`MAX_SETTLED_REMEMBERED`], O(1) per id, no clock read).
    settled: std::collections::HashSet<IdKey, ahash::RandomState>,
    settled_order: std::collections::VecDeque<IdKey>,
}

/// A reservation id as the memory store keys it.
type IdKey = u128;

impl MemoryState {
    /// Remembers a settled id, forgetting the oldest beyond [`MAX_SETTLED_REMEMBERED`] (ids
    /// are random and never reused: remembering one longer is harmless).
    fn remember_settled(&mut self, id: IdKey) {
        if self.settled_order.len() >= MAX_SETTLED_REMEMBERED
            && let Some(oldest) = self.settled_order.pop_front()
        {
            self.settled.remove(&oldest);
        }
        self.settled.insert(id);
        self.settled_order.push_back(id);
    }
}

#[derive(Default)]
struct KeyState {
    spent: u64,
    /// id → (amount, lease end).
    leases: FastMap<IdKey, (u64, Instant)>,
}

impl KeyState {
    fn reclaim(&mut self, now: Instant) {
        self.leases.retain(|_, (_, until)| *until > now);
    }

    fn balance(&self) -> Balance {
        Balance {
            spent: self.spent,
            reserved: self
                .leases
                .values()
                .fold(0u64, |sum, (amount, _)| sum.saturating_add(*amount)),
        }
    }
}

/// Whether `amount` more fits under `limit`.
fn fits(balance: Balance, amount: u64, limit: u64) -> bool {
    balance
        .spent
        .saturating_add(balance.reserved)
        .saturating_add(amount)
        <= limit
}

/// Runs `f` on the state of `key`, created empty on first use (one lookup when it exists; the
/// key is copied only on first use).
fn with_key_state<R>(
    balances: &mut FastMap<String, KeyState>,
    key: &str,
    f: impl FnOnce(&mut KeyState) -> R,
) -> R {
    if let Some(state) = balances.get_mut(key) {
        return f(state);
    }
    f(balances.entry(key.to_owned()).or_default())
}

impl MemoryBudgetStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryBudgetStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.lock().balances.len();
        f.debug_struct("MemoryBudgetStore")
            .field("keys", &keys)
            .finish()
    }
}

/// Every operation is in memory and short: the answers are ready at once.
impl BudgetStore for MemoryBudgetStore {
    fn reserve(
        &self,
        lines: &[BudgetLine],
        id: ReservationId,
        amount: u64,
        lease: Duration,
    ) -> StoreFuture<Result<Reservation, Error>> {
        StoreFuture::ready(Ok(self.reserve_now(lines, id, amount, lease)))
    }

    fn settle(
        &self,
        lines: &[BudgetLine],
        id: ReservationId,
        _reserved: u64,
        actual: u64,
    ) -> StoreFuture<Result<Vec<u64>, Error>> {
        StoreFuture::ready(Ok(self.settle_now(lines, id, actual)))
    }

    fn balance(&self, key: &str) -> StoreFuture<Result<Balance, Error>> {
        StoreFuture::ready(Ok(self.balance_now(key)))
    }

    fn answers_ready(&self) -> bool {
        true
    }
}

impl MemoryBudgetStore {
    fn reserve_now(
        &self,
        lines: &[BudgetLine],
        id: ReservationId,
        amount: u64,
        lease: Duration,
    ) -> Reservation {
        let now = Instant::now();
        let mut state = self.lock();
        let id = id.as_u128();
        if state.settled.contains(&id) {
            // Settled (or released) before this reserve ran: nothing to hold.
            return Reservation::Granted;
        }
        let until = now + lease;
        if let [line] = lines {
            // One line (the common case): checked and reserved with one lookup.
            return with_key_state(&mut state.balances, &line.key, |entry| {
                entry.reclaim(now);
                let balance = entry.balance();
                if fits(balance, amount, line.limit) {
                    entry.leases.insert(id, (amount, until));
                    Reservation::Granted
                } else {
                    Reservation::Refused { line: 0, balance }
                }
            });
        }
        for (index, line) in lines.iter().enumerate() {
            let balance = with_key_state(&mut state.balances, &line.key, |entry| {
                entry.reclaim(now);
                entry.balance()
            });
            if !fits(balance, amount, line.limit) {
                return Reservation::Refused {
                    line: index,
                    balance,
                };
            }
        }
        for line in lines {
            with_key_state(&mut state.balances, &line.key, |entry| {
                entry.leases.insert(id, (amount, until));
            });
        }
        Reservation::Granted
    }

    fn settle_now(&self, lines: &[BudgetLine], id: ReservationId, actual: u64) -> Vec<u64> {
        let mut state = self.lock();
        let id = id.as_u128();
        if state.settled.contains(&id) {
            // Settled before: nothing changes.
            return lines
                .iter()
                .map(|line| state.balances.get(&line.key).map_or(0, |k| k.spent))
                .collect();
        }
        let spent = lines
            .iter()
            .map(|line| {
                with_key_state(&mut state.balances, &line.key, |entry| {
                    entry.leases.remove(&id);
                    entry.spent = entry.spent.saturating_add(actual);
                    entry.spent
                })
            })
            .collect();
        // Remembered so that a repeated settle of this id, or a reserve of it arriving late
        // through a wrapper store, changes nothing.
        state.remember_settled(id);
        spent
    }

    fn balance_now(&self, key: &str) -> Balance {
        let now = Instant::now();
        let mut state = self.lock();
        state
            .balances
            .get_mut(key)
            .map_or_else(Balance::default, |entry| {
                entry.reclaim(now);
                entry.balance()
            })
    }
}
