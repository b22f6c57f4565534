//! Shared helpers for the claude-tower criterion benches: a bare, always-ready service that
//! answers every request with a small prebuilt message, and sample requests.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use claude_tower_core::{ContentBlock, Error, Message, MessagesBody, MessagesRequest, StopReason};

/// The service every layer is measured over: always ready, answers at once, cheap to clone
/// (like the real transport, whose state is behind an `Arc`).
#[derive(Debug, Clone)]
pub struct Bare {
    message: Arc<Message>,
}

impl Default for Bare {
    fn default() -> Self {
        Self::with_text("ok")
    }
}

impl Bare {
    /// A bare service whose reply has `len` bytes of text (e.g. 2 KB for the cache benches).
    #[must_use]
    pub fn with_reply_bytes(len: usize) -> Self {
        Self::with_text(&"lorem ipsum ".repeat(len / 12 + 1)[..len])
    }

    fn with_text(text: &str) -> Self {
        let mut message = Message::new("msg_bench", "claude-haiku-4-5");
        message.content.push(ContentBlock::text(text));
        message.stop_reason = Some(StopReason::EndTurn);
        message.usage.input_tokens = 10;
        message.usage.output_tokens = 1;
        Self {
            message: Arc::new(message),
        }
    }
}

impl tower::Service<http::Request<MessagesRequest>> for Bare {
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = Ready<Result<Self::Response, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<MessagesRequest>) -> Self::Future {
        ready(Ok(http::Response::new(MessagesBody::from(
            (*self.message).clone(),
        ))))
    }
}

impl Bare {
    /// A bare service that always streams a reply of about `events` events.
    #[must_use]
    pub fn streaming(events: usize) -> Streaming {
        let mut message = Message::new("msg_bench", "claude-haiku-4-5");
        message
            .content
            .push(ContentBlock::text("x".repeat(events.saturating_sub(6) * 4)));
        message.stop_reason = Some(StopReason::EndTurn);
        Streaming {
            events: Arc::new(message.to_events(4)),
        }
    }
}

/// A bare service that answers with a prebuilt event stream.
#[derive(Debug, Clone)]
pub struct Streaming {
    events: Arc<Vec<claude_tower_core::StreamEvent>>,
}

impl tower::Service<http::Request<MessagesRequest>> for Streaming {
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = Ready<Result<Self::Response, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<MessagesRequest>) -> Self::Future {
        let stream = claude_tower_core::EventStream::from_events((*self.events).clone());
        ready(Ok(http::Response::new(MessagesBody::Stream(stream))))
    }
}

/// A one-message request.
#[must_use]
pub fn small_request() -> http::Request<MessagesRequest> {
    MessagesRequest::new("claude-haiku-4-5", 256)
        .user("Hello, Claude")
        .into_http()
}

/// Message Batches that end at once with the bare reply for every item: what the deferring
/// layer itself costs per call, without any mock processing.
#[derive(Debug, Clone, Default)]
pub struct InstantBatches {
    batches: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl InstantBatches {
    fn view(id: &str) -> claude_tower_core::batch::MessageBatch {
        serde_json::from_value(serde_json::json!({
            "id": id, "type": "message_batch", "processing_status": "ended",
        }))
        .expect("a batch")
    }
}

impl claude_tower_core::batch::BatchApi for InstantBatches {
    fn create(
        &self,
        _headers: &claude_tower_core::batch::BatchHeaders,
        requests: Vec<claude_tower_core::batch::BatchRequest>,
    ) -> claude_tower_core::StoreFuture<Result<claude_tower_core::batch::MessageBatch, Error>> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("msgbatch_{n}");
        let ids = requests.into_iter().map(|r| r.custom_id).collect();
        self.batches.lock().expect("lock").insert(id.clone(), ids);
        claude_tower_core::StoreFuture::ready(Ok(Self::view(&id)))
    }

    fn retrieve(
        &self,
        _headers: &claude_tower_core::batch::BatchHeaders,
        id: &str,
    ) -> claude_tower_core::StoreFuture<Result<claude_tower_core::batch::MessageBatch, Error>> {
        claude_tower_core::StoreFuture::ready(Ok(Self::view(id)))
    }

    fn list(
        &self,
        _headers: &claude_tower_core::batch::BatchHeaders,
        _page: &claude_tower_core::batch::ListBatches,
    ) -> claude_tower_core::StoreFuture<Result<claude_tower_core::batch::BatchPage, Error>> {
        claude_tower_core::StoreFuture::ready(Err(Error::new(
            claude_tower_core::ErrorKind::Other,
            "not listed",
        )))
    }

    fn cancel(
        &self,
        headers: &claude_tower_core::batch::BatchHeaders,
        id: &str,
    ) -> claude_tower_core::StoreFuture<Result<claude_tower_core::batch::MessageBatch, Error>> {
        self.retrieve(headers, id)
    }

    fn delete(
        &self,
        _headers: &claude_tower_core::batch::BatchHeaders,
        _id: &str,
    ) -> claude_tower_core::StoreFuture<Result<(), Error>> {
        claude_tower_core::StoreFuture::ready(Ok(()))
    }

    fn results(
        &self,
        _headers: &claude_tower_core::batch::BatchHeaders,
        id: &str,
    ) -> claude_tower_core::StoreFuture<Result<claude_tower_core::batch::BatchResults, Error>> {
        let ids = self
            .batches
            .lock()
            .expect("lock")
            .remove(id)
            .unwrap_or_default();
        let message = Bare::default().message;
        let lines = ids.into_iter().map(move |custom_id| {
            Ok(claude_tower_core::batch::BatchResult {
                custom_id,
                result: claude_tower_core::batch::BatchOutcome::Succeeded {
                    message: Box::new((*message).clone()),
                },
            })
        });
        let stream: claude_tower_core::batch::BatchResults =
            Box::pin(futures_util::stream::iter(lines));
        claude_tower_core::StoreFuture::ready(Ok(stream))
    }
}
