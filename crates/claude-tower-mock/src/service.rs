//! [`MockClaude`]: the in-process mock `Service`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use claude_tower_core::{
    ApiErrorBody, Error, ErrorEvent, EventStream, Extra, Message, MessagesBody, MessagesRequest,
    StreamEvent,
};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::time::Instant;

use crate::reply::reply;
use crate::script::{Attempt, Outcome};
use claude_tower_core::clock::rfc3339;

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The request path (`/v1/messages` in process; the real path over HTTP).
    pub path: String,
    /// The request headers (over HTTP: as received, credentials included, so tests can check
    /// them; never logged).
    pub headers: HeaderMap,
    /// The parsed body.
    pub body: MessagesRequest,
}

/// Limits the mock reports in its `anthropic-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MockLimits {
    /// Requests per minute.
    pub requests_per_minute: u64,
    /// Input tokens per minute.
    pub input_tokens_per_minute: u64,
    /// Output tokens per minute.
    pub output_tokens_per_minute: u64,
}

impl Default for MockLimits {
    fn default() -> Self {
        Self {
            requests_per_minute: 4_000,
            input_tokens_per_minute: 2_000_000,
            output_tokens_per_minute: 400_000,
        }
    }
}

#[derive(Debug)]
struct State {
    script: VecDeque<Attempt>,
    requests: Vec<RecordedRequest>,
    seq: u64,
    limits: MockLimits,
    chunk_chars: usize,
    /// (time, input tokens, output tokens) of recent requests, for the rate-limit headers.
    window: VecDeque<(Instant, u64, u64)>,
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
/// use claude_tower_core::{ErrorKind, MessagesRequest};
/// use claude_tower_mock::{Attempt, MockClaude};
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

/// What the mock decided to do for one request.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) first_byte_delay: Duration,
    pub(crate) event_delay: Duration,
    pub(crate) kind: PlanKind,
}

#[derive(Debug)]
pub(crate) enum PlanKind {
    Error {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Message {
        headers: HeaderMap,
        message: Box<Message>,
    },
    Stream {
        headers: HeaderMap,
        events: Vec<StreamEvent>,
        fault: Option<StreamFault>,
    },
    Drop,
}

#[derive(Debug)]
pub(crate) enum StreamFault {
    /// Send an `error` event after this many events.
    Error {
        after_events: usize,
        error: ApiErrorBody,
    },
    /// Close the connection after this many events.
    Drop { after_events: usize },
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
                chunk_chars: 8,
                window: VecDeque::new(),
            })),
        }
    }

    /// Appends attempts to the script.
    #[must_use]
    pub fn with_script(self, attempts: impl IntoIterator<Item = Attempt>) -> Self {
        self.push_script(attempts);
        self
    }

    /// Sets the limits reported in the rate-limit headers.
    #[must_use]
    pub fn with_limits(self, limits: MockLimits) -> Self {
        self.lock().limits = limits;
        self
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

    fn lock(&self) -> MutexGuard<'_, State> {
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
        let attempt = state.script.pop_front().unwrap_or_else(Attempt::ok);
        let request_id = format!("req_mock_{seq:020}");
        let message = match &attempt.outcome {
            Outcome::Message(message) => (**message).clone(),
            _ => reply(body, seq),
        };
        let mut response_headers = rate_limit_headers(&mut state, &message);
        insert(&mut response_headers, "request-id", &request_id);
        let chunk_chars = state.chunk_chars;
        drop(state);

        let kind = match attempt.outcome {
            Outcome::Reply | Outcome::Message(_) if body.is_stream() => PlanKind::Stream {
                headers: response_headers,
                events: message.to_events(chunk_chars),
                fault: None,
            },
            Outcome::Reply | Outcome::Message(_) => PlanKind::Message {
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

fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        headers.append(name, value);
    }
}

fn rate_limit_headers(state: &mut State, message: &Message) -> HeaderMap {
    let now = Instant::now();
    while state
        .window
        .front()
        .is_some_and(|(t, _, _)| now.duration_since(*t) >= Duration::from_secs(60))
    {
        state.window.pop_front();
    }
    state
        .window
        .push_back((now, message.usage.input_tokens, message.usage.output_tokens));
    let requests = state.window.len() as u64;
    let input: u64 = state.window.iter().map(|(_, i, _)| i).sum();
    let output: u64 = state.window.iter().map(|(_, _, o)| o).sum();
    let reset = rfc3339(SystemTime::now() + Duration::from_secs(60));
    let limits = state.limits;
    let mut headers = HeaderMap::new();
    for (name, limit, used) in [
        ("requests", limits.requests_per_minute, requests),
        ("input-tokens", limits.input_tokens_per_minute, input),
        ("output-tokens", limits.output_tokens_per_minute, output),
        (
            "tokens",
            limits.input_tokens_per_minute + limits.output_tokens_per_minute,
            input + output,
        ),
    ] {
        insert(
            &mut headers,
            &format!("anthropic-ratelimit-{name}-limit"),
            &limit.to_string(),
        );
        insert(
            &mut headers,
            &format!("anthropic-ratelimit-{name}-remaining"),
            &limit.saturating_sub(used).to_string(),
        );
        insert(
            &mut headers,
            &format!("anthropic-ratelimit-{name}-reset"),
            &reset,
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
            items.push(Ok(StreamEvent::Error(ErrorEvent {
                error,
                extra: Extra::new(),
            })));
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
