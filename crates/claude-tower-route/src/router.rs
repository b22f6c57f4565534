//! [`RouterLayer`]: chooses the model of each request from a policy — a closure, or routes on
//! a [`TaskHint`], the estimated input, tools and thinking — the cheapest model that fits.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use claude_tower_core::ext::WithExtension;
use claude_tower_core::models::ModelTable;
use claude_tower_core::{Error, MessagesBody, MessagesRequest, MessagesService, ThinkingConfig};

/// What a request is for, in the **request** extensions: routes choose a model from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskHint {
    /// Pick a label.
    Classify,
    /// Pull fields out of a text.
    Extract,
    /// Shorten a text.
    Summarize,
    /// Conversation.
    Chat,
    /// Reason over material.
    Analyze,
    /// Write something new.
    Generate,
    /// Write or change code.
    Code,
}

/// A model's list prices, for choosing the cheapest model that fits (e.g. from the cost
/// crate's price table: `claude_tower::router_prices`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPrice {
    /// USD per million input tokens.
    pub input_per_million: f64,
    /// USD per million output tokens.
    pub output_per_million: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Tasks(Vec<TaskHint>),
    InputAbove(u64),
    Tools,
    Thinking,
    Always,
}

/// One route: a condition and the models that may serve it (the cheapest one whose context
/// window holds the request is chosen).
///
/// ```
/// use claude_tower::route::{Route, TaskHint};
/// let small = Route::for_tasks([TaskHint::Classify, TaskHint::Extract]).models(["claude-haiku-4-5"]);
/// let long = Route::when_input_above(150_000).models(["claude-sonnet-4-6"]);
/// # let _ = (small, long);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    condition: Condition,
    models: Vec<String>,
    name: String,
}

impl Route {
    fn new(condition: Condition, name: String) -> Self {
        Self {
            condition,
            models: Vec::new(),
            name,
        }
    }

    /// Requests whose [`TaskHint`] is one of `tasks`.
    #[must_use]
    pub fn for_tasks(tasks: impl IntoIterator<Item = TaskHint>) -> Self {
        let tasks: Vec<TaskHint> = tasks.into_iter().collect();
        let name = format!("tasks {tasks:?}");
        Self::new(Condition::Tasks(tasks), name)
    }

    /// Requests whose estimated input is above `tokens`.
    #[must_use]
    pub fn when_input_above(tokens: u64) -> Self {
        Self::new(
            Condition::InputAbove(tokens),
            format!("input above {tokens}"),
        )
    }

    /// Requests that offer tools.
    #[must_use]
    pub fn with_tools() -> Self {
        Self::new(Condition::Tools, "tools".to_owned())
    }

    /// Requests with extended thinking enabled (or adaptive).
    #[must_use]
    pub fn with_thinking() -> Self {
        Self::new(Condition::Thinking, "thinking".to_owned())
    }

    /// Every request (a catch-all, last).
    #[must_use]
    pub fn always() -> Self {
        Self::new(Condition::Always, "always".to_owned())
    }

    /// The models that may serve it.
    #[must_use]
    pub fn models<M: Into<String>>(mut self, models: impl IntoIterator<Item = M>) -> Self {
        self.models = models.into_iter().map(Into::into).collect();
        self
    }

    /// Its name in [`RouteReport`]s (default: the condition).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    fn matches(&self, request: &http::Request<MessagesRequest>, estimate: u64) -> bool {
        let body = request.body();
        match &self.condition {
            Condition::Tasks(tasks) => request
                .extensions()
                .get::<TaskHint>()
                .is_some_and(|hint| tasks.contains(hint)),
            Condition::InputAbove(tokens) => estimate > *tokens,
            Condition::Tools => body.tools.as_ref().is_some_and(|t| !t.is_empty()),
            Condition::Thinking => matches!(
                body.thinking,
                Some(ThinkingConfig::Enabled(_) | ThinkingConfig::Adaptive(_))
            ),
            Condition::Always => true,
        }
    }
}

/// Why a [`RouterLayer`] chose a model.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteReason {
    /// The policy closure chose it.
    Policy,
    /// A route matched (its name).
    Route(String),
    /// Nothing matched: the request's own model.
    Default,
}

/// Put in the response extensions by a [`RouterLayer`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RouteReport {
    /// The model the request asked for.
    pub requested: String,
    /// The model chosen.
    pub model: String,
    /// Why.
    pub reason: RouteReason,
    /// Replaced by a cheaper model because the downgrade switch was on.
    pub downgraded: bool,
    /// The chosen model's worst-case cost estimate (input estimate + `max_tokens` of output at
    /// list prices, USD), when prices are known.
    pub estimated_usd: Option<f64>,
}

type Policy = Arc<dyn Fn(&http::Request<MessagesRequest>) -> Option<String> + Send + Sync>;
type Prices = Arc<dyn Fn(&str) -> Option<ModelPrice> + Send + Sync>;
type Switch = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone, Default)]
struct Shared {
    routes: Vec<Route>,
    policy: Option<Policy>,
    prices: Option<Prices>,
    downgrade: Option<(Switch, Vec<(String, String)>)>,
}

/// Chooses the model of each request: the policy closure when it answers, else the first
/// matching [`Route`] (its cheapest model whose context window holds the request's estimated
/// input; the first listed when prices are unknown), else the request's own model. With
/// [`downgrade_when`](Self::downgrade_when), a switch (e.g. a budget past its soft limit)
/// replaces models by cheaper ones. The response carries a [`RouteReport`].
///
/// Place it above a `FallbackLayer`: the chain then starts at the chosen model.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use claude_tower::core::MessagesRequest;
/// use claude_tower::mock::MockClaude;
/// use claude_tower::route::{Route, RouteReport, RouterLayer, TaskHint};
/// use tower::{Layer, ServiceExt};
///
/// let router = RouterLayer::new()
///     .route(Route::for_tasks([TaskHint::Classify]).models(["claude-haiku-4-5"]))
///     .route(Route::always().models(["claude-sonnet-4-5"]));
/// let service = router.layer(MockClaude::new());
/// let mut request = MessagesRequest::new("claude-opus-4-5", 64).user("spam or ham?").into_http();
/// request.extensions_mut().insert(TaskHint::Classify);
/// let response = service.oneshot(request).await.unwrap();
/// assert_eq!(response.extensions().get::<RouteReport>().unwrap().model, "claude-haiku-4-5");
/// # }
/// ```
#[derive(Clone, Default)]
pub struct RouterLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for RouterLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterLayer")
            .field("routes", &self.shared.routes)
            .field("policy", &self.shared.policy.is_some())
            .field("prices", &self.shared.prices.is_some())
            .field(
                "downgrade",
                &self.shared.downgrade.as_ref().map(|(_, map)| map),
            )
            .finish()
    }
}

impl RouterLayer {
    /// No routes: every request keeps its model.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Adds a route (tried in the order added).
    #[must_use]
    pub fn route(self, route: Route) -> Self {
        self.edit(|s| s.routes.push(route))
    }

    /// A closure tried before the routes: `Some(model)` chooses it.
    #[must_use]
    pub fn policy(
        self,
        policy: impl Fn(&http::Request<MessagesRequest>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.edit(|s| s.policy = Some(Arc::new(policy)))
    }

    /// List prices per model: a route then chooses its cheapest model that fits.
    #[must_use]
    pub fn prices(
        self,
        prices: impl Fn(&str) -> Option<ModelPrice> + Send + Sync + 'static,
    ) -> Self {
        self.edit(|s| s.prices = Some(Arc::new(prices)))
    }

    /// While `switch` answers `true` (e.g. set by a budget's soft-limit alert), replaces each
    /// `from` model by its `to`.
    #[must_use]
    pub fn downgrade_when<F: Into<String>, T: Into<String>>(
        self,
        switch: impl Fn() -> bool + Send + Sync + 'static,
        map: impl IntoIterator<Item = (F, T)>,
    ) -> Self {
        let map = map.into_iter().map(|(f, t)| (f.into(), t.into())).collect();
        self.edit(|s| s.downgrade = Some((Arc::new(switch), map)))
    }
}

impl Shared {
    fn estimated_usd(&self, model: &str, estimate: u64, max_tokens: u32) -> Option<f64> {
        let price = (self.prices.as_ref()?)(model)?;
        Some(
            (estimate as f64 * price.input_per_million
                + f64::from(max_tokens) * price.output_per_million)
                / 1_000_000.0,
        )
    }

    fn choose(&self, request: &http::Request<MessagesRequest>) -> RouteReport {
        let body = request.body();
        let requested = body.model.clone();
        let estimate = body.estimate_input_tokens();
        let (mut model, reason) = if let Some(model) = self.policy.as_ref().and_then(|p| p(request))
        {
            (model, RouteReason::Policy)
        } else if let Some(route) = self.routes.iter().find(|r| r.matches(request, estimate)) {
            let table = ModelTable::builtin();
            let fits: Vec<&String> = route
                .models
                .iter()
                .filter(|m| table.context_window(m) >= estimate)
                .collect();
            let pool = if fits.is_empty() {
                route.models.iter().collect()
            } else {
                fits
            };
            let cheapest = pool
                .iter()
                .enumerate()
                .min_by(|(i, a), (j, b)| {
                    let cost = |m: &str| self.estimated_usd(m, estimate, body.max_tokens);
                    match (cost(a), cost(b)) {
                        (Some(x), Some(y)) => x.total_cmp(&y).then(i.cmp(j)),
                        _ => i.cmp(j),
                    }
                })
                .map(|(_, m)| (*m).clone());
            match cheapest {
                Some(model) => (model, RouteReason::Route(route.name.clone())),
                None => (requested.clone(), RouteReason::Default),
            }
        } else {
            (requested.clone(), RouteReason::Default)
        };
        let mut downgraded = false;
        if let Some((switch, map)) = &self.downgrade
            && let Some((_, to)) = map.iter().find(|(from, _)| *from == model)
            && switch()
        {
            model.clone_from(to);
            downgraded = true;
        }
        RouteReport {
            estimated_usd: self.estimated_usd(&model, estimate, body.max_tokens),
            requested,
            model,
            reason,
            downgraded,
        }
    }
}

/// The service of a [`RouterLayer`].
#[derive(Clone)]
pub struct Router<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> tower_layer::Layer<S> for RouterLayer {
    type Service = Router<S>;

    fn layer(&self, inner: S) -> Router<S> {
        Router {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

claude_tower_core::inner_service_accessors!(Router<S>);

impl<S> tower_service::Service<http::Request<MessagesRequest>> for Router<S>
where
    S: MessagesService,
{
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = WithExtension<S::Future, RouteReport>;

    // No work of its own beyond rewriting the model: the inner readiness is forwarded.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<MessagesRequest>) -> Self::Future {
        let report = self.shared.choose(&request);
        if report.model != request.body().model {
            request.body_mut().model.clone_from(&report.model);
        }
        WithExtension::new(self.inner.call(request), report)
    }
}
