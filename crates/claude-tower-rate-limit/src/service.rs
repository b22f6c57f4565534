//! [`RateLimit`], the service of a [`RateLimitLayer`](crate::RateLimitLayer).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use claude_tower_core::MessagesService;
use claude_tower_core::{Error, MessagesBody, MessagesRequest};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::PollSemaphore;
use tower_service::Service;

use crate::admit::{self, Admitted};
use crate::future::ResponseFuture;
use crate::reservation::Permits;
use crate::state::Shared;

/// The service of a [`RateLimitLayer`](crate::RateLimitLayer).
///
/// # Clone
///
/// A request admitted at once (the in-memory store, no wait) is sent through the inner service
/// directly; one that must wait, or whose store answers asynchronously (Redis), is sent from
/// a boxed future that owns a clone of the inner service (clone-and-swap), so `S: Clone`. A
/// clone never copies a concurrency permit taken by `poll_ready`.
pub struct RateLimit<S> {
    pub(crate) inner: S,
    pub(crate) semaphore: Option<PollSemaphore>,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    pub(crate) shared: Arc<Shared>,
}

claude_tower_core::inner_service_accessors!(RateLimit<S>);

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            semaphore: self.semaphore.clone(),
            permit: None,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("has_permit", &self.permit.is_some())
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S> Service<http::Request<MessagesRequest>> for RateLimit<S>
where
    S: MessagesService + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(semaphore) = &mut self.semaphore
            && self.permit.is_none()
        {
            match semaphore.poll_acquire(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(permit) => self.permit = permit,
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        let permit = if self.semaphore.is_some() {
            Some(
                self.permit
                    .take()
                    .expect("poll_ready must be called (and return Ready) before call"),
            )
        } else {
            None
        };
        let mut permits = Permits::new(permit);
        let shared = &self.shared;
        let prepared = admit::prepare(shared, &request);
        // Slots free at once: ask the store (a store in memory answers ready).
        let asked = prepared
            .try_take_slots(&mut permits)
            .then(|| prepared.acquire(shared, shared.max_wait).into_ready());
        let admission = match asked {
            Some(Ok(admission)) => admission,
            pending => {
                // A concurrency slot must be waited for, or the store answers asynchronously:
                // admit inside a boxed future (clone-and-swap, so the service that was polled
                // ready is the one called).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                return ResponseFuture::boxed(admit::admit_and_call(
                    Arc::clone(shared),
                    inner,
                    request,
                    prepared,
                    permits,
                    pending.and_then(Result::err),
                ));
            }
        };
        match prepared.admit(shared, admission, permits) {
            Err(error) => ResponseFuture::failed(error),
            // Admitted at once: no future of our own, just the inner one, finished in `poll`.
            Ok(Admitted { wait, after }) if wait.is_zero() => {
                ResponseFuture::admitted(self.inner.call(request), after)
            }
            Ok(Admitted { wait, after }) => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::boxed(admit::call_and_finish(inner, request, wait, after))
            }
        }
    }
}
