//! [`ServiceBuilderExt`]: one method per claude-tower layer on `tower::ServiceBuilder`.

use tower::ServiceBuilder;

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// Declares [`ServiceBuilderExt`] and its implementation: one `claude_*` method per layer,
/// each behind the layer's feature, each `self.layer(layer)`.
macro_rules! service_builder_ext {
    ($($feature:literal $name:ident $(<$param:ident>)?: $layer:ty;)*) => {
        /// Adds claude-tower layers to a [`ServiceBuilder`], as `tower-http`'s `ServiceBuilderExt`
        /// does. Sealed: implemented for `ServiceBuilder` only. Call them in the canonical order (see
        /// the [crate docs](crate#the-canonical-layer-order)).
        pub trait ServiceBuilderExt<L>: sealed::Sealed + Sized {
            $(
                #[doc = concat!("[`", stringify!($layer), "`].")]
                #[cfg(feature = $feature)]
                #[must_use]
                fn $name$(<$param>)?(self, layer: $layer) -> ServiceBuilder<tower_layer::Stack<$layer, L>>;
            )*
        }

        impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
            $(
                #[cfg(feature = $feature)]
                fn $name$(<$param>)?(self, layer: $layer) -> ServiceBuilder<tower_layer::Stack<$layer, L>> {
                    self.layer(layer)
                }
            )*
        }
    };
}

service_builder_ext! {
    "trace" claude_trace: crate::trace::TraceLayer;
    "route" claude_router: crate::route::RouterLayer;
    "route" claude_fallback: crate::route::FallbackLayer;
    "route" claude_key_pool: crate::route::KeyPoolLayer;
    "cost" claude_budget: crate::cost::BudgetLayer;
    "cost" claude_cost: crate::cost::CostLayer;
    "response-cache" claude_response_cache: crate::response_cache::ResponseCacheLayer;
    "trim" claude_trim: crate::trim::TrimLayer;
    "prompt-cache" claude_prompt_cache: crate::prompt_cache::PromptCacheLayer;
    "batch" claude_defer: crate::batch::DeferLayer;
    "rate-limit" claude_rate_limit: crate::rate_limit::RateLimitLayer;
    "retry" claude_retry<P>: crate::retry::RetryLayer<P>;
    "retry" claude_timeout: crate::retry::TimeoutLayer;
}
