//! [`FallbackLayer`]: an ordered chain of candidate models; a request moves down the chain
//! when a model is overloaded, failing, out of context window or refuses.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use claude_tower_core::ext::RetryCondition;
use claude_tower_core::readiness::call_when_ready;
use claude_tower_core::{Error, ErrorKind, MessagesBody, MessagesRequest, MessagesService};
use http::HeaderValue;
use serde_json::Value;

use crate::breaker::{CallPermit, CircuitBreaker, CircuitState};
use crate::candidate::Candidate;
use crate::classify::{SkipReason, is_breaker_failure, is_prompt_too_long, refusal};
use crate::report::{FallbackReport, Hop};

/// Beta of the API's server-side `fallbacks` (Dec-2026 API).
pub const SERVER_SIDE_FALLBACK_BETA: &str = "server-side-fallback-2026-07-01";
/// Beta of the refusal credit (`fallback_credit_token`, Dec-2026 API).
pub const FALLBACK_CREDIT_BETA: &str = "fallback-credit-2026-07-01";

/// What the chain does when a model refuses (`stop_reason: "refusal"`, an HTTP 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnRefusal {
    /// Try the next candidate, carrying the refusal's `fallback_credit_token` (so the retry's
    /// cache-miss cost is refunded). Complete messages only: a streamed refusal is answered as
    /// it is (its refusal arrives after content was delivered).
    #[default]
    NextCandidate,
    /// Send the request with the API's server-side `fallbacks` (the rest of the chain, beta
    /// [`SERVER_SIDE_FALLBACK_BETA`]): the API hops on refusal itself, streams included; the
    /// reply carries a `fallback` block per hop.
    ServerSide,
    /// Answer the refusal.
    Answer,
}

/// A conversation id in the **request** extensions: with
/// [`FallbackLayer::pin_conversations`], later requests of the conversation start at the
/// candidate that answered it (so it keeps the model, and that model's prompt cache).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversationId(pub String);

#[derive(Clone)]
struct Shared {
    chain: Vec<Candidate>,
    breaker: Option<CircuitBreaker>,
    on_refusal: OnRefusal,
    pins: Option<moka::sync::Cache<String, usize>>,
}

/// Tries an ordered chain of [`Candidate`] models until one answers. A request starts at its
/// own model's place in the chain (a router above may have chosen a later, smaller one), or
/// at the top when its model is not in the chain.
///
/// Moves to the next candidate on: overload (529 / `overloaded_error`, also in-stream before
/// content as the retry layer reports it), 5xx, connection errors and timeouts — put it
/// **above** a `RetryLayer`, so a candidate is left only once its retries are spent and the
/// attempts stay bounded; "prompt is too long" (to a candidate with a larger window); and
/// refusals ([`OnRefusal`]). Never on 400/401/403/404/413, rate limits or spend caps: those
/// answer as they are. Before sending, it skips candidates whose context window is smaller than
/// the request's estimated input, and candidates whose circuit is open (with
/// [`breaker`](Self::breaker)). The response carries a [`FallbackReport`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use claude_tower::core::MessagesRequest;
/// use claude_tower::mock::{Attempt, MockClaude};
/// use claude_tower::route::{FallbackLayer, FallbackReport};
/// use tower::{Layer, ServiceExt};
///
/// let mock = MockClaude::new().with_model_script("claude-opus-4-5", [Attempt::overloaded()]);
/// let service = FallbackLayer::new(["claude-opus-4-5", "claude-sonnet-4-5"]).layer(mock);
/// let request = MessagesRequest::new("claude-opus-4-5", 100).user("hi");
/// let response = service.oneshot(request.into_http()).await.unwrap();
/// let report = response.extensions().get::<FallbackReport>().unwrap();
/// assert_eq!(report.model, "claude-sonnet-4-5");
/// assert_eq!(report.hops.len(), 1);
/// # }
/// ```
#[derive(Clone)]
pub struct FallbackLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for FallbackLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("chain", &self.shared.chain)
            .field("breaker", &self.shared.breaker)
            .field("on_refusal", &self.shared.on_refusal)
            .field("pins", &self.shared.pins.as_ref().map(|p| p.entry_count()))
            .finish()
    }
}

impl FallbackLayer {
    /// A chain of candidates, tried in order (an empty chain passes requests through).
    #[must_use]
    pub fn new<C: Into<Candidate>>(chain: impl IntoIterator<Item = C>) -> Self {
        Self {
            shared: Arc::new(Shared {
                chain: chain.into_iter().map(Into::into).collect(),
                breaker: None,
                on_refusal: OnRefusal::default(),
                pins: None,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Skips candidates whose circuit (keyed by model id) is open, and records every
    /// attempt's outcome in it. Share one breaker between layers to share circuits.
    #[must_use]
    pub fn breaker(self, breaker: CircuitBreaker) -> Self {
        self.edit(|s| s.breaker = Some(breaker))
    }

    /// What to do on a refusal (default [`OnRefusal::NextCandidate`]).
    #[must_use]
    pub fn on_refusal(self, on_refusal: OnRefusal) -> Self {
        self.edit(|s| s.on_refusal = on_refusal)
    }

    /// Pins conversations ([`ConversationId`] in the request extensions) to the candidate
    /// that answered them, for `ttl` after their last request (at most `capacity`
    /// conversations, least recently used go first).
    #[must_use]
    pub fn pin_conversations(self, capacity: u64, ttl: Duration) -> Self {
        let pins = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .time_to_idle(ttl)
            .build();
        self.edit(|s| s.pins = Some(pins))
    }

    /// The chain.
    #[must_use]
    pub fn chain(&self) -> &[Candidate] {
        &self.shared.chain
    }
}

claude_tower_core::layer_service!(
    /// The service of a [`FallbackLayer`].
    ///
    /// # Clone
    ///
    /// Each attempt calls a clone of the inner service (taking its readiness just before the
    /// call), so `S: Clone`.
    FallbackLayer => Fallback, shared: Shared
);

impl<S: fmt::Debug> fmt::Debug for Fallback<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("inner", &self.inner)
            .field("chain", &self.shared.chain)
            .finish_non_exhaustive()
    }
}

// Ready at once: each attempt waits for a clone's readiness right before calling it, so no
// inner permit idles while earlier candidates are tried.
claude_tower_core::always_ready_service!(Fallback, boxed, run);

/// The order candidates are tried in: the pinned one first (when there is one), then the
/// chain from the request's own model on (a model placed before it in the chain was not
/// asked for, e.g. by a router choosing a smaller one); the whole chain when the request's
/// model is not in it.
fn order(chain: &[Candidate], model: &str, pinned: Option<usize>) -> Vec<usize> {
    let start = chain.iter().position(|c| c.model() == model).unwrap_or(0);
    let mut order = Vec::with_capacity(chain.len());
    if let Some(pinned) = pinned.filter(|&p| p < chain.len()) {
        order.push(pinned);
    }
    order.extend((start..chain.len()).filter(|&i| Some(i) != pinned));
    order
}

fn add_beta(headers: &mut http::HeaderMap, beta: &'static str) {
    let present = headers
        .get_all(claude_tower_core::headers::ANTHROPIC_BETA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|b| b.trim() == beta);
    if !present {
        headers.append(
            claude_tower_core::headers::ANTHROPIC_BETA,
            HeaderValue::from_static(beta),
        );
    }
}

async fn run<S>(
    shared: Arc<Shared>,
    mut inner: S,
    request: http::Request<MessagesRequest>,
) -> Result<http::Response<MessagesBody>, Error>
where
    S: MessagesService + Clone + Send + 'static,
    S::Future: Send,
{
    if shared.chain.is_empty() {
        return call_when_ready(&mut inner, request).await;
    }
    let (parts, body) = request.into_parts();
    let estimate = body.estimate_input_tokens();
    let conversation = parts
        .extensions
        .get::<ConversationId>()
        .map(|c| c.0.clone());
    let pinned = match (&shared.pins, &conversation) {
        (Some(pins), Some(id)) => pins.get(id),
        _ => None,
    };
    let order = order(&shared.chain, &body.model, pinned);
    let mut report = FallbackReport {
        pinned: pinned.is_some(),
        ..FallbackReport::default()
    };
    let mut credit: Option<String> = None;
    let mut needs_window_above: Option<u64> = None;
    let mut last_error: Option<Error> = None;
    let mut last_refusal: Option<(usize, http::Response<MessagesBody>)> = None;
    let mut circuits_open = false;
    for (position, &index) in order.iter().enumerate() {
        let candidate = &shared.chain[index];
        let window = candidate.context_window();
        let skip = |reason| Hop {
            model: candidate.model().to_owned(),
            reason,
            usage: None,
        };
        if estimate > window {
            report
                .hops
                .push(skip(SkipReason::ContextWindow { estimate, window }));
            continue;
        }
        if needs_window_above.is_some_and(|needed| window <= needed) {
            report
                .hops
                .push(skip(SkipReason::WindowNotLarger { window }));
            continue;
        }
        let permit: Option<CallPermit> = match &shared.breaker {
            Some(breaker) => match breaker.try_call(candidate.model()) {
                Some(permit) => Some(permit),
                None => {
                    circuits_open = true;
                    report.hops.push(skip(SkipReason::CircuitOpen));
                    continue;
                }
            },
            None => None,
        };
        let mut attempt_parts = parts.clone();
        let mut attempt_body = body.clone();
        candidate.apply(&mut attempt_body);
        if let Some(token) = &credit {
            attempt_body.extra.insert(
                "fallback_credit_token".to_owned(),
                Value::String(token.clone()),
            );
            add_beta(&mut attempt_parts.headers, FALLBACK_CREDIT_BETA);
        }
        if shared.on_refusal == OnRefusal::ServerSide {
            let rest: Vec<Value> = order[position + 1..]
                .iter()
                .map(|&i| shared.chain[i].server_side())
                .collect();
            if !rest.is_empty() {
                attempt_body
                    .extra
                    .insert("fallbacks".to_owned(), Value::Array(rest));
                add_beta(&mut attempt_parts.headers, SERVER_SIDE_FALLBACK_BETA);
            }
        }
        if let Some(breaker) = &shared.breaker {
            // Retries below only while this model's circuit stays closed: once it opens (or
            // for the half-open probe, one call) the chain moves on at once.
            let breaker = breaker.clone();
            let model = candidate.model().to_owned();
            attempt_parts
                .extensions
                .insert(RetryCondition::new(move || {
                    breaker.state(&model) == CircuitState::Closed
                }));
        }
        let attempt = http::Request::from_parts(attempt_parts, attempt_body);
        let mut service = inner.clone();
        match call_when_ready(&mut service, attempt).await {
            Ok(response) => {
                let more = position + 1 < order.len();
                let refused = response
                    .body()
                    .as_message()
                    .filter(|_| shared.on_refusal == OnRefusal::NextCandidate)
                    .and_then(|message| refusal(message).map(|r| (r, message.usage.clone())));
                if let Some(permit) = permit {
                    // A refusal says nothing about the model's health.
                    permit.success();
                }
                if let Some(((category, token), usage)) = refused.filter(|_| more) {
                    report.hops.push(Hop {
                        model: candidate.model().to_owned(),
                        reason: SkipReason::Refused {
                            category,
                            credit_carried: token.is_some(),
                        },
                        usage: Some(usage),
                    });
                    credit = token;
                    last_refusal = Some((index, response));
                    continue;
                }
                return Ok(answered(&shared, &conversation, report, index, response));
            }
            Err(error) => {
                if is_breaker_failure(&error) {
                    if let Some(permit) = permit {
                        permit.failure();
                    }
                    report.hops.push(skip(SkipReason::Failed {
                        kind: error.kind(),
                        status: error.status().map(|s| s.as_u16()),
                    }));
                    last_error = Some(error);
                    continue;
                }
                if is_prompt_too_long(&error) {
                    if let Some(permit) = permit {
                        permit.success();
                    }
                    report.hops.push(skip(SkipReason::PromptTooLong));
                    needs_window_above = Some(window);
                    last_error = Some(error);
                    continue;
                }
                // Rate limits, spend caps, 4xx, local refusals: answered as they are (a
                // dropped permit counts as neither success nor failure).
                drop(permit);
                return Err(error);
            }
        }
    }
    // A refusal whose later candidates could not be tried is the best answer there is.
    if let Some((index, response)) = last_refusal {
        report.hops.pop();
        return Ok(answered(&shared, &conversation, report, index, response));
    }
    if let Some(error) = last_error {
        return Err(error);
    }
    Err(if circuits_open {
        Error::new(
            ErrorKind::Overloaded,
            format!(
                "every fallback candidate was skipped (open circuits or too small windows): {} (nothing was sent)",
                describe(&report)
            ),
        )
    } else {
        Error::new(
            ErrorKind::InvalidRequest,
            format!(
                "the request (~{estimate} input tokens) is larger than every fallback candidate's context window: {} (nothing was sent)",
                describe(&report)
            ),
        )
    })
}

fn describe(report: &FallbackReport) -> String {
    report
        .hops
        .iter()
        .map(|hop| format!("{} ({:?})", hop.model, hop.reason))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Puts the report on the answer and pins the conversation.
fn answered(
    shared: &Shared,
    conversation: &Option<String>,
    mut report: FallbackReport,
    index: usize,
    response: http::Response<MessagesBody>,
) -> http::Response<MessagesBody> {
    if let (Some(pins), Some(id)) = (&shared.pins, conversation) {
        pins.insert(id.clone(), index);
    }
    report.model = shared.chain[index].model().to_owned();
    report.index = index;
    let (mut parts, body) = response.into_parts();
    parts.extensions.insert(report);
    http::Response::from_parts(parts, body)
}
