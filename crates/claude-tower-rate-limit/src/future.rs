//! [`ResponseFuture`] of [`RateLimit`](crate::RateLimit), and the stream wrapper that
//! reconciles a streamed response when it ends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use claude_tower_core::{BoxResponseFuture, Error, EventStream, MessagesBody, StreamEvent, Usage};
use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::admit::{self, After, Permits, Reservation, Sink, run_now_or_spawn};

type Output = Result<http::Response<MessagesBody>, Error>;

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // Admitted at once: the inner future, then reconciliation when it completes.
        Admitted { #[pin] future: F, after: Option<After> },
        // Waiting for capacity or for an asynchronous store.
        Boxed { future: BoxResponseFuture },
        // Refused before sending.
        Failed { error: Option<Error> },
    }
}

pin_project! {
    /// Response future of [`RateLimit`](crate::RateLimit).
    ///
    /// A request admitted at once by a store that answers synchronously (the in-memory one)
    /// is the inner service's future, reconciled when it completes: no allocation of its own.
    /// A request that must wait, or whose store answers asynchronously (Redis), is a boxed
    /// future.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn admitted(future: F, after: After) -> Self {
        Self {
            state: State::Admitted {
                future,
                after: Some(after),
            },
        }
    }

    pub(crate) fn boxed(future: impl Future<Output = Output> + Send + 'static) -> Self {
        Self {
            state: State::Boxed {
                future: Box::pin(future),
            },
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Admitted { .. } => "admitted",
            State::Boxed { .. } => "waiting",
            State::Failed { .. } => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Output>,
{
    type Output = Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        match self.project().state.project() {
            StateProj::Admitted { future, after } => {
                let result = ready!(future.poll(cx));
                let after = after
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(admit::finish(after, result, Sink::Now))
            }
            StateProj::Boxed { future } => future.as_mut().poll(cx),
            StateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

/// Reconciles the reservation when a stream ends, fails or is dropped (and holds the
/// concurrency permit until then).
pub(crate) struct Reconciling {
    inner: EventStream,
    reservation: Option<Reservation>,
    usage: Option<Usage>,
    permits: Permits,
    settling: Option<(
        Pin<Box<dyn Future<Output = ()> + Send>>,
        Option<Result<StreamEvent, Error>>,
    )>,
}

impl Reconciling {
    pub(crate) fn new(
        inner: EventStream,
        reservation: Option<Reservation>,
        permits: Permits,
    ) -> Self {
        Self {
            inner,
            reservation,
            usage: None,
            permits,
            settling: None,
        }
    }
}

impl Stream for Reconciling {
    type Item = Result<StreamEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some((future, last)) = this.settling.as_mut() {
                if future.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let last = last.take();
                this.settling = None;
                this.permits = Permits::default();
                return Poll::Ready(last);
            }
            let item = match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            match &item {
                Some(Ok(StreamEvent::MessageStart(start))) => {
                    this.usage = Some(start.message.usage.clone());
                }
                Some(Ok(StreamEvent::MessageDelta(delta))) => {
                    if let Some(usage) = &mut this.usage {
                        usage.apply_delta(&delta.usage);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    if let Some(reservation) = this.reservation.take() {
                        let shared = Arc::clone(&reservation.shared);
                        let op = reservation.settle(this.usage.as_ref());
                        if let Some(done) = op.run_now(&*shared.store) {
                            op.report(done);
                        } else {
                            this.settling = Some((
                                Box::pin(async move {
                                    let done = op.run(&*shared.store).await;
                                    op.report(done);
                                }),
                                item,
                            ));
                            continue;
                        }
                    }
                    this.permits = Permits::default();
                }
            }
            return Poll::Ready(item);
        }
    }
}

impl Drop for Reconciling {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            let shared = Arc::clone(&reservation.shared);
            let op = reservation.settle(self.usage.as_ref());
            run_now_or_spawn(&shared, op);
        }
    }
}
