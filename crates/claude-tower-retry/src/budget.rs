//! The retry budget: why a budget, not just a maximum number of retries.
//!
//! "2 retries per request" is safe for one request and dangerous for a fleet: when the API is
//! overloaded (529 storms), every client tripling its load makes the overload worse. A budget
//! ties retries to traffic instead: each request **deposits** into the budget, each retry
//! **withdraws**, and when the balance is empty a failed request is returned at once instead
//! of being retried. A small reserve per second keeps retries available to a client whose
//! traffic is light, so a lone request in calm traffic still gets all its retries.
//!
//! [`RetryBudget`] wraps tower's [`TpsBudget`] (a sliding
//! window on tokio's clock) with validated parameters. It is created by the
//! [`RetryLayer`](crate::RetryLayer) and shared by every service the layer builds and all
//! their clones.
//!
//! Defaults: deposits count for **10 s**, **10 %** of requests may be retried, plus a reserve
//! of **1 retry per second** (10 per window). In a storm of N failing requests the budget
//! therefore allows about `10 + 0.1·N` retries in a window: 1,000 requests cause at most
//! ~1,110 attempts instead of 3,000.

use std::fmt;
use std::time::Duration;

use tower::retry::budget::{Budget, TpsBudget};

use crate::error::InvalidConfig;

/// A shared retry budget; see the [module docs](self).
pub struct RetryBudget {
    inner: TpsBudget,
    ttl: Duration,
    min_per_sec: u32,
    retry_percent: f32,
}

impl RetryBudget {
    /// A budget where deposits count for `ttl` (1–60 s), `min_per_sec` retries per second are
    /// always allowed, and `retry_percent` (0–1000, e.g. `0.1` = 10 %) of deposits may be
    /// retried on top.
    ///
    /// # Errors
    /// When a parameter is out of range.
    pub fn new(ttl: Duration, min_per_sec: u32, retry_percent: f32) -> Result<Self, InvalidConfig> {
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(60) {
            return Err(InvalidConfig::new(format!(
                "budget ttl must be within 1–60 s, got {ttl:?}"
            )));
        }
        if !(0.0..=1000.0).contains(&retry_percent) {
            return Err(InvalidConfig::new(format!(
                "retry_percent must be within 0–1000, got {retry_percent}"
            )));
        }
        if min_per_sec >= i32::MAX as u32 {
            return Err(InvalidConfig::new("min_per_sec is too large"));
        }
        Ok(Self {
            inner: TpsBudget::new(ttl, min_per_sec, retry_percent),
            ttl,
            min_per_sec,
            retry_percent,
        })
    }

    /// Records a request.
    pub fn deposit(&self) {
        self.inner.deposit();
    }

    /// Takes one retry from the budget; `false` when it is empty.
    #[must_use]
    pub fn withdraw(&self) -> bool {
        self.inner.withdraw()
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            inner: TpsBudget::new(Duration::from_secs(10), 1, 0.1),
            ttl: Duration::from_secs(10),
            min_per_sec: 1,
            retry_percent: 0.1,
        }
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ttl", &self.ttl)
            .field("min_per_sec", &self.min_per_sec)
            .field("retry_percent", &self.retry_percent)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_validated() {
        assert!(RetryBudget::new(Duration::ZERO, 1, 0.1).is_err());
        assert!(RetryBudget::new(Duration::from_secs(61), 1, 0.1).is_err());
        assert!(RetryBudget::new(Duration::from_secs(10), 1, -1.0).is_err());
        assert!(RetryBudget::new(Duration::from_secs(10), 1, 0.1).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn default_allows_reserve_plus_ten_percent() {
        let budget = RetryBudget::default();
        for _ in 0..1000 {
            budget.deposit();
        }
        let mut allowed = 0;
        while budget.withdraw() {
            allowed += 1;
            assert!(allowed < 10_000);
        }
        assert!((100..=115).contains(&allowed), "{allowed}");
    }
}
