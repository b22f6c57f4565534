//! "When the response ends": the one mechanism every layer uses to act once a response is
//! complete, has failed, or was dropped by its reader.
//!
//! A layer that settles something at the end of a call (a rate-limit reservation, a money
//! reservation, a cost, a cache report, a span) implements [`OnEnd`] and hands it to
//! [`MessagesBody::on_end`]. For a complete message the hook runs at once; for a stream the
//! body is wrapped so that the hook sees every event and then runs **exactly once**:
//!
//! | how the stream ends | [`Outcome`] | the hook's [`Settle`] future |
//! |---|---|---|
//! | it yields its last item | [`Outcome::Complete`] | awaited before the end is yielded |
//! | it yields an `Err` | [`Outcome::Failed`] | awaited before the error is yielded |
//! | the reader drops it first | [`Outcome::Dropped`] | spawned on the current tokio runtime |
//!
//! The usage passed to the hook is the stream's latest: `message_start`'s, overwritten by
//! each `message_delta` (the API sends cumulative figures), so a dropped or failed stream
//! reports what was used until then.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::{Arc, Mutex};
//! use claude_tower::core::end::{OnEnd, Outcome, ResponseEnd, Settle};
//! use claude_tower::core::{Message, MessagesBody, Usage};
//!
//! /// Records the output tokens of each response.
//! struct Record(Arc<Mutex<Vec<u64>>>);
//!
//! impl OnEnd for Record {
//!     fn on_end(&mut self, end: ResponseEnd<'_>) -> Settle {
//!         assert!(matches!(end.outcome, Outcome::Complete));
//!         self.0.lock().unwrap().push(end.usage.map_or(0, |u| u.output_tokens));
//!         Settle::done()
//!     }
//! }
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let mut message = Message::new("msg_1", "claude-haiku-4-5");
//! message.usage = Usage { output_tokens: 7, ..Usage::default() };
//! // A stream: the hook runs when the reader reaches its end.
//! let stream = MessagesBody::Stream(MessagesBody::from(message).into_stream());
//! let (body, settle) = stream.on_end(Record(Arc::clone(&seen)));
//! settle.await;
//! assert!(seen.lock().unwrap().is_empty());
//! body.into_message().await.unwrap();
//! assert_eq!(*seen.lock().unwrap(), [7]);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::body::{EventStream, MessagesBody};
use crate::error::Error;
use crate::response::{Message, StopReason, Usage};
use crate::stream::StreamEvent;

/// How a response ended.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Outcome<'a> {
    /// The body was read to its end (a complete message, or a stream's last item).
    Complete,
    /// The call or the stream failed with this error.
    Failed(&'a Error),
    /// The reader dropped the stream before its end.
    Dropped,
}

/// What a hook learns when a response ends.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ResponseEnd<'a> {
    /// How it ended.
    pub outcome: Outcome<'a>,
    /// The complete message, for a body that was one (streams are not accumulated here; a
    /// hook that needs their content accumulates it in [`OnEnd::on_event`]).
    pub message: Option<&'a Message>,
    /// The model that answered, when known.
    pub model: Option<&'a str>,
    /// The final usage (a stream's latest cumulative figures), when known: `None` when the
    /// response failed or was dropped before `message_start`.
    pub usage: Option<&'a Usage>,
    /// The stop reason, when one arrived.
    pub stop_reason: Option<&'a StopReason>,
    /// Whether any content reached the reader (a content block started).
    pub delivered: bool,
}

impl<'a> ResponseEnd<'a> {
    /// The end of a complete message.
    #[must_use]
    pub fn complete(message: &'a Message) -> Self {
        Self {
            outcome: Outcome::Complete,
            message: Some(message),
            model: Some(&message.model),
            usage: Some(&message.usage),
            stop_reason: message.stop_reason.as_ref(),
            delivered: !message.content.is_empty(),
        }
    }

    /// The end of a call that failed before any response.
    #[must_use]
    pub fn failed(error: &'a Error) -> Self {
        Self {
            outcome: Outcome::Failed(error),
            message: None,
            model: None,
            usage: None,
            stop_reason: None,
            delivered: false,
        }
    }

    /// The error, when it failed.
    #[must_use]
    pub fn error(&self) -> Option<&'a Error> {
        match self.outcome {
            Outcome::Failed(error) => Some(error),
            _ => None,
        }
    }
}

/// What a hook may still have to do after [`OnEnd::on_end`] returns: nothing, or a future
/// (store I/O) that the stream awaits before yielding its end.
#[must_use = "a Settle future does its work only when awaited"]
pub struct Settle(Option<Pin<Box<dyn Future<Output = ()> + Send + 'static>>>);

impl Settle {
    /// Nothing left to do.
    pub fn done() -> Self {
        Self(None)
    }

    /// Work to await.
    pub fn later(future: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(Some(Box::pin(future)))
    }

    /// Whether there is nothing left to do.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.0.is_none()
    }

    /// Runs the work in the background on the current tokio runtime; returns `false` (and
    /// drops the work) when there is none.
    #[must_use = "false means the work was dropped"]
    pub fn detach(self) -> bool {
        let Some(future) = self.0 else { return true };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                drop(handle.spawn(future));
                true
            }
            Err(_) => false,
        }
    }
}

impl Future for Settle {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.0.as_mut() {
            None => Poll::Ready(()),
            Some(future) => {
                let done = future.as_mut().poll(cx);
                if done.is_ready() {
                    self.0 = None;
                }
                done
            }
        }
    }
}

impl fmt::Debug for Settle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Settle")
            .field(&if self.0.is_some() { "pending" } else { "done" })
            .finish()
    }
}

/// A layer's "when the response ends" hook; see the [module docs](self).
pub trait OnEnd: Send + Unpin + 'static {
    /// Sees each event of a stream before the reader does (complete messages have none).
    fn on_event(&mut self, event: &StreamEvent) {
        let _ = event;
    }

    /// Runs exactly once, when the response is complete, has failed or was dropped. For a
    /// dropped stream the returned work is [detached](Settle::detach).
    fn on_end(&mut self, end: ResponseEnd<'_>) -> Settle;
}

impl MessagesBody {
    /// Runs `hook` when this body ends; see the [`end`](crate::end) module. A complete
    /// message runs it now and returns its [`Settle`] for the caller to await; a stream is
    /// wrapped (the returned `Settle` is then done).
    pub fn on_end<H: OnEnd>(self, mut hook: H) -> (Self, Settle) {
        match self {
            Self::Message(message) => {
                let settle = hook.on_end(ResponseEnd::complete(&message));
                (Self::Message(message), settle)
            }
            Self::Stream(stream) => (
                Self::Stream(EventStream::new(Watched {
                    inner: stream,
                    hook: Some(hook),
                    usage: None,
                    model: None,
                    stop_reason: None,
                    delivered: false,
                    settling: None,
                })),
                Settle::done(),
            ),
        }
    }
}

/// A stream watched by a hook.
struct Watched<H: OnEnd> {
    inner: EventStream,
    hook: Option<H>,
    usage: Option<Usage>,
    model: Option<String>,
    stop_reason: Option<StopReason>,
    delivered: bool,
    /// The hook's work, and the item to yield after it.
    settling: Option<(Settle, Option<Result<StreamEvent, Error>>)>,
}

impl<H: OnEnd> Watched<H> {
    fn track(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::MessageStart(start) => {
                self.usage = Some(start.message.usage.clone());
                self.model = Some(start.message.model.clone());
            }
            StreamEvent::MessageDelta(delta) => {
                if let Some(usage) = &mut self.usage {
                    usage.apply_delta(&delta.usage);
                }
                if delta.delta.stop_reason.is_some() {
                    self.stop_reason.clone_from(&delta.delta.stop_reason);
                }
            }
            StreamEvent::ContentBlockStart(_) => self.delivered = true,
            _ => {}
        }
    }

    fn end(&mut self, outcome: Outcome<'_>) -> Settle {
        let Some(mut hook) = self.hook.take() else {
            return Settle::done();
        };
        hook.on_end(ResponseEnd {
            outcome,
            message: None,
            model: self.model.as_deref(),
            usage: self.usage.as_ref(),
            stop_reason: self.stop_reason.as_ref(),
            delivered: self.delivered,
        })
    }
}

impl<H: OnEnd> Stream for Watched<H> {
    type Item = Result<StreamEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some((settle, last)) = this.settling.as_mut() {
            if Pin::new(settle).poll(cx).is_pending() {
                return Poll::Pending;
            }
            let last = last.take();
            this.settling = None;
            return Poll::Ready(last);
        }
        let item = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        let settle = match &item {
            Some(Ok(event)) => {
                this.track(event);
                if let Some(hook) = &mut this.hook {
                    hook.on_event(event);
                }
                return Poll::Ready(item);
            }
            Some(Err(error)) => this.end(Outcome::Failed(error)),
            None => this.end(Outcome::Complete),
        };
        if settle.is_done() {
            return Poll::Ready(item);
        }
        this.settling = Some((settle, item));
        // Poll the settlement at once (a store in memory finishes without waiting).
        self.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<H: OnEnd> Drop for Watched<H> {
    fn drop(&mut self) {
        if self.hook.is_some() {
            let _ = self.end(Outcome::Dropped).detach();
        }
        if let Some((settle, _)) = self.settling.take() {
            let _ = settle.detach();
        }
    }
}

#[cfg(test)]
mod tests;
