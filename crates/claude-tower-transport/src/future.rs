//! The response future of [`Transport`](crate::Transport).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use claude_tower_core::{Error, MessagesBody};

type Inner =
    Pin<Box<dyn Future<Output = Result<http::Response<MessagesBody>, Error>> + Send + 'static>>;

/// Response future of [`Transport`](crate::Transport).
///
/// It boxes the reqwest future (one allocation per request, nothing next to a network round
/// trip); the type is opaque so that can change without an API break.
pub struct ResponseFuture {
    inner: Inner,
}

impl ResponseFuture {
    pub(crate) fn new(inner: Inner) -> Self {
        Self { inner }
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<MessagesBody>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
