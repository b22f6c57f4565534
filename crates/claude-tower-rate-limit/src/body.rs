//! [`Reconcile`]: the rate limiter's "when the response ends" hook — it turns the reservation
//! into the real charge and releases the concurrency permits.

use std::sync::Arc;

use claude_tower_core::end::{OnEnd, ResponseEnd, Settle};

use crate::reservation::{Permits, Reservation};

/// Reconciles the reservation when a stream ends, fails or is dropped, and holds the
/// concurrency permits until the store has been updated.
pub(crate) struct Reconcile {
    pub(crate) reservation: Option<Reservation>,
    pub(crate) permits: Permits,
}

impl OnEnd for Reconcile {
    fn on_end(&mut self, end: ResponseEnd<'_>) -> Settle {
        let permits = std::mem::take(&mut self.permits);
        let Some(reservation) = self.reservation.take() else {
            return Settle::done();
        };
        let shared = Arc::clone(&reservation.shared);
        let settle = reservation.settle(end.usage).start(&shared);
        if settle.is_done() {
            return settle;
        }
        Settle::later(async move {
            settle.await;
            drop(permits);
        })
    }
}
