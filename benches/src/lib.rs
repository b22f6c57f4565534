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
