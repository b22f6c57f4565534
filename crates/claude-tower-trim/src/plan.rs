//! The trimming itself: a pure function of the request and a budget.

use std::sync::Arc;

use claude_tower_core::estimate::{
    MESSAGE_OVERHEAD_TOKENS, estimate_block_tokens, estimate_text_tokens,
};
use claude_tower_core::{
    ContentBlock, Error, MessageContent, MessageParam, MessagesRequest, Role, ToolResultContent,
};

/// How to trim; see [`TrimOptions::default`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TrimOptions {
    /// Keep the first user message (usually the task).
    pub pin_first_user_message: bool,
    /// Cache-friendly dropping: when over budget, cut in chunks of `(1 − hysteresis) ×
    /// budget` tokens along a grid fixed from the start of the conversation, so the kept prefix
    /// stays byte-identical for many turns. `1.0` drops exactly what is needed (a sliding
    /// window). Default `0.7`: after a cut the conversation fits in about 70–100 % of the budget.
    pub hysteresis: f64,
    /// As a last resort, cut the largest text / tool-result blocks (with a visible marker)
    /// instead of failing. Off by default.
    pub truncate_oversized: bool,
}

impl Default for TrimOptions {
    fn default() -> Self {
        Self {
            pin_first_user_message: true,
            hysteresis: 0.7,
            truncate_oversized: false,
        }
    }
}

impl TrimOptions {
    claude_tower_core::setters! {
        /// Keep (or not) the first user message.
        pub fn with_pinned_first_message(pin: bool) => pin_first_user_message = pin;
        /// The hysteresis (0.0–1.0; 1.0 = sliding window).
        pub fn with_hysteresis(hysteresis: f64) => hysteresis = hysteresis;
        /// Allow cutting oversized blocks as a last resort.
        pub fn with_truncation(truncate: bool) => truncate_oversized = truncate;
    }
}

/// What was trimmed, in the response extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrimReport {
    /// Messages removed.
    pub messages_dropped: usize,
    /// Estimated tokens removed.
    pub tokens_dropped: u64,
    /// Whether a summary replaced the dropped messages.
    pub summary_used: bool,
    /// Blocks cut by `truncate_oversized`.
    pub blocks_truncated: usize,
    /// Estimated input tokens before and after.
    pub tokens_before: u64,
    /// Estimated input tokens after.
    pub tokens_after: u64,
}

/// The marker put where a block was cut.
pub const TRUNCATION_MARKER: &str = "[… truncated by claude-tower: ";

/// A message's share of the request estimate (framing plus content), without copying it.
fn message_tokens(message: &MessageParam) -> u64 {
    MESSAGE_OVERHEAD_TOKENS
        + match &message.content {
            MessageContent::Text(text) => estimate_text_tokens(text),
            MessageContent::Blocks(blocks) => blocks.iter().map(estimate_block_tokens).sum(),
        }
}

/// A `compaction` block (Dec-2026 API, SDK 2.16.0): sent back verbatim, never edited.
fn is_compaction(block: &ContentBlock) -> bool {
    matches!(block, ContentBlock::Unknown(value)
        if value.get("type").and_then(serde_json::Value::as_str) == Some("compaction"))
}

fn has_tool_results(message: &MessageParam) -> bool {
    message
        .content
        .blocks()
        .iter()
        .any(|b| matches!(b, ContentBlock::ToolResult(_)))
}

/// A plan: keep messages `[..pinned]`, drop `[pinned..cut]`, keep `[cut..]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Messages kept at the start.
    pub pinned: usize,
    /// First message kept after the dropped range.
    pub resume: usize,
}

impl Cut {
    /// `(pinned, resume)` clamped to `len` messages with `pinned <= resume`, so a cut built by
    /// hand never indexes out of bounds.
    fn clamped(self, len: usize) -> (usize, usize) {
        let pinned = self.pinned.min(len);
        (pinned, self.resume.clamp(pinned, len))
    }
}

/// Finds where to cut so that the estimated size fits `budget`, or `None` when nothing needs
/// (or can be) dropped. Cut points keep the conversation valid: the kept part after the pinned prefix
/// starts with an `assistant` turn after a pinned user message, or with a `user` turn that has
/// no `tool_result` (so no result loses its `tool_use`); the newest user turn (and the assistant
/// turn it answers) is never dropped.
#[must_use]
pub fn find_cut(request: &MessagesRequest, budget: u64, options: &TrimOptions) -> Option<Cut> {
    let total = request.estimate_input_tokens();
    if total <= budget {
        return None;
    }
    let messages = &request.messages;
    if messages.is_empty() {
        // Nothing to drop (only the system prompt or tools are over): no cut, no panic.
        return None;
    }
    let pinned = usize::from(
        options.pin_first_user_message && messages.first().is_some_and(|m| m.role == Role::User),
    );
    // The newest user turn and, when it answers tools, the assistant turn before it stay.
    let last = messages.len().saturating_sub(1);
    let answers_or_continues =
        |i: usize| messages[i].role == Role::Assistant || has_tool_results(&messages[i]);
    let keep_from = if last > 0 && answers_or_continues(last) {
        last - 1
    } else {
        last
    };
    // Valid resume points: an assistant turn right after the pinned user message, or a user turn
    // without tool results (with nothing pinned, the conversation must start with a user turn).
    let valid = |i: usize| {
        let m = &messages[i];
        match m.role {
            Role::Assistant => pinned == 1,
            Role::User => !has_tool_results(m) && (pinned == 0 || i > pinned),
            _ => false,
        }
    };
    let mut dropped = 0u64;
    let mut candidates = Vec::new(); // (resume index, tokens dropped before it)
    for i in pinned..=keep_from {
        if i > pinned && valid(i) {
            candidates.push((i, dropped));
        }
        // `system`-role messages are instructions from that point on: a cut keeps them (see
        // `apply_cut`), so they free nothing.
        if messages[i].role != Role::System {
            dropped = dropped.saturating_add(message_tokens(&messages[i]));
        }
    }
    // Compaction blocks are opaque and summarise everything before them: only whole turns
    // before the latest one may go, so the cut resumes at or before it.
    if let Some(latest) = messages
        .iter()
        .rposition(|m| m.content.blocks().iter().any(is_compaction))
    {
        candidates.retain(|&(resume, _)| resume <= latest);
    }
    let needed = total - budget;
    let hysteresis = options.hysteresis.clamp(0.0, 1.0);
    let chunk = ((1.0 - hysteresis) * budget as f64).max(1.0) as u64;
    // Round the needed cut up to the grid: the same cut for every turn until the next line.
    let target = if hysteresis >= 1.0 {
        needed
    } else {
        needed.div_ceil(chunk) * chunk
    };
    candidates
        .iter()
        .find(|(_, d)| *d >= target)
        .or_else(|| candidates.iter().find(|(_, d)| *d >= needed))
        .or(candidates.last())
        .map(|&(resume, _)| Cut { pinned, resume })
}

/// Applies a cut, optionally putting `summary` (as a user message) where the dropped messages
/// were. `system`-role messages (API version `2026-10-21`) in the dropped range are kept, in
/// order, after the summary: they are instructions that still apply to the turns after them.
#[must_use]
pub fn apply_cut(request: &MessagesRequest, cut: Cut, summary: Option<&str>) -> MessagesRequest {
    let mut out = request.clone();
    let messages = out.messages_mut();
    let (pinned, resume) = cut.clamped(messages.len());
    let mut kept: Vec<Arc<MessageParam>> = messages[..pinned].to_vec();
    if let Some(summary) = summary {
        // A user turn: consecutive user turns are merged by the API.
        kept.push(Arc::new(MessageParam::user(format!(
            "[Summary of the earlier conversation]\n{summary}"
        ))));
    }
    // `system`-role messages in the dropped range stay, in their order, before the resumed
    // turns: they still apply to everything after them.
    kept.extend(
        messages[pinned..resume]
            .iter()
            .filter(|m| m.role == Role::System)
            .cloned(),
    );
    kept.extend_from_slice(&messages[resume..]);
    // With nothing pinned and no summary, a resumed assistant turn cannot lead: find_cut never
    // returns such a cut.
    *messages = kept;
    out
}

/// The messages a cut removes (for the summarizer); `system`-role messages are kept by the cut,
/// so they are not among them.
#[must_use]
pub fn dropped_messages(request: &MessagesRequest, cut: Cut) -> Vec<MessageParam> {
    let (pinned, resume) = cut.clamped(request.messages.len());
    request.messages[pinned..resume]
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| MessageParam::clone(m))
        .collect()
}

/// Cuts the largest text and tool-result blocks of user turns (with [`TRUNCATION_MARKER`]) until the
/// request fits `budget`; returns the number of blocks cut, or the error when even that
/// cannot fit.
///
/// # Errors
/// [`ErrorKind::InvalidRequest`](claude_tower_core::ErrorKind::InvalidRequest) with the excess.
pub fn truncate_blocks(request: &mut MessagesRequest, budget: u64) -> Result<usize, Error> {
    let mut cut = 0;
    for _ in 0..64 {
        let total = request.estimate_input_tokens();
        if total <= budget {
            return Ok(cut);
        }
        let excess = total - budget;
        // The largest text-bearing block (a string content counts as one text block).
        let mut best: Option<(usize, usize, u64)> = None;
        // Only user turns (pasted text, tool results): assistant turns stay intact.
        for (m, message) in request
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == Role::User)
        {
            if let MessageContent::Text(text) = &message.content {
                let tokens = estimate_text_tokens(text);
                if tokens > 64 && best.is_none_or(|(_, _, t)| tokens > t) {
                    best = Some((m, 0, tokens));
                }
            }
            for (b, block) in message.content.blocks().iter().enumerate() {
                let tokens = match block {
                    ContentBlock::Text(t) => estimate_text_tokens(&t.text),
                    ContentBlock::ToolResult(r) => match &r.content {
                        Some(ToolResultContent::Text(t)) => estimate_text_tokens(t),
                        _ => 0,
                    },
                    _ => 0,
                };
                if tokens > 64 && best.is_none_or(|(_, _, t)| tokens > t) {
                    best = Some((m, b, tokens));
                }
            }
        }
        let Some((m, b, tokens)) = best else { break };
        let keep_tokens = tokens.saturating_sub(excess + 16).max(16);
        let shorten = |text: &mut String| {
            let keep_chars = (keep_tokens as usize * 3).min(text.len());
            let mut end = keep_chars;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let removed = tokens - keep_tokens;
            text.truncate(end);
            text.push_str(&format!("{TRUNCATION_MARKER}about {removed} tokens]"));
        };
        let Some(message) = request.message_mut(m) else {
            break;
        };
        if let MessageContent::Text(text) = &mut message.content {
            shorten(text);
        } else if let MessageContent::Blocks(blocks) = &mut message.content {
            match &mut blocks[b] {
                ContentBlock::Text(t) => shorten(&mut t.text),
                ContentBlock::ToolResult(r) => {
                    if let Some(ToolResultContent::Text(t)) = &mut r.content {
                        shorten(t);
                    }
                }
                _ => {}
            }
        }
        cut += 1;
    }
    let total = request.estimate_input_tokens();
    if total <= budget {
        Ok(cut)
    } else {
        Err(over_budget(total, budget))
    }
}

pub(crate) fn over_budget(total: u64, budget: u64) -> Error {
    Error::invalid_request(format!(
        "the conversation does not fit: about {total} input tokens after all allowed trimming, budget {budget} \
         (over by {}); nothing was sent",
        total - budget
    ))
}

/// Trims `request` to `budget` with the estimator (no summary): the synchronous core of
/// [`TrimLayer`](crate::TrimLayer), useful on its own.
///
/// # Errors
/// [`ErrorKind::InvalidRequest`](claude_tower_core::ErrorKind::InvalidRequest) when the
/// request cannot fit.
pub fn trim(
    request: &MessagesRequest,
    budget: u64,
    options: &TrimOptions,
) -> Result<(MessagesRequest, TrimReport), Error> {
    let before = request.estimate_input_tokens();
    let mut report = TrimReport {
        tokens_before: before,
        tokens_after: before,
        ..TrimReport::default()
    };
    if before <= budget {
        return Ok((request.clone(), report));
    }
    let mut out = match find_cut(request, budget, options) {
        Some(cut) => {
            report.messages_dropped = cut.resume - cut.pinned;
            apply_cut(request, cut, None)
        }
        None => request.clone(),
    };
    let after = out.estimate_input_tokens();
    if after > budget {
        if options.truncate_oversized {
            report.blocks_truncated = truncate_blocks(&mut out, budget)?;
        } else {
            return Err(over_budget(after, budget));
        }
    }
    report.tokens_after = out.estimate_input_tokens();
    report.tokens_dropped = before.saturating_sub(report.tokens_after);
    Ok((out, report))
}
