//! [`ServiceBuilderExt`]: one method per claude-tower layer on `tower::ServiceBuilder`.

use tower::ServiceBuilder;

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// Adds claude-tower layers to a [`ServiceBuilder`], as `tower-http`'s `ServiceBuilderExt`
/// does. Sealed: implemented for `ServiceBuilder` only. Call them in the canonical order (see
/// the [crate docs](crate#the-canonical-layer-order)).
pub trait ServiceBuilderExt<L>: sealed::Sealed + Sized {
    /// [`TraceLayer`](crate::trace::TraceLayer).
    #[cfg(feature = "trace")]
    #[must_use]
    fn claude_trace(
        self,
        layer: crate::trace::TraceLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::trace::TraceLayer, L>>;
    /// [`BudgetLayer`](crate::cost::BudgetLayer).
    #[cfg(feature = "cost")]
    #[must_use]
    fn claude_budget(
        self,
        layer: crate::cost::BudgetLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::cost::BudgetLayer, L>>;
    /// [`CostLayer`](crate::cost::CostLayer).
    #[cfg(feature = "cost")]
    #[must_use]
    fn claude_cost(
        self,
        layer: crate::cost::CostLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::cost::CostLayer, L>>;
    /// [`ResponseCacheLayer`](crate::response_cache::ResponseCacheLayer).
    #[cfg(feature = "response-cache")]
    #[must_use]
    fn claude_response_cache(
        self,
        layer: crate::response_cache::ResponseCacheLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::response_cache::ResponseCacheLayer, L>>;
    /// [`TrimLayer`](crate::trim::TrimLayer).
    #[cfg(feature = "trim")]
    #[must_use]
    fn claude_trim(
        self,
        layer: crate::trim::TrimLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::trim::TrimLayer, L>>;
    /// [`PromptCacheLayer`](crate::prompt_cache::PromptCacheLayer).
    #[cfg(feature = "prompt-cache")]
    #[must_use]
    fn claude_prompt_cache(
        self,
        layer: crate::prompt_cache::PromptCacheLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::prompt_cache::PromptCacheLayer, L>>;
    /// [`RateLimitLayer`](crate::rate_limit::RateLimitLayer).
    #[cfg(feature = "rate-limit")]
    #[must_use]
    fn claude_rate_limit(
        self,
        layer: crate::rate_limit::RateLimitLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::rate_limit::RateLimitLayer, L>>;
    /// [`RetryLayer`](crate::retry::RetryLayer).
    #[cfg(feature = "retry")]
    #[must_use]
    fn claude_retry<P>(
        self,
        layer: crate::retry::RetryLayer<P>,
    ) -> ServiceBuilder<tower_layer::Stack<crate::retry::RetryLayer<P>, L>>;
    /// [`TimeoutLayer`](crate::retry::TimeoutLayer).
    #[cfg(feature = "retry")]
    #[must_use]
    fn claude_timeout(
        self,
        layer: crate::retry::TimeoutLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::retry::TimeoutLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "trace")]
    fn claude_trace(
        self,
        layer: crate::trace::TraceLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::trace::TraceLayer, L>> {
        self.layer(layer)
    }
    #[cfg(feature = "cost")]
    fn claude_budget(
        self,
        layer: crate::cost::BudgetLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::cost::BudgetLayer, L>> {
        self.layer(layer)
    }
    #[cfg(feature = "cost")]
    fn claude_cost(
        self,
        layer: crate::cost::CostLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::cost::CostLayer, L>> {
        self.layer(layer)
    }
    #[cfg(feature = "response-cache")]
    fn claude_response_cache(
        self,
        layer: crate::response_cache::ResponseCacheLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::response_cache::ResponseCacheLayer, L>> {
        self.layer(layer)
    }
    #[cfg(feature = "trim")]
    fn claude_trim(
        self,
        layer: crate::trim::TrimLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::trim::TrimLayer, L>> {
        self.layer(layer)
    }
    #[cfg(feature = "prompt-cache")]
    fn claude_prompt_cache(
        self,
        layer: crate::prompt_cache::PromptCacheLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::prompt_cache::PromptCacheLayer, L>> {
        self.layer(layer)
    }
    #[cfg(feature = "rate-limit")]
    fn claude_rate_limit(
        self,
        layer: crate::rate_limit::RateLimitLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::rate_limit::RateLimitLayer, L>> {
        self.layer(layer)
    }
    #[cfg(feature = "retry")]
    fn claude_retry<P>(
        self,
        layer: crate::retry::RetryLayer<P>,
    ) -> ServiceBuilder<tower_layer::Stack<crate::retry::RetryLayer<P>, L>> {
        self.layer(layer)
    }
    #[cfg(feature = "retry")]
    fn claude_timeout(
        self,
        layer: crate::retry::TimeoutLayer,
    ) -> ServiceBuilder<tower_layer::Stack<crate::retry::TimeoutLayer, L>> {
        self.layer(layer)
    }
}
