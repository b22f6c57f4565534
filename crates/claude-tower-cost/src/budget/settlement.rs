//! [`Settlement`]: a budget reservation that is released or settled exactly once, whatever
//! happens to its caller, with background retries for settles that fail.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use claude_tower_core::Error;
use claude_tower_core::end::Settle;

use super::{BudgetAlert, Shared};
use crate::money::Usd;
use crate::store::{BudgetLine, ReservationId};

/// A reservation to settle exactly once. It exists **before** the reserve is awaited, so a
/// caller cancelled at any point leaves no reservation behind: unless settled, dropping it
/// spawns a settle (with `actual`, 0 until a cost is known) that is retried in the background
/// for `settle_retry_for`. Settles are idempotent per id (a late reserve of a settled id
/// reserves nothing), and whatever still slips through lapses with its lease.
pub(super) struct Settlement {
    pub(super) shared: Arc<Shared>,
    pub(super) lines: Arc<[BudgetLine]>,
    pub(super) id: ReservationId,
    reserved: u64,
    pub(super) actual: u64,
    pub(super) done: bool,
}

impl Settlement {
    pub(super) fn new(shared: Arc<Shared>, lines: Arc<[BudgetLine]>, reserved: u64) -> Self {
        Self {
            shared,
            lines,
            id: ReservationId::random(),
            reserved,
            actual: 0,
            done: false,
        }
    }

    /// Settles: at once where the store answers ready, else the store's future to await; on
    /// failure the drop hands it to background retries.
    pub(super) fn start(mut self, actual: u64) -> Settle {
        self.actual = actual;
        let answer = self
            .shared
            .store
            .settle(&self.lines, self.id, self.reserved, actual);
        answer.then_settle(move |spent| {
            let mut settlement = self;
            settlement.answered(spent);
        })
    }

    /// The store answered: done unless it failed (the drop then retries in the background).
    fn answered(&mut self, spent: Result<Vec<u64>, Error>) {
        self.done = settled(&self.shared, &self.lines, self.actual, self.reserved, spent).is_ok();
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        if self.done || self.lines.is_empty() {
            return;
        }
        let job = (
            Arc::clone(&self.shared),
            std::mem::take(&mut self.lines),
            self.id,
            self.reserved,
            self.actual,
        );
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let (shared, lines, id, reserved, actual) = job;
                    settle_with_retries(shared, lines, id, reserved, actual).await;
                });
            }
            Err(_) => {
                tracing::warn!(target: "claude_tower::cost", "reservation dropped outside a runtime; it lapses with its lease")
            }
        }
    }
}

/// One settle attempt; soft-limit alerts on success.
async fn settle_once(
    shared: &Shared,
    lines: &[BudgetLine],
    id: ReservationId,
    reserved: u64,
    actual: u64,
) -> Result<(), Error> {
    let spent = shared.store.settle(lines, id, reserved, actual).await;
    settled(shared, lines, actual, reserved, spent)
}

/// What follows the store's answer to a settle: overshoot count and soft-limit alerts.
fn settled(
    shared: &Shared,
    lines: &[BudgetLine],
    actual: u64,
    reserved: u64,
    spent: Result<Vec<u64>, Error>,
) -> Result<(), Error> {
    let spent = match spent {
        Ok(spent) => spent,
        Err(error) => {
            tracing::warn!(target: "claude_tower::cost", %error, "could not settle a budget reservation; retrying in the background");
            return Err(error);
        }
    };
    if actual > reserved {
        shared.overshoots.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(target: "claude_tower::cost", reserved, actual, "actual cost above the reservation (estimate too low)");
    }
    if let Some((percent, alert)) = &shared.soft {
        for (line, spent_after) in lines.iter().zip(spent) {
            let threshold = u128::from(line.limit) * u128::from(*percent) / 100;
            let before = u128::from(spent_after.saturating_sub(actual));
            if before < threshold && u128::from(spent_after) >= threshold {
                let event = BudgetAlert {
                    key: line.key.clone(),
                    spent: Usd::from_nanodollars(spent_after),
                    limit: Usd::from_nanodollars(line.limit),
                };
                tracing::warn!(target: "claude_tower::cost", key = %event.key, spent = %event.spent, limit = %event.limit, "budget soft limit crossed");
                alert(&event);
            }
        }
    }
    Ok(())
}

/// Retries a settle with backoff (100 ms doubling to 5 s) for `settle_retry_for`; a settle
/// that never gets through leaves its reservation to lapse with the lease.
async fn settle_with_retries(
    shared: Arc<Shared>,
    lines: Arc<[BudgetLine]>,
    id: ReservationId,
    reserved: u64,
    actual: u64,
) {
    let deadline = tokio::time::Instant::now() + shared.settle_retry_for;
    let mut delay = Duration::from_millis(100);
    loop {
        if settle_once(&shared, &lines, id, reserved, actual)
            .await
            .is_ok()
        {
            return;
        }
        if tokio::time::Instant::now() + delay > deadline {
            tracing::warn!(target: "claude_tower::cost", actual, "gave up settling a reservation; it lapses with its lease and this spend is not counted");
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
