//! The stream handed downstream once content started: accumulates what went out, so a later
//! failure becomes `StreamInterrupted` carrying the partial message.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use claude_tower_core::{Error, EventStream, MessageAccumulator, StreamEvent};
use futures_core::Stream;

pub(crate) struct Delivered {
    pending: VecDeque<StreamEvent>,
    inner: EventStream,
    accumulator: MessageAccumulator,
    done: bool,
}

impl Delivered {
    pub(crate) fn new(pending: Vec<StreamEvent>, inner: EventStream) -> Self {
        Self {
            pending: pending.into(),
            inner,
            accumulator: MessageAccumulator::new(),
            done: false,
        }
    }

    fn record(&mut self, event: &StreamEvent) {
        // A tool input that is not valid JSON is the caller's to see when they accumulate;
        // here it only affects the partial message.
        let _ = self.accumulator.push(event);
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
                let mut interrupted = Error::stream_interrupted(format!(
                    "the stream failed after content was delivered, so it cannot be retried \
                     transparently; the partial message is attached: {error}"
                ));
                if let Some(id) = error.request_id() {
                    interrupted = interrupted.with_request_id(id.to_owned());
                }
                if let Some(partial) = this.accumulator.snapshot() {
                    interrupted = interrupted.with_partial_message(partial.clone());
                }
                Poll::Ready(Some(Err(interrupted.with_source(error))))
            }
        }
    }
}
