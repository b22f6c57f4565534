//! The readiness discipline of layers that do their own asynchronous work before calling the
//! inner service (trimming with a summariser, a budget reservation, a response-cache lookup):
//! they answer `poll_ready` at once, take a clone of the inner service into the call, do their
//! work, and only then wait for the inner service's readiness — so an inner limit (a
//! concurrency permit taken in `poll_ready`) is never held idle while they work.

use tower::Service;

/// Waits until `service` is ready, then calls it with `request`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use claude_tower::core::{MessagesRequest, readiness::call_when_ready};
/// use claude_tower::mock::MockClaude;
///
/// let mut inner = MockClaude::new(); // in a layer: a clone taken in `call`
/// // ... the layer's own async work ...
/// let request = MessagesRequest::new("claude-haiku-4-5", 16).user("hi").into_http();
/// let response = call_when_ready(&mut inner, request).await.unwrap();
/// assert!(response.status().is_success());
/// # }
/// ```
///
/// # Errors
/// The service's readiness or call error.
pub async fn call_when_ready<S, R>(service: &mut S, request: R) -> Result<S::Response, S::Error>
where
    S: Service<R>,
{
    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(request).await
}
