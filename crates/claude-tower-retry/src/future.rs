//! The response future of [`Retry`](crate::Retry): tower's `Called → Waiting → Retrying`
//! state machine, plus `Peeking` for streams (events are held back until the first content
//! event, so a failure before it can be retried transparently).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use claude_tower_core::ext::{Attempts, RetryCondition};
use claude_tower_core::{Error, EventStream, MessagesBody, MessagesRequest, StreamEvent};
use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::body::Delivered;
use crate::policy::Policy;
use crate::state::Shared;

/// Most events held back while peeking a stream for its first content event. Past it the
/// stream is delivered as it is (a later failure is then not retried), so a flood of unknown
/// events cannot grow the buffer: memory stays within this many events, each capped by the
/// transport's event size limit. Consecutive pings are held as one, so a ping flood neither
/// grows the buffer nor ends the peeking (the timeout layer then cuts it, retryably).
pub const MAX_HELD_EVENTS: usize = 32;

type Request = http::Request<MessagesRequest>;
type Response = http::Response<MessagesBody>;

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // Waiting for the inner service's response.
        Called { #[pin] future: F },
        // A stream answered: holding events back until the first content event.
        Peeking {
            parts: Option<http::response::Parts>,
            stream: Option<EventStream>,
            held: Vec<StreamEvent>,
        },
        // Sleeping before the next attempt (the failed attempt's error, answered if the
        // request's RetryCondition forbids the retry when the sleep ends).
        Waiting { #[pin] sleep: Sleep, error: Option<Error> },
        // Polling the inner service ready for the next attempt.
        Retrying,
    }
}

pin_project! {
    /// Response future of [`Retry`](crate::Retry).
    pub struct ResponseFuture<S, P>
    where
        S: Service<Request>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        request: Request,
        shared: Arc<Shared<P>>,
        started: Option<Instant>,
        attempts: Attempts,
    }
}

impl<S, P> fmt::Debug for ResponseFuture<S, P>
where
    S: Service<Request>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<S, P> ResponseFuture<S, P>
where
    S: Service<Request, Response = Response, Error = Error>,
    P: Policy,
{
    pub(crate) fn new(
        future: S::Future,
        service: S,
        request: Request,
        shared: Arc<Shared<P>>,
        started: Option<Instant>,
    ) -> Self {
        let mut attempts = Attempts::default();
        attempts.count = 1;
        Self {
            state: State::Called { future },
            service,
            request,
            shared,
            started,
            attempts,
        }
    }
}

/// After a failed attempt: the state that sleeps before the retry, or the error to answer.
fn waiting<P: Policy, F>(
    shared: &Shared<P>,
    attempts: &mut Attempts,
    started: Option<Instant>,
    request: &Request,
    error: Error,
) -> Result<State<F>, Error> {
    let condition = request.extensions().get::<RetryCondition>();
    let (delay, error) = decide(shared, attempts, started, condition, error)?;
    Ok(State::Waiting {
        error: Some(error),
        sleep: tokio::time::sleep(delay),
    })
}

/// Decides what to do after a failed attempt: `Ok(delay)` to retry, `Err(error)` to give up.
fn decide<P: Policy>(
    shared: &Shared<P>,
    attempts: &mut Attempts,
    started: Option<Instant>,
    condition: Option<&RetryCondition>,
    error: Error,
) -> Result<(Duration, Error), Error> {
    attempts.errors.push(error.kind());
    if condition.is_some_and(|condition| !condition.allows()) {
        tracing::debug!(target: "claude_tower::retry", "the request's RetryCondition forbids a retry; giving up");
        return Err(error);
    }
    let retries = attempts.count - 1;
    let Some(delay) = shared.policy.retry(&error, retries) else {
        return Err(error);
    };
    if let (Some(max), Some(started)) = (shared.max_elapsed, started)
        && started.elapsed() + delay > max
    {
        tracing::debug!(target: "claude_tower::retry", ?delay, "retry would pass max_elapsed; giving up");
        return Err(error);
    }
    if let Some(budget) = &shared.budget
        && !budget.withdraw()
    {
        tracing::debug!(target: "claude_tower::retry", "retry budget exhausted; giving up");
        return Err(error);
    }
    tracing::debug!(
        target: "claude_tower::retry",
        attempt = attempts.count,
        kind = ?error.kind(),
        ?delay,
        "retrying"
    );
    attempts.delays.push(delay);
    Ok((delay, error))
}

impl<S, P> Future for ResponseFuture<S, P>
where
    S: Service<Request, Response = Response, Error = Error>,
    P: Policy,
{
    type Output = Result<Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => match ready!(future.poll(cx)) {
                    Ok(response) => {
                        let (parts, body) = response.into_parts();
                        match body {
                            MessagesBody::Stream(stream) => {
                                this.state.set(State::Peeking {
                                    parts: Some(parts),
                                    stream: Some(stream),
                                    held: Vec::new(),
                                });
                            }
                            body @ MessagesBody::Message(_) => {
                                let mut response = http::Response::from_parts(parts, body);
                                response
                                    .extensions_mut()
                                    .insert(std::mem::take(this.attempts));
                                return Poll::Ready(Ok(response));
                            }
                        }
                    }
                    Err(error) => {
                        match waiting(
                            this.shared,
                            this.attempts,
                            *this.started,
                            this.request,
                            error,
                        ) {
                            Ok(state) => this.state.set(state),
                            Err(error) => return Poll::Ready(Err(error)),
                        }
                    }
                },
                StateProj::Peeking {
                    parts,
                    stream,
                    held,
                } => {
                    let Some(events) = stream.as_mut() else {
                        unreachable!("Peeking always holds its stream until it leaves the state")
                    };
                    let item = ready!(Pin::new(events).poll_next(cx));
                    let deliver = match &item {
                        Some(Ok(event)) => {
                            event.is_content()
                                || matches!(event, StreamEvent::MessageStop(_))
                                || held.len() >= MAX_HELD_EVENTS
                        }
                        Some(Err(_)) => false,
                        None => true,
                    };
                    match item {
                        Some(Err(error)) => {
                            match waiting(
                                this.shared,
                                this.attempts,
                                *this.started,
                                this.request,
                                error,
                            ) {
                                Ok(state) => this.state.set(state),
                                Err(error) => return Poll::Ready(Err(error)),
                            }
                        }
                        // Pings before content are coalesced (one held at most): a ping
                        // flood neither grows the buffer nor ends the peeking.
                        Some(Ok(StreamEvent::Ping(_)))
                            if matches!(held.last(), Some(StreamEvent::Ping(_))) => {}
                        Some(Ok(event)) if !deliver => held.push(event),
                        item => {
                            let mut out = std::mem::take(held);
                            if let Some(Ok(event)) = item {
                                out.push(event);
                            }
                            let stream = stream.take().expect("stream present while peeking");
                            let parts = parts.take().expect("parts present while peeking");
                            let body =
                                MessagesBody::Stream(EventStream::new(Delivered::new(out, stream)));
                            let mut response = http::Response::from_parts(parts, body);
                            response
                                .extensions_mut()
                                .insert(std::mem::take(this.attempts));
                            return Poll::Ready(Ok(response));
                        }
                    }
                }
                StateProj::Waiting { sleep, error } => {
                    ready!(sleep.poll(cx));
                    // Checked again when the retry is due (e.g. a circuit opened meanwhile).
                    if let Some(condition) = this.request.extensions().get::<RetryCondition>()
                        && !condition.allows()
                        && let Some(error) = error.take()
                    {
                        return Poll::Ready(Err(error));
                    }
                    this.state.set(State::Retrying);
                }
                StateProj::Retrying => {
                    ready!(this.service.poll_ready(cx))?;
                    this.attempts.count += 1;
                    let future = this.service.call(this.request.clone());
                    this.state.set(State::Called { future });
                }
            }
        }
    }
}
