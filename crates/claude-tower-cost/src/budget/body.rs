//! [`Settle`]: the budget's "when the response ends" hook — it prices what was used and
//! settles the reservation (awaited before a stream's end is yielded; in the background when
//! the stream is dropped).

use claude_tower_core::Usage;
use claude_tower_core::end::{self, OnEnd, ResponseEnd};

use super::settlement::Settlement;
use super::stats::Reserved;
use crate::meter::Metering;

/// Settles the reservation when the response ends, fails or is dropped.
pub(super) struct Settle {
    pub(super) settlement: Option<Settlement>,
    pub(super) metering: Metering,
    pub(super) reserved: Reserved,
    pub(super) cached: bool,
}

impl OnEnd for Settle {
    fn on_end(&mut self, end: ResponseEnd<'_>) -> end::Settle {
        let Some(mut settlement) = self.settlement.take() else {
            return end::Settle::done();
        };
        let none = Usage::default();
        let actual = settlement.shared.finish(
            &self.reserved,
            &self.metering,
            end.model,
            end.usage.unwrap_or(&none),
            self.cached,
        );
        // Known before any await: a cancellation from here on still charges it.
        settlement.actual = actual;
        settlement.start(actual)
    }
}
