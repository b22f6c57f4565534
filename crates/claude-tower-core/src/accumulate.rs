//! [`MessageAccumulator`]: rebuilds the final [`Message`] from stream events.
// Bytes and numbers from the network: no indexing, unchecked arithmetic or unwrapping here
// (the hardening issue); exceptions carry an `expect` with the reason.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;

use serde_json::Value;

use crate::content::ContentBlock;
use crate::error::Error;
use crate::response::Message;
use crate::stream::{Delta, StreamEvent};

/// Rebuilds the final [`Message`] from [`StreamEvent`]s, as the official SDKs' stream helpers
/// do:
///
/// - the message (id, model, initial usage) comes from `message_start`;
/// - `text_delta`/`thinking_delta` are appended, `signature_delta` sets the signature,
///   `citations_delta` appends a citation;
/// - `input_json_delta` fragments are buffered per block and parsed at `content_block_stop`
///   (an invalid JSON input is an [`ErrorKind::Decode`](crate::ErrorKind::Decode) error that
///   quotes the text);
/// - each `message_delta` **overwrites** the usage fields it carries (they are cumulative),
///   sets the stop reason, and copies its other fields — inside `delta` and beside it, like
///   `context_management` — onto the message;
/// - unknown deltas are merged field by field into the block's JSON (strings appended to
///   strings, other values replace), so new block types still accumulate;
/// - `ping` and unknown events are ignored, and so is anything before the first
///   `message_start`.
///
/// ```
/// use claude_tower::core::{Message, MessageAccumulator, ContentBlock, StopReason};
///
/// let mut message = Message::new("msg_1", "claude-haiku-4-5");
/// message.content.push(ContentBlock::text("Hello there!"));
/// message.stop_reason = Some(StopReason::EndTurn);
/// message.usage.input_tokens = 12;
/// message.usage.output_tokens = 4;
///
/// let mut acc = MessageAccumulator::new();
/// for event in message.to_events(3) {
///     acc.push(&event).unwrap();
/// }
/// assert!(acc.is_complete());
/// assert_eq!(acc.finish().unwrap(), message);
/// ```
#[derive(Debug, Default, Clone)]
pub struct MessageAccumulator {
    message: Option<Message>,
    json_buffers: BTreeMap<usize, String>,
    open_blocks: BTreeMap<usize, usize>,
    stopped: bool,
    events: usize,
    skipped: usize,
}

impl MessageAccumulator {
    /// An empty accumulator.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of events pushed so far.
    #[must_use]
    pub fn event_count(&self) -> usize {
        self.events
    }

    /// Events ignored because they came before any `message_start` (tolerated, as the
    /// official SDKs do since 1.14; they have no message to apply to).
    #[must_use]
    pub fn skipped_before_start(&self) -> usize {
        self.skipped
    }

    /// Whether `message_stop` was seen.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.stopped
    }

    /// The message so far (`None` before `message_start`).
    #[must_use]
    pub fn snapshot(&self) -> Option<&Message> {
        self.message.as_ref()
    }

    /// The unparsed input JSON of a tool block that never reached `content_block_stop`
    /// (a stream cut by `max_tokens` or a dropped connection).
    #[must_use]
    pub fn partial_json(&self, index: usize) -> Option<&str> {
        self.json_buffers.get(&index).map(String::as_str)
    }

    /// Feeds one event. Any event order is accepted without panicking: events before the
    /// first `message_start` are skipped (counted by
    /// [`skipped_before_start`](Self::skipped_before_start)), a repeated `message_start` starts
    /// the message over, a stop for an unknown block is ignored, and the rest of what cannot
    /// be applied is an [`ErrorKind::Decode`](crate::ErrorKind::Decode) error.
    ///
    /// # Errors
    /// An `error` event (mapped like an HTTP error, e.g. to `Overloaded`), a tool input that
    /// is not valid JSON at `content_block_stop`, or a block event before its block's
    /// `content_block_start` ([`ErrorKind::Decode`](crate::ErrorKind::Decode)).
    pub fn push(&mut self, event: &StreamEvent) -> Result<(), Error> {
        self.events = self.events.saturating_add(1);
        if self.message.is_none()
            && matches!(
                event,
                StreamEvent::ContentBlockStart(_)
                    | StreamEvent::ContentBlockDelta(_)
                    | StreamEvent::ContentBlockStop(_)
                    | StreamEvent::MessageDelta(_)
                    | StreamEvent::MessageStop(_)
            )
        {
            self.skipped = self.skipped.saturating_add(1);
            return Ok(());
        }
        match event {
            StreamEvent::MessageStart(start) => {
                // A repeated `message_start` starts the message over: the blocks opened so
                // far belonged to the message it replaces.
                self.message = Some(start.message.clone());
                self.open_blocks.clear();
                self.json_buffers.clear();
                self.stopped = false;
            }
            StreamEvent::ContentBlockStart(start) => {
                let message = self.require_message("content_block_start")?;
                let position = message.content.len();
                message.content.push(start.content_block.clone());
                self.open_blocks.insert(start.index, position);
            }
            StreamEvent::ContentBlockDelta(delta) => {
                let position = self.block_position(delta.index, "content_block_delta")?;
                if let Delta::InputJson(json) = &delta.delta {
                    self.json_buffers
                        .entry(delta.index)
                        .or_default()
                        .push_str(&json.partial_json);
                    return Ok(());
                }
                let block = self.block_mut(position, "content_block_delta")?;
                apply_delta(block, &delta.delta);
            }
            StreamEvent::ContentBlockStop(stop) => {
                let Some(&position) = self.open_blocks.get(&stop.index) else {
                    // A stop for a block that never started carries nothing to lose.
                    return Ok(());
                };
                if let Some(json) = self.json_buffers.remove(&stop.index) {
                    set_input(self.block_mut(position, "content_block_stop")?, &json)?;
                }
            }
            StreamEvent::MessageDelta(delta) => {
                let message = self.require_message("message_delta")?;
                if delta.delta.stop_reason.is_some() {
                    message.stop_reason.clone_from(&delta.delta.stop_reason);
                }
                message.stop_sequence.clone_from(&delta.delta.stop_sequence);
                if delta.delta.stop_details.is_some() {
                    message.stop_details.clone_from(&delta.delta.stop_details);
                }
                if delta.delta.container.is_some() {
                    message.container.clone_from(&delta.delta.container);
                }
                // Fields of `delta` and fields beside it (e.g. `context_management`) land on
                // the message, as the official stream helpers do.
                for (key, value) in delta.delta.extra.iter().chain(&delta.extra) {
                    message.extra.insert(key.clone(), value.clone());
                }
                message.usage.apply_delta(&delta.usage);
            }
            StreamEvent::MessageStop(_) => self.stopped = true,
            StreamEvent::Error(error) => {
                return Err(Error::from_stream_error(&error.error));
            }
            StreamEvent::Ping(_) | StreamEvent::Unknown(_) => {}
        }
        Ok(())
    }

    /// The accumulated message.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`](crate::ErrorKind::Decode) if no `message_start` was seen.
    pub fn finish(self) -> Result<Message, Error> {
        self.message
            .ok_or_else(|| Error::decode("stream ended before `message_start`"))
    }

    /// The accumulated message, if `message_start` was seen (for partial results).
    #[must_use]
    pub fn into_partial(self) -> Option<Message> {
        self.message
    }

    fn require_message(&mut self, event: &str) -> Result<&mut Message, Error> {
        self.message
            .as_mut()
            .ok_or_else(|| Error::decode(format!("`{event}` event before `message_start`")))
    }

    fn block_mut(&mut self, position: usize, event: &str) -> Result<&mut ContentBlock, Error> {
        self.require_message(event)?
            .content
            .get_mut(position)
            .ok_or_else(|| Error::decode(format!("`{event}` for a block that no longer exists")))
    }

    fn block_position(&self, index: usize, event: &str) -> Result<usize, Error> {
        self.open_blocks.get(&index).copied().ok_or_else(|| {
            Error::decode(format!(
                "`{event}` for block {index} before its `content_block_start`"
            ))
        })
    }
}

fn set_input(block: &mut ContentBlock, json: &str) -> Result<(), Error> {
    if json.trim().is_empty() {
        return Ok(());
    }
    let input: Value = serde_json::from_str(json).map_err(|e| {
        Error::decode(format!(
            "unable to parse tool input JSON from the model ({e}): {json}"
        ))
    })?;
    match block {
        ContentBlock::ToolUse(tool) | ContentBlock::ServerToolUse(tool) => tool.input = input,
        ContentBlock::Unknown(Value::Object(map)) => {
            map.insert("input".to_owned(), input);
        }
        _ => {}
    }
    Ok(())
}

fn apply_delta(block: &mut ContentBlock, delta: &Delta) {
    match (block, delta) {
        (ContentBlock::Text(text), Delta::Text(d)) => text.text.push_str(&d.text),
        (ContentBlock::Text(text), Delta::Citations(d)) => {
            text.citations
                .get_or_insert_with(Vec::new)
                .push(d.citation.clone());
        }
        (ContentBlock::Thinking(thinking), Delta::Thinking(d)) => {
            thinking.thinking.push_str(&d.thinking);
        }
        (ContentBlock::Thinking(thinking), Delta::Signature(d)) => {
            thinking.signature.clone_from(&d.signature);
        }
        (block, delta) => merge_generic(block, delta),
    }
}

/// Merges any other delta into the block's JSON form: string fields are appended, `null` or
/// missing fields are set, other values replace.
fn merge_generic(block: &mut ContentBlock, delta: &Delta) {
    let Ok(Value::Object(delta_map)) = serde_json::to_value(delta) else {
        return;
    };
    let Ok(Value::Object(mut block_map)) = serde_json::to_value(&*block) else {
        return;
    };
    for (key, value) in delta_map {
        if key == "type" {
            continue;
        }
        match (block_map.get_mut(&key), value) {
            (Some(Value::String(current)), Value::String(more)) => current.push_str(&more),
            (_, value) => {
                block_map.insert(key, value);
            }
        }
    }
    if let Ok(merged) = serde_json::from_value(Value::Object(block_map)) {
        *block = merged;
    }
}
