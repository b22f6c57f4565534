//! [`ResponseFuture`] of [`RateLimit`](crate::RateLimit).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use claude_tower_core::{BoxResponseFuture, Error, MessagesBody};
use pin_project_lite::pin_project;

use crate::admit::{self, After};
use crate::reservation::Sink;

pub(crate) type Output = Result<http::Response<MessagesBody>, Error>;

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
