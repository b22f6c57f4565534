//! [`ResponseCacheLayer`] and [`ResponseCache`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use claude_tower_core::MessagesService;
use claude_tower_core::StoreFuture;
use claude_tower_core::end::{OnEnd, Outcome as EndOutcome, ResponseEnd, Settle};
use claude_tower_core::ext::ResponseCacheStatus;
use claude_tower_core::readiness::call_when_ready;
use claude_tower_core::{
    Error, EventStream, Message, MessageAccumulator, MessagesBody, MessagesRequest, StreamEvent,
};
use tower_service::Service;

use crate::flight::{self, Flights, LeaderGuard, Outcome, Role};
use crate::key::{CacheKey, KeyScope, cache_key_with};
use crate::policy::{CachePolicy, DeterministicPolicy, ResponseCacheMode};
use crate::store::{CachedResponse, ResponseStore};

#[derive(Clone)]
struct Shared {
    store: Arc<dyn ResponseStore>,
    policy: Arc<dyn CachePolicy>,
    ttl: Duration,
    scope: KeyScope,
    serve_stale_on_error: bool,
    max_recorded_bytes: usize,
    flights: Arc<Flights>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheLayer")
            .field("store", &self.store)
            .field("policy", &self.policy)
            .field("ttl", &self.ttl)
            .field("scope", &self.scope)
            .field("serve_stale_on_error", &self.serve_stale_on_error)
            .field("max_recorded_bytes", &self.max_recorded_bytes)
            .field("in_flight", &self.flights.len())
            .finish()
    }
}

/// An exact-match response cache; see the [crate docs](crate).
///
/// Defaults: [`DeterministicPolicy`] (cache `temperature == 0` or opted-in requests), TTL
/// 10 minutes, no per-user partitioning, no stale serving. The store and the single-flight
/// table are shared by every service the layer builds.
#[derive(Clone)]
pub struct ResponseCacheLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for ResponseCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

/// Default entry lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// Default cap of a stream recording: 8 MiB.
pub const DEFAULT_MAX_RECORDED_BYTES: usize = 8 << 20;

impl ResponseCacheLayer {
    /// A cache in `store`.
    #[must_use]
    pub fn new(store: impl ResponseStore) -> Self {
        Self {
            shared: Arc::new(Shared {
                store: Arc::new(store),
                policy: Arc::new(DeterministicPolicy::default()),
                ttl: DEFAULT_TTL,
                scope: KeyScope::default(),
                serve_stale_on_error: false,
                max_recorded_bytes: DEFAULT_MAX_RECORDED_BYTES,
                flights: Arc::new(Flights::default()),
            }),
        }
    }

    /// An in-memory (moka) cache bounded to about `max_bytes`.
    #[cfg(feature = "moka")]
    #[must_use]
    pub fn in_memory(max_bytes: u64) -> Self {
        Self::new(crate::store::MemoryResponseStore::new(max_bytes))
    }

    /// A builder edit: on a copy of the shared state when a layer or service still uses it
    /// (which keeps its own).
    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Entry lifetime (default 10 minutes).
    #[must_use]
    pub fn ttl(self, ttl: Duration) -> Self {
        self.edit(|s| s.ttl = ttl)
    }

    /// What may be cached.
    #[must_use]
    pub fn policy(self, policy: impl CachePolicy) -> Self {
        self.edit(|s| s.policy = Arc::new(policy))
    }

    /// Separate entries per user (the `Attribution` user, else `metadata.user_id`).
    #[must_use]
    pub fn partition_by_user(self, yes: bool) -> Self {
        self.edit(|s| s.scope.partition_by_user = yes)
    }

    /// An explicit scope (tenant, workspace, deployment) in every key: give each service a
    /// distinct one when services with different configured credentials share a store (see
    /// [`KeyScope`]).
    #[must_use]
    pub fn tenant(self, tenant: impl Into<String>) -> Self {
        let tenant: Arc<str> = tenant.into().into();
        self.edit(|s| s.scope.tenant = Some(tenant))
    }

    /// Let requests with different credential headers share entries (off by default: a
    /// request's own `x-api-key` / `authorization` is part of its key, as a fingerprint).
    #[must_use]
    pub fn share_across_credentials(self, yes: bool) -> Self {
        self.edit(|s| s.scope.share_across_credentials = yes)
    }

    /// Largest recording kept of a streamed miss (default [`DEFAULT_MAX_RECORDED_BYTES`],
    /// measured on the events' JSON size; pings are not recorded). A longer stream still
    /// reaches the caller whole, but is not cached.
    #[must_use]
    pub fn max_recorded_bytes(self, bytes: usize) -> Self {
        self.edit(|s| s.max_recorded_bytes = bytes)
    }

    /// When upstream fails, answer from an expired entry if the store still has one
    /// ([`ResponseCacheStatus::Stale`]).
    #[must_use]
    pub fn serve_stale_on_error(self, yes: bool) -> Self {
        self.edit(|s| s.serve_stale_on_error = yes)
    }
}

claude_tower_core::layer_service!(
    /// The service of a [`ResponseCacheLayer`].
    ///
    /// # Clone
    ///
    /// The call future owns the inner service (clone-and-swap), so `S: Clone`.
    ResponseCacheLayer => ResponseCache, shared: Shared
);

impl<S: fmt::Debug> fmt::Debug for ResponseCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

/// Response future of [`ResponseCache`]: ready at once for a hit found without I/O; otherwise
/// store I/O and single-flight waits make it multi-step, so it boxes an async block.
pub struct ResponseFuture {
    inner: Either,
}

enum Either {
    Ready(Option<Result<http::Response<MessagesBody>, Error>>),
    Boxed(claude_tower_core::BoxResponseFuture),
}

impl ResponseFuture {
    fn ready(result: Result<http::Response<MessagesBody>, Error>) -> Self {
        Self {
            inner: Either::Ready(Some(result)),
        }
    }

    fn new(
        future: impl Future<Output = Result<http::Response<MessagesBody>, Error>> + Send + 'static,
    ) -> Self {
        Self {
            inner: Either::Boxed(Box::pin(future)),
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<MessagesBody>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.inner {
            Either::Ready(result) => Poll::Ready(
                result
                    .take()
                    .expect("ResponseFuture polled after completion"),
            ),
            Either::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<S> Service<http::Request<MessagesRequest>> for ResponseCache<S>
where
    S: MessagesService + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = ResponseFuture;

    /// Always ready: a hit never needs the inner service, and a miss takes its readiness
    /// only when it leads the upstream call (a follower waiting on a leader holds nothing).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        // The key and, for an in-memory store, the lookup are plain CPU work done here, so a
        // hit is answered without a boxed future or touching the inner service.
        let shared = &self.shared;
        let mode = request.extensions().get::<ResponseCacheMode>().copied();
        let lookup = if mode == Some(ResponseCacheMode::Bypass)
            || !shared.policy.cacheable_request(&request)
        {
            None
        } else {
            let key = match cache_key_with(&request, &shared.scope) {
                Ok(key) => key,
                Err(error) => return ResponseFuture::ready(Err(error)),
            };
            let found = if mode == Some(ResponseCacheMode::Refresh) {
                StoreFuture::ready(Ok(None))
            } else {
                shared.store.get(&key)
            };
            match found.into_ready() {
                Ok(Ok(Some(found))) if found.fresh => {
                    let stream = request.body().is_stream();
                    return ResponseFuture::ready(Ok(replay(
                        &found.response,
                        stream,
                        ResponseCacheStatus::Hit,
                    )));
                }
                // A miss known at once: join the flight here too, and if this request
                // leads, its future is the upstream call alone.
                Ok(Ok(found)) => {
                    let stale = found.map(|found| found.response);
                    match shared.flights.join(key) {
                        Role::Leader(guard) => {
                            let inner = self.take_inner();
                            let shared = Arc::clone(&self.shared);
                            return ResponseFuture::new(lead(
                                shared, inner, request, key, guard, stale,
                            ));
                        }
                        follower => {
                            let stale = stale.map(|response| crate::store::Lookup {
                                response,
                                fresh: false,
                            });
                            Some((key, StoreFuture::ready(Ok(stale)), Some(follower)))
                        }
                    }
                }
                Ok(Err(error)) => Some((key, StoreFuture::ready(Err(error)), None)),
                // The store answers later: the call future awaits its answer.
                Err(pending) => Some((key, pending, None)),
            }
        };
        let inner = self.take_inner();
        let shared = Arc::clone(&self.shared);
        ResponseFuture::new(call(shared, inner, request, lookup))
    }
}

impl<S: Clone> ResponseCache<S> {
    /// A clone of the inner service for the call future, which waits for its readiness.
    fn take_inner(&mut self) -> S {
        self.inner.clone()
    }
}

/// The key of a cacheable request, the store's answer (ready, or its future), and the
/// flight already joined, if any.
type Lookup = (
    CacheKey,
    StoreFuture<Result<Option<crate::store::Lookup>, Error>>,
    Option<Role>,
);

/// A response built from an entry.
fn replay(
    entry: &CachedResponse,
    stream: bool,
    status: ResponseCacheStatus,
) -> http::Response<MessagesBody> {
    let body = if stream {
        let events = entry
            .events
            .clone()
            .unwrap_or_else(|| entry.message.to_events(64));
        MessagesBody::Stream(EventStream::from_events(events))
    } else {
        MessagesBody::from(entry.message.clone())
    };
    let mut response = http::Response::new(body);
    response.extensions_mut().insert(status);
    response
}

fn with_status(
    mut response: http::Response<MessagesBody>,
    status: ResponseCacheStatus,
) -> http::Response<MessagesBody> {
    response.extensions_mut().insert(status);
    response
}

/// Everything but a hit found without I/O: bypass, the store's lookup, single flight, the
/// upstream call.
async fn call<S>(
    shared: Arc<Shared>,
    mut inner: S,
    request: http::Request<MessagesRequest>,
    lookup: Option<Lookup>,
) -> Result<http::Response<MessagesBody>, Error>
where
    S: MessagesService,
    S::Future: Send,
{
    let Some((key, found, mut joined)) = lookup else {
        return call_when_ready(&mut inner, request)
            .await
            .map(|r| with_status(r, ResponseCacheStatus::Bypass));
    };
    let stream = request.body().is_stream();
    let found = found.await;
    let mut stale = None;
    match found {
        Ok(Some(found)) if found.fresh => {
            return Ok(replay(&found.response, stream, ResponseCacheStatus::Hit));
        }
        Ok(Some(found)) => stale = Some(found.response),
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(target: "claude_tower::response_cache", %error, "cache read failed; treating as a miss")
        }
    }
    let mut request = Some(request);
    loop {
        match joined.take().unwrap_or_else(|| shared.flights.join(key)) {
            Role::Follower(receiver) => match &*flight::wait(receiver).await {
                Outcome::Done(entry) => return Ok(replay(entry, stream, ResponseCacheStatus::Hit)),
                Outcome::Failed(error) => return Err(error.duplicate()),
                Outcome::Abandoned => {}
            },
            Role::Leader(guard) => {
                let request = request.take().expect("a request leads at most one flight");
                return lead(shared, inner, request, key, guard, stale).await;
            }
        }
    }
}

async fn lead<S>(
    shared: Arc<Shared>,
    mut inner: S,
    request: http::Request<MessagesRequest>,
    key: CacheKey,
    guard: LeaderGuard,
    stale: Option<Arc<CachedResponse>>,
) -> Result<http::Response<MessagesBody>, Error>
where
    S: MessagesService,
{
    let stream = request.body().is_stream();
    let response = match call_when_ready(&mut inner, request).await {
        Ok(response) => response,
        Err(error) => {
            guard.finish(Outcome::Failed(error.duplicate()));
            return match stale {
                Some(entry) if shared.serve_stale_on_error => {
                    tracing::warn!(target: "claude_tower::response_cache", %error, "upstream failed; serving a stale entry");
                    Ok(replay(&entry, stream, ResponseCacheStatus::Stale))
                }
                _ => Err(error),
            };
        }
    };
    let (parts, body) = response.into_parts();
    let finish = Finish { shared, key, guard };
    let body = match body {
        // Complete at once (the hot path: no hook to build).
        MessagesBody::Message(message) => {
            finish
                .complete(&message, |m| CachedResponse::from_message(m.clone()))
                .await;
            MessagesBody::Message(message)
        }
        stream => {
            let recording = Record {
                recorded: Vec::new(),
                recorded_bytes: 0,
                accumulator: MessageAccumulator::new(),
                finish: Some(finish),
            };
            stream.on_end(recording).0
        }
    };
    Ok(with_status(
        http::Response::from_parts(parts, body),
        ResponseCacheStatus::Miss,
    ))
}

struct Finish {
    shared: Arc<Shared>,
    key: CacheKey,
    guard: LeaderGuard,
}

/// Records a missed response; at its clean end stores the entry (for a stream: before the
/// end is yielded, so a following request hits) and hands it to the followers.
struct Record {
    recorded: Vec<StreamEvent>,
    recorded_bytes: usize,
    accumulator: MessageAccumulator,
    finish: Option<Finish>,
}

impl Record {
    /// Stops recording and frees what was kept (followers try again themselves).
    fn abandon(&mut self) {
        self.finish = None;
        self.recorded = Vec::new();
        self.accumulator = MessageAccumulator::new();
    }
}

/// The size an event adds to a recording: the text of the common deltas (no serialization on
/// the hot path), the JSON size of the rest.
fn approx_event_bytes(event: &StreamEvent) -> usize {
    const OVERHEAD: usize = 64;
    let payload = match event {
        StreamEvent::ContentBlockDelta(delta) => delta.delta.content_len(),
        StreamEvent::MessageStop(_) | StreamEvent::ContentBlockStop(_) => 0,
        other => serde_json::to_vec(other).map_or(0, |v| v.len()),
    };
    payload.saturating_add(OVERHEAD)
}

impl OnEnd for Record {
    fn on_event(&mut self, event: &StreamEvent) {
        // Pings carry nothing to replay: never recorded, so a ping flood costs nothing.
        let Some(finish) = self
            .finish
            .as_ref()
            .filter(|_| !matches!(event, StreamEvent::Ping(_)))
        else {
            return;
        };
        let limit = finish.shared.max_recorded_bytes;
        self.recorded_bytes = self
            .recorded_bytes
            .saturating_add(approx_event_bytes(event));
        if self.recorded_bytes > limit {
            tracing::debug!(target: "claude_tower::response_cache", limit, "stream larger than the recording cap: not cached");
            self.abandon();
        } else if self.accumulator.push(event).is_err() {
            // Not a reply we can replay faithfully: stop recording.
            self.abandon();
        } else {
            self.recorded.push(event.clone());
        }
    }

    fn on_end(&mut self, end: ResponseEnd<'_>) -> Settle {
        // A broken or dropped stream is never stored; followers try again themselves.
        let (Some(finish), EndOutcome::Complete) = (self.finish.take(), end.outcome) else {
            return Settle::done();
        };
        if !self.accumulator.is_complete() {
            return Settle::done();
        }
        let Ok(message) = std::mem::take(&mut self.accumulator).finish() else {
            return Settle::done();
        };
        let recorded = std::mem::take(&mut self.recorded);
        finish.complete(&message, |m| {
            CachedResponse::from_stream(m.clone(), recorded)
        })
    }
}

impl Finish {
    /// A complete response: handed to the followers and stored when the policy allows
    /// (`entry` builds the entry, only when someone needs it).
    fn complete(self, message: &Message, entry: impl FnOnce(&Message) -> CachedResponse) -> Settle {
        let storable = self.shared.policy.cacheable_response(message);
        let Self { shared, key, guard } = self;
        if !storable && !guard.has_followers() {
            // Nobody waits and nothing is stored: skip the copy.
            guard.finish(Outcome::Abandoned);
            return Settle::done();
        }
        let entry = Arc::new(entry(message));
        guard.finish(Outcome::Done(Arc::clone(&entry)));
        if !storable {
            return Settle::done();
        }
        shared
            .store
            .put(&key, entry, shared.ttl)
            .then_settle(|written| {
                if let Err(error) = written {
                    tracing::warn!(target: "claude_tower::response_cache", %error, "cache write failed");
                }
            })
    }
}
