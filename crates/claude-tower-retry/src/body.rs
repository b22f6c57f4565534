//! The stream handed downstream once content started: accumulates what went out (up to
//! [`MAX_PARTIAL_BYTES`]), so a later failure becomes `StreamInterrupted` carrying the partial
//! message.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use claude_tower_core::{Error, EventStream, MessageAccumulator, StreamEvent};
use futures_core::Stream;

/// The most content (delta text, in bytes) kept to attach as the partial message of an
/// interrupted stream. Past it nothing more is kept and the error says the partial message is
/// not attached (the events themselves were all delivered), so an endless stream costs no
/// memory here.
pub const MAX_PARTIAL_BYTES: usize = 1 << 20;

pub(crate) struct Delivered {
    pending: VecDeque<StreamEvent>,
    inner: EventStream,
    accumulator: Option<MessageAccumulator>,
    kept_bytes: usize,
    done: bool,
}

impl Delivered {
    pub(crate) fn new(pending: Vec<StreamEvent>, inner: EventStream) -> Self {
        Self {
            pending: pending.into(),
            inner,
            accumulator: Some(MessageAccumulator::new()),
            kept_bytes: 0,
            done: false,
        }
    }

    fn record(&mut self, event: &StreamEvent) {
        let Some(accumulator) = self.accumulator.as_mut() else {
            return;
        };
        if let StreamEvent::ContentBlockDelta(delta) = event {
            self.kept_bytes = self.kept_bytes.saturating_add(delta.delta.content_len());
            if self.kept_bytes > MAX_PARTIAL_BYTES {
                self.accumulator = None;
                return;
            }
        }
        // A tool input that is not valid JSON is the caller's to see when they accumulate;
        // here it only affects the partial message.
        let _ = accumulator.push(event);
    }
}

impl Stream for Delivered {
    type Item = Result<StreamEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(event) = this.pending.pop_front() {
            this.record(&event);
            return Poll::Ready(Some(Ok(event)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(event))) => {
                this.record(&event);
                Poll::Ready(Some(Ok(event)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.done = true;
                let partial = this
                    .accumulator
                    .take()
                    .and_then(MessageAccumulator::into_partial);
                let attached = if partial.is_some() {
                    "the partial message is attached"
                } else {
                    "the partial message is not attached (over the size kept for it)"
                };
                let mut interrupted = Error::stream_interrupted(format!(
                    "the stream failed after content was delivered, so it cannot be retried \
                     transparently; {attached}: {error}"
                ));
                if let Some(id) = error.request_id() {
                    interrupted = interrupted.with_request_id(id.to_owned());
                }
                if let Some(partial) = partial {
                    interrupted = interrupted.with_partial_message(partial);
                }
                Poll::Ready(Some(Err(interrupted.with_source(error))))
            }
        }
    }
}
