//! [`CostLedger`]: running totals per tenant, user, feature and model.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use claude_tower_core::Usage;
use claude_tower_core::ext::Attribution;
use serde::{Deserialize, Serialize};

use crate::money::Usd;
use crate::pricing::Cost;

/// Totals of a set of responses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Totals {
    /// Responses recorded.
    pub requests: u64,
    /// Their cost.
    pub cost: Usd,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-write tokens.
    pub cache_write_tokens: u64,
    /// Cache-read tokens.
    pub cache_read_tokens: u64,
    /// Responses served by the response cache (cost 0).
    pub cached_responses: u64,
}

impl Totals {
    fn add(&mut self, usage: &Usage, cost: &Cost) {
        self.requests += 1;
        self.cost += cost.total;
        if cost.cached {
            self.cached_responses += 1;
        } else {
            self.input_tokens += usage.input_tokens;
            self.output_tokens += usage.output_tokens;
            self.cache_write_tokens += usage.cache_write_tokens();
            self.cache_read_tokens += usage.cache_read_tokens();
        }
    }
}

/// A copy of the ledger at one moment, for export (serde).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LedgerSnapshot {
    /// Everything.
    pub total: Totals,
    /// Per tenant ([`Attribution::tenant`]).
    pub by_tenant: BTreeMap<String, Totals>,
    /// Per user ([`Attribution::user`], falling back to `metadata.user_id`).
    pub by_user: BTreeMap<String, Totals>,
    /// Per feature tag.
    pub by_feature: BTreeMap<String, Totals>,
    /// Per model id.
    pub by_model: BTreeMap<String, Totals>,
}

/// Running cost totals, shared by every clone (give the same ledger to several layers to
/// aggregate them).
///
/// ```
/// use claude_tower::cost::CostLedger;
/// let ledger = CostLedger::new();
/// assert_eq!(ledger.snapshot().total.requests, 0);
/// ```
#[derive(Clone, Default)]
pub struct CostLedger {
    inner: Arc<Mutex<LedgerSnapshot>>,
}

impl fmt::Debug for CostLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.snapshot().total;
        f.debug_struct("CostLedger")
            .field("requests", &total.requests)
            .field("cost", &total.cost)
            .finish()
    }
}

impl CostLedger {
    /// An empty ledger.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one response.
    pub fn record(&self, attribution: &Attribution, usage: &Usage, cost: &Cost) {
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        state.total.add(usage, cost);
        if let Some(tenant) = &attribution.tenant {
            state
                .by_tenant
                .entry(tenant.clone())
                .or_default()
                .add(usage, cost);
        }
        if let Some(user) = &attribution.user {
            state
                .by_user
                .entry(user.clone())
                .or_default()
                .add(usage, cost);
        }
        if let Some(feature) = &attribution.feature {
            state
                .by_feature
                .entry(feature.clone())
                .or_default()
                .add(usage, cost);
        }
        state
            .by_model
            .entry(cost.model.clone().into_owned())
            .or_default()
            .add(usage, cost);
    }

    /// A copy of the totals.
    #[must_use]
    pub fn snapshot(&self) -> LedgerSnapshot {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Clears the totals.
    pub fn reset(&self) {
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = LedgerSnapshot::default();
    }
}
