//! [`StoreFuture`]: what a store method returns — an answer at once (a store in memory) or a
//! boxed future (a store across the network) — so each store trait has one method per
//! operation and callers take a synchronous fast path when the answer is already there.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The result of a store operation: [ready](Self::ready) or [boxed](Self::boxed).
///
/// It is a `Future` (await it), and [`into_ready`](Self::into_ready) takes a ready answer
/// without a future, so a layer over an in-memory store allocates nothing for it.
///
/// A boxed future owns what it needs (`'static`: clone the connection and the arguments
/// into it), so a caller can move it into a task of its own; each operation is asked once.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use claude_tower::core::StoreFuture;
///
/// let now: StoreFuture<u32> = StoreFuture::ready(7);
/// assert_eq!(now.into_ready().ok(), Some(7));
/// let later: StoreFuture<u32> = StoreFuture::boxed(async { 8 });
/// let later = later.into_ready().unwrap_err();
/// assert_eq!(later.await, 8);
/// # }
/// ```
#[must_use = "a store operation does nothing until its future is awaited"]
pub struct StoreFuture<T>(Inner<T>);

enum Inner<T> {
    Ready(Option<T>),
    Boxed(Pin<Box<dyn Future<Output = T> + Send + 'static>>),
}

impl<T> StoreFuture<T> {
    /// An answer that is already there.
    pub fn ready(value: T) -> Self {
        Self(Inner::Ready(Some(value)))
    }

    /// An answer that takes a future.
    pub fn boxed(future: impl Future<Output = T> + Send + 'static) -> Self {
        Self(Inner::Boxed(Box::pin(future)))
    }

    /// The answer if it is already there, else `self` back to await.
    ///
    /// # Errors
    /// `Err(self)` when the answer takes a future (or was already taken).
    pub fn into_ready(self) -> Result<T, Self> {
        match self.0 {
            Inner::Ready(Some(value)) => Ok(value),
            inner => Err(Self(inner)),
        }
    }
}

impl<T: Send + 'static> StoreFuture<T> {
    /// Hands the answer to `then`: at once when it is ready ([`Settle::done`](crate::end::Settle::done)),
    /// else as the work of the returned [`Settle`](crate::end::Settle) — the shape of a layer's
    /// "when the response ends" store update.
    pub fn then_settle(self, then: impl FnOnce(T) + Send + 'static) -> crate::end::Settle {
        match self.into_ready() {
            Ok(answer) => {
                then(answer);
                crate::end::Settle::done()
            }
            Err(pending) => crate::end::Settle::later(async move { then(pending.await) }),
        }
    }
}

impl<T> Unpin for StoreFuture<T> {}

impl<T> Future for StoreFuture<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.0 {
            Inner::Ready(value) => {
                Poll::Ready(value.take().expect("StoreFuture polled after completion"))
            }
            Inner::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for StoreFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.0 {
            Inner::Ready(Some(_)) => "ready",
            Inner::Ready(None) => "taken",
            Inner::Boxed(_) => "boxed",
        };
        f.debug_tuple("StoreFuture").field(&state).finish()
    }
}
