//! [`TracedStream`]: keeps a call's span open until its stream ends, and records it then.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use claude_tower_core::ext::CostCell;
use claude_tower_core::{Error, EventStream, StreamEvent};
use futures_core::Stream;
use tokio::time::Instant;

use crate::record::Recorder;

/// Keeps the span open until the stream ends; records time to first chunk, the final usage
/// and mid-stream errors.
pub(crate) struct TracedStream {
    pub(crate) inner: EventStream,
    pub(crate) call: Option<Recorder>,
    pub(crate) cost: Option<CostCell>,
    pub(crate) accumulator: claude_tower_core::MessageAccumulator,
    pub(crate) first_event: Option<Instant>,
    pub(crate) events: u32,
    /// Bytes of content deltas kept for capture.
    pub(crate) captured_bytes: usize,
}

impl TracedStream {
    pub(crate) fn finish(&mut self, error: Option<&Error>) {
        let Some(call) = self.call.take() else { return };
        let snapshot = self.accumulator.snapshot().cloned();
        let model = snapshot.as_ref().map(|m| m.model.clone());
        let attributes = match &snapshot {
            Some(message) => {
                let attributes = call.record_message(
                    &message.id,
                    &message.model,
                    message.stop_reason.as_ref(),
                    &message.usage,
                );
                call.record_output(message);
                call.record_diagnostics(message);
                attributes
            }
            None => call.base_attributes(None),
        };
        call.record_cost(self.cost.as_ref());
        if let Some(first) = self.first_event {
            let instruments = &call.config.instruments;
            instruments
                .time_to_first_chunk
                .record((first - call.started).as_secs_f64(), &attributes);
            if self.events > 1 {
                let per_chunk = first.elapsed().as_secs_f64() / f64::from(self.events - 1);
                instruments
                    .time_per_output_chunk
                    .record(per_chunk, &attributes);
            }
        }
        match error {
            Some(error) => call.record_error(error, model.as_deref()),
            None => call.record_duration(&attributes),
        }
    }
}

impl Stream for TracedStream {
    type Item = Result<StreamEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = ready!(Pin::new(&mut this.inner).poll_next(cx));
        match &item {
            Some(Ok(event)) => {
                this.events += 1;
                if this.first_event.is_none() {
                    let now = Instant::now();
                    this.first_event = Some(now);
                    if let Some(call) = &this.call {
                        call.span.record(
                            "gen_ai.response.time_to_first_chunk",
                            (now - call.started).as_secs_f64(),
                        );
                    }
                }
                // Only what the span needs is kept: the message's id, model, usage and stop
                // reason, and its content only while it is captured (up to the capture limit),
                // so a long or endless stream never grows this buffer.
                let content = matches!(
                    event,
                    StreamEvent::ContentBlockStart(_)
                        | StreamEvent::ContentBlockDelta(_)
                        | StreamEvent::ContentBlockStop(_)
                );
                let capture = this
                    .call
                    .as_ref()
                    .and_then(|call| call.config.capture_limit)
                    .filter(|_| {
                        this.call
                            .as_ref()
                            .is_some_and(|call| !call.span.is_disabled())
                    });
                let keep = !content || capture.is_some_and(|limit| this.captured_bytes <= limit);
                if keep {
                    if let StreamEvent::ContentBlockDelta(delta) = event {
                        this.captured_bytes = this
                            .captured_bytes
                            .saturating_add(delta.delta.content_len());
                    }
                    let _ = this.accumulator.push(event);
                }
            }
            Some(Err(error)) => this.finish(Some(error)),
            None => this.finish(None),
        }
        Poll::Ready(item)
    }
}

impl Drop for TracedStream {
    fn drop(&mut self) {
        if self.call.is_some() {
            let error = Error::stream_interrupted("the stream was dropped before its end");
            self.finish(Some(&error));
        }
    }
}
