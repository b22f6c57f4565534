//! The SSE decoder: bytes as they arrive → typed [`StreamEvent`]s.
//!
//! Framing (multi-line `data:`, comments, CRLF, UTF-8 split across chunks) is done by the
//! `eventsource-stream` crate; each frame's `data` is then parsed by
//! [`StreamEvent::from_sse`] (unknown events are kept, never an error) and the stream
//! A final frame without its terminating blank line is still dispatched. The stream
//! contract is enforced by [`EventStream::from_wire`] (an `error` event becomes an `Err` of
//! the matching kind; an end before `message_stop` is `StreamInterrupted`).

use bytes::Bytes;
use claude_tower_core::{Error, EventStream, StreamEvent};
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};

/// Decodes a byte stream of `text/event-stream` into typed events, incrementally: each event
/// is yielded as soon as its frame is complete, whatever the chunking.
///
/// `request_id` is attached to errors that arise mid-stream.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use bytes::Bytes;
/// use claude_tower_transport::sse;
///
/// let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
///             event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":5}}\n\n\
///             event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
/// // Split into 5-byte chunks to show the framing does not care.
/// let chunks: Vec<Result<Bytes, claude_tower_core::Error>> =
///     body.as_bytes().chunks(5).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
/// let message = sse::decode(futures_util::stream::iter(chunks), None).collect_message().await.unwrap();
/// assert_eq!(message.usage.output_tokens, 5);
/// # }
/// ```
pub fn decode<S>(bytes: S, request_id: Option<String>) -> EventStream
where
    S: Stream<Item = Result<Bytes, Error>> + Send + 'static,
{
    // A body that ends without the blank line after its last frame still dispatches that
    // frame (as the official SDKs do); extra blank lines are no-ops in the SSE grammar.
    let terminated = bytes.chain(futures_util::stream::once(async {
        Ok(Bytes::from_static(b"\n\n"))
    }));
    let events = terminated.eventsource().map(|item| match item {
        Ok(event) => StreamEvent::from_sse(&event.event, &event.data),
        Err(EventStreamError::Transport(error)) => Err(error),
        Err(EventStreamError::Utf8(e)) => Err(Error::decode(format!(
            "invalid UTF-8 in the event stream: {e}"
        ))),
        Err(EventStreamError::Parser(e)) => {
            Err(Error::decode(format!("invalid event stream: {e}")))
        }
    });
    EventStream::from_wire(events, request_id)
}
