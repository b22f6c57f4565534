//! Budget stores: where reservations and spend live. [`MemoryBudgetStore`] for one process,
//! `RedisBudgetStore` (feature `redis`) for replicas that share budgets.
//!
//! Amounts are integer **nano-dollars** (reservations are rounded up, so they are never
//! short).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use claude_tower_core::Error;

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

/// Where budgets live. Reservations are all-or-nothing across lines and atomic with respect
/// to every other reservation on the same store, so concurrent requests never overspend.
#[async_trait]
pub trait BudgetStore: fmt::Debug + Send + Sync + 'static {
    /// Reserves `amount` on every line if, on each, `spent + reserved + amount <= limit`.
    async fn reserve(&self, lines: &[BudgetLine], amount: u64) -> Result<Reservation, Error>;

    /// Releases `reserved` and adds `actual` to the spend of every line; returns each line's
    /// spend afterwards.
    async fn settle(
        &self,
        lines: &[BudgetLine],
        reserved: u64,
        actual: u64,
    ) -> Result<Vec<u64>, Error>;

    /// The balance of a key.
    async fn balance(&self, key: &str) -> Result<Balance, Error>;
}

/// An in-process store: one mutex around a map (reservations are atomic across lines).
///
/// Window keys are not expired: a process running for years keeps one small entry per
/// (scope, day/month).
#[derive(Default)]
pub struct MemoryBudgetStore {
    balances: Mutex<HashMap<String, Balance>>,
}

impl MemoryBudgetStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl fmt::Debug for MemoryBudgetStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self
            .balances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("MemoryBudgetStore")
            .field("keys", &keys)
            .finish()
    }
}

#[async_trait]
impl BudgetStore for MemoryBudgetStore {
    async fn reserve(&self, lines: &[BudgetLine], amount: u64) -> Result<Reservation, Error> {
        let mut balances = self.balances.lock().unwrap_or_else(PoisonError::into_inner);
        for (index, line) in lines.iter().enumerate() {
            let balance = balances.get(&line.key).copied().unwrap_or_default();
            if balance
                .spent
                .saturating_add(balance.reserved)
                .saturating_add(amount)
                > line.limit
            {
                return Ok(Reservation::Refused {
                    line: index,
                    balance,
                });
            }
        }
        for line in lines {
            balances.entry(line.key.clone()).or_default().reserved += amount;
        }
        Ok(Reservation::Granted)
    }

    async fn settle(
        &self,
        lines: &[BudgetLine],
        reserved: u64,
        actual: u64,
    ) -> Result<Vec<u64>, Error> {
        let mut balances = self.balances.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(lines
            .iter()
            .map(|line| {
                let balance = balances.entry(line.key.clone()).or_default();
                balance.reserved = balance.reserved.saturating_sub(reserved);
                balance.spent = balance.spent.saturating_add(actual);
                balance.spent
            })
            .collect())
    }

    async fn balance(&self, key: &str) -> Result<Balance, Error> {
        Ok(self
            .balances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or_default())
    }
}
