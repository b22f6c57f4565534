//! [`RetryLayer`].

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::budget::RetryBudget;
use crate::policy::SdkPolicy;
use crate::service::Retry;
use crate::state::Shared;

/// Retries failed Messages calls; see the [crate docs](crate).
///
/// Defaults ([`RetryLayer::new`] = [`RetryLayer::sdk_compatible`]): the official SDKs' policy
/// ([`SdkPolicy`]: 2 retries, 0.5 s → 8 s backoff with jitter, server hints up to 60 s), the
/// default [`RetryBudget`] (10 % + 1/s over 10 s), no overall deadline.
///
/// The budget is created with the layer, so all services made by one layer (and their
/// clones) share it.
#[derive(Debug)]
pub struct RetryLayer<P = SdkPolicy> {
    policy: Arc<P>,
    budget: Option<Arc<RetryBudget>>,
    max_elapsed: Option<Duration>,
}

impl<P> Clone for RetryLayer<P> {
    fn clone(&self) -> Self {
        Self {
            policy: Arc::clone(&self.policy),
            budget: self.budget.clone(),
            max_elapsed: self.max_elapsed,
        }
    }
}

impl Default for RetryLayer<SdkPolicy> {
    fn default() -> Self {
        Self::sdk_compatible()
    }
}

impl RetryLayer<SdkPolicy> {
    /// The SDK-compatible defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::sdk_compatible()
    }

    /// The official SDKs' retry contract with the default budget.
    #[must_use]
    pub fn sdk_compatible() -> Self {
        Self::with_policy(SdkPolicy::default())
    }

    /// For batch jobs that prefer finishing late to failing: 5 retries, 1 s doubling to 30 s,
    /// server hints up to 5 minutes, a budget of 20 % + 1/s.
    ///
    /// # Panics
    /// Never: the preset's parameters are in range.
    #[must_use]
    pub fn aggressive() -> Self {
        let policy = SdkPolicy::default()
            .max_retries(5)
            .initial_backoff(Duration::from_secs(1))
            .max_backoff(Duration::from_secs(30))
            .max_server_delay(Duration::from_secs(300));
        let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.2).expect("valid preset");
        Self::with_policy(policy).budget(budget)
    }

    /// No retries at all (the layer still records [`Attempts`](claude_tower_core::ext::Attempts)
    /// and applies the stream contract).
    #[must_use]
    pub fn none() -> Self {
        Self::with_policy(SdkPolicy::default().max_retries(0))
    }

    fn map_policy(mut self, f: impl FnOnce(SdkPolicy) -> SdkPolicy) -> Self {
        self.policy = Arc::new(f(*self.policy));
        self
    }

    /// Maximum retries (default 2).
    #[must_use]
    pub fn max_retries(self, max_retries: u32) -> Self {
        self.map_policy(|p| p.max_retries(max_retries))
    }

    /// First computed backoff (default 0.5 s).
    #[must_use]
    pub fn initial_backoff(self, backoff: Duration) -> Self {
        self.map_policy(|p| p.initial_backoff(backoff))
    }

    /// Cap of the computed backoff (default 8 s).
    #[must_use]
    pub fn max_backoff(self, backoff: Duration) -> Self {
        self.map_policy(|p| p.max_backoff(backoff))
    }

    /// Longest server hint honoured (default 60 s); a longer one gives up at once.
    #[must_use]
    pub fn max_server_delay(self, delay: Duration) -> Self {
        self.map_policy(|p| p.max_server_delay(delay))
    }
}

impl<P> RetryLayer<P> {
    /// A layer with a custom [`Policy`](crate::Policy) and the default budget.
    #[must_use]
    pub fn with_policy(policy: P) -> Self {
        Self {
            policy: Arc::new(policy),
            budget: Some(Arc::new(RetryBudget::default())),
            max_elapsed: None,
        }
    }

    /// Uses this budget (shared by every service of this layer).
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(Arc::new(budget));
        self
    }

    /// No budget: only the policy limits retries (not recommended for fleets).
    #[must_use]
    pub fn no_budget(mut self) -> Self {
        self.budget = None;
        self
    }

    /// Overall deadline across attempts: a retry whose delay would end after it is not made.
    #[must_use]
    pub fn max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }
}

impl<S, P> Layer<S> for RetryLayer<P> {
    type Service = Retry<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        let shared = Shared {
            policy: Arc::clone(&self.policy),
            budget: self.budget.clone(),
            max_elapsed: self.max_elapsed,
        };
        Retry::from_shared(inner, Arc::new(shared))
    }
}
