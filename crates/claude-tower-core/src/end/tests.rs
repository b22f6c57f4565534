//! The drop / error / completion semantics of [`MessagesBody::on_end`], tested once here for
//! every layer that uses it.

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;

use super::{OnEnd, Outcome, ResponseEnd, Settle};
use crate::{
    ContentBlock, Error, EventStream, Message, MessagesBody, StopReason, StreamEvent, Usage,
};

/// What the hook saw.
#[derive(Debug, Default, Clone, PartialEq)]
struct Seen {
    events: usize,
    /// One entry per `on_end` call: outcome name, output tokens, stop reason, delivered.
    ends: Vec<(&'static str, Option<u64>, Option<StopReason>, bool)>,
    settled: bool,
}

struct Hook {
    seen: Arc<Mutex<Seen>>,
    /// Whether `on_end` returns work that takes a few polls.
    slow: bool,
}

impl OnEnd for Hook {
    fn on_event(&mut self, _event: &StreamEvent) {
        self.seen.lock().unwrap().events += 1;
    }

    fn on_end(&mut self, end: ResponseEnd<'_>) -> Settle {
        let outcome = match end.outcome {
            Outcome::Complete => "complete",
            Outcome::Failed(_) => "failed",
            Outcome::Dropped => "dropped",
        };
        self.seen.lock().unwrap().ends.push((
            outcome,
            end.usage.map(|u| u.output_tokens),
            end.stop_reason.cloned(),
            end.delivered,
        ));
        if !self.slow {
            return Settle::done();
        }
        let seen = Arc::clone(&self.seen);
        Settle::later(async move {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            seen.lock().unwrap().settled = true;
        })
    }
}

fn hook(slow: bool) -> (Hook, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    (
        Hook {
            seen: Arc::clone(&seen),
            slow,
        },
        seen,
    )
}

fn message() -> Message {
    let mut message = Message::new("msg_1", "claude-haiku-4-5");
    message.content.push(ContentBlock::text("Hello there"));
    message.stop_reason = Some(StopReason::EndTurn);
    message.usage = Usage {
        input_tokens: 10,
        output_tokens: 5,
        ..Usage::default()
    };
    message
}

fn streamed(events: Vec<Result<StreamEvent, Error>>) -> MessagesBody {
    MessagesBody::Stream(EventStream::new(futures_util::stream::iter(events)))
}

fn events() -> Vec<StreamEvent> {
    message().to_events(4)
}

#[tokio::test]
async fn a_complete_message_runs_the_hook_at_once_and_returns_its_work() {
    let (hook, seen) = hook(true);
    let (body, settle) = MessagesBody::from(message()).on_end(hook);
    assert_eq!(
        seen.lock().unwrap().ends,
        [("complete", Some(5), Some(StopReason::EndTurn), true)]
    );
    assert!(
        !seen.lock().unwrap().settled,
        "the work waits for the caller"
    );
    settle.await;
    assert!(seen.lock().unwrap().settled);
    assert_eq!(body.into_message().await.unwrap(), message());
}

#[tokio::test]
async fn a_stream_runs_the_hook_once_at_its_end_after_every_event_and_settles_before_the_end() {
    let (hook, seen) = hook(true);
    let all = events();
    let (body, settle) = streamed(all.iter().cloned().map(Ok).collect()).on_end(hook);
    assert!(settle.is_done());
    let MessagesBody::Stream(mut stream) = body else {
        panic!("a stream")
    };
    let mut yielded = 0;
    while let Some(item) = stream.next().await {
        item.unwrap();
        yielded += 1;
        assert!(
            seen.lock().unwrap().ends.is_empty(),
            "no end before the last item"
        );
    }
    let after = seen.lock().unwrap().clone();
    assert_eq!(yielded, all.len());
    assert_eq!(after.events, all.len());
    assert_eq!(
        after.ends,
        [("complete", Some(5), Some(StopReason::EndTurn), true)]
    );
    assert!(
        after.settled,
        "the settlement finished before the stream's end was yielded"
    );
    // Polling past the end does not run the hook again.
    assert!(stream.next().await.is_none());
    drop(stream);
    assert_eq!(seen.lock().unwrap().ends.len(), 1);
}

#[tokio::test]
async fn an_error_runs_the_hook_with_the_usage_so_far_before_the_error_is_yielded() {
    let (hook, seen) = hook(true);
    let mut items: Vec<Result<StreamEvent, Error>> = events().into_iter().take(3).map(Ok).collect();
    items.push(Err(Error::stream_interrupted("connection reset")));
    let (body, _) = streamed(items).on_end(hook);
    let MessagesBody::Stream(mut stream) = body else {
        panic!("a stream")
    };
    let mut last = None;
    while let Some(item) = stream.next().await {
        last = Some(item);
    }
    assert!(last.unwrap().is_err());
    let after = seen.lock().unwrap().clone();
    // message_start's usage (to_events puts the input there, output 0 until the delta).
    assert_eq!(after.ends.len(), 1);
    assert_eq!(after.ends[0].0, "failed");
    assert!(after.ends[0].1.is_some(), "message_start's usage is known");
    assert_eq!(after.ends[0].2, None, "no stop reason arrived");
    assert!(after.settled);
}

#[tokio::test]
async fn a_dropped_stream_runs_the_hook_once_and_its_work_in_the_background() {
    let (hook, seen) = hook(true);
    let (body, _) = streamed(events().into_iter().map(Ok).collect()).on_end(hook);
    let MessagesBody::Stream(mut stream) = body else {
        panic!("a stream")
    };
    stream.next().await.unwrap().unwrap();
    drop(stream);
    assert_eq!(seen.lock().unwrap().ends.len(), 1);
    assert_eq!(seen.lock().unwrap().ends[0].0, "dropped");
    assert!(
        !seen.lock().unwrap().ends[0].3,
        "no content block had started"
    );
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        seen.lock().unwrap().settled,
        "the detached work ran on the runtime"
    );
}

#[test]
fn a_stream_dropped_outside_a_runtime_still_runs_the_hook() {
    let (hook, seen) = hook(true);
    let (body, _) = streamed(events().into_iter().map(Ok).collect()).on_end(hook);
    drop(body);
    assert_eq!(seen.lock().unwrap().ends.len(), 1);
    assert!(
        !seen.lock().unwrap().settled,
        "no runtime: the work is dropped"
    );
}

#[tokio::test]
async fn a_stream_ending_before_message_start_has_no_usage() {
    let (hook, seen) = hook(false);
    let (body, _) = streamed(vec![Err(Error::stream_interrupted("closed"))]).on_end(hook);
    assert!(body.into_message().await.is_err());
    assert_eq!(seen.lock().unwrap().ends, [("failed", None, None, false)]);
}

#[test]
fn a_call_that_failed_before_any_body_is_an_end_with_its_error_and_nothing_else() {
    let error = Error::stream_interrupted("connection refused");
    let end = ResponseEnd::failed(&error);
    assert!(matches!(end.outcome, Outcome::Failed(_)));
    assert_eq!(
        end.error().map(ToString::to_string),
        Some(error.to_string())
    );
    assert!(end.usage.is_none() && end.model.is_none() && !end.delivered);
    assert!(ResponseEnd::complete(&message()).error().is_none());
}
