//! The prompt as the prompt cache sees it: a sequence of **positions** in prefix order (each
//! tool, each system block, each message block), with their estimated tokens and their
//! `cache_control` markers. Used by the mock's cache simulation and the prompt-cache layout.

use std::sync::Arc;

use crate::content::{CacheControl, ContentBlock};
use crate::estimate::{
    MESSAGE_OVERHEAD_TOKENS, TOOL_SYSTEM_PROMPT_TOKENS, estimate_block_tokens,
    estimate_text_tokens, estimate_tool_tokens,
};
use crate::request::{MessageContent, MessagesRequest, System};

/// Where a position lives in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Slot {
    /// `tools[i]`
    Tool(usize),
    /// `system` as a plain string.
    SystemText,
    /// `system[i]`
    System(usize),
    /// `messages[m]` with string content.
    MessageText(usize),
    /// `messages[m].content[b]`
    Message(usize, usize),
}

/// One position of the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    /// Where it is.
    pub slot: Slot,
    /// Estimated tokens (message framing and the tool-use system prompt are counted on the
    /// first position they belong to), so the positions sum to
    /// [`MessagesRequest::estimate_input_tokens`].
    pub tokens: u64,
    /// Its `cache_control`, if any.
    pub marker: Option<CacheControl>,
    /// Whether it may carry `cache_control` (thinking blocks and empty text cannot).
    pub cacheable: bool,
}

fn block_cacheable(block: &ContentBlock) -> bool {
    match block {
        ContentBlock::Thinking(_)
        | ContentBlock::RedactedThinking(_)
        | ContentBlock::Unknown(_) => false,
        ContentBlock::Text(text) => !text.text.is_empty(),
        _ => true,
    }
}

/// The positions of a request in prefix order (tools → system → messages).
#[must_use]
pub fn positions(request: &MessagesRequest) -> Vec<Position> {
    positions_counting_up_to(request, u64::MAX)
}

/// [`positions`], but token estimates stop once the running total reaches `limit`: later
/// positions report 0 tokens. For callers that only compare prefixes with a threshold (the
/// minimum cacheable length), this skips reading most of a long conversation.
#[must_use]
pub fn positions_counting_up_to(request: &MessagesRequest, limit: u64) -> Vec<Position> {
    walk(request, &mut UpTo { running: 0, limit })
}

/// [`positions`] with the tokens of a shared [`InputEstimate`] instead of estimating them
/// again; `None` when the estimate does not fit the request (another layout).
#[must_use]
pub fn positions_estimated(
    request: &MessagesRequest,
    estimate: &InputEstimate,
) -> Option<Vec<Position>> {
    let mut known = Known {
        tokens: estimate.tokens.iter(),
        missing: false,
    };
    let out = walk(request, &mut known);
    (!known.missing && known.tokens.next().is_none()).then_some(out)
}

/// Where a position's tokens come from: `estimate` runs the estimator (a generic method, so
/// each call site is inlined: no dynamic call per position).
trait Count {
    fn count(&mut self, estimate: impl FnOnce() -> u64) -> u64;
}

/// Estimates until `limit` tokens are counted, then 0.
struct UpTo {
    running: u64,
    limit: u64,
}

impl Count for UpTo {
    fn count(&mut self, estimate: impl FnOnce() -> u64) -> u64 {
        if self.running >= self.limit {
            return 0;
        }
        let tokens = estimate();
        self.running = self.running.saturating_add(tokens);
        tokens
    }
}

/// Takes each position's tokens from a shared estimate.
struct Known<'a> {
    tokens: std::slice::Iter<'a, u64>,
    missing: bool,
}

impl Count for Known<'_> {
    fn count(&mut self, _estimate: impl FnOnce() -> u64) -> u64 {
        self.tokens.next().copied().unwrap_or_else(|| {
            self.missing = true;
            0
        })
    }
}

/// The positions, with each one's tokens from `counting`.
fn walk(request: &MessagesRequest, counting: &mut impl Count) -> Vec<Position> {
    // One position per message is the common case (more for multi-block messages).
    let mut out: Vec<Position> = Vec::with_capacity(
        request.tools.as_ref().map_or(0, |t| t.len()) + 1 + request.messages.len(),
    );
    if let Some(tools) = &request.tools {
        for (i, tool) in tools.iter().enumerate() {
            let prompt = if i == 0 { TOOL_SYSTEM_PROMPT_TOKENS } else { 0 };
            let tokens = counting.count(|| estimate_tool_tokens(tool) + prompt);
            out.push(Position {
                slot: Slot::Tool(i),
                tokens,
                marker: tool.cache_control.clone(),
                cacheable: true,
            });
        }
    }
    if let Some(system) = &request.system {
        match system.as_ref() {
            System::Text(text) => out.push(Position {
                slot: Slot::SystemText,
                tokens: counting.count(|| MESSAGE_OVERHEAD_TOKENS + estimate_text_tokens(text)),
                marker: None,
                cacheable: !text.is_empty(),
            }),
            System::Blocks(blocks) => {
                for (i, block) in blocks.iter().enumerate() {
                    let framing = if i == 0 { MESSAGE_OVERHEAD_TOKENS } else { 0 };
                    out.push(Position {
                        slot: Slot::System(i),
                        tokens: counting.count(|| framing + estimate_block_tokens(block)),
                        marker: block.cache_control(),
                        cacheable: block_cacheable(block),
                    });
                }
                if blocks.is_empty() {
                    // Framing of an empty block list still counts.
                    out.push(Position {
                        slot: Slot::System(0),
                        tokens: counting.count(|| MESSAGE_OVERHEAD_TOKENS),
                        marker: None,
                        cacheable: false,
                    });
                }
            }
        }
    }
    for (m, message) in request.messages.iter().enumerate() {
        match &message.content {
            MessageContent::Text(text) => out.push(Position {
                slot: Slot::MessageText(m),
                tokens: counting.count(|| MESSAGE_OVERHEAD_TOKENS + estimate_text_tokens(text)),
                marker: None,
                cacheable: !text.is_empty(),
            }),
            MessageContent::Blocks(blocks) => {
                if blocks.is_empty() {
                    out.push(Position {
                        slot: Slot::Message(m, 0),
                        tokens: counting.count(|| MESSAGE_OVERHEAD_TOKENS),
                        marker: None,
                        cacheable: false,
                    });
                }
                for (b, block) in blocks.iter().enumerate() {
                    let framing = if b == 0 { MESSAGE_OVERHEAD_TOKENS } else { 0 };
                    out.push(Position {
                        slot: Slot::Message(m, b),
                        tokens: counting.count(|| framing + estimate_block_tokens(block)),
                        marker: block.cache_control(),
                        cacheable: block_cacheable(block),
                    });
                }
            }
        }
    }
    out
}

/// A request's estimated input tokens per position (in [`positions`] order), computed once
/// and shared by the layers that need them (trim stores it, budget and rate limit read it)
/// through the request's extensions: see [`InputEstimate::shared`] and [`InputEstimate::get`]. A layer that changes the request's content
/// removes it (or stores the new one); cache markers do not change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputEstimate {
    tokens: std::sync::Arc<[u64]>,
    total: u64,
}

impl InputEstimate {
    /// Estimates `request` (the same figures as [`positions`]).
    #[must_use]
    pub fn of(request: &MessagesRequest) -> Self {
        Self::from_positions(&positions(request))
    }

    /// The estimate of `positions` (as [`positions`] returned them).
    #[must_use]
    pub fn from_positions(positions: &[Position]) -> Self {
        let tokens: std::sync::Arc<[u64]> = positions.iter().map(|p| p.tokens).collect();
        let total = tokens.iter().fold(0u64, |sum, t| sum.saturating_add(*t));
        Self { tokens, total }
    }

    /// The estimate in the request's extensions, when there is one and it fits the request
    /// (a layer that needs the figures only for itself reads this, else estimates alone).
    #[must_use]
    pub fn get(request: &http::Request<MessagesRequest>) -> Option<&Self> {
        request
            .extensions()
            .get::<Self>()
            .filter(|known| known.tokens.len() == position_count(request.body()))
    }

    /// The request's estimate: the one in its extensions when it fits the request, else
    /// computed now and stored there for the next layer.
    pub fn shared(request: &mut http::Request<MessagesRequest>) -> Self {
        if let Some(known) = Self::get(request) {
            return known.clone();
        }
        let estimate = Self::of(request.body());
        request.extensions_mut().insert(estimate.clone());
        estimate
    }

    /// Estimated input tokens in all (equal to
    /// [`MessagesRequest::estimate_input_tokens`](crate::MessagesRequest::estimate_input_tokens)).
    #[must_use]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Estimated tokens of each position.
    #[must_use]
    pub fn tokens(&self) -> &[u64] {
        &self.tokens
    }
}

/// How many positions `request` has (cheap: no estimate).
#[must_use]
pub fn position_count(request: &MessagesRequest) -> usize {
    let tools = request.tools.as_ref().map_or(0, |t| t.len());
    let system = match request.system.as_deref() {
        None => 0,
        Some(System::Text(_)) => 1,
        Some(System::Blocks(blocks)) => blocks.len().max(1),
    };
    let messages: usize = request
        .messages
        .iter()
        .map(|m| match &m.content {
            MessageContent::Text(_) => 1,
            MessageContent::Blocks(blocks) => blocks.len().max(1),
        })
        .sum();
    tools + system + messages
}

/// Puts `marker` on the position at `slot` (a string system prompt or string message content
/// becomes a single text block first). Returns `false` when the position cannot carry one.
pub fn set_marker(request: &mut MessagesRequest, slot: Slot, marker: CacheControl) -> bool {
    match slot {
        Slot::Tool(i) => match request
            .tools
            .as_mut()
            .and_then(|t| Arc::make_mut(t).get_mut(i))
        {
            Some(tool) => {
                tool.cache_control = Some(marker);
                true
            }
            None => false,
        },
        Slot::SystemText | Slot::System(_) => {
            let Some(system) = request.system.as_mut() else {
                return false;
            };
            let system = Arc::make_mut(system);
            if let System::Text(text) = system {
                *system = System::Blocks(vec![ContentBlock::text(std::mem::take(text))]);
            }
            let index = if let Slot::System(i) = slot { i } else { 0 };
            match system {
                System::Blocks(blocks) => set_on_block(blocks.get_mut(index), marker),
                System::Text(_) => false,
            }
        }
        Slot::MessageText(m) | Slot::Message(m, _) => {
            let Some(message) = request.message_mut(m) else {
                return false;
            };
            if let MessageContent::Text(text) = &mut message.content {
                message.content =
                    MessageContent::Blocks(vec![ContentBlock::text(std::mem::take(text))]);
            }
            let index = if let Slot::Message(_, b) = slot { b } else { 0 };
            match &mut message.content {
                MessageContent::Blocks(blocks) => set_on_block(blocks.get_mut(index), marker),
                MessageContent::Text(_) => false,
            }
        }
    }
}

fn set_on_block(block: Option<&mut ContentBlock>, marker: CacheControl) -> bool {
    match block.and_then(ContentBlock::cache_control_mut) {
        Some(slot) => {
            *slot = Some(marker);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Tool, request::MessageParam};

    #[test]
    fn an_input_estimate_is_computed_once_and_reused_until_the_layout_changes() {
        let request = MessagesRequest::new("m", 100)
            .system("be brief")
            .user("hello there")
            .assistant("hi");
        let mut http = request.clone().into_http();
        let first = InputEstimate::shared(&mut http);
        assert_eq!(first.total(), request.estimate_input_tokens());
        assert_eq!(first.tokens().len(), positions(&request).len());
        // A stored estimate is reused as is (a layer trusts what an outer layer computed).
        let planted = InputEstimate {
            tokens: vec![1; first.tokens().len()].into(),
            total: first.tokens().len() as u64,
        };
        http.extensions_mut().insert(planted.clone());
        assert_eq!(InputEstimate::shared(&mut http), planted);
        assert_eq!(
            positions_estimated(http.body(), &planted)
                .map(|p| p.iter().map(|p| p.tokens).sum::<u64>()),
            Some(planted.total())
        );
        // Another layout (a message more): the stored one does not fit and is replaced.
        let more = http.body().clone().user("and more");
        *http.body_mut() = more;
        let again = InputEstimate::shared(&mut http);
        assert_eq!(again.total(), http.body().estimate_input_tokens());
        assert_eq!(http.extensions().get::<InputEstimate>(), Some(&again));
        assert!(positions_estimated(http.body(), &planted).is_none());
    }

    #[test]
    fn positions_sum_to_the_estimate_and_markers_can_be_set() {
        let mut request = MessagesRequest::new("m", 100)
            .tools(vec![
                Tool::new("a", "first", serde_json::json!({"type": "object"})),
                Tool::new("b", "second", serde_json::json!({})),
            ])
            .system("be brief")
            .user("hello")
            .message(MessageParam::assistant(vec![
                ContentBlock::text("hi"),
                ContentBlock::text("there"),
            ]));
        let p = positions(&request);
        assert_eq!(p.len(), 2 + 1 + 1 + 2);
        assert_eq!(
            p.iter().map(|p| p.tokens).sum::<u64>(),
            request.estimate_input_tokens()
        );
        assert!(set_marker(
            &mut request,
            Slot::SystemText,
            CacheControl::ephemeral()
        ));
        assert!(set_marker(
            &mut request,
            Slot::MessageText(0),
            CacheControl::ephemeral()
        ));
        assert!(set_marker(
            &mut request,
            Slot::Tool(1),
            CacheControl::ephemeral()
        ));
        let p = positions(&request);
        assert_eq!(p.iter().filter(|p| p.marker.is_some()).count(), 3);
        assert_eq!(
            p.iter().map(|p| p.tokens).sum::<u64>(),
            request.estimate_input_tokens(),
            "conversion keeps the estimate"
        );
        request.validate().unwrap();
    }
}
