//! [`Traced`]: the trace layer's "when the response ends" hook — it keeps the call's span
//! open until the response ends, and records it then.

use claude_tower_core::end::{OnEnd, Outcome, ResponseEnd, Settle};
use claude_tower_core::ext::CostCell;
use claude_tower_core::{Error, Message, StreamEvent};
use tokio::time::Instant;

use crate::record::Recorder;

/// Records the response when it ends: time to first chunk, the final usage, errors.
pub(crate) struct Traced {
    pub(crate) call: Option<Recorder>,
    pub(crate) cost: Option<CostCell>,
    /// A stream's message, as far as the span needs it.
    pub(crate) accumulator: claude_tower_core::MessageAccumulator,
    pub(crate) first_event: Option<Instant>,
    pub(crate) events: u32,
    /// Bytes of content deltas kept for capture.
    pub(crate) captured_bytes: usize,
}

impl Traced {
    pub(crate) fn new(call: Recorder, cost: Option<CostCell>) -> Self {
        Self {
            call: Some(call),
            cost,
            accumulator: claude_tower_core::MessageAccumulator::new(),
            first_event: None,
            events: 0,
            captured_bytes: 0,
        }
    }

    fn finish(&mut self, message: Option<&Message>, error: Option<&Error>) {
        let Some(call) = self.call.take() else { return };
        let timing = self.first_event.map(|first| (first, self.events));
        record_end(&call, self.cost.as_ref(), message, error, timing);
    }
}

/// Records a call's end on its span and metrics: the message (when known), the cost, the
/// timing of a stream's chunks (`(first event, events)`), the error or the duration.
pub(crate) fn record_end(
    call: &Recorder,
    cost: Option<&CostCell>,
    message: Option<&Message>,
    error: Option<&Error>,
    timing: Option<(Instant, u32)>,
) {
    let attributes = match message {
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
    call.record_cost(cost);
    if let Some((first, events)) = timing {
        let instruments = &call.config.instruments;
        instruments
            .time_to_first_chunk
            .record((first - call.started).as_secs_f64(), &attributes);
        if events > 1 {
            let per_chunk = first.elapsed().as_secs_f64() / f64::from(events - 1);
            instruments
                .time_per_output_chunk
                .record(per_chunk, &attributes);
        }
    }
    match error {
        Some(error) => call.record_error(error, message.map(|m| m.model.as_str())),
        None => call.record_duration(&attributes),
    }
}

impl OnEnd for Traced {
    fn on_event(&mut self, event: &StreamEvent) {
        self.events += 1;
        if self.first_event.is_none() {
            let now = Instant::now();
            self.first_event = Some(now);
            if let Some(call) = &self.call {
                call.span.record(
                    "gen_ai.response.time_to_first_chunk",
                    (now - call.started).as_secs_f64(),
                );
            }
        }
        // Only what the span needs is kept: the message's id, model, usage and stop reason,
        // and its content only while it is captured (up to the capture limit), so a long or
        // endless stream never grows this buffer.
        let content = matches!(
            event,
            StreamEvent::ContentBlockStart(_)
                | StreamEvent::ContentBlockDelta(_)
                | StreamEvent::ContentBlockStop(_)
        );
        let capture = self
            .call
            .as_ref()
            .filter(|call| !call.span.is_disabled())
            .and_then(|call| call.config.capture_limit);
        let keep = !content || capture.is_some_and(|limit| self.captured_bytes <= limit);
        if keep {
            if let StreamEvent::ContentBlockDelta(delta) = event {
                self.captured_bytes = self
                    .captured_bytes
                    .saturating_add(delta.delta.content_len());
            }
            let _ = self.accumulator.push(event);
        }
    }

    fn on_end(&mut self, end: ResponseEnd<'_>) -> Settle {
        let snapshot = match end.message {
            Some(_) => None,
            None => self.accumulator.snapshot().cloned(),
        };
        let message = end.message.or(snapshot.as_ref());
        match end.outcome {
            Outcome::Failed(error) => self.finish(message, Some(error)),
            Outcome::Dropped => {
                let error = Error::stream_interrupted("the stream was dropped before its end");
                self.finish(message, Some(&error));
            }
            _ => self.finish(message, None),
        }
        Settle::done()
    }
}
