//! Typed server-sent events of a streamed response (the streaming docs).
//!
//! Unknown events and unknown delta types are preserved as [`StreamEvent::Unknown`] /
//! [`Delta::Unknown`]: the API's versioning policy allows new event types, and clients must
//! ignore them, never fail on them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::content::{ContentBlock, Extra, TextBlock, ThinkingBlock, ToolUseBlock};
use crate::error::ApiErrorBody;
use crate::macros::open_tagged_enum;
use crate::response::{Message, MessageDeltaUsage, StopReason};

mod fast;

/// `text_delta`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TextDelta {
    /// Text to append.
    pub text: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input_json_delta`: a fragment of the tool input's JSON text.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InputJsonDelta {
    /// JSON text fragment (may be empty); parse only at `content_block_stop`.
    pub partial_json: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `thinking_delta`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThinkingDelta {
    /// Reasoning text to append.
    pub thinking: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `signature_delta`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SignatureDelta {
    /// The thinking block's signature.
    pub signature: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `citations_delta`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CitationsDelta {
    /// One citation, kept as JSON.
    pub citation: Value,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

open_tagged_enum! {
    /// The `delta` of a `content_block_delta` event.
    Delta {
        /// `text_delta`
        Text(TextDelta) => "text_delta",
        /// `input_json_delta`
        InputJson(InputJsonDelta) => "input_json_delta",
        /// `thinking_delta`
        Thinking(ThinkingDelta) => "thinking_delta",
        /// `signature_delta`
        Signature(SignatureDelta) => "signature_delta",
        /// `citations_delta`
        Citations(CitationsDelta) => "citations_delta",
    }
}

impl Delta {
    /// The size in bytes of what this delta adds to its block (its text, JSON fragment,
    /// thinking or signature), without serializing; other kinds count as their JSON size.
    /// Layers use it to bound what they keep of a stream.
    #[must_use]
    pub fn content_len(&self) -> usize {
        match self {
            Self::Text(d) => d.text.len(),
            Self::InputJson(d) => d.partial_json.len(),
            Self::Thinking(d) => d.thinking.len(),
            Self::Signature(d) => d.signature.len(),
            other => serde_json::to_vec(other).map_or(0, |v| v.len()),
        }
    }
}

/// `message_start`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStartEvent {
    /// The message shell with the initial usage.
    pub message: Message,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `content_block_start`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentBlockStartEvent {
    /// Block index.
    pub index: usize,
    /// The empty (or, for some server-tool results, complete) block.
    pub content_block: ContentBlock,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `content_block_delta`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentBlockDeltaEvent {
    /// Block index.
    pub index: usize,
    /// The change.
    pub delta: Delta,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `content_block_stop`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentBlockStopEvent {
    /// Block index.
    pub index: usize,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `delta` of a `message_delta` event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageDelta {
    /// Final stop reason.
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    /// Matched stop sequence.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Refusal details.
    #[serde(
        default,
        deserialize_with = "crate::macros::keep_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_details: Option<Value>,
    /// Container info.
    #[serde(
        default,
        deserialize_with = "crate::macros::keep_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub container: Option<Value>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `message_delta`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageDeltaEvent {
    /// Top-level changes.
    #[serde(default)]
    pub delta: MessageDelta,
    /// Cumulative usage (overwrite, never sum).
    #[serde(default)]
    pub usage: MessageDeltaUsage,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An event with no payload of its own (`message_stop`, `ping`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EmptyEvent {
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `error` (after HTTP 200).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// `{type, message}`
    pub error: ApiErrorBody,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

open_tagged_enum! {
    /// One server-sent event of a streamed response, typed by its `type`.
    StreamEvent {
        /// `message_start` (boxed, like the other once-per-stream or once-per-block events, so
        /// that the enum stays small for the deltas that make up almost all of a stream)
        MessageStart(Box<MessageStartEvent>) => "message_start",
        /// `content_block_start`
        ContentBlockStart(Box<ContentBlockStartEvent>) => "content_block_start",
        /// `content_block_delta`
        ContentBlockDelta(ContentBlockDeltaEvent) => "content_block_delta",
        /// `content_block_stop`
        ContentBlockStop(ContentBlockStopEvent) => "content_block_stop",
        /// `message_delta`
        MessageDelta(Box<MessageDeltaEvent>) => "message_delta",
        /// `message_stop`
        MessageStop(EmptyEvent) => "message_stop",
        /// `ping`
        Ping(EmptyEvent) => "ping",
        /// `error`
        Error(Box<ErrorEvent>) => "error",
    }
}

impl StreamEvent {
    /// Parses one SSE frame: its `event:` name and its `data:` text.
    ///
    /// Data that is not JSON, or whose `type` is unknown, becomes [`StreamEvent::Unknown`]
    /// (never an error) unless the event name is a known one.
    ///
    /// # Errors
    /// A known event (by name or by `type`) whose JSON does not have the documented shape.
    pub fn from_sse(event: &str, data: &str) -> Result<Self, crate::Error> {
        if let Some(parsed) = fast::parse(event, data) {
            return Ok(parsed);
        }
        match serde_json::from_str::<Self>(data) {
            Ok(parsed) => Ok(parsed),
            Err(e) => {
                let known = matches!(
                    event,
                    "message_start"
                        | "content_block_start"
                        | "content_block_delta"
                        | "content_block_stop"
                        | "message_delta"
                        | "message_stop"
                        | "error"
                );
                if known || serde_json::from_str::<Value>(data).is_ok() {
                    Err(crate::Error::decode(format!(
                        "invalid `{event}` event: {e}"
                    )))
                } else {
                    let mut raw = Extra::new();
                    raw.insert("event".to_owned(), Value::String(event.to_owned()));
                    raw.insert("data".to_owned(), Value::String(data.to_owned()));
                    Ok(Self::Unknown(Value::Object(raw)))
                }
            }
        }
    }

    /// The SSE event name for this event (its `type`; `"message"` for an unknown event that
    /// has none).
    #[must_use]
    pub fn event_name(&self) -> &str {
        match self.type_name() {
            "" => "message",
            name => name,
        }
    }

    /// Whether this event carries model output (a content block start or delta), i.e. once it
    /// went downstream a retry can no longer be transparent.
    #[must_use]
    pub fn is_content(&self) -> bool {
        matches!(
            self,
            Self::ContentBlockStart(_) | Self::ContentBlockDelta(_)
        )
    }

    /// Encodes the event as one SSE frame (`event: …\ndata: …\n\n`).
    #[must_use]
    pub fn to_sse(&self) -> String {
        let data = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        format!("event: {}\ndata: {data}\n\n", self.event_name())
    }
}

impl Message {
    /// The event sequence the API would stream for this message, with text split into
    /// chunks of at most `chunk_chars` characters (at least 1).
    ///
    /// Feeding the events to a [`MessageAccumulator`](crate::MessageAccumulator) rebuilds a
    /// message equal to `self`. Used by the mock and by replaying caches.
    #[must_use]
    pub fn to_events(&self, chunk_chars: usize) -> Vec<StreamEvent> {
        let chunk_chars = chunk_chars.max(1);
        let mut start = self.clone();
        start.content.clear();
        start.stop_reason = None;
        start.stop_sequence = None;
        start.stop_details = None;
        start.usage.output_tokens = self.usage.output_tokens.min(1);
        start.usage.server_tool_use = None;
        start.usage.output_tokens_details = None;
        let mut events = vec![StreamEvent::MessageStart(Box::new(MessageStartEvent {
            message: start,
            extra: Extra::new(),
        }))];
        for (index, block) in self.content.iter().enumerate() {
            let (shell, deltas) = split_block(block, chunk_chars);
            events.push(StreamEvent::ContentBlockStart(Box::new(
                ContentBlockStartEvent {
                    index,
                    content_block: shell,
                    extra: Extra::new(),
                },
            )));
            events.extend(deltas.into_iter().map(|delta| {
                StreamEvent::ContentBlockDelta(ContentBlockDeltaEvent {
                    index,
                    delta,
                    extra: Extra::new(),
                })
            }));
            events.push(StreamEvent::ContentBlockStop(ContentBlockStopEvent {
                index,
                extra: Extra::new(),
            }));
        }
        events.push(StreamEvent::MessageDelta(Box::new(MessageDeltaEvent {
            delta: MessageDelta {
                stop_reason: self.stop_reason.clone(),
                stop_sequence: self.stop_sequence.clone(),
                stop_details: self.stop_details.clone(),
                container: None,
                extra: Extra::new(),
            },
            usage: MessageDeltaUsage::from(&self.usage),
            extra: Extra::new(),
        })));
        events.push(StreamEvent::MessageStop(EmptyEvent::default()));
        events
    }
}

fn chunks(text: &str, chunk_chars: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(chunk_chars)
        .map(|c| c.iter().collect())
        .collect()
}

/// Splits a complete block into the shell sent in `content_block_start` and its deltas.
fn split_block(block: &ContentBlock, chunk_chars: usize) -> (ContentBlock, Vec<Delta>) {
    match block {
        ContentBlock::Text(text) if text.citations.is_none() => {
            let shell = ContentBlock::Text(TextBlock {
                text: String::new(),
                ..text.clone()
            });
            let deltas = chunks(&text.text, chunk_chars)
                .into_iter()
                .map(|text| {
                    Delta::Text(TextDelta {
                        text,
                        extra: Extra::new(),
                    })
                })
                .collect();
            (shell, deltas)
        }
        ContentBlock::ToolUse(tool) | ContentBlock::ServerToolUse(tool) => {
            let shell_tool = ToolUseBlock {
                input: Value::Object(Extra::new()),
                ..tool.clone()
            };
            let shell = if matches!(block, ContentBlock::ToolUse(_)) {
                ContentBlock::ToolUse(shell_tool)
            } else {
                ContentBlock::ServerToolUse(shell_tool)
            };
            let json = serde_json::to_string(&tool.input).unwrap_or_default();
            let deltas = chunks(&json, chunk_chars)
                .into_iter()
                .map(|partial_json| {
                    Delta::InputJson(InputJsonDelta {
                        partial_json,
                        extra: Extra::new(),
                    })
                })
                .collect();
            (shell, deltas)
        }
        ContentBlock::Thinking(thinking) => {
            let shell = ContentBlock::Thinking(ThinkingBlock {
                thinking: String::new(),
                signature: String::new(),
                extra: thinking.extra.clone(),
            });
            let mut deltas: Vec<Delta> = chunks(&thinking.thinking, chunk_chars)
                .into_iter()
                .map(|thinking| {
                    Delta::Thinking(ThinkingDelta {
                        thinking,
                        extra: Extra::new(),
                    })
                })
                .collect();
            deltas.push(Delta::Signature(SignatureDelta {
                signature: thinking.signature.clone(),
                extra: Extra::new(),
            }));
            (shell, deltas)
        }
        other => (other.clone(), Vec::new()),
    }
}
