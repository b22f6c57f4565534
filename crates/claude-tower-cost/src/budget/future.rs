//! [`ResponseFuture`] of [`Budget`](super::Budget): waits for the inner service's readiness,
//! calls it and attaches the settle to the response — without a boxed future of its own when
//! the store answered the reservation at once (a store in memory).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use claude_tower_core::end;
use claude_tower_core::ext::ResponseCacheStatus;
use claude_tower_core::{
    BoxResponseFuture, Error, ErrorKind, MessagesBody, MessagesRequest, MessagesService,
};
use pin_project_lite::pin_project;

use super::settlement::Settlement;
use super::stats::Reserved;
use crate::meter::Metering;

type Output = Result<http::Response<MessagesBody>, Error>;

/// What follows a granted reservation: the settle of the response (or of the error).
pub(super) struct After {
    pub(super) settlement: Settlement,
    pub(super) metering: Metering,
    pub(super) reserved: Reserved,
}

impl After {
    /// Attaches the settle to a response (it runs when the response ends) or starts it for an
    /// error (nothing was used); returns what is still to await, if anything.
    pub(super) fn finish(self, result: Output) -> (Output, end::Settle) {
        match result {
            Err(error) => (Err(error), self.settlement.start(0)),
            Ok(response) => {
                let cached = response.extensions().get::<ResponseCacheStatus>()
                    == Some(&ResponseCacheStatus::Hit);
                let (parts, body) = response.into_parts();
                let (body, settle) = body.on_end(super::body::Settle {
                    settlement: Some(self.settlement),
                    metering: self.metering,
                    reserved: self.reserved,
                    cached,
                });
                (Ok(http::Response::from_parts(parts, body)), settle)
            }
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F> {
        // Reserved (or nothing to reserve): wait for the inner service, then call it.
        Ready { inner: S, request: Option<http::Request<MessagesRequest>>, after: Option<After> },
        Calling { #[pin] future: F, after: Option<After> },
        // The store answers asynchronously, or a settle is still to await.
        Boxed { future: BoxResponseFuture },
        Failed { error: Option<Error> },
    }
}

pin_project! {
    /// Response future of [`Budget`](super::Budget).
    pub struct ResponseFuture<S, F> {
        #[pin]
        state: State<S, F>,
    }
}

impl<S, F> ResponseFuture<S, F> {
    pub(super) fn ready(
        inner: S,
        request: http::Request<MessagesRequest>,
        after: Option<After>,
    ) -> Self {
        Self {
            state: State::Ready {
                inner,
                request: Some(request),
                after,
            },
        }
    }

    /// The inner service is called already (its readiness was forwarded).
    pub(super) fn calling(future: F, after: Option<After>) -> Self {
        Self {
            state: State::Calling { future, after },
        }
    }

    pub(super) fn boxed(future: impl Future<Output = Output> + Send + 'static) -> Self {
        Self {
            state: State::Boxed {
                future: Box::pin(future),
            },
        }
    }

    pub(super) fn failed(error: Error) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

/// A poll after the answer was given: a caller's bug, answered with an error (never a panic).
fn polled_after_completion() -> Error {
    Error::new(
        ErrorKind::Other,
        "budget ResponseFuture polled after completion",
    )
}

impl<S, F> fmt::Debug for ResponseFuture<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S> Future for ResponseFuture<S, S::Future>
where
    S: MessagesService,
{
    type Output = Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        loop {
            let mut state = self.as_mut().project().state;
            let (result, after) = match state.as_mut().project() {
                StateProj::Ready {
                    inner,
                    request,
                    after,
                } => match ready!(inner.poll_ready(cx)) {
                    Ok(()) => {
                        let Some(request) = request.take() else {
                            return Poll::Ready(Err(polled_after_completion()));
                        };
                        let future = inner.call(request);
                        let after = after.take();
                        state.set(State::Calling { future, after });
                        continue;
                    }
                    Err(error) => (Err(error), after.take()),
                },
                StateProj::Calling { future, after } => (ready!(future.poll(cx)), after.take()),
                StateProj::Boxed { future } => {
                    let output = ready!(future.as_mut().poll(cx));
                    state.set(State::Failed { error: None });
                    return Poll::Ready(output);
                }
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().unwrap_or_else(polled_after_completion)));
                }
            };
            // Done with the inner future: a later poll answers an error, never polls it again.
            state.set(State::Failed { error: None });
            let Some(after) = after else {
                return Poll::Ready(result);
            };
            let (result, settle) = after.finish(result);
            if settle.is_done() {
                return Poll::Ready(result);
            }
            // The store settles asynchronously: await it before answering (as the stream
            // does before yielding its end).
            state.set(State::Boxed {
                future: Box::pin(async move {
                    settle.await;
                    result
                }),
            });
        }
    }
}
