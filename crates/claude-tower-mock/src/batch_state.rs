//! The mock's batch state (see `batches` for the API over it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use claude_tower_core::Error;
use claude_tower_core::batch::{BatchRequest, BatchResult, MAX_BATCH_BYTES, MAX_BATCH_REQUESTS};
use tokio::time::Instant;

/// What a scripted batch item does instead of succeeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemFault {
    /// `errored` with an `api_error` envelope.
    Errored,
    /// `expired`.
    Expired,
    /// `canceled`.
    Canceled,
}

pub(crate) type FaultFn = Arc<dyn Fn(&str) -> Option<ItemFault> + Send + Sync>;

/// The mock's batches and their settings.
pub(crate) struct Batches {
    pub(crate) batches: HashMap<String, MockBatch>,
    pub(crate) order: Vec<String>,
    pub(crate) next: u64,
    pub(crate) processing_time: Duration,
    pub(crate) max_requests: usize,
    pub(crate) max_bytes: usize,
    pub(crate) faults: Option<FaultFn>,
    pub(crate) create_errors: Vec<Error>,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches")
            .field("batches", &self.batches.len())
            .finish_non_exhaustive()
    }
}

impl Default for Batches {
    fn default() -> Self {
        Self {
            batches: HashMap::new(),
            order: Vec::new(),
            next: 0,
            processing_time: Duration::from_secs(60),
            max_requests: MAX_BATCH_REQUESTS,
            max_bytes: MAX_BATCH_BYTES,
            faults: None,
            create_errors: Vec::new(),
        }
    }
}

pub(crate) struct MockBatch {
    pub(crate) id: String,
    pub(crate) created: Instant,
    pub(crate) created_at: SystemTime,
    pub(crate) requests: Vec<BatchRequest>,
    pub(crate) canceled: Option<Instant>,
    /// Computed once, when the batch ends.
    pub(crate) results: Option<Arc<Vec<BatchResult>>>,
}

impl MockBatch {
    pub(crate) fn ended(&self, now: Instant, processing: Duration) -> bool {
        self.canceled.is_some() || now.duration_since(self.created) >= processing
    }
}
