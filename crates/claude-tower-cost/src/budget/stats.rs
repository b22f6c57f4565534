//! What budgets reserve against what requests really cost: [`ReservationStats`].

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

/// The running totals behind [`ReservationStats`]: one lock per settled request (cheaper
/// than five atomic read-modify-writes), sums saturating.
#[derive(Debug, Default)]
pub(super) struct StatsCells(std::sync::Mutex<[u64; 5]>);

impl StatsCells {
    pub(super) fn record(&self, reserved: &Reserved, actual_input: u64, actual: u64) {
        let mut totals = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let values = [1, reserved.input, reserved.total, actual_input, actual];
        for (total, value) in totals.iter_mut().zip(values) {
            *total = total.saturating_add(value);
        }
    }

    pub(super) fn snapshot(&self) -> ReservationStats {
        let [requests, reserved_input, reserved, actual_input, actual] = *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ReservationStats {
            requests,
            reserved_input: Usd::from_nanodollars(reserved_input),
            reserved: Usd::from_nanodollars(reserved),
            actual_input: Usd::from_nanodollars(actual_input),
            actual: Usd::from_nanodollars(actual),
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
