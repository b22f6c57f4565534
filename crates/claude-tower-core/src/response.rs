//! The response object ([`Message`]) and token accounting ([`Usage`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::content::{ContentBlock, Extra, ToolUseBlock};
use crate::macros::open_str_enum;
use crate::request::{MessageContent, MessageParam, Role};

open_str_enum! {
    /// Why the model stopped.
    StopReason {
        /// Natural end of turn.
        EndTurn => "end_turn",
        /// Hit `max_tokens`.
        MaxTokens => "max_tokens",
        /// Hit a custom stop sequence.
        StopSequence => "stop_sequence",
        /// Wants to call tools.
        ToolUse => "tool_use",
        /// A long server-tool turn was paused; send the response back to continue.
        PauseTurn => "pause_turn",
        /// The safety classifier refused.
        Refusal => "refusal",
        /// The context window was exceeded.
        ModelContextWindowExceeded => "model_context_window_exceeded",
    }
}

/// `usage.cache_creation`: the TTL split of cache writes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheCreation {
    /// Tokens written with a 5 minute lifetime.
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    /// Tokens written with a 1 hour lifetime.
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
    /// Fields this crate does not model (kept on a round trip).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `usage.server_tool_use`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerToolUsage {
    /// Web searches run.
    #[serde(default)]
    pub web_search_requests: u64,
    /// Web fetches run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_fetch_requests: Option<u64>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    /// Reasoning tokens (observability only; included in `output_tokens`).
    #[serde(default)]
    pub thinking_tokens: u64,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token usage of one request (the Messages API reference).
///
/// Total prompt size = `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`
/// ([`Usage::total_input_tokens`]).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input: tokens after the last cache breakpoint.
    #[serde(default)]
    pub input_tokens: u64,
    /// Billed output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Tokens written to the prompt cache.
    pub cache_creation_input_tokens: Option<u64>,
    /// Tokens read from the prompt cache.
    pub cache_read_input_tokens: Option<u64>,
    /// TTL split of the cache writes.
    pub cache_creation: Option<CacheCreation>,
    /// Server tool counts.
    pub server_tool_use: Option<ServerToolUsage>,
    /// Output breakdown.
    pub output_tokens_details: Option<OutputTokensDetails>,
    /// `standard`, `priority` or `batch`.
    pub service_tier: Option<String>,
    /// Region actually used.
    pub inference_geo: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Usage {
    /// Cache writes (0 when absent).
    #[must_use]
    pub fn cache_write_tokens(&self) -> u64 {
        self.cache_creation_input_tokens.unwrap_or(0)
    }

    /// Cache reads (0 when absent).
    #[must_use]
    pub fn cache_read_tokens(&self) -> u64 {
        self.cache_read_input_tokens.unwrap_or(0)
    }

    /// The whole prompt: uncached + written + read.
    ///
    /// Usage numbers come from the network and are untrusted: the sum **saturates** at
    /// `u64::MAX` instead of overflowing (a count that large is already wrong; saturating keeps
    /// every later comparison and limit on the safe side, where wrapping would make it tiny).
    #[must_use]
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_write_tokens())
            .saturating_add(self.cache_read_tokens())
    }

    /// Input (uncached plus cache writes) and output tokens of the `compaction` entries of
    /// `usage.iterations` (Dec-2026 API, SDK 2.16.0): billed and counted by rate limits, but **not** in
    /// the top-level totals. Sums saturate.
    #[must_use]
    pub fn compaction_tokens(&self) -> (u64, u64) {
        let Some(entries) = self.extra.get("iterations").and_then(Value::as_array) else {
            return (0, 0);
        };
        entries
            .iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("compaction"))
            .fold((0u64, 0u64), |(input, output), e| {
                let sum = |names: &[&str]| {
                    names
                        .iter()
                        .filter_map(|name| e.get(*name).and_then(Value::as_u64))
                        .fold(0u64, u64::saturating_add)
                };
                (
                    input.saturating_add(sum(&["input_tokens", "cache_creation_input_tokens"])),
                    output.saturating_add(sum(&["output_tokens"])),
                )
            })
    }

    /// `usage.speed` (`standard` / `fast`), when the reply says.
    #[must_use]
    pub fn speed(&self) -> Option<&str> {
        self.extra.get("speed").and_then(Value::as_str)
    }

    /// `usage.fallback_credit`: whether a refusal's fallback credit was redeemed on this call
    /// (kept as the API sent it).
    #[must_use]
    pub fn fallback_credit(&self) -> Option<&Value> {
        self.extra.get("fallback_credit")
    }

    /// Applies a `message_delta` usage with the API's **overwrite** semantics: the delta is
    /// cumulative, so each present field replaces the current one (never summed).
    pub fn apply_delta(&mut self, delta: &MessageDeltaUsage) {
        if let Some(output) = delta.output_tokens {
            self.output_tokens = output;
        }
        if let Some(input) = delta.input_tokens {
            self.input_tokens = input;
        }
        if let Some(write) = delta.cache_creation_input_tokens {
            self.cache_creation_input_tokens = Some(write);
        }
        if let Some(read) = delta.cache_read_input_tokens {
            self.cache_read_input_tokens = Some(read);
        }
        if let Some(server) = &delta.server_tool_use {
            self.server_tool_use = Some(server.clone());
        }
        if let Some(details) = &delta.output_tokens_details {
            self.output_tokens_details = Some(details.clone());
        }
        for (key, value) in &delta.extra {
            self.extra.insert(key.clone(), value.clone());
        }
    }
}

/// The cumulative `usage` of a `message_delta` event; absent fields leave the current value.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MessageDeltaUsage {
    /// Output tokens so far (always sent by the API).
    pub output_tokens: Option<u64>,
    /// Input tokens (can grow when server tools run).
    pub input_tokens: Option<u64>,
    /// Cache writes.
    pub cache_creation_input_tokens: Option<u64>,
    /// Cache reads.
    pub cache_read_input_tokens: Option<u64>,
    /// Server tool counts.
    pub server_tool_use: Option<ServerToolUsage>,
    /// Output breakdown.
    pub output_tokens_details: Option<OutputTokensDetails>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl From<&Usage> for MessageDeltaUsage {
    fn from(usage: &Usage) -> Self {
        Self {
            output_tokens: Some(usage.output_tokens),
            input_tokens: Some(usage.input_tokens),
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            server_tool_use: usage.server_tool_use.clone(),
            output_tokens_details: usage.output_tokens_details.clone(),
            // `iterations`, `speed`, `service_tier`-like fields the API sends in the final
            // usage; `cache_creation` etc. are typed on `Usage` and not repeated here.
            extra: usage.extra.clone(),
        }
    }
}

fn message_kind() -> String {
    "message".to_owned()
}

fn assistant_role() -> Role {
    Role::Assistant
}

/// The response of `POST /v1/messages` (the Messages API reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `msg_…`
    pub id: String,
    /// Always `"message"`.
    #[serde(rename = "type", default = "message_kind")]
    pub kind: String,
    /// Always `assistant`.
    #[serde(default = "assistant_role")]
    pub role: Role,
    /// Content blocks.
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Why the model stopped (`None` only in `message_start`).
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    /// The stop sequence matched, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Details of a refusal.
    #[serde(
        default,
        deserialize_with = "crate::macros::keep_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_details: Option<Value>,
    /// Code-execution container info.
    #[serde(
        default,
        deserialize_with = "crate::macros::keep_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub container: Option<Value>,
    /// Token usage.
    #[serde(default)]
    pub usage: Usage,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `diagnostics.cache_miss_reason` of a reply (see [`Message::cache_miss`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheMiss<'a> {
    /// The reason's name (`model_changed`, `system_changed`, `tools_changed`,
    /// `messages_changed`, `previous_message_not_found`, `unavailable`, or one this crate does
    /// not know); `None` when the API sent `null`: the diagnosis is still pending.
    pub reason: Option<&'a str>,
    /// `cache_missed_input_tokens`, when given.
    pub missed_input_tokens: Option<u64>,
}

impl Message {
    /// An empty assistant message with the given id and model (used by `message_start`).
    #[must_use]
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: message_kind(),
            role: Role::Assistant,
            content: Vec::new(),
            model: model.into(),
            stop_reason: None,
            stop_sequence: None,
            stop_details: None,
            container: None,
            usage: Usage::default(),
            extra: Extra::new(),
        }
    }

    /// The concatenated text of all `text` blocks.
    #[must_use]
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(ContentBlock::as_text)
            .collect()
    }

    /// The `tool_use` blocks.
    pub fn tool_uses(&self) -> impl Iterator<Item = &ToolUseBlock> {
        self.content.iter().filter_map(|block| match block {
            ContentBlock::ToolUse(tool_use) => Some(tool_use),
            _ => None,
        })
    }

    /// `stop_details.fallback_credit_token` of a refusal (valid five minutes): sent with a retry
    /// of the same body on a fallback model, it refunds that retry's cache-miss cost
    /// (beta `fallback-credit-2026-07-01`).
    #[must_use]
    pub fn fallback_credit_token(&self) -> Option<&str> {
        self.stop_details
            .as_ref()?
            .get("fallback_credit_token")?
            .as_str()
    }

    /// The server-side fallback hops of this reply, in order (`fallback` blocks).
    pub fn fallback_hops(&self) -> impl Iterator<Item = crate::FallbackHop<'_>> {
        self.content.iter().filter_map(ContentBlock::fallback_hop)
    }

    /// `diagnostics.cache_miss_reason` of the reply, when the request asked for `diagnostics`:
    /// `None` when the reply has none.
    #[must_use]
    pub fn cache_miss(&self) -> Option<CacheMiss<'_>> {
        let diagnostics = self.extra.get("diagnostics")?;
        let reason = diagnostics.get("cache_miss_reason")?;
        let name = match reason {
            Value::Null => None,
            Value::String(name) => Some(name.as_str()),
            other => Some(other.get("type").and_then(Value::as_str).unwrap_or("")),
        };
        Some(CacheMiss {
            reason: name,
            // Beside the reason's `type` when the reason is an object, else beside the reason.
            missed_input_tokens: reason
                .get("cache_missed_input_tokens")
                .or_else(|| diagnostics.get("cache_missed_input_tokens"))
                .and_then(Value::as_u64),
        })
    }

    /// This reply as an `assistant` turn to append to the next request's history.
    #[must_use]
    pub fn to_param(&self) -> MessageParam {
        MessageParam::new(
            Role::Assistant,
            MessageContent::Blocks(self.content.clone()),
        )
    }
}
