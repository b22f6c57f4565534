//! Content blocks (`text`, `image`, `tool_use`, `tool_result`, …), shared by requests and
//! responses.
//!
//! Every block keeps fields this crate does not model in `extra`, and block types it does not
//! know at all in [`ContentBlock::Unknown`], so nothing is lost on a round trip.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::macros::{open_str_enum, open_tagged_enum, text_or_blocks};

/// Extra JSON fields kept verbatim.
pub type Extra = Map<String, Value>;

open_str_enum! {
    /// Cache lifetime of a `cache_control` breakpoint.
    CacheTtl {
        /// Five minutes (the default when `ttl` is absent).
        FiveMinutes => "5m",
        /// One hour (written at 2× the base input price).
        OneHour => "1h",
    }
}

/// A `cache_control` marker: `{"type": "ephemeral", "ttl": "5m" | "1h"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheControl {
    /// Always `"ephemeral"` today.
    #[serde(rename = "type")]
    pub kind: String,
    /// Lifetime; absent means five minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<CacheTtl>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl CacheControl {
    /// An ephemeral marker with the default (5 minute) lifetime.
    #[must_use]
    pub fn ephemeral() -> Self {
        Self {
            kind: "ephemeral".to_owned(),
            ttl: None,
            extra: Extra::new(),
        }
    }

    /// An ephemeral marker with an explicit lifetime.
    #[must_use]
    pub fn with_ttl(ttl: CacheTtl) -> Self {
        Self {
            ttl: Some(ttl),
            ..Self::ephemeral()
        }
    }

    /// The effective lifetime (`5m` when absent).
    #[must_use]
    pub fn effective_ttl(&self) -> CacheTtl {
        self.ttl.clone().unwrap_or(CacheTtl::FiveMinutes)
    }
}

/// `text` block.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TextBlock {
    /// The text.
    pub text: String,
    /// Citations (response side), kept as raw JSON.
    pub citations: Option<Vec<Value>>,
    /// Cache breakpoint.
    pub cache_control: Option<CacheControl>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `image` and `document` blocks: a `source` plus optional metadata.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MediaBlock {
    /// `{"type": "base64" | "url" | "text" | "file" | "content", …}`, kept as JSON.
    pub source: Value,
    /// Document title.
    pub title: Option<String>,
    /// Document context.
    pub context: Option<String>,
    /// Cache breakpoint.
    pub cache_control: Option<CacheControl>,
    /// Fields this crate does not model (e.g. `citations`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `thinking` block.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThinkingBlock {
    /// The (summarised) reasoning text.
    #[serde(default)]
    pub thinking: String,
    /// Signature that must be sent back unchanged.
    #[serde(default)]
    pub signature: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `redacted_thinking` block.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RedactedThinkingBlock {
    /// Encrypted reasoning.
    pub data: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `tool_use` and `server_tool_use` blocks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolUseBlock {
    /// `toolu_…` / `srvtoolu_…`.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Tool input (a JSON object).
    #[serde(default)]
    pub input: Value,
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Fields this crate does not model (e.g. `caller`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// Content of a `tool_result`: a string or a list of blocks.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolResultContent {
    /// Plain text.
    Text(String),
    /// Blocks (text, image, …).
    Blocks(Vec<ContentBlock>),
}

/// `tool_result` block.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolResultBlock {
    /// The `id` of the `tool_use` this answers.
    pub tool_use_id: String,
    /// Result content.
    pub content: Option<ToolResultContent>,
    /// Whether the tool failed.
    pub is_error: Option<bool>,
    /// Cache breakpoint.
    pub cache_control: Option<CacheControl>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Results of server tools (`web_search_tool_result`, `code_execution_tool_result`, …).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServerToolResultBlock {
    /// The `id` of the `server_tool_use` this answers.
    pub tool_use_id: String,
    /// Result content, kept as JSON.
    #[serde(default)]
    pub content: Value,
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// What a `fallback` block says (see [`ContentBlock::fallback_hop`]); the block itself keeps
/// every field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FallbackHop<'a> {
    /// The model that declined (`from`).
    pub from: Option<&'a str>,
    /// The model tried next (`to`).
    pub to: Option<&'a str>,
    /// `trigger.type` (`refusal`).
    pub trigger: Option<&'a str>,
    /// `trigger.category`: the refusal's policy category.
    pub category: Option<&'a str>,
}

/// Any other known block (`search_result`, `container_upload`, `mid_conv_system`): modelled
/// fields are only `cache_control`; the rest stays in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GenericBlock {
    /// Cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// All other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

open_tagged_enum! {
    /// One content block, in a request or a response (the Messages API reference).
    ContentBlock {
        /// `text`
        Text(TextBlock) => "text",
        /// `image`
        Image(MediaBlock) => "image",
        /// `document`
        Document(MediaBlock) => "document",
        /// `search_result`
        SearchResult(GenericBlock) => "search_result",
        /// `thinking`
        Thinking(ThinkingBlock) => "thinking",
        /// `redacted_thinking`
        RedactedThinking(RedactedThinkingBlock) => "redacted_thinking",
        /// `tool_use`
        ToolUse(ToolUseBlock) => "tool_use",
        /// `tool_result`
        ToolResult(ToolResultBlock) => "tool_result",
        /// `server_tool_use`
        ServerToolUse(ToolUseBlock) => "server_tool_use",
        /// `web_search_tool_result`
        WebSearchToolResult(ServerToolResultBlock) => "web_search_tool_result",
        /// `web_fetch_tool_result`
        WebFetchToolResult(ServerToolResultBlock) => "web_fetch_tool_result",
        /// `code_execution_tool_result`
        CodeExecutionToolResult(ServerToolResultBlock) => "code_execution_tool_result",
        /// `bash_code_execution_tool_result`
        BashCodeExecutionToolResult(ServerToolResultBlock) => "bash_code_execution_tool_result",
        /// `text_editor_code_execution_tool_result`
        TextEditorCodeExecutionToolResult(ServerToolResultBlock) => "text_editor_code_execution_tool_result",
        /// `tool_search_tool_result`
        ToolSearchToolResult(ServerToolResultBlock) => "tool_search_tool_result",
        /// `container_upload`
        ContainerUpload(GenericBlock) => "container_upload",
        /// `mid_conv_system`
        MidConvSystem(GenericBlock) => "mid_conv_system",
        /// `fallback`: one server-side fallback hop (`from`, `to`, `trigger`; Dec-2026 API, SDK 2.16.0),
        /// see [`ContentBlock::fallback_hop`].
        Fallback(GenericBlock) => "fallback",
    }
}

impl ContentBlock {
    /// A `text` block.
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(TextBlock {
            text: text.into(),
            ..TextBlock::default()
        })
    }

    /// A `tool_use` block.
    #[must_use]
    pub fn tool_use(id: impl Into<String>, name: impl Into<String>, input: Value) -> Self {
        Self::ToolUse(ToolUseBlock {
            id: id.into(),
            name: name.into(),
            input,
            ..ToolUseBlock::default()
        })
    }

    /// A `tool_result` block with text content.
    #[must_use]
    pub fn tool_result(tool_use_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::ToolResult(ToolResultBlock {
            tool_use_id: tool_use_id.into(),
            content: Some(ToolResultContent::Text(content.into())),
            ..ToolResultBlock::default()
        })
    }

    /// The hop of a `fallback` block (server-side fallback), read without failing on shapes
    /// this crate does not know: every field is optional.
    #[must_use]
    pub fn fallback_hop(&self) -> Option<FallbackHop<'_>> {
        let Self::Fallback(block) = self else {
            return None;
        };
        let text = |key: &str| block.extra.get(key).and_then(Value::as_str);
        let trigger = block.extra.get("trigger");
        let trigger_text = |key: &str| trigger.and_then(|t| t.get(key)).and_then(Value::as_str);
        Some(FallbackHop {
            from: text("from"),
            to: text("to"),
            trigger: trigger_text("type"),
            category: trigger_text("category"),
        })
    }

    /// The text of a `text` block.
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(block) => Some(&block.text),
            _ => None,
        }
    }

    /// The block's `cache_control`, if it has one (unknown blocks included).
    #[must_use]
    pub fn cache_control(&self) -> Option<CacheControl> {
        self.cache_control_ref().map_or_else(
            || match self {
                Self::Unknown(value) => value
                    .get("cache_control")
                    .and_then(|v| serde_json::from_value(v.clone()).ok()),
                _ => None,
            },
            |c| Some(c.clone()),
        )
    }

    fn cache_control_ref(&self) -> Option<&CacheControl> {
        match self {
            Self::Text(b) => b.cache_control.as_ref(),
            Self::Image(b) | Self::Document(b) => b.cache_control.as_ref(),
            Self::ToolUse(b) | Self::ServerToolUse(b) => b.cache_control.as_ref(),
            Self::ToolResult(b) => b.cache_control.as_ref(),
            Self::WebSearchToolResult(b)
            | Self::WebFetchToolResult(b)
            | Self::CodeExecutionToolResult(b)
            | Self::BashCodeExecutionToolResult(b)
            | Self::TextEditorCodeExecutionToolResult(b)
            | Self::ToolSearchToolResult(b) => b.cache_control.as_ref(),
            Self::SearchResult(b)
            | Self::ContainerUpload(b)
            | Self::MidConvSystem(b)
            | Self::Fallback(b) => b.cache_control.as_ref(),
            Self::Thinking(_) | Self::RedactedThinking(_) | Self::Unknown(_) => None,
        }
    }

    /// Mutable access to the block's `cache_control` slot, for block types that accept one
    /// (`None` for thinking blocks and unknown blocks).
    pub fn cache_control_mut(&mut self) -> Option<&mut Option<CacheControl>> {
        match self {
            Self::Text(b) => Some(&mut b.cache_control),
            Self::Image(b) | Self::Document(b) => Some(&mut b.cache_control),
            Self::ToolUse(b) | Self::ServerToolUse(b) => Some(&mut b.cache_control),
            Self::ToolResult(b) => Some(&mut b.cache_control),
            Self::WebSearchToolResult(b)
            | Self::WebFetchToolResult(b)
            | Self::CodeExecutionToolResult(b)
            | Self::BashCodeExecutionToolResult(b)
            | Self::TextEditorCodeExecutionToolResult(b)
            | Self::ToolSearchToolResult(b) => Some(&mut b.cache_control),
            Self::SearchResult(b)
            | Self::ContainerUpload(b)
            | Self::MidConvSystem(b)
            | Self::Fallback(b) => Some(&mut b.cache_control),
            Self::Thinking(_) | Self::RedactedThinking(_) | Self::Unknown(_) => None,
        }
    }
}

text_or_blocks!(ToolResultContent, "content");
