//! [`Stack`]: the layers in the canonical order, whatever order they are given in.

use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::ClaudeService;

/// Collects the layers a service uses and stacks them in the
/// [canonical order](crate#the-canonical-layer-order), so the order cannot be wrong; each
/// layer is optional. [`Stack::service`] boxes the result into one [`ClaudeService`] (plain
/// `ServiceBuilder` composition with [`ServiceBuilderExt`](crate::ServiceBuilderExt) keeps
/// working, unboxed, for those who want the order in their own hands).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), claude_tower::Error> {
/// # #[cfg(all(feature = "mock", feature = "cost"))] {
/// use claude_tower::mock::MockClaude;
/// use claude_tower::prelude::*;
///
/// // Given in any order…
/// let service = Stack::new()
///     .retry(RetryLayer::new())
///     .cost(CostLayer::new())
///     .trace(TraceLayer::new())
///     .service(MockClaude::new()); // …stacked as trace → cost → retry → the mock.
/// let client = Client::new(service);
/// let reply = client.messages().create(MessagesRequest::new("claude-haiku-4-5", 64).user("hi")).await?;
/// assert!(!reply.text().is_empty());
/// # }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Stack {
    #[cfg(feature = "trace")]
    trace: Option<crate::trace::TraceLayer>,
    #[cfg(feature = "route")]
    router: Option<crate::route::RouterLayer>,
    #[cfg(feature = "route")]
    fallback: Option<crate::route::FallbackLayer>,
    #[cfg(feature = "route")]
    key_pool: Option<crate::route::KeyPoolLayer>,
    #[cfg(feature = "cost")]
    cost: Option<crate::cost::CostLayer>,
    #[cfg(feature = "response-cache")]
    response_cache: Option<crate::response_cache::ResponseCacheLayer>,
    #[cfg(feature = "trim")]
    trim: Option<crate::trim::TrimLayer>,
    #[cfg(feature = "prompt-cache")]
    prompt_cache: Option<crate::prompt_cache::PromptCacheLayer>,
    #[cfg(feature = "cost")]
    budget: Option<crate::cost::BudgetLayer>,
    #[cfg(feature = "batch")]
    defer: Option<crate::batch::DeferLayer>,
    #[cfg(feature = "retry")]
    retry: Option<crate::retry::RetryLayer>,
    #[cfg(feature = "rate-limit")]
    rate_limit: Option<crate::rate_limit::RateLimitLayer>,
    #[cfg(feature = "retry")]
    timeout: Option<crate::retry::TimeoutLayer>,
}

macro_rules! setters {
    ($( $(#[$meta:meta])* $feature:literal $name:ident: $ty:ty ),* $(,)?) => {
        impl Stack {
            $(
                $(#[$meta])*
                #[cfg(feature = $feature)]
                pub fn $name(mut self, layer: $ty) -> Self {
                    self.$name = Some(layer);
                    self
                }
            )*
        }
    };
}

setters! {
    /// Uses a [`TraceLayer`](crate::trace::TraceLayer) (outermost).
    "trace" trace: crate::trace::TraceLayer,
    /// Uses a [`RouterLayer`](crate::route::RouterLayer) (below the trace, above the fallback chain).
    "route" router: crate::route::RouterLayer,
    /// Uses a [`FallbackLayer`](crate::route::FallbackLayer) (below the trace, above the cost meter).
    "route" fallback: crate::route::FallbackLayer,
    /// Uses a [`KeyPoolLayer`](crate::route::KeyPoolLayer) (below the fallback chain, above the cost meter).
    "route" key_pool: crate::route::KeyPoolLayer,
    /// Uses a [`CostLayer`](crate::cost::CostLayer).
    "cost" cost: crate::cost::CostLayer,
    /// Uses a [`ResponseCacheLayer`](crate::response_cache::ResponseCacheLayer).
    "response-cache" response_cache: crate::response_cache::ResponseCacheLayer,
    /// Uses a [`TrimLayer`](crate::trim::TrimLayer).
    "trim" trim: crate::trim::TrimLayer,
    /// Uses a [`PromptCacheLayer`](crate::prompt_cache::PromptCacheLayer).
    "prompt-cache" prompt_cache: crate::prompt_cache::PromptCacheLayer,
    /// Uses a [`BudgetLayer`](crate::cost::BudgetLayer).
    "cost" budget: crate::cost::BudgetLayer,
    /// Uses a [`DeferLayer`](crate::batch::DeferLayer) (below the budget, above the retries).
    "batch" defer: crate::batch::DeferLayer,
    /// Uses a [`RetryLayer`](crate::retry::RetryLayer).
    "retry" retry: crate::retry::RetryLayer,
    /// Uses a [`RateLimitLayer`](crate::rate_limit::RateLimitLayer).
    "rate-limit" rate_limit: crate::rate_limit::RateLimitLayer,
    /// Uses a [`TimeoutLayer`](crate::retry::TimeoutLayer) (innermost, per attempt).
    "retry" timeout: crate::retry::TimeoutLayer,
}

impl Stack {
    /// No layers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The layers given, in the canonical order, over `inner` (the transport or a mock),
    /// boxed into one [`ClaudeService`].
    pub fn service<S>(self, inner: S) -> ClaudeService
    where
        S: tower::Service<
                http::Request<crate::MessagesRequest>,
                Response = http::Response<crate::MessagesBody>,
                Error = crate::Error,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        // Boxed first, so every layer below is stacked over one concrete type.
        let inner = ClaudeService::new(inner);
        let builder = ServiceBuilder::new();
        #[cfg(feature = "trace")]
        let builder = builder.option_layer(self.trace);
        #[cfg(feature = "route")]
        let builder = builder.option_layer(self.router);
        #[cfg(feature = "route")]
        let builder = builder.option_layer(self.fallback);
        #[cfg(feature = "route")]
        let builder = builder.option_layer(self.key_pool);
        #[cfg(feature = "cost")]
        let builder = builder.option_layer(self.cost);
        #[cfg(feature = "response-cache")]
        let builder = builder.option_layer(self.response_cache);
        #[cfg(feature = "trim")]
        let builder = builder.option_layer(self.trim);
        #[cfg(feature = "prompt-cache")]
        let builder = builder.option_layer(self.prompt_cache);
        #[cfg(feature = "cost")]
        let builder = builder.option_layer(self.budget);
        #[cfg(feature = "batch")]
        let builder = builder.option_layer(self.defer);
        #[cfg(feature = "retry")]
        let builder = builder.option_layer(self.retry);
        #[cfg(feature = "rate-limit")]
        let builder = builder.option_layer(self.rate_limit);
        #[cfg(feature = "retry")]
        let builder = builder.option_layer(self.timeout);
        BoxCloneSyncService::new(builder.service(inner))
    }
}
