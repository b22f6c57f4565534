//! A fast, dependency-free estimate of a request's input tokens.
//!
//! Used by layers that must decide **before** sending (rate-limit reservations, budgets,
//! trimming) and by the mock to report usage. It is not a tokenizer and never used for
//! billing; exact counts come from the `count_tokens` endpoint.
//!
//! # Rule
//!
//! - Text: ASCII characters count 1 token per 3.5 characters (rounded up); every other
//!   character counts 1 token (CJK is close to 1 token per character; accented Latin is
//!   over-counted).
//! - Each message adds 4 tokens of framing; the system prompt adds 4.
//! - Tools: name, description and the JSON text of the schema as text, plus 8 tokens each,
//!   plus 350 tokens once for the tool-use system prompt the API adds when tools are present.
//! - `tool_use` input, `tool_result` content and unknown blocks: their JSON text.
//! - Images: 1,600 tokens each (the API resizes images to about 1.15 megapixels ≈ 1,600
//!   tokens, the maximum for one image).
//! - PDF documents: 2,000 tokens per started 60 KB of decoded data (text plus page images).
//!
//! # Error bound
//!
//! Measured (2026-11-23) against the legacy Claude tokenizer (`tokenizer.json` of the
//! `anthropic` 0.38.0 Python package, the last public one), as the ratio
//! estimate ÷ real count on 2,000-character chunks:
//!
//! | text | median | range over chunks | whole corpus |
//! |---|---|---|---|
//! | English prose and Markdown tables (89 KB) | 0.93 | 0.64 – 1.14 | 0.90 |
//! | plain English (license texts) | 1.43 | 1.39 – 1.55 | 1.35 |
//! | Rust source (189 KB) | 1.03 | 0.78 – 1.47 | 1.04 |
//! | JSON / SSE bodies (23 KB) | 0.91 | 0.88 – 0.96 | 0.92 |
//! | Japanese | 0.92 | — | 0.92 |
//!
//! So a single 2 KB piece of text is within about **−35 % / +55 %**, and a whole mixed
//! conversation usually within **±10 %**. The legacy tokenizer is itself only an approximation
//! for Claude 3+ models, and newer models (Opus 4.7+, Sonnet 5) use a tokenizer that produces
//! more tokens for the same text; layers that must not under-reserve add a safety margin, and
//! exact counts come from `count_tokens`. Images and PDFs are coarse (the real cost depends on
//! pixels and pages).

use serde_json::{Map, Value};

use crate::content::{ContentBlock, MediaBlock, ToolResultContent};
use crate::request::{InputSchema, MessageContent, MessagesRequest, System};

/// The estimate's error bound on a whole request, legacy tokenizer, in percent: the real count
/// is at most this share of the estimate (the lowest whole-corpus ratio measured above is
/// 0.90, so ×1.12), plus [`UPPER_BOUND_SLACK_TOKENS`].
pub const UPPER_BOUND_PERCENT_LEGACY: u64 = 112;
/// The same for models with the newer tokenizer (Opus 4.7, Sonnet 5 and later: about 30 % more
/// tokens for the same text): ×1.12 × 1.30.
pub const UPPER_BOUND_PERCENT_NEWER: u64 = 146;
/// Absolute slack of the bound, for short requests (where a single piece of text can be off
/// by −35 %).
pub const UPPER_BOUND_SLACK_TOKENS: u64 = 64;

/// An upper bound on the real input tokens of a request estimated at `estimate` tokens: for
/// layers that must not under-reserve (budgets). `legacy_tokenizer` is
/// [`ModelTable::legacy_tokenizer`](crate::models::ModelTable::legacy_tokenizer) of the model.
/// The bound covers mixed conversations of the measured kinds; a request made only of text
/// the estimate undercounts most (short pieces at −35 %) can still exceed it, and exact
/// counts come from `count_tokens`.
///
/// ```
/// use claude_tower::core::estimate::upper_bound;
/// assert_eq!(upper_bound(10_000, true), 11_264);
/// assert_eq!(upper_bound(10_000, false), 14_664);
/// assert_eq!(upper_bound(u64::MAX, false), u64::MAX);
/// ```
#[must_use]
pub fn upper_bound(estimate: u64, legacy_tokenizer: bool) -> u64 {
    let percent = if legacy_tokenizer {
        UPPER_BOUND_PERCENT_LEGACY
    } else {
        UPPER_BOUND_PERCENT_NEWER
    };
    let scaled = (u128::from(estimate) * u128::from(percent)).div_ceil(100);
    u64::try_from(scaled)
        .unwrap_or(u64::MAX)
        .saturating_add(UPPER_BOUND_SLACK_TOKENS)
}

/// Tokens of framing per message.
pub const MESSAGE_OVERHEAD_TOKENS: u64 = 4;
/// Tokens the API adds for the tool-use system prompt when tools are present.
pub const TOOL_SYSTEM_PROMPT_TOKENS: u64 = 350;
/// Tokens per tool definition on top of its text.
pub const TOOL_OVERHEAD_TOKENS: u64 = 8;
/// Tokens per image.
pub const IMAGE_TOKENS: u64 = 1_600;

impl InputSchema {
    /// Estimated tokens of the schema's JSON ([`estimate_value_tokens`]), computed on first
    /// use and kept.
    #[must_use]
    pub fn estimated_tokens(&self) -> u64 {
        *self
            .tokens_cell()
            .get_or_init(|| estimate_value_tokens(self.value()))
    }
}

/// Estimated tokens of a text.
#[must_use]
pub fn estimate_text_tokens(text: &str) -> u64 {
    // ASCII bytes are ASCII characters; every non-ASCII character has exactly one leading
    // byte (0b11xx_xxxx). Pure-ASCII text (the common case) takes std's word-at-a-time check;
    // otherwise byte counts in u8 lanes over 255-byte chunks, which the compiler vectorises.
    let bytes = text.as_bytes();
    let (ascii, other) = if bytes.is_ascii() {
        (bytes.len() as u64, 0)
    } else {
        let mut ascii = 0u64;
        let mut other = 0u64;
        for chunk in bytes.chunks(255) {
            ascii += u64::from(chunk.iter().map(|&b| u8::from(b < 0x80)).sum::<u8>());
            other += u64::from(chunk.iter().map(|&b| u8::from(b >= 0xC0)).sum::<u8>());
        }
        (ascii, other)
    };
    tokens_of(ascii, other)
}

/// Tokens of `ascii` ASCII characters and `other` other characters.
fn tokens_of(ascii: u64, other: u64) -> u64 {
    // ceil(ascii / 3.5) = ceil(2 * ascii / 7)
    (2 * ascii).div_ceil(7) + other
}

/// Counts the characters of what is written to it (JSON, streamed by serde_json).
#[derive(Default)]
struct CharCounter {
    ascii: u64,
    other: u64,
}

impl std::io::Write for CharCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if bytes.is_ascii() {
            self.ascii += bytes.len() as u64;
        } else {
            self.ascii += bytes.iter().filter(|&&b| b < 0x80).count() as u64;
            self.other += bytes.iter().filter(|&&b| b >= 0xC0).count() as u64;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CharCounter {
    fn text(&mut self, text: &str) {
        let _ = std::io::Write::write(self, text.as_bytes());
    }

    /// A JSON string as serde_json writes it: quoted, with `"`, `\\` and control characters
    /// escaped (`\n` and the like in two characters, others as `\u00XX`).
    fn string(&mut self, text: &str) {
        self.text(text);
        self.ascii += 2;
        let bytes = text.as_bytes();
        // Most strings need no escape: a branch-free count (vectorised) tells, 255 at a time.
        let needs_escape = |b: u8| u8::from(b < 0x20 || b == b'"' || b == b'\\');
        let escaped: u32 = bytes
            .chunks(255)
            .map(|chunk| u32::from(chunk.iter().map(|&b| needs_escape(b)).sum::<u8>()))
            .sum();
        if escaped == 0 {
            return;
        }
        for &byte in bytes {
            self.ascii += match byte {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0C => 1,
                0x00..=0x1F => 5,
                _ => 0,
            };
        }
    }

    /// The compact serialization of `value`, counted by walking it (no serializer).
    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.ascii += 4,
            Value::Bool(true) => self.ascii += 4,
            Value::Bool(false) => self.ascii += 5,
            Value::Number(number) => {
                if let Some(n) = number.as_u64() {
                    self.ascii += u64::from(n.checked_ilog10().unwrap_or(0)) + 1;
                } else if let Some(n) = number.as_i64() {
                    self.ascii += u64::from(n.unsigned_abs().checked_ilog10().unwrap_or(0)) + 2;
                } else {
                    self.text(&number.to_string());
                }
            }
            Value::String(text) => self.string(text),
            Value::Array(items) => {
                self.ascii += 2 + items.len().saturating_sub(1) as u64;
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(map) => self.map(map),
        }
    }

    fn map(&mut self, map: &Map<String, Value>) {
        // `{`, `}`, a `:` per entry and a `,` between entries.
        self.ascii += 2 + (2 * map.len()).saturating_sub(1) as u64;
        for (key, value) in map {
            self.string(key);
            self.value(value);
        }
    }
}

/// Estimated tokens of a JSON value: [`estimate_text_tokens`] of its compact serialization,
/// counted by walking the value (no string is built, nothing is formatted but floats).
#[must_use]
pub fn estimate_value_tokens(value: &Value) -> u64 {
    let mut counter = CharCounter::default();
    counter.value(value);
    tokens_of(counter.ascii, counter.other)
}

/// [`estimate_value_tokens`] of a JSON object.
pub(crate) fn estimate_map_tokens(map: &Map<String, Value>) -> u64 {
    let mut counter = CharCounter::default();
    counter.map(map);
    tokens_of(counter.ascii, counter.other)
}

/// Estimated tokens of a value's JSON, as [`estimate_text_tokens`] of its compact
/// serialization, counted while serializing (no string is built).
#[must_use]
pub fn estimate_json_tokens<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    let mut counter = CharCounter::default();
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => tokens_of(counter.ascii, counter.other),
        Err(_) => 0,
    }
}

fn estimate_media(block: &MediaBlock, document: bool) -> u64 {
    let source_type = block
        .source
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("");
    let data = block
        .source
        .get("data")
        .and_then(|d| d.as_str())
        .unwrap_or("");
    if !document {
        return IMAGE_TOKENS;
    }
    match source_type {
        "text" => estimate_text_tokens(data),
        "content" => estimate_value_tokens(&block.source),
        _ => {
            let decoded = (data.len() as u64) * 3 / 4;
            decoded.div_ceil(60_000).max(1) * 2_000
        }
    }
}

/// Estimated tokens of one tool definition (its name, description, schema and other
/// fields), without the tool-use system prompt.
#[must_use]
pub fn estimate_tool_tokens(tool: &crate::Tool) -> u64 {
    let mut tokens = TOOL_OVERHEAD_TOKENS + estimate_text_tokens(&tool.name);
    tokens += tool.description.as_deref().map_or(0, estimate_text_tokens);
    tokens += tool
        .input_schema
        .as_ref()
        .map_or(0, InputSchema::estimated_tokens);
    if !tool.extra.is_empty() {
        tokens += estimate_map_tokens(&tool.extra);
    }
    tokens
}

/// Estimated tokens of one content block.
#[must_use]
pub fn estimate_block_tokens(block: &ContentBlock) -> u64 {
    match block {
        ContentBlock::Text(text) => estimate_text_tokens(&text.text),
        ContentBlock::Image(media) => estimate_media(media, false),
        ContentBlock::Document(media) => estimate_media(media, true),
        ContentBlock::Thinking(thinking) => estimate_text_tokens(&thinking.thinking),
        ContentBlock::RedactedThinking(redacted) => estimate_text_tokens(&redacted.data) / 4,
        ContentBlock::ToolUse(tool) | ContentBlock::ServerToolUse(tool) => {
            estimate_text_tokens(&tool.name) + estimate_value_tokens(&tool.input) + 4
        }
        ContentBlock::ToolResult(result) => {
            4 + match &result.content {
                None => 0,
                Some(ToolResultContent::Text(text)) => estimate_text_tokens(text),
                Some(ToolResultContent::Blocks(blocks)) => {
                    blocks.iter().map(estimate_block_tokens).sum()
                }
            }
        }
        other => estimate_json_tokens(other),
    }
}

fn estimate_content(content: &MessageContent) -> u64 {
    match content {
        MessageContent::Text(text) => estimate_text_tokens(text),
        MessageContent::Blocks(blocks) => blocks.iter().map(estimate_block_tokens).sum(),
    }
}

impl MessagesRequest {
    /// Estimated input tokens of the whole prompt (tools, system, messages); see the
    /// [`estimate`](crate::estimate) module for the rule and its error bound.
    ///
    /// ```
    /// use claude_tower::core::MessagesRequest;
    /// let request = MessagesRequest::new("claude-haiku-4-5", 64).user("Hello, Claude!");
    /// // 14 ASCII characters ≈ 4 tokens, plus 4 tokens of message framing.
    /// assert_eq!(request.estimate_input_tokens(), 8);
    /// ```
    #[must_use]
    pub fn estimate_input_tokens(&self) -> u64 {
        let mut total = 0;
        if let Some(tools) = &self.tools {
            if !tools.is_empty() {
                total += TOOL_SYSTEM_PROMPT_TOKENS;
            }
            for tool in tools.iter() {
                total += estimate_tool_tokens(tool);
            }
        }
        if let Some(system) = &self.system {
            total += MESSAGE_OVERHEAD_TOKENS
                + match system.as_ref() {
                    System::Text(text) => estimate_text_tokens(text),
                    System::Blocks(blocks) => blocks.iter().map(estimate_block_tokens).sum(),
                };
        }
        for message in self.messages.iter() {
            total += MESSAGE_OVERHEAD_TOKENS + estimate_content(&message.content);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value: every kind of number, strings with escapes, control characters and
    /// non-ASCII text, nested arrays and objects.
    fn json() -> impl Strategy<Value = Value> {
        let text = "(\\PC|[\\x00-\\x1f\"\\\\/]|é|日本|🦀){0,12}";
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            text.prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(text, inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Walking a value counts exactly what serializing it writes.
        #[test]
        fn walking_a_value_counts_its_serialization(value in json()) {
            let serialized = serde_json::to_string(&value).unwrap();
            prop_assert_eq!(estimate_value_tokens(&value), estimate_text_tokens(&serialized));
            prop_assert_eq!(estimate_json_tokens(&value), estimate_text_tokens(&serialized));
            if let Value::Object(map) = &value {
                prop_assert_eq!(estimate_map_tokens(map), estimate_text_tokens(&serialized));
            }
        }
    }

    #[test]
    fn text_rule() {
        assert_eq!(estimate_text_tokens(""), 0);
        assert_eq!(estimate_text_tokens("a"), 1);
        assert_eq!(estimate_text_tokens("abcdefg"), 2);
        assert_eq!(estimate_text_tokens("日本語"), 3);
    }

    #[test]
    fn estimate_grows_with_content_and_tools() {
        let small = MessagesRequest::new("m", 10).user("hi");
        let big = MessagesRequest::new("m", 10).user("hi ".repeat(1000));
        assert!(big.estimate_input_tokens() > small.estimate_input_tokens() + 800);
        let tools = small
            .clone()
            .tools(vec![crate::Tool::new("t", "d", serde_json::json!({}))]);
        assert!(
            tools.estimate_input_tokens()
                >= small.estimate_input_tokens() + TOOL_SYSTEM_PROMPT_TOKENS
        );
    }
}

/// Inputs whose size the estimate cannot know before sending (see
/// [`MessagesRequest::unknown_size_inputs`]): budgets reserve a worst case for each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnknownInputs {
    /// Documents given by URL or file id (the estimate counts them at a flat size).
    pub documents: u64,
    /// Images given by URL or file id.
    pub images: u64,
    /// Allowed uses of server tools that add input to the prompt (web fetch, web search,
    /// code execution, …): each tool's `max_uses`, else 10.
    pub tool_uses: u64,
}

impl UnknownInputs {
    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl std::fmt::Display for UnknownInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} document(s) and {} image(s) by URL or file, {} server-tool use(s) adding input",
            self.documents, self.images, self.tool_uses
        )
    }
}

/// Server tool types whose results are added to the prompt.
const INPUT_ADDING_TOOLS: &[&str] = &[
    "web_fetch",
    "web_search",
    "code_execution",
    "bash_code_execution",
    "text_editor_code_execution",
    "tool_search",
    "mcp_toolset",
];

fn unknown_in_block(block: &ContentBlock, out: &mut UnknownInputs) {
    let by_reference = |media: &MediaBlock| {
        matches!(
            media.source.get("type").and_then(Value::as_str),
            Some("url" | "file")
        )
    };
    match block {
        ContentBlock::Document(media) if by_reference(media) => {
            out.documents = out.documents.saturating_add(1);
        }
        ContentBlock::Image(media) if by_reference(media) => {
            out.images = out.images.saturating_add(1);
        }
        ContentBlock::ToolResult(result) => {
            if let Some(ToolResultContent::Blocks(blocks)) = &result.content {
                for inner in blocks {
                    unknown_in_block(inner, out);
                }
            }
        }
        _ => {}
    }
}

impl MessagesRequest {
    /// Counts the inputs whose size cannot be known before sending: documents and images by
    /// URL or file id (in messages, tool results and the system prompt), and the allowed uses
    /// of server tools that add input.
    #[must_use]
    pub fn unknown_size_inputs(&self) -> UnknownInputs {
        let mut out = UnknownInputs::default();
        if let Some(System::Blocks(blocks)) = self.system.as_deref() {
            for block in blocks {
                unknown_in_block(block, &mut out);
            }
        }
        for message in self.messages.iter() {
            if let MessageContent::Blocks(blocks) = &message.content {
                for block in blocks {
                    unknown_in_block(block, &mut out);
                }
            }
        }
        for tool in self.tools.iter().flat_map(|t| t.iter()) {
            let Some(kind) = tool.kind.as_deref() else {
                continue;
            };
            if INPUT_ADDING_TOOLS
                .iter()
                .any(|prefix| kind.starts_with(prefix))
            {
                let uses = tool
                    .extra
                    .get("max_uses")
                    .and_then(Value::as_u64)
                    .unwrap_or(10);
                out.tool_uses = out.tool_uses.saturating_add(uses);
            }
        }
        out
    }
}
