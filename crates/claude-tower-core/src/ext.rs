//! Typed extensions: what layers tell each other and the caller, carried in the
//! `http::Request` / `http::Response` extensions. Layer crates never depend on each other;
//! the types two layers exchange live here, and a type only one layer writes for the caller
//! lives in that layer's crate.
//!
//! # The extension protocol
//!
//! Every extension of a claude-tower stack, in one table (facade paths):
//!
//! | type | on | written by | read by | present when |
//! |---|---|---|---|---|
//! | [`Attribution`] | request | the caller (e.g. `Client::messages().attribution(…)`) | `BudgetLayer`, `CostLayer` (ledger), `RateLimitLayer` (per-key limits), `ResponseCacheLayer` (per-user partition) | set by the caller; otherwise derived from `anthropic-workspace-id`, `anthropic-user-profile-id`, `metadata.user_id` ([`Attribution::of`]) |
//! | `response_cache::ResponseCacheMode` | request | the caller | `ResponseCacheLayer` | optional: bypass, refresh or opt in per request |
//! | [`InputEstimate`](crate::layout::InputEstimate) | request | `TrimLayer` (default counter; [`InputEstimate::shared`](crate::layout::InputEstimate::shared)), or the caller | `BudgetLayer`, `RateLimitLayer` ([`InputEstimate::get`](crate::layout::InputEstimate::get); without one they estimate alone) | under a `TrimLayer`, for requests of 8 positions or more (below that, estimating again is cheaper than sharing); `TrimLayer` removes it when it changes the request |
//! | `opentelemetry::Context` | request | the caller | `TraceLayer` (feature `otel`) | optional: the parent of the call's span (else a `traceparent` header) |
//! | `route::TaskHint` | request | the caller | `RouterLayer` (routes by task) | optional |
//! | `route::ConversationId` | request | the caller | `FallbackLayer` (conversation pins), `KeyPoolLayer` (a conversation keeps its key) | optional |
//! | [`RetryCondition`] | request | `FallbackLayer` (retry only while the candidate's circuit is closed), or the caller | `RetryLayer` (checked before each retry) | under a `FallbackLayer` with a circuit breaker; optional otherwise |
//! | [`Deferred`] | request | the caller | `DeferLayer` (queues it into a batch), `BudgetLayer` (reserves at batch prices) | optional |
//! | `batch::DeferReport` | response | `DeferLayer` | the caller | a deferred call's answer (batch id, custom id) |
//! | [`Attempts`] | response | `RetryLayer` | `TraceLayer`, the caller | under a `RetryLayer` |
//! | `route::RouteReport` | response | `RouterLayer` | the caller | under a `RouterLayer` |
//! | [`RateLimitScope`] | request | `KeyPoolLayer` (the key's workspace) | `RateLimitLayer` (per-key limits, before the attribution) | under a `KeyPoolLayer` |
//! | `route::KeyReport` | response | `KeyPoolLayer` | the caller | under a `KeyPoolLayer` (key id and workspace, never the secret) |
//! | `route::FallbackReport` | response | `FallbackLayer` | the caller | under a `FallbackLayer` |
//! | [`ResponseCacheStatus`] | response | `ResponseCacheLayer` | `CostLayer` and `BudgetLayer` (a `Hit` costs 0), `TraceLayer`, the caller | under a `ResponseCacheLayer` |
//! | [`CostCell`] (a [`Late`]) | response | `CostLayer` | `TraceLayer` | under a `CostLayer`; its value is set at once for a message, at the end of a stream |
//! | `cost::Cost` | response | `CostLayer` | the caller | under a `CostLayer`, complete messages |
//! | `cost::CostHandle` (a [`Late`]) | response | `CostLayer` | the caller | under a `CostLayer`, streams; its value at the end of the stream (a complete message carries `cost::Cost` instead) |
//! | `prompt_cache::PromptCacheReport` | response | `PromptCacheLayer` | the caller | under a `PromptCacheLayer`, complete messages |
//! | `prompt_cache::PromptCacheReportHandle` (a [`Late`]) | response | `PromptCacheLayer` | the caller | under a `PromptCacheLayer`; its value at `message_start` |
//! | `trim::TrimReport` | response | `TrimLayer` | the caller | under a `TrimLayer` |
//! | [`ServerAddress`] | response | `Transport` | `TraceLayer` (`server.address`, `server.port`) | from the transport (not from the mock) |
//!
//! A response served by the response cache carries only what the layers **above** the cache
//! write (see the canonical order in the facade docs): everything below it was skipped.
//!
//! Values known only when a stream ends are [`Late`] cells, filled by the layer's
//! [`OnEnd`](crate::end::OnEnd) hook (the one "when the response ends" mechanism, see
//! [`end`](crate::end)).

use std::time::Duration;

use crate::error::ErrorKind;

/// How a response was obtained by the retry layer: put in the response extensions by
/// `claude-tower-retry`.
///
/// ```
/// use claude_tower::core::ext::Attempts;
/// let attempts = Attempts::default();
/// assert_eq!(attempts.count, 0);
/// assert_eq!(attempts.retries(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempts {
    /// Attempts made, the successful one included.
    pub count: u32,
    /// The delay slept before each retry, in order.
    pub delays: Vec<Duration>,
    /// The kind of each failed attempt, in order.
    pub errors: Vec<ErrorKind>,
}

impl Attempts {
    /// Retries made (`count - 1`, or 0).
    #[must_use]
    pub fn retries(&self) -> u32 {
        self.count.saturating_sub(1)
    }

    /// Total time slept between attempts.
    #[must_use]
    pub fn total_delay(&self) -> Duration {
        self.delays.iter().sum()
    }
}

/// A condition on the retries of one request, in the **request** extensions: the retry layer
/// retries only while it answers `true` (checked before each retry; the policy still
/// decides). The fallback layer sets one per attempt so that a model whose circuit opened (or
/// a half-open probe, which is one call) is not retried: the chain moves on at once.
///
/// ```
/// use claude_tower::core::ext::RetryCondition;
/// let never = RetryCondition::new(|| false);
/// assert!(!never.allows());
/// ```
#[derive(Clone)]
pub struct RetryCondition(std::sync::Arc<dyn Fn() -> bool + Send + Sync>);

impl RetryCondition {
    /// Retries are allowed while `condition` answers `true`.
    pub fn new(condition: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(condition))
    }

    /// Whether a retry is allowed now.
    #[must_use]
    pub fn allows(&self) -> bool {
        (self.0)()
    }
}

impl std::fmt::Debug for RetryCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryCondition").finish_non_exhaustive()
    }
}

/// The rate-limit scope of the credential a request is sent with, in the **request**
/// extensions: set by a key pool (the API key's workspace); the rate limiter's per-key limits
/// use it before the attribution, so each workspace's keys have their own buckets.
///
/// ```
/// use claude_tower::core::ext::RateLimitScope;
/// let scope = RateLimitScope("wrk-a".into());
/// assert_eq!(&*scope.0, "wrk-a");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimitScope(pub String);

/// This call may wait for a Message Batch (half price), in the **request** extensions: a
/// `DeferLayer` queues it into a batch; the budget reserves it at batch prices. `deadline`:
/// the longest the caller waits for the batch (then, with the layer's synchronous fallback,
/// it is sent as an ordinary call).
///
/// ```
/// use std::time::Duration;
/// use claude_tower::core::ext::Deferred;
/// let within_a_day = Deferred::within(Duration::from_secs(86_400));
/// assert_eq!(within_a_day.deadline, Some(Duration::from_secs(86_400)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Deferred {
    /// The longest the caller waits (`None`: as long as the batch takes, up to its 24 h).
    pub deadline: Option<Duration>,
}

impl Deferred {
    /// Deferrable, no deadline of its own.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Deferrable for at most `deadline`.
    #[must_use]
    pub fn within(deadline: Duration) -> Self {
        Self {
            deadline: Some(deadline),
        }
    }
}

/// Who a request is for, for attribution (cost ledger), budgets and per-key rate limits.
/// Put it in the **request** extensions; unset parts fall back to the request's
/// `anthropic-workspace-id` (tenant) and `anthropic-user-profile-id` or `metadata.user_id`
/// (user), see [`Attribution::of`].
///
/// ```
/// use claude_tower::core::{MessagesRequest, ext::Attribution};
/// let mut request = MessagesRequest::new("claude-haiku-4-5", 64).user("hi").into_http();
/// request.extensions_mut().insert(Attribution::tenant("acme").with_user("u-42").with_feature("search"));
/// assert_eq!(request.extensions().get::<Attribution>().unwrap().tenant.as_deref(), Some("acme"));
///
/// // Without the extension, the workspace header attributes the request.
/// let mut request = MessagesRequest::new("claude-haiku-4-5", 64).user("hi").into_http();
/// request.headers_mut().insert("anthropic-workspace-id", "wrkspc_01".parse().unwrap());
/// assert_eq!(Attribution::of(&request).tenant.as_deref(), Some("wrkspc_01"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Attribution {
    /// Tenant / customer / workspace.
    pub tenant: Option<String>,
    /// End user.
    pub user: Option<String>,
    /// Feature or call-site tag.
    pub feature: Option<String>,
}

impl Attribution {
    /// Attribution to a tenant.
    #[must_use]
    pub fn tenant(tenant: impl Into<String>) -> Self {
        Self {
            tenant: Some(tenant.into()),
            ..Self::default()
        }
    }

    /// Attribution to a user.
    #[must_use]
    pub fn user(user: impl Into<String>) -> Self {
        Self {
            user: Some(user.into()),
            ..Self::default()
        }
    }

    crate::setters! {
        /// Sets the user.
        pub fn with_user(user: impl Into<String>) => user = Some(user.into());
        /// Sets the feature tag.
        pub fn with_feature(feature: impl Into<String>) => feature = Some(feature.into());
    }

    /// The attribution of a request: its extension; then `tenant` falls back to the
    /// `anthropic-workspace-id` header, and `user` to the `anthropic-user-profile-id` header,
    /// then to `metadata.user_id`.
    #[must_use]
    pub fn of(request: &http::Request<crate::MessagesRequest>) -> Self {
        let mut attribution = request
            .extensions()
            .get::<Self>()
            .cloned()
            .unwrap_or_default();
        static WORKSPACE: http::HeaderName =
            http::HeaderName::from_static(crate::headers::ANTHROPIC_WORKSPACE_ID);
        static USER_PROFILE: http::HeaderName =
            http::HeaderName::from_static(crate::headers::ANTHROPIC_USER_PROFILE_ID);
        let header = |name: &http::HeaderName| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        if attribution.tenant.is_none() {
            attribution.tenant = header(&WORKSPACE);
        }
        if attribution.user.is_none() {
            attribution.user = header(&USER_PROFILE).or_else(|| {
                request
                    .body()
                    .metadata
                    .as_ref()
                    .and_then(|m| m.user_id.clone())
            });
        }
        attribution
    }
}

/// The server a response really came from: put in the response extensions by the transport
/// (its configured base URL), read by the trace layer for `server.address` / `server.port`.
///
/// ```
/// use claude_tower::core::ext::ServerAddress;
/// let server = ServerAddress::new("gateway.internal", 8443);
/// assert_eq!((server.host(), server.port()), ("gateway.internal", 8443));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddress {
    host: std::sync::Arc<str>,
    port: u16,
}

impl ServerAddress {
    /// A host and port.
    #[must_use]
    pub fn new(host: impl Into<std::sync::Arc<str>>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// The host name or address.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default when the URL names none).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// What the response cache did, in the response extensions. A `Hit` carries the original
/// usage in the message, and the cost meter charges it 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseCacheStatus {
    /// Served from the cache; nothing was sent upstream.
    Hit,
    /// Not in the cache; sent upstream (and possibly stored).
    Miss,
    /// The cache was not consulted (policy or per-request bypass).
    Bypass,
    /// Served from an expired entry.
    Stale,
}

/// A value that exists only once a response is complete or has started (a stream's cost at
/// its end, a prompt-cache report at `message_start`): the layer that computes it puts a
/// `Late` in the response extensions at once and sets it later; the caller (or an outer
/// layer) reads it through any clone. The first value set wins.
///
/// ```
/// use claude_tower::core::ext::Late;
/// let late: Late<u32> = Late::default();
/// let seen_by_caller = late.clone();
/// assert_eq!(seen_by_caller.get(), None);
/// late.set(7);
/// late.set(8); // ignored: set once
/// assert_eq!(seen_by_caller.get(), Some(&7));
/// ```
#[derive(Debug)]
pub struct Late<T>(std::sync::Arc<std::sync::OnceLock<T>>);

impl<T> Clone for Late<T> {
    fn clone(&self) -> Self {
        Self(std::sync::Arc::clone(&self.0))
    }
}

impl<T> Default for Late<T> {
    fn default() -> Self {
        Self(std::sync::Arc::new(std::sync::OnceLock::new()))
    }
}

impl<T> Late<T> {
    /// A late value that is already set (for a response whose value is known at once).
    #[must_use]
    pub fn ready(value: T) -> Self {
        Self(std::sync::Arc::new(std::sync::OnceLock::from(value)))
    }

    /// Sets the value (the first one wins; later ones are ignored).
    pub fn set(&self, value: T) {
        let _ = self.0.set(value);
    }

    /// The value, once set.
    #[must_use]
    pub fn get(&self) -> Option<&T> {
        self.0.get()
    }
}

/// A response's total cost in pico-dollars, as published by a cost meter for layers that do
/// not depend on the cost crate (tracing), in a [`CostCell`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Picodollars(pub u128);

impl Picodollars {
    /// In dollars (approximate, for telemetry).
    #[must_use]
    pub fn usd(self) -> f64 {
        self.0 as f64 / 1e12
    }
}

/// The cost of a response, published by a cost meter: set at once for a complete message, at
/// the end of a stream otherwise.
pub type CostCell = Late<Picodollars>;

pin_project_lite::pin_project! {
    /// A response future that puts `T` in the response's extensions when the inner future
    /// answers (the future of layers that only report something, e.g. a router's choice).
    pub struct WithExtension<F, T> {
        #[pin]
        future: F,
        value: Option<T>,
    }
}

impl<F, T> WithExtension<F, T> {
    /// `future`, whose response gets `value`.
    pub fn new(future: F, value: T) -> Self {
        Self {
            future,
            value: Some(value),
        }
    }
}

impl<F, T> std::fmt::Debug for WithExtension<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithExtension").finish_non_exhaustive()
    }
}

impl<F, T> std::future::Future for WithExtension<F, T>
where
    F: std::future::Future<Output = Result<http::Response<crate::MessagesBody>, crate::Error>>,
    T: Clone + Send + Sync + 'static,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.future.poll(cx))?;
        if let Some(value) = this.value.take() {
            response.extensions_mut().insert(value);
        }
        std::task::Poll::Ready(Ok(response))
    }
}
