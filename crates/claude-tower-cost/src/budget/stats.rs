//! What budgets reserve against what requests really cost: [`ReservationStats`].

use std::sync::atomic::{AtomicU64, Ordering};

use claude_tower_core::Usage;

use super::Shared;
use super::reserve::InputPlan;
use crate::meter::Metering;
use crate::money::Usd;

/// What a request reserved: the plan behind it (for the cache memory) and the amounts (for
/// the stats), in nano-dollars.
pub(super) struct Reserved {
    pub(super) plan: InputPlan,
    pub(super) input: u64,
    pub(super) total: u64,
}

impl Shared {
    /// The real cost of a response in nano-dollars (rounded up), recorded in the stats and,
    /// when it used the prompt cache, in the cache memory.
    pub(super) fn finish(
        &self,
        reserved: &Reserved,
        metering: &Metering,
        model: Option<&str>,
        usage: &Usage,
        cached: bool,
    ) -> u64 {
        let cost = metering.price_amounts(model, usage, cached);
        let input = cost.input + cost.cache_write_5m + cost.cache_write_1h + cost.cache_read;
        let actual = cost.total.nanodollars_ceil();
        self.stats
            .record(reserved, input.nanodollars_ceil(), actual);
        if let Some(memory) = &self.memory
            && !reserved.plan.prefixes.is_empty()
        {
            memory.remember(&reserved.plan, usage, (self.clock)());
        }
        actual
    }
}

#[derive(Debug, Default)]
pub(super) struct StatsCells {
    requests: AtomicU64,
    reserved_input: AtomicU64,
    reserved: AtomicU64,
    actual_input: AtomicU64,
    actual: AtomicU64,
}

impl StatsCells {
    pub(super) fn record(&self, reserved: &Reserved, actual_input: u64, actual: u64) {
        let add = |cell: &AtomicU64, value: u64| {
            let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_add(value))
            });
        };
        add(&self.requests, 1);
        add(&self.reserved_input, reserved.input);
        add(&self.reserved, reserved.total);
        add(&self.actual_input, actual_input);
        add(&self.actual, actual);
    }

    pub(super) fn snapshot(&self) -> ReservationStats {
        let usd = |cell: &AtomicU64| Usd::from_nanodollars(cell.load(Ordering::Relaxed));
        ReservationStats {
            requests: self.requests.load(Ordering::Relaxed),
            reserved_input: usd(&self.reserved_input),
            reserved: usd(&self.reserved),
            actual_input: usd(&self.actual_input),
            actual: usd(&self.actual),
        }
    }
}

/// Reservations against real costs over the settled requests of a [`BudgetLayer`](super::BudgetLayer) (see
/// [`BudgetLayer::reservation_stats`](super::BudgetLayer::reservation_stats)). The input side is what the prompt is billed (input,
/// cache writes and reads); the rest of a reservation is `max_tokens` of output and the web
/// searches the tools allow, which a reply rarely uses in full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReservationStats {
    /// Requests settled.
    pub requests: u64,
    /// Reserved for their input side.
    pub reserved_input: Usd,
    /// Reserved in total.
    pub reserved: Usd,
    /// What their input side really cost.
    pub actual_input: Usd,
    /// What they really cost.
    pub actual: Usd,
}

impl ReservationStats {
    /// Input-side reservation ÷ real input-side cost (`None` before any cost).
    #[must_use]
    pub fn input_ratio(&self) -> Option<f64> {
        ratio(self.reserved_input, self.actual_input)
    }

    /// Total reservation ÷ real cost (`None` before any cost).
    #[must_use]
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.reserved, self.actual)
    }
}

fn ratio(reserved: Usd, actual: Usd) -> Option<f64> {
    (actual > Usd::ZERO).then(|| reserved.picodollars() as f64 / actual.picodollars() as f64)
}
