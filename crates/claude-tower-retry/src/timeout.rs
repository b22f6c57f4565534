//! [`TimeoutLayer`]: total deadline, time to first event, and idle time between events.
//!
//! Inside a [`RetryLayer`](crate::RetryLayer) the limits apply per attempt (and a timed-out
//! attempt is retried, since `Timeout` errors are retryable); outside it they apply to the
//! whole call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use claude_tower_core::MessagesService;
use claude_tower_core::{Error, EventStream, MessagesBody, MessagesRequest, StreamEvent};
use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

/// Limits of a [`Timeout`] service. All are off by default.
///
/// `ping` events do not count as events for the first-event and idle limits (a server that
/// sends only pings is as stalled as a silent one); [`pings_keep_alive`](Self::pings_keep_alive)
/// turns that off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeoutLayer {
    total: Option<Duration>,
    first_event: Option<Duration>,
    idle: Option<Duration>,
    pings_keep_alive: bool,
}

impl TimeoutLayer {
    /// No limits (set the ones you want).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            total: None,
            first_event: None,
            idle: None,
            pings_keep_alive: false,
        }
    }

    /// Streams: whether `ping` events reset the first-event and idle timers (default `false`:
    /// only real events do, so a ping flood cannot keep a stalled stream open).
    #[must_use]
    pub const fn pings_keep_alive(mut self, keep_alive: bool) -> Self {
        self.pings_keep_alive = keep_alive;
        self
    }

    /// Deadline for the whole call: the response of a non-streaming call, the end of a stream.
    #[must_use]
    pub const fn total(mut self, limit: Duration) -> Self {
        self.total = Some(limit);
        self
    }

    /// Streams: deadline for the first event (measured from the call).
    #[must_use]
    pub const fn first_event(mut self, limit: Duration) -> Self {
        self.first_event = Some(limit);
        self
    }

    /// Streams: longest silence between two events.
    #[must_use]
    pub const fn idle(mut self, limit: Duration) -> Self {
        self.idle = Some(limit);
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            limits: *self,
        }
    }
}

/// Applies a [`TimeoutLayer`]'s limits to `S`.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limits: TimeoutLayer,
}

claude_tower_core::inner_service_accessors!(Timeout<S>);

fn min_deadline(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<S> Service<http::Request<MessagesRequest>> for Timeout<S>
where
    S: MessagesService,
{
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        let now = Instant::now();
        let stream = request.body().is_stream();
        let total = self.limits.total.map(|d| now + d);
        let first_event = self.limits.first_event.filter(|_| stream).map(|d| now + d);
        let head = min_deadline(total, first_event);
        ResponseFuture {
            inner: self.inner.call(request),
            sleep: head.map(|deadline| Box::pin(tokio::time::sleep_until(deadline))),
            limits: self.limits,
            started: now,
        }
    }
}

pin_project! {
    /// Response future of [`Timeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        sleep: Option<Pin<Box<Sleep>>>,
        limits: TimeoutLayer,
        started: Instant,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<MessagesBody>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            let response = result?;
            let (parts, body) = response.into_parts();
            let body = match body {
                MessagesBody::Stream(stream)
                    if this.limits.first_event.is_some()
                        || this.limits.idle.is_some()
                        || this.limits.total.is_some() =>
                {
                    MessagesBody::Stream(EventStream::new(TimedStream::new(
                        stream,
                        *this.limits,
                        *this.started,
                    )))
                }
                body => body,
            };
            return Poll::Ready(Ok(http::Response::from_parts(parts, body)));
        }
        if let Some(sleep) = this.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            let waited = this.started.elapsed();
            return Poll::Ready(Err(Error::timeout(format!(
                "no response within {waited:?}"
            ))));
        }
        Poll::Pending
    }
}

/// Enforces first-event, idle and total limits on a stream.
struct TimedStream {
    inner: EventStream,
    limits: TimeoutLayer,
    started: Instant,
    seen_event: bool,
    sleep: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl TimedStream {
    fn new(inner: EventStream, limits: TimeoutLayer, started: Instant) -> Self {
        let mut stream = Self {
            inner,
            limits,
            started,
            seen_event: false,
            sleep: None,
            done: false,
        };
        stream.arm(Instant::now());
        stream
    }

    fn deadline(&self, last: Instant) -> Option<Instant> {
        let total = self.limits.total.map(|d| self.started + d);
        let next = if self.seen_event {
            self.limits.idle.map(|d| last + d)
        } else {
            self.limits
                .first_event
                .map(|d| self.started + d)
                .or(self.limits.idle.map(|d| last + d))
        };
        min_deadline(total, next)
    }

    fn arm(&mut self, last: Instant) {
        match (self.deadline(last), self.sleep.as_mut()) {
            (Some(deadline), Some(sleep)) => sleep.as_mut().reset(deadline),
            (Some(deadline), None) => {
                self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline)))
            }
            (None, _) => self.sleep = None,
        }
    }

    fn timeout_error(&self) -> Error {
        let elapsed = self.started.elapsed();
        let which = match (self.seen_event, self.limits.total) {
            (_, Some(total)) if elapsed >= total => {
                format!("stream exceeded the total limit of {total:?}")
            }
            (false, _) => format!("no stream event within {elapsed:?} (time to first event)"),
            (true, _) => format!(
                "no stream event for {:?} (idle timeout)",
                self.limits.idle.unwrap_or_default()
            ),
        };
        Error::timeout(which)
    }
}

impl Stream for TimedStream {
    type Item = Result<StreamEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                let ping = matches!(item, Ok(StreamEvent::Ping(_)));
                if !ping || this.limits.pings_keep_alive {
                    this.seen_event = true;
                    this.arm(Instant::now());
                } else if let Some(sleep) = this.sleep.as_mut()
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    // A flood of pings is always ready: check the deadline between them.
                    this.done = true;
                    return Poll::Ready(Some(Err(this.timeout_error())));
                }
                if item.is_err() {
                    this.done = true;
                }
                return Poll::Ready(Some(item));
            }
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if let Some(sleep) = this.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            this.done = true;
            return Poll::Ready(Some(Err(this.timeout_error())));
        }
        Poll::Pending
    }
}
