//! [`Retry`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use claude_tower_core::MessagesService;
use claude_tower_core::{Error, MessagesBody, MessagesRequest};
use tokio::time::Instant;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::policy::{Policy, SdkPolicy};
use crate::state::Shared;

/// Retries failed Messages calls made through `S`; built by
/// [`RetryLayer`](crate::RetryLayer), see the [crate docs](crate).
///
/// # Clone
///
/// Retrying needs to call the inner service again, so `S: Clone`; each response future owns
/// a clone (taken with the clone-and-swap idiom, so the instance that was polled ready is the
/// one called first) and polls it ready again before every retry. A service that is not
/// `Clone`, or is expensive to clone, can be wrapped in `tower::buffer::Buffer`.
pub struct Retry<S, P = SdkPolicy> {
    inner: S,
    shared: Arc<Shared<P>>,
}

impl<S: Clone, P> Clone for Retry<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, P: fmt::Debug> fmt::Debug for Retry<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S, P> Retry<S, P> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<P>>) -> Self {
        Self { inner, shared }
    }
}

claude_tower_core::inner_service_accessors!(Retry<S, P>);

impl<S, P> Service<http::Request<MessagesRequest>> for Retry<S, P>
where
    S: MessagesService + Clone,
    P: Policy,
{
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = ResponseFuture<S, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        if let Some(budget) = &self.shared.budget {
            budget.deposit();
        }
        // Keep the instance that was polled ready for this call; the future keeps a clone for
        // the retries.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let retry_request = request.clone();
        let future = ready.call(request);
        ResponseFuture::new(
            future,
            ready,
            retry_request,
            Arc::clone(&self.shared),
            self.shared.max_elapsed.map(|_| Instant::now()),
        )
    }
}
