//! [`DeferLayer`]: deferrable calls wait in queues keyed by what is batch-wide, go out as one
//! Message Batch per flush, and come back to their callers as ordinary responses.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use claude_tower_core::batch::{
    BatchApi, BatchHeaders, BatchOutcome, BatchRequest, BatchResult, MAX_BATCH_BYTES,
    ProcessingStatus,
};
use claude_tower_core::ext::Deferred;
use claude_tower_core::readiness::call_when_ready;
use claude_tower_core::{
    Error, ErrorKind, Message, MessagesBody, MessagesRequest, MessagesService,
};
use futures_util::StreamExt;
use tokio::sync::oneshot;

use crate::store::{DeferStore, MemoryDeferStore, SubmittedBatch};

/// Put in the response extensions of a deferred call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeferReport {
    /// The batch it went out in.
    pub batch_id: String,
    /// Its item's `custom_id`.
    pub custom_id: String,
}

/// Where results go that no caller waits for any more (a restart, a caller that gave up).
pub type ResultSink = Arc<dyn Fn(&str, BatchResult) + Send + Sync>;

type Answer = Result<(Message, DeferReport), Error>;

/// Headers that make a queue (and go with its batch).
const BATCH_WIDE: [&str; 5] = [
    "anthropic-version",
    "anthropic-beta",
    "anthropic-workspace-id",
    "x-api-key",
    "authorization",
];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct QueueKey {
    model: String,
    /// Hash of the batch-wide headers (the credential never stored in clear).
    headers: u64,
}

struct Item {
    custom_id: String,
    params: MessagesRequest,
    answer: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Queue {
    items: Vec<Item>,
    bytes: usize,
    headers: BatchHeaders,
}

pub(crate) struct Shared {
    api: Arc<dyn BatchApi>,
    store: Arc<dyn DeferStore>,
    sink: Option<ResultSink>,
    policy: Option<Arc<dyn Fn(&http::Request<MessagesRequest>) -> bool + Send + Sync>>,
    max_items: usize,
    max_bytes: usize,
    window: Duration,
    first_poll: Duration,
    max_poll: Duration,
    retry_sync: bool,
    prefix: String,
    counter: AtomicU64,
    queues: Mutex<HashMap<QueueKey, Queue>>,
}

/// Turns deferrable calls into Message Batches items (half price).
///
/// A non-streaming request with `max_tokens ≥ 1` marked [`Deferred`] (or chosen by
/// [`policy`](Self::policy)) waits in a queue keyed by its model and its batch-wide headers
/// (`anthropic-version`, `anthropic-beta`, workspace, credential); a queue is flushed when it
/// reaches [`max_items`](Self::max_items) or [`max_bytes`](Self::max_bytes), or
/// [`window`](Self::window) after its first item. The batch is polled with backoff; each result
/// comes back to its caller as an ordinary `Message` response (usage `service_tier: "batch"`,
/// so a `CostLayer` above prices it at 50 %) with a [`DeferReport`]. Errored, expired and
/// canceled items are typed errors — or, with [`retry_sync`](Self::retry_sync), sent again as an
/// ordinary call. Everything else passes through to the inner service.
///
/// Submitted batches are recorded in a [`DeferStore`]; [`DeferLayer::recover`] collects what an
/// earlier process submitted into the [`sink`](Self::sink), each item exactly once.
#[derive(Clone)]
pub struct DeferLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for DeferLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferLayer")
            .field("max_items", &self.shared.max_items)
            .field("max_bytes", &self.shared.max_bytes)
            .field("window", &self.shared.window)
            .field("store", &self.shared.store)
            .finish_non_exhaustive()
    }
}

impl DeferLayer {
    /// Batches through `api` (the transport, or the mock), recorded in memory; flushed at
    /// 10,000 items, 200 MB or 5 s; polled from 5 s, backing off to 60 s.
    #[must_use]
    pub fn new(api: impl BatchApi) -> Self {
        let prefix = format!("{:08x}", fastrand_u32());
        Self {
            shared: Arc::new(Shared {
                api: Arc::new(api),
                store: Arc::new(MemoryDeferStore::new()),
                sink: None,
                policy: None,
                max_items: 10_000,
                max_bytes: 200 * 1024 * 1024,
                window: Duration::from_secs(5),
                first_poll: Duration::from_secs(5),
                max_poll: Duration::from_secs(60),
                retry_sync: false,
                prefix,
                counter: AtomicU64::new(0),
                queues: Mutex::default(),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => f(shared),
            None => {
                tracing::warn!(target: "claude_tower::batch", "DeferLayer configured after it was shared; ignored")
            }
        }
        self
    }

    /// Items per batch at most (1 to 100,000).
    #[must_use]
    pub fn max_items(self, items: usize) -> Self {
        self.edit(|s| s.max_items = items.clamp(1, claude_tower_core::batch::MAX_BATCH_REQUESTS))
    }

    /// Bytes per batch at most (up to 256 MB).
    #[must_use]
    pub fn max_bytes(self, bytes: usize) -> Self {
        self.edit(|s| s.max_bytes = bytes.clamp(1, MAX_BATCH_BYTES))
    }

    /// How long a queue collects after its first item.
    #[must_use]
    pub fn window(self, window: Duration) -> Self {
        self.edit(|s| s.window = window)
    }

    /// First poll delay and the longest one (the delay grows by half each poll, and is at
    /// least 1 ms after the first poll).
    #[must_use]
    pub fn poll(self, first: Duration, max: Duration) -> Self {
        self.edit(|s| {
            s.first_poll = first;
            s.max_poll = max.max(first);
        })
    }

    /// Sends an errored, expired or canceled item (or one past its caller's deadline) again as
    /// an ordinary call.
    #[must_use]
    pub fn retry_sync(self, retry: bool) -> Self {
        self.edit(|s| s.retry_sync = retry)
    }

    /// Defers requests `policy` chooses, beside those marked [`Deferred`].
    #[must_use]
    pub fn policy(
        self,
        policy: impl Fn(&http::Request<MessagesRequest>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.edit(|s| s.policy = Some(Arc::new(policy)))
    }

    /// Records submitted batches in `store` (e.g. one shared with a restarted process).
    #[must_use]
    pub fn store(self, store: impl DeferStore) -> Self {
        self.edit(|s| s.store = Arc::new(store))
    }

    /// Where results go that no caller waits for (batch id, result).
    #[must_use]
    pub fn sink(self, sink: impl Fn(&str, BatchResult) + Send + Sync + 'static) -> Self {
        self.edit(|s| s.sink = Some(Arc::new(sink)))
    }

    /// Collects the results of every batch the store lists (submitted by an earlier process
    /// whose callers are gone) into the sink, each item exactly once; returns how many results
    /// were delivered.
    ///
    /// # Errors
    /// The store cannot list its batches.
    pub async fn recover(&self) -> Result<usize, Error> {
        let pending = self.shared.store.pending().await?;
        let mut delivered = 0;
        for batch in pending {
            let mut headers = BatchHeaders::new();
            for (name, value) in &batch.headers {
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::try_from(name.as_str()),
                    http::HeaderValue::try_from(value.as_str()),
                ) {
                    headers.append(name, value);
                }
            }
            delivered += collect(&self.shared, &batch.id, &headers).await?;
        }
        Ok(delivered)
    }
}

fn fastrand_u32() -> u32 {
    let mut hasher = DefaultHasher::new();
    std::time::SystemTime::now().hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    u32::try_from(hasher.finish() & 0xffff_ffff).unwrap_or(0)
}

claude_tower_core::layer_service!(
    /// The service of a [`DeferLayer`].
    DeferLayer => Defer, shared: Shared
);

impl<S: fmt::Debug> fmt::Debug for Defer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Defer")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

// Ready at once: a deferred call never touches the inner service, a passed-through one waits
// for a clone's readiness.
claude_tower_core::always_ready_service!(Defer, boxed, run);

fn deferrable(shared: &Shared, request: &http::Request<MessagesRequest>) -> bool {
    let body = request.body();
    if body.is_stream() || body.max_tokens == 0 {
        return false;
    }
    request.extensions().get::<Deferred>().is_some()
        || shared.policy.as_ref().is_some_and(|p| p(request))
}

async fn run<S>(
    shared: Arc<Shared>,
    mut inner: S,
    request: http::Request<MessagesRequest>,
) -> Result<http::Response<MessagesBody>, Error>
where
    S: MessagesService + Clone + Send + 'static,
    S::Future: Send,
{
    if !deferrable(&shared, &request) {
        return call_when_ready(&mut inner, request).await;
    }
    let deadline = request
        .extensions()
        .get::<Deferred>()
        .and_then(|d| d.deadline);
    let retry_request = shared.retry_sync.then(|| request.clone());
    let receiver = enqueue(&shared, &request);
    let answer = match deadline {
        Some(deadline) => match tokio::time::timeout(deadline, receiver).await {
            Ok(answer) => answer,
            Err(_) => Ok(Err(Error::new(
                ErrorKind::Timeout,
                format!("the batch did not end within the call's deadline of {deadline:?}"),
            ))),
        },
        None => receiver.await,
    };
    let answer = answer.unwrap_or_else(|_| {
        Err(Error::new(
            ErrorKind::Other,
            "the deferring layer was dropped before the batch ended",
        ))
    });
    match (answer, retry_request) {
        (Ok((mut message, report)), _) => {
            if message.usage.service_tier.is_none() {
                message.usage.service_tier = Some("batch".to_owned());
            }
            let mut response = http::Response::new(MessagesBody::from(message));
            response.extensions_mut().insert(report);
            Ok(response)
        }
        // Errored, expired, canceled or late: an ordinary call when asked to.
        (Err(_), Some(request)) => call_when_ready(&mut inner, request).await,
        (Err(error), None) => Err(error),
    }
}

/// Puts the request in its queue; flushes the queue when full, or schedules its flush.
fn enqueue(
    shared: &Arc<Shared>,
    request: &http::Request<MessagesRequest>,
) -> oneshot::Receiver<Answer> {
    let (sender, receiver) = oneshot::channel();
    let mut hasher = DefaultHasher::new();
    for name in BATCH_WIDE {
        for value in request.headers().get_all(name) {
            (name, value.as_bytes()).hash(&mut hasher);
        }
    }
    let key = QueueKey {
        model: request.body().model.clone(),
        headers: hasher.finish(),
    };
    let n = shared.counter.fetch_add(1, Ordering::Relaxed);
    let custom_id = format!("{}-{n:012}", shared.prefix);
    let params = request.body().clone();
    // About what the item adds to the create body.
    let bytes = serde_json::to_vec(&params).map_or(0, |b| b.len()) + custom_id.len() + 32;
    let (full, first) = {
        let mut queues = shared.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let queue = queues.entry(key.clone()).or_default();
        let first = queue.items.is_empty();
        if first {
            queue.headers = batch_headers(request.headers());
        }
        queue.items.push(Item {
            custom_id,
            params,
            answer: sender,
        });
        queue.bytes += bytes;
        let full = queue.items.len() >= shared.max_items || queue.bytes >= shared.max_bytes;
        (full.then(|| queues.remove(&key)).flatten(), first)
    };
    match full {
        Some(queue) => spawn_flush(shared, queue),
        None if first => {
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                tokio::time::sleep(shared.window).await;
                let queue = shared
                    .queues
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&key);
                if let Some(queue) = queue {
                    flush(&shared, queue).await;
                }
            });
        }
        None => {}
    }
    receiver
}

fn batch_headers(headers: &http::HeaderMap) -> BatchHeaders {
    let mut out = BatchHeaders::new();
    for name in BATCH_WIDE {
        for value in headers.get_all(name) {
            out.append(http::HeaderName::from_static(name), value.clone());
        }
    }
    out
}

fn spawn_flush(shared: &Arc<Shared>, queue: Queue) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move { flush(&shared, queue).await });
}

/// Submits a queue as one batch, records it, waits for it and answers its callers.
async fn flush(shared: &Arc<Shared>, queue: Queue) {
    let Queue { items, headers, .. } = queue;
    let requests: Vec<BatchRequest> = items
        .iter()
        .map(|item| BatchRequest {
            custom_id: item.custom_id.clone(),
            params: item.params.clone(),
        })
        .collect();
    let custom_ids: Vec<String> = items.iter().map(|i| i.custom_id.clone()).collect();
    let mut waiting: HashMap<String, oneshot::Sender<Answer>> = items
        .into_iter()
        .map(|item| (item.custom_id, item.answer))
        .collect();
    let batch = match shared.api.create(&headers, requests).await {
        Ok(batch) => batch,
        Err(error) => {
            for (_, answer) in waiting {
                let _ = answer.send(Err(copy(&error)));
            }
            return;
        }
    };
    let recorded = SubmittedBatch {
        id: batch.id.clone(),
        headers: headers
            .iter()
            .filter(|(name, _)| *name != "x-api-key" && *name != http::header::AUTHORIZATION)
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        custom_ids,
    };
    if let Err(error) = shared.store.submitted(recorded).await {
        tracing::warn!(target: "claude_tower::batch", %error, batch = %batch.id, "could not record a submitted batch (a restart would not collect it)");
    }
    let shared_for = Arc::clone(shared);
    let waiting_ref = &mut waiting;
    let result = collect_into(&shared_for, &batch.id, &headers, waiting_ref).await;
    let leftover_error = match result {
        Ok(_) => Error::new(
            ErrorKind::Other,
            format!("batch {} ended without a result for this item", batch.id),
        ),
        Err(error) => error,
    };
    for (_, answer) in waiting {
        let _ = answer.send(Err(copy(&leftover_error)));
    }
}

/// Waits for `batch_id` to end and delivers its results to the sink (a recovery).
async fn collect(
    shared: &Arc<Shared>,
    batch_id: &str,
    headers: &BatchHeaders,
) -> Result<usize, Error> {
    collect_into(shared, batch_id, headers, &mut HashMap::new()).await
}

/// Waits for `batch_id` to end, then delivers each result once: to its waiting caller, else to
/// the sink. Returns how many results were delivered.
async fn collect_into(
    shared: &Arc<Shared>,
    batch_id: &str,
    headers: &BatchHeaders,
    waiting: &mut HashMap<String, oneshot::Sender<Answer>>,
) -> Result<usize, Error> {
    let mut delay = shared.first_poll;
    loop {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match shared.api.retrieve(headers, batch_id).await {
            Ok(batch) if batch.processing_status == ProcessingStatus::Ended => break,
            Ok(_) => {}
            Err(error) if error.is_retryable() => {
                tracing::debug!(target: "claude_tower::batch", %error, "batch poll failed; polling again");
            }
            Err(error) => return Err(error),
        }
        // Never a busy loop, whatever the configuration: at least 1 ms between polls.
        delay = (delay + delay / 2)
            .min(shared.max_poll)
            .max(Duration::from_millis(1));
    }
    let mut results = shared.api.results(headers, batch_id).await?;
    let mut delivered = 0;
    while let Some(line) = results.next().await {
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                tracing::warn!(target: "claude_tower::batch", %error, batch = batch_id, "a results line could not be read");
                continue;
            }
        };
        if !shared
            .store
            .claim(batch_id, &line.custom_id)
            .await
            .unwrap_or(false)
        {
            continue; // Delivered before (another process, a repeated collection).
        }
        delivered += 1;
        let report = DeferReport {
            batch_id: batch_id.to_owned(),
            custom_id: line.custom_id.clone(),
        };
        match waiting.remove(&line.custom_id) {
            Some(answer) => {
                let outcome = match line.result {
                    BatchOutcome::Succeeded { message } => Ok((*message, report)),
                    other => Err(item_error(batch_id, &line.custom_id, &other)),
                };
                if let Err(Ok((message, report))) = answer.send(outcome) {
                    // The caller gave up meanwhile: the sink gets it.
                    if let Some(sink) = &shared.sink {
                        sink(
                            batch_id,
                            BatchResult {
                                custom_id: report.custom_id,
                                result: BatchOutcome::Succeeded {
                                    message: Box::new(message),
                                },
                            },
                        );
                    }
                }
            }
            None => match &shared.sink {
                Some(sink) => sink(batch_id, line),
                None => {
                    tracing::warn!(target: "claude_tower::batch", batch = batch_id, custom_id = %line.custom_id, "a batch result nobody waits for (set a sink)")
                }
            },
        }
    }
    if let Err(error) = shared.store.finished(batch_id).await {
        tracing::warn!(target: "claude_tower::batch", %error, batch = batch_id, "could not mark a batch collected");
    }
    Ok(delivered)
}

fn item_error(batch_id: &str, custom_id: &str, outcome: &BatchOutcome) -> Error {
    match outcome {
        BatchOutcome::Errored { .. } => {
            let api = outcome.api_error();
            Error::new(
                ErrorKind::Api,
                format!(
                    "batch {batch_id} item {custom_id} errored: {}",
                    api.map_or_else(
                        || "unknown error".to_owned(),
                        |e| format!("{}: {}", e.kind, e.message)
                    )
                ),
            )
        }
        BatchOutcome::Expired => Error::new(
            ErrorKind::Timeout,
            format!("batch {batch_id} item {custom_id} expired before it was processed"),
        ),
        BatchOutcome::Canceled => Error::new(
            ErrorKind::Other,
            format!("batch {batch_id} item {custom_id} was canceled"),
        ),
        _ => Error::new(
            ErrorKind::Other,
            format!("batch {batch_id} item {custom_id}: an outcome this version does not know"),
        ),
    }
}

/// The same error for another caller (`Error` is not `Clone`: it may hold a source).
fn copy(error: &Error) -> Error {
    Error::new(error.kind(), error.message().to_owned())
}
