//! The request body of `POST /v1/messages` ([`MessagesRequest`]) and its parts.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::content::{CacheControl, ContentBlock, Extra};
use crate::macros::{open_str_enum, open_tagged_enum, text_or_blocks};

open_str_enum! {
    /// The author of a message.
    Role {
        /// `user`
        User => "user",
        /// `assistant`
        Assistant => "assistant",
        /// `system` (mid-conversation system messages on the newest models).
        System => "system",
    }
}

/// A message's content: a plain string or a list of blocks.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    /// Shorthand for a single text block.
    Text(String),
    /// Content blocks.
    Blocks(Vec<ContentBlock>),
}

impl MessageContent {
    /// The content as blocks (a string becomes one `text` block).
    #[must_use]
    pub fn to_blocks(&self) -> Vec<ContentBlock> {
        match self {
            Self::Text(text) => vec![ContentBlock::text(text.clone())],
            Self::Blocks(blocks) => blocks.clone(),
        }
    }
}

impl From<String> for MessageContent {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&str> for MessageContent {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<Vec<ContentBlock>> for MessageContent {
    fn from(value: Vec<ContentBlock>) -> Self {
        Self::Blocks(value)
    }
}

text_or_blocks!(MessageContent, "message content");

/// One turn of the conversation (`{"role", "content"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageParam {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: MessageContent,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl MessageParam {
    /// A message with the given role and content.
    #[must_use]
    pub fn new(role: Role, content: impl Into<MessageContent>) -> Self {
        Self {
            role,
            content: content.into(),
            extra: Extra::new(),
        }
    }

    /// A `user` message.
    #[must_use]
    pub fn user(content: impl Into<MessageContent>) -> Self {
        Self::new(Role::User, content)
    }

    /// An `assistant` message.
    #[must_use]
    pub fn assistant(content: impl Into<MessageContent>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// A `system`-role message inside `messages` (API version `2026-10-21`): an instruction
    /// that applies from its position on. The top-level system prompt is
    /// [`MessagesRequest::system`].
    #[must_use]
    pub fn system(content: impl Into<MessageContent>) -> Self {
        Self::new(Role::System, content)
    }
}

/// The system prompt: a string or a list of text blocks (needed for `cache_control`).
#[derive(Debug, Clone, PartialEq)]
pub enum System {
    /// A plain string.
    Text(String),
    /// Text blocks.
    Blocks(Vec<ContentBlock>),
}

text_or_blocks!(System, "system");

/// A tool definition: a client tool (`name`, `description`, `input_schema`) or a versioned
/// server tool (`type: "web_search_20250305"`, …).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tool {
    /// The tool type for server/Anthropic tools (`None` for client tools, or `"custom"`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Tool name. Some server tools have none (`{"type": "mcp_toolset", "mcp_server_name": …}`):
    /// then it is empty and left out when serialized.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What the tool does.
    pub description: Option<String>,
    /// JSON schema of the input (client tools).
    pub input_schema: Option<InputSchema>,
    /// Cache breakpoint.
    pub cache_control: Option<CacheControl>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Tool {
    /// A client tool.
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
    ) -> Self {
        Self {
            name: name.into(),
            description: Some(description.into()),
            input_schema: Some(InputSchema::new(input_schema)),
            ..Self::default()
        }
    }
}

/// A tool's input schema: an immutable JSON value, shared by every copy of the tool (a
/// request that sets a cache marker on a tool copies the tool, not its schema), with its token
/// estimate computed once. It reads as a [`Value`] (`Deref`) and serializes as one.
///
/// ```
/// use claude_tower::core::InputSchema;
/// use serde_json::json;
///
/// let schema = InputSchema::new(json!({"type": "object", "properties": {}}));
/// assert_eq!(schema["type"], "object");
/// assert_eq!(schema.estimated_tokens(), schema.clone().estimated_tokens());
/// ```
#[derive(Clone)]
pub struct InputSchema(Arc<SchemaInner>);

struct SchemaInner {
    value: Value,
    tokens: std::sync::OnceLock<u64>,
}

impl InputSchema {
    /// Wraps a JSON schema.
    #[must_use]
    pub fn new(value: Value) -> Self {
        Self(Arc::new(SchemaInner {
            value,
            tokens: std::sync::OnceLock::new(),
        }))
    }

    /// The schema.
    #[must_use]
    pub fn value(&self) -> &Value {
        &self.0.value
    }

    /// The estimate kept for the schema (see `estimate`, where `estimated_tokens` lives).
    pub(crate) fn tokens_cell(&self) -> &std::sync::OnceLock<u64> {
        &self.0.tokens
    }
}

impl std::ops::Deref for InputSchema {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0.value
    }
}

impl From<Value> for InputSchema {
    fn from(value: Value) -> Self {
        Self::new(value)
    }
}

impl std::fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.value.fmt(f)
    }
}

impl PartialEq for InputSchema {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.value == other.0.value
    }
}

impl Serialize for InputSchema {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for InputSchema {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::new)
    }
}

/// `tool_choice`: `{"type": "auto" | "any" | "tool" | "none", …}`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolChoice {
    /// `auto`, `any`, `tool` or `none`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The forced tool, with `type: "tool"`.
    pub name: Option<String>,
    /// Disable parallel tool use.
    pub disable_parallel_tool_use: Option<bool>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ToolChoice {
    fn of(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            name: None,
            disable_parallel_tool_use: None,
            extra: Extra::new(),
        }
    }
    /// `{"type": "auto"}`
    #[must_use]
    pub fn auto() -> Self {
        Self::of("auto")
    }
    /// `{"type": "any"}`
    #[must_use]
    pub fn any() -> Self {
        Self::of("any")
    }
    /// `{"type": "none"}`
    #[must_use]
    pub fn none() -> Self {
        Self::of("none")
    }
    /// `{"type": "tool", "name": name}`
    #[must_use]
    pub fn tool(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::of("tool")
        }
    }
    /// Whether this choice forces a tool call (`any` or `tool`).
    #[must_use]
    pub fn is_forced(&self) -> bool {
        matches!(self.kind.as_str(), "any" | "tool")
    }
}

/// `thinking: {"type": "enabled", "budget_tokens": N}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThinkingEnabled {
    /// Reasoning budget (≥ 1024 and < `max_tokens`).
    pub budget_tokens: u32,
    /// `summarized` or `omitted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `thinking: {"type": "adaptive" | "disabled", …}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThinkingOther {
    /// `summarized` or `omitted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

open_tagged_enum! {
    /// Extended-thinking configuration.
    ThinkingConfig {
        /// `enabled` with a token budget.
        Enabled(ThinkingEnabled) => "enabled",
        /// `adaptive`
        Adaptive(ThinkingOther) => "adaptive",
        /// `disabled`
        Disabled(ThinkingOther) => "disabled",
    }
}

/// `metadata: {"user_id": …}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// An opaque end-user id (uuid or hash, no PII).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `output_config: {"effort", "format"}`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OutputConfig {
    /// `low`, `medium`, `high`, `xhigh`, `max`.
    pub effort: Option<String>,
    /// Structured-output format (JSON schema), kept as JSON.
    #[serde(default, deserialize_with = "crate::macros::keep_null")]
    pub format: Option<Value>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The body of `POST /v1/messages` (the Messages API reference).
///
/// The history (`messages`), `system` and `tools` sit behind [`Arc`], so cloning a request
/// (for a retry or a cache key) copies three pointers, not the conversation; use
/// [`Arc::make_mut`] (or [`MessagesRequest::messages_mut`] and
/// [`MessagesRequest::message_mut`]) to change them. Each message is shared on its own too,
/// so changing one message of a shared history (as the prompt-cache layer does when it marks
/// the tail) copies a list of pointers and that one message, not the conversation.
///
/// Fields this crate does not model are kept in `extra` and sent unchanged.
///
/// ```
/// use claude_tower::core::MessagesRequest;
///
/// let request = MessagesRequest::new("claude-sonnet-4-5", 1024)
///     .system("You are terse.")
///     .user("Hello, Claude");
/// assert_eq!(request.messages.len(), 1);
/// request.validate().unwrap();
/// ```
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// Model id, e.g. `claude-sonnet-4-5` (an open string, never an enum).
    pub model: String,
    /// Maximum output tokens (`0` only pre-warms the cache).
    pub max_tokens: u32,
    /// The conversation (shared as a whole and per message; see above).
    pub messages: Arc<Vec<Arc<MessageParam>>>,
    /// System prompt.
    pub system: Option<Arc<System>>,
    /// Tool definitions.
    pub tools: Option<Arc<Vec<Tool>>>,
    /// How the model may use tools.
    pub tool_choice: Option<ToolChoice>,
    /// Sampling temperature, 0.0–1.0.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling.
    pub top_k: Option<u32>,
    /// Custom stop sequences.
    pub stop_sequences: Option<Vec<String>>,
    /// Stream the response as server-sent events.
    pub stream: Option<bool>,
    /// Request metadata.
    pub metadata: Option<Metadata>,
    /// Extended thinking.
    pub thinking: Option<ThinkingConfig>,
    /// `auto` or `standard_only`.
    pub service_tier: Option<String>,
    /// Top-level (automatic) cache breakpoint.
    pub cache_control: Option<CacheControl>,
    /// Effort and structured output.
    pub output_config: Option<OutputConfig>,
    /// Data residency (`us`, `global`).
    pub inference_geo: Option<String>,
    /// Code-execution container (id string or object), kept as JSON.
    #[serde(default, deserialize_with = "crate::macros::keep_null")]
    pub container: Option<Value>,
    /// Fields this crate does not model (beta fields such as `speed`, `context_management`).
    #[serde(flatten)]
    pub extra: Extra,
}

impl MessagesRequest {
    /// A request for `model` with `max_tokens` and no messages yet.
    #[must_use]
    pub fn new(model: impl Into<String>, max_tokens: u32) -> Self {
        Self {
            model: model.into(),
            max_tokens,
            ..Self::default()
        }
    }

    /// Appends a message.
    #[must_use]
    pub fn message(mut self, message: MessageParam) -> Self {
        self.messages_mut().push(Arc::new(message));
        self
    }

    /// Appends a `user` message.
    #[must_use]
    pub fn user(self, content: impl Into<MessageContent>) -> Self {
        self.message(MessageParam::user(content))
    }

    /// Appends an `assistant` message.
    #[must_use]
    pub fn assistant(self, content: impl Into<MessageContent>) -> Self {
        self.message(MessageParam::assistant(content))
    }

    crate::setters! {
        /// Sets the system prompt.
        pub fn system(system: impl Into<String>) => system = Some(Arc::new(System::Text(system.into())));
        /// Sets the tools.
        pub fn tools(tools: Vec<Tool>) => tools = Some(Arc::new(tools));
        /// Sets `stream`.
        pub fn stream(stream: bool) => stream = Some(stream);
        /// Sets `temperature`.
        pub fn temperature(temperature: f64) => temperature = Some(temperature);
    }

    /// Whether the response will be a stream (`stream: true` in the body).
    #[must_use]
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Mutable access to the history (copy-on-write of the list if it is shared; the messages
    /// themselves stay shared: push, remove or reorder them here, and change one with
    /// [`message_mut`](Self::message_mut)).
    pub fn messages_mut(&mut self) -> &mut Vec<Arc<MessageParam>> {
        Arc::make_mut(&mut self.messages)
    }

    /// Mutable access to message `index` (copy-on-write of the list and of that message only,
    /// if they are shared); `None` past the end.
    ///
    /// ```
    /// use claude_tower::core::{MessageContent, MessagesRequest};
    ///
    /// let original = MessagesRequest::new("claude-sonnet-4-5", 64).user("a").user("b");
    /// let mut edited = original.clone();
    /// edited.message_mut(1).unwrap().content = MessageContent::from("c");
    /// assert_eq!(original.messages[1].content.text(), "b");
    /// assert_eq!(edited.messages[1].content.text(), "c");
    /// // The untouched message is still the same allocation.
    /// assert!(std::sync::Arc::ptr_eq(&original.messages[0], &edited.messages[0]));
    /// ```
    pub fn message_mut(&mut self, index: usize) -> Option<&mut MessageParam> {
        self.messages_mut().get_mut(index).map(Arc::make_mut)
    }

    /// Wraps the request into an `http::Request` (the type every layer takes), with no
    /// headers; add `anthropic-beta` and the like to its headers.
    #[must_use]
    pub fn into_http(self) -> http::Request<Self> {
        http::Request::new(self)
    }

    /// Serializes the request to JSON bytes.
    ///
    /// # Errors
    /// Only if a float field is not finite (JSON has no NaN/∞).
    pub fn to_json(&self) -> Result<Vec<u8>, crate::Error> {
        serde_json::to_vec(self).map_err(|e| {
            crate::Error::new(
                crate::ErrorKind::InvalidRequest,
                format!("cannot serialize request: {e}"),
            )
        })
    }
}
