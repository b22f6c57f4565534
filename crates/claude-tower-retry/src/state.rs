//! What one retry service (and its futures) needs: the first module of the crate's one-way
//! chain `state` → `future` → `service` → `layer`.

use std::sync::Arc;
use std::time::Duration;

use crate::budget::RetryBudget;

/// Built by [`RetryLayer::layer`](crate::RetryLayer), pointing at the layer's shared policy
/// and budget.
#[derive(Debug)]
pub(crate) struct Shared<P> {
    pub(crate) policy: Arc<P>,
    pub(crate) budget: Option<Arc<RetryBudget>>,
    pub(crate) max_elapsed: Option<Duration>,
}
