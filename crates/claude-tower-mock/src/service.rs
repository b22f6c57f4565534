//! [`MockClaude`]: the in-process mock `Service`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use claude_tower_core::{
    ApiErrorBody, Error, ErrorEvent, EventStream, Extra, MessagesBody, MessagesRequest, StreamEvent,
};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use crate::cache_sim::PromptCache;
use crate::limits::{Buckets, MockLimits, model_class};
pub(crate) use crate::plan::{Plan, PlanKind, StreamFault};
use crate::plan::{insert, invalid_request};
pub use crate::recorded::RecordedRequest;
use crate::reply::reply;
use crate::reply::{api_rejects, apply_usage};
use crate::script::{Attempt, Outcome};
use claude_tower_core::clock::rfc3339;
use claude_tower_core::rate_limit::TokenBucket;

#[derive(Debug)]
pub(crate) struct State {
    script: VecDeque<Attempt>,
    pub(crate) requests: Vec<RecordedRequest>,
    seq: u64,
    limits: MockLimits,
    enforce: bool,
    buckets: HashMap<String, Buckets>,
    pub(crate) epoch: Instant,
    pub(crate) models: crate::models::ModelRules,
    pub(crate) batches: crate::batch_state::Batches,
    rate_limited: usize,
    chunk_chars: usize,
    /// The simulated prompt cache of each workspace (`""`: requests of no known key).
    prompt_cache: HashMap<String, PromptCache>,
}

/// A deterministic, scriptable mock of the Messages API as an in-process
/// `tower::Service<http::Request<MessagesRequest>>`.
///
/// - Answers from the request: a text quoting the last user message, or a `tool_use` when
///   client tools are offered; honours `max_tokens` and `stop_sequences`; usage from the core
///   estimator; `stream: true` gives an event stream with the real event sequence.
/// - Plays a per-attempt script of faults ([`Attempt`]): any status with headers, mid-stream
///   `error` events, dropped connections, delays (on tokio's clock, so tests can pause it).
/// - Records every request ([`MockClaude::requests`]).
///
/// Clones share the script and the record. [`MockServer`](crate::MockServer) serves the same
/// behaviour over HTTP.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use claude_tower::core::{ErrorKind, MessagesRequest};
/// use claude_tower::mock::{Attempt, MockClaude};
/// use tower::ServiceExt;
///
/// let mock = MockClaude::new().with_script([Attempt::overloaded()]);
/// let request = MessagesRequest::new("claude-haiku-4-5", 100).user("hi");
///
/// let first = mock.clone().oneshot(request.clone().into_http()).await.unwrap_err();
/// assert_eq!(first.kind(), ErrorKind::Overloaded);
/// let second = mock.clone().oneshot(request.into_http()).await.unwrap();
/// assert!(second.into_body().into_message().await.unwrap().text().contains("hi"));
/// assert_eq!(mock.request_count(), 2);
/// # }
/// ```
#[derive(Clone)]
pub struct MockClaude {
    state: Arc<Mutex<State>>,
}

impl Default for MockClaude {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MockClaude {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MockClaude")
            .field("scripted_attempts", &state.script.len())
            .field("requests", &state.requests.len())
            .finish_non_exhaustive()
    }
}

impl MockClaude {
    /// A mock with an empty script.
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                script: VecDeque::new(),
                requests: Vec::new(),
                seq: 0,
                limits: MockLimits::default(),
                enforce: false,
                buckets: HashMap::new(),
                epoch: Instant::now(),
                models: crate::models::ModelRules::default(),
                batches: crate::batch_state::Batches::default(),
                rate_limited: 0,
                chunk_chars: 8,
                prompt_cache: HashMap::new(),
            })),
        }
    }

    /// Appends attempts to the script.
    #[must_use]
    pub fn with_script(self, attempts: impl IntoIterator<Item = Attempt>) -> Self {
        self.push_script(attempts);
        self
    }

    /// Sets the limits reported in the rate-limit headers (not enforced).
    #[must_use]
    pub fn with_limits(self, limits: MockLimits) -> Self {
        let mut state = self.lock();
        state.limits = limits;
        state.buckets.clear();
        drop(state);
        self
    }

    /// Sets and **enforces** the limits: a request over any of them gets a 429
    /// `rate_limit_error` with `retry-after` (it is still recorded).
    #[must_use]
    pub fn with_rate_limits(self, limits: MockLimits) -> Self {
        let mut state = self.lock();
        state.limits = limits;
        state.enforce = true;
        state.buckets.clear();
        drop(state);
        self
    }

    /// Entries in the simulated prompt cache (live or expired).
    #[must_use]
    pub fn prompt_cache_entries(&self) -> usize {
        self.lock()
            .prompt_cache
            .values()
            .map(PromptCache::len)
            .sum()
    }

    /// How many requests the mock answered with a rate-limit 429 of its own (scripted 429s not
    /// included).
    #[must_use]
    pub fn rate_limited_count(&self) -> usize {
        self.lock().rate_limited
    }

    /// Sets how many characters each streamed text delta carries (default 8).
    #[must_use]
    pub fn with_chunk_chars(self, chunk_chars: usize) -> Self {
        self.lock().chunk_chars = chunk_chars.max(1);
        self
    }

    /// Appends attempts to the script (shared by all clones).
    pub fn push_script(&self, attempts: impl IntoIterator<Item = Attempt>) {
        self.lock().script.extend(attempts);
    }

    /// Attempts not yet played.
    #[must_use]
    pub fn remaining_script(&self) -> usize {
        self.lock().script.len()
    }

    /// Every request received so far, in order.
    #[must_use]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// How many requests were received.
    #[must_use]
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// The mock's answer to `count_tokens`: the core estimate.
    #[must_use]
    pub fn count_tokens(&self, request: &MessagesRequest) -> u64 {
        request.estimate_input_tokens()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the request and decides the answer.
    pub(crate) fn plan(&self, path: &str, headers: &HeaderMap, body: &MessagesRequest) -> Plan {
        let mut state = self.lock();
        state.seq += 1;
        let seq = state.seq;
        state.requests.push(RecordedRequest {
            path: path.to_owned(),
            headers: headers.clone(),
            body: body.clone(),
        });
        let request_id = format!("req_mock_{seq:020}");
        // What the API answers a request it rejects (or that does not fit the model's
        // window): a 400 envelope, before any limit.
        if let Some(message) = api_rejects(body)
            .err()
            .or_else(|| state.models.too_long(body))
        {
            return invalid_request(&request_id, &message);
        }
        let workspace = state.models.workspace_of(headers);
        if let Some(plan) = admit(&mut state, body, &request_id, &workspace) {
            return plan;
        }
        let asked = headers
            .get(crate::script::MOCK_ATTEMPT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(Attempt::named);
        let now = state.epoch.elapsed();
        let attempt = match asked.or_else(|| state.models.attempt(&body.model, now)) {
            Some(attempt) => attempt,
            None => state.script.pop_front().unwrap_or_else(Attempt::ok),
        };
        let mut message = match &attempt.outcome {
            Outcome::Message(message) => (**message).clone(),
            Outcome::Refusal(details) => {
                let mut message = reply(body, seq);
                message.content = vec![claude_tower_core::ContentBlock::text("I can't help")];
                message.usage.output_tokens = 3;
                message.stop_reason = Some(claude_tower_core::StopReason::Refusal);
                message.stop_details = Some(details.clone());
                message
            }
            _ => reply(body, seq),
        };
        if !matches!(
            attempt.outcome,
            Outcome::Message(_) | Outcome::Status { .. }
        ) {
            let cache = state
                .prompt_cache
                .entry(workspace)
                .or_default()
                .simulate(body, now, true);
            let usage = &mut message.usage;
            usage.input_tokens = cache.uncached;
            usage.cache_read_input_tokens = Some(cache.read);
            usage.cache_creation_input_tokens = Some(cache.write_5m + cache.write_1h);
            usage.cache_creation = Some(claude_tower_core::CacheCreation {
                ephemeral_5m_input_tokens: cache.write_5m,
                ephemeral_1h_input_tokens: cache.write_1h,
                ..Default::default()
            });
        }
        if !matches!(attempt.outcome, Outcome::Message(_)) {
            apply_usage(&mut message.usage, body, &attempt.usage);
        }
        charge_output(&mut state, body, message.usage.output_tokens);
        let mut response_headers = rate_limit_headers(&mut state, &body.model);
        insert(&mut response_headers, "request-id", &request_id);
        let chunk_chars = state.chunk_chars;
        drop(state);

        let kind = match attempt.outcome {
            Outcome::Reply | Outcome::Refusal(_) | Outcome::Message(_) if body.is_stream() => {
                PlanKind::Stream {
                    headers: response_headers,
                    events: message.to_events(chunk_chars),
                    fault: None,
                }
            }
            Outcome::Reply | Outcome::Refusal(_) | Outcome::Message(_) => PlanKind::Message {
                headers: response_headers,
                message: Box::new(message),
            },
            Outcome::Status {
                status,
                headers,
                body,
            } => {
                for (name, value) in &headers {
                    insert(&mut response_headers, name, value);
                }
                PlanKind::Error {
                    status,
                    headers: response_headers,
                    body,
                }
            }
            Outcome::StreamError {
                after_events,
                error_type,
                message: text,
            } => {
                let error = ApiErrorBody {
                    kind: error_type,
                    message: text,
                    ..ApiErrorBody::default()
                };
                if body.is_stream() {
                    PlanKind::Stream {
                        headers: response_headers,
                        events: message.to_events(chunk_chars),
                        fault: Some(StreamFault::Error {
                            after_events,
                            error,
                        }),
                    }
                } else {
                    let status = if error.kind == "overloaded_error" {
                        529
                    } else {
                        500
                    };
                    let envelope = serde_json::json!({"type": "error", "error": error, "request_id": request_id});
                    insert(&mut response_headers, "content-type", "application/json");
                    PlanKind::Error {
                        status: StatusCode::from_u16(status)
                            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        headers: response_headers,
                        body: Bytes::from(envelope.to_string()),
                    }
                }
            }
            Outcome::Drop { after_events } if body.is_stream() => PlanKind::Stream {
                headers: response_headers,
                events: message.to_events(chunk_chars),
                fault: Some(StreamFault::Drop { after_events }),
            },
            Outcome::Drop { .. } => PlanKind::Drop,
        };
        Plan {
            first_byte_delay: attempt.first_byte_delay,
            event_delay: attempt.event_delay,
            kind,
        }
    }
}

fn buckets<'a>(state: &'a mut State, model: &str) -> (&'a mut Buckets, Duration) {
    let now = state.epoch.elapsed();
    let limits = state.limits;
    let buckets = state
        .buckets
        .entry(model_class(model).to_owned())
        .or_insert_with(|| Buckets {
            requests: TokenBucket::full(limits.requests_per_minute, now),
            input: TokenBucket::full(limits.input_tokens_per_minute, now),
            output: TokenBucket::full(limits.output_tokens_per_minute, now),
        });
    (buckets, now)
}

fn cache_of<'a>(state: &'a mut State, workspace: &str) -> &'a mut PromptCache {
    state.prompt_cache.entry(workspace.to_owned()).or_default()
}

/// Enforces the limits: `Some(429 plan)` when the request does not fit (nothing is charged).
fn admit(
    state: &mut State,
    body: &MessagesRequest,
    request_id: &str,
    workspace: &str,
) -> Option<Plan> {
    if !state.enforce {
        let now = state.epoch.elapsed();
        let cached = cache_of(state, workspace).simulate(body, now, false);
        let (buckets, now) = buckets(state, &body.model);
        buckets.requests.take(1.0, now);
        buckets.input.take(
            (cached.uncached + cached.write_5m + cached.write_1h) as f64,
            now,
        );
        return None;
    }
    let now = state.epoch.elapsed();
    let cached = cache_of(state, workspace).simulate(body, now, false);
    // Cache reads do not count toward ITPM.
    let input = cached.uncached + cached.write_5m + cached.write_1h;
    let (b, now) = buckets(state, &body.model);
    let waits = [
        ("requests", b.requests.wait_for(1, now)),
        ("input tokens", b.input.wait_for(input, now)),
        ("output tokens", b.output.wait_for(1, now)),
    ];
    let worst = waits
        .iter()
        .filter_map(|(name, wait)| match wait {
            Ok(wait) if wait.is_zero() => None,
            Ok(wait) => Some((*name, *wait)),
            Err(_) => Some((*name, Duration::from_secs(60))),
        })
        .max_by_key(|(_, wait)| *wait);
    if let Some((name, wait)) = worst {
        state.rate_limited += 1;
        let mut headers = rate_limit_headers(state, &body.model);
        insert(&mut headers, "request-id", request_id);
        insert(&mut headers, "content-type", "application/json");
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        insert(&mut headers, "retry-after", &secs.max(1).to_string());
        let envelope = serde_json::json!({
            "type": "error",
            "error": {"type": "rate_limit_error", "message": format!("This request would exceed the rate limit for {name} per minute.")},
            "request_id": request_id,
        });
        return Some(Plan {
            first_byte_delay: Duration::ZERO,
            event_delay: Duration::ZERO,
            kind: PlanKind::Error {
                status: StatusCode::TOO_MANY_REQUESTS,
                headers,
                body: Bytes::from(envelope.to_string()),
            },
        });
    }
    b.requests.take(1.0, now);
    b.input.take(input as f64, now);
    None
}

fn charge_output(state: &mut State, body: &MessagesRequest, output: u64) {
    let (b, now) = buckets(state, &body.model);
    b.output.take(output as f64, now);
}

fn rate_limit_headers(state: &mut State, model: &str) -> HeaderMap {
    let (b, now) = buckets(state, model);
    let b = *b;
    let mut headers = HeaderMap::new();
    let wall = SystemTime::now();
    let total = TokenBucket::full(b.input.capacity() + b.output.capacity(), now);
    for (name, bucket, remaining) in [
        ("requests", b.requests, b.requests.available(now)),
        ("input-tokens", b.input, b.input.available(now)),
        ("output-tokens", b.output, b.output.available(now)),
        (
            "tokens",
            total,
            b.input.available(now) + b.output.available(now),
        ),
    ] {
        insert(
            &mut headers,
            &format!("anthropic-ratelimit-{name}-limit"),
            &bucket.capacity().to_string(),
        );
        insert(
            &mut headers,
            &format!("anthropic-ratelimit-{name}-remaining"),
            &(remaining.max(0.0).floor() as u64).to_string(),
        );
        let reset = if name == "tokens" {
            b.input.until_full(now).max(b.output.until_full(now))
        } else {
            bucket.until_full(now)
        };
        insert(
            &mut headers,
            &format!("anthropic-ratelimit-{name}-reset"),
            &rfc3339(wall + reset),
        );
    }
    headers
}

/// Yields `events` with `delay` before each, then applies the fault.
pub(crate) fn timed_events(
    events: Vec<StreamEvent>,
    delay: Duration,
    fault: Option<StreamFault>,
) -> impl futures_util::Stream<Item = Result<StreamEvent, Error>> + Send + 'static {
    let cut = match &fault {
        Some(StreamFault::Error { after_events, .. } | StreamFault::Drop { after_events }) => {
            *after_events
        }
        None => usize::MAX,
    };
    let mut items: Vec<Result<StreamEvent, Error>> = events.into_iter().take(cut).map(Ok).collect();
    match fault {
        Some(StreamFault::Error { error, .. }) => {
            items.push(Ok(StreamEvent::Error(Box::new(ErrorEvent {
                error,
                extra: Extra::new(),
            }))));
        }
        Some(StreamFault::Drop { .. }) => {
            items.push(Err(Error::stream_interrupted(
                "connection dropped by the mock",
            )));
        }
        None => {}
    }
    futures_util::stream::iter(items).then(move |item| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        item
    })
}

impl tower_service::Service<http::Request<MessagesRequest>> for MockClaude {
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Self::Response, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let plan = self.plan("/v1/messages", &parts.headers, &body);
        Box::pin(async move {
            if !plan.first_byte_delay.is_zero() {
                tokio::time::sleep(plan.first_byte_delay).await;
            }
            let (headers, body) = match plan.kind {
                PlanKind::Error {
                    status,
                    headers,
                    body,
                } => {
                    return Err(Error::from_response(status, &headers, body));
                }
                PlanKind::Drop => {
                    return Err(Error::new(
                        claude_tower_core::ErrorKind::Connect,
                        "connection dropped by the mock before a response",
                    ));
                }
                PlanKind::Message { headers, message } => (headers, MessagesBody::Message(message)),
                PlanKind::Stream {
                    headers,
                    events,
                    fault,
                } => {
                    let request_id = headers
                        .get("request-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let stream = timed_events(events, plan.event_delay, fault);
                    (
                        headers,
                        MessagesBody::Stream(EventStream::from_wire(stream, request_id)),
                    )
                }
            };
            let mut response = http::Response::new(body);
            *response.headers_mut() = headers;
            Ok(response)
        })
    }
}
