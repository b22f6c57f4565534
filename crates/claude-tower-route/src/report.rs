//! [`FallbackReport`]: which candidate answered and why each earlier one did not.

use claude_tower_core::Usage;

use crate::classify::SkipReason;

/// One candidate the chain moved past.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Hop {
    /// The candidate's model.
    pub model: String,
    /// Why it did not answer.
    pub reason: SkipReason,
    /// What the attempt used (for a candidate that was sent and answered, e.g. a refusal,
    /// which is billed); `None` when nothing was sent or nothing came back.
    pub usage: Option<Usage>,
}

/// Put in the response extensions by a [`FallbackLayer`](crate::FallbackLayer): the model that
/// answered, its position in the chain, and every candidate passed over before it, in order.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct FallbackReport {
    /// The model that answered.
    pub model: String,
    /// Its index in the chain.
    pub index: usize,
    /// The candidates passed over, in order.
    pub hops: Vec<Hop>,
    /// Whether a conversation pin chose the first candidate tried.
    pub pinned: bool,
}

impl FallbackReport {
    /// Whether a candidate other than the first answered.
    #[must_use]
    pub fn fell_back(&self) -> bool {
        self.index > 0
    }

    /// Candidates that were sent (not skipped before sending) and did not answer.
    #[must_use]
    pub fn attempts_failed(&self) -> usize {
        self.hops
            .iter()
            .filter(|hop| {
                matches!(
                    hop.reason,
                    SkipReason::Failed { .. }
                        | SkipReason::PromptTooLong
                        | SkipReason::Refused { .. }
                )
            })
            .count()
    }
}
