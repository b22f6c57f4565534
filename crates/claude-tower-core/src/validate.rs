//! [`MessagesRequest::validate`]: typed errors for requests that are certainly invalid.

use std::collections::HashSet;

use crate::content::{CacheControl, CacheTtl, ContentBlock, ToolResultContent};
use crate::error::Error;
use crate::request::{MessageContent, MessagesRequest, Role, ThinkingConfig};

/// The API's limit on `cache_control` breakpoints per request (the top-level automatic one
/// included).
pub const MAX_CACHE_BREAKPOINTS: usize = 4;

impl MessagesRequest {
    /// Checks what is certainly invalid before anything is sent, so a bad request fails here
    /// with [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) and a clear message
    /// instead of costing a round trip and a 400:
    ///
    /// - an empty `model` or empty `messages`;
    /// - `max_tokens: 0` together with `stream`, enabled thinking, a forced `tool_choice` or a
    ///   structured-output `format`;
    /// - `temperature` outside 0.0–1.0;
    /// - more than 4 `cache_control` markers (tools, system, messages and the top-level one);
    /// - a 1h marker after a 5m marker (prefix order tools → system → messages; the top-level
    ///   marker counts as last);
    /// - a `tool_result` whose `tool_use_id` has no `tool_use` in the preceding assistant turn;
    /// - thinking `budget_tokens` below 1,024 or not below `max_tokens`.
    ///
    /// It does not second-guess what may change (model ids, per-model limits, betas).
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), Error> {
        if self.model.trim().is_empty() {
            return Err(Error::invalid_request("`model` must not be empty"));
        }
        if self.messages.is_empty() {
            return Err(Error::invalid_request(
                "`messages` must contain at least one message",
            ));
        }
        self.validate_max_tokens()?;
        if let Some(t) = self.temperature
            && !(0.0..=1.0).contains(&t)
        {
            return Err(Error::invalid_request(format!(
                "`temperature` must be between 0.0 and 1.0, got {t}"
            )));
        }
        if let Some(ThinkingConfig::Enabled(thinking)) = &self.thinking {
            if thinking.budget_tokens < 1024 {
                return Err(Error::invalid_request(format!(
                    "thinking `budget_tokens` must be at least 1024, got {}",
                    thinking.budget_tokens
                )));
            }
            if thinking.budget_tokens >= self.max_tokens {
                return Err(Error::invalid_request(format!(
                    "thinking `budget_tokens` ({}) must be less than `max_tokens` ({})",
                    thinking.budget_tokens, self.max_tokens
                )));
            }
        }
        self.validate_cache_markers()?;
        self.validate_tool_results()
    }

    fn validate_max_tokens(&self) -> Result<(), Error> {
        if self.max_tokens != 0 {
            return Ok(());
        }
        let conflict = if self.is_stream() {
            Some("`stream: true`")
        } else if matches!(self.thinking, Some(ThinkingConfig::Enabled(_))) {
            Some("enabled thinking")
        } else if self.tool_choice.as_ref().is_some_and(|c| c.is_forced()) {
            Some("a forced `tool_choice`")
        } else if self
            .output_config
            .as_ref()
            .is_some_and(|c| c.format.is_some())
        {
            Some("`output_config.format`")
        } else {
            None
        };
        match conflict {
            Some(what) => Err(Error::invalid_request(format!(
                "`max_tokens: 0` (cache pre-warming) cannot be combined with {what}"
            ))),
            None => Ok(()),
        }
    }

    /// Every `cache_control` marker in prefix order (tools → system → messages → top level).
    #[must_use]
    pub fn cache_markers(&self) -> Vec<CacheControl> {
        let mut markers = Vec::new();
        for tool in self.tools.iter().flat_map(|t| t.iter()) {
            markers.extend(tool.cache_control.clone());
        }
        if let Some(system) = &self.system {
            collect_markers(system.blocks(), &mut markers);
        }
        for message in self.messages.iter() {
            collect_markers(message.content.blocks(), &mut markers);
        }
        markers.extend(self.cache_control.clone());
        markers
    }

    fn validate_cache_markers(&self) -> Result<(), Error> {
        let markers = self.cache_markers();
        if markers.len() > MAX_CACHE_BREAKPOINTS {
            return Err(Error::invalid_request(format!(
                "{} `cache_control` markers, at most {MAX_CACHE_BREAKPOINTS} are allowed \
                 (the top-level automatic marker counts)",
                markers.len()
            )));
        }
        if let Some(automatic) = &self.cache_control
            && let Some(last) = self
                .messages
                .last()
                .and_then(|m| m.content.blocks().last())
                .and_then(ContentBlock::cache_control)
            && last.effective_ttl() != automatic.effective_ttl()
        {
            return Err(Error::invalid_request(
                "the top-level (automatic) `cache_control` would go on the last block, which \
                 already has a marker with a different TTL",
            ));
        }
        let mut seen_short = false;
        for marker in &markers {
            match marker.effective_ttl() {
                CacheTtl::FiveMinutes => seen_short = true,
                CacheTtl::OneHour if seen_short => {
                    return Err(Error::invalid_request(
                        "a 1h `cache_control` marker follows a 5m marker; 1h markers must come first",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn validate_tool_results(&self) -> Result<(), Error> {
        let mut previous_tool_uses: HashSet<&str> = HashSet::new();
        let mut previous_role: Option<&Role> = None;
        for (index, message) in self.messages.iter().enumerate() {
            let blocks = message.content.blocks();
            if message.role == Role::User {
                for block in blocks {
                    if let ContentBlock::ToolResult(result) = block {
                        let matched = previous_role == Some(&Role::Assistant)
                            && previous_tool_uses.contains(result.tool_use_id.as_str());
                        if !matched {
                            return Err(Error::invalid_request(format!(
                                "messages[{index}]: `tool_result` for `{}` has no matching \
                                 `tool_use` in the preceding assistant turn",
                                result.tool_use_id
                            )));
                        }
                    }
                }
            }
            previous_tool_uses = blocks
                .iter()
                .filter_map(|block| match block {
                    ContentBlock::ToolUse(tool_use) => Some(tool_use.id.as_str()),
                    _ => None,
                })
                .collect();
            if matches!(message.content, MessageContent::Text(_)) {
                previous_tool_uses.clear();
            }
            previous_role = Some(&message.role);
        }
        Ok(())
    }
}

fn collect_markers(blocks: &[ContentBlock], markers: &mut Vec<CacheControl>) {
    for block in blocks {
        if let ContentBlock::ToolResult(result) = block
            && let Some(ToolResultContent::Blocks(inner)) = &result.content
        {
            collect_markers(inner, markers);
        }
        markers.extend(block.cache_control());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{MessageParam, ThinkingEnabled};
    use crate::{ErrorKind, Tool};
    use serde_json::json;

    fn base() -> MessagesRequest {
        MessagesRequest::new("claude-sonnet-4-5", 1024).user("hi")
    }

    fn marked(ttl: Option<CacheTtl>) -> ContentBlock {
        let mut block = ContentBlock::text("x");
        *block.cache_control_mut().unwrap() = Some(match ttl {
            Some(ttl) => CacheControl::with_ttl(ttl),
            None => CacheControl::ephemeral(),
        });
        block
    }

    fn assert_invalid(request: &MessagesRequest, needle: &str) {
        let error = request.validate().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest);
        assert!(error.message().contains(needle), "{error}");
    }

    #[test]
    fn valid_request_passes() {
        base().validate().unwrap();
    }

    #[test]
    fn empty_model_and_messages() {
        assert_invalid(&MessagesRequest::new("", 10).user("x"), "model");
        assert_invalid(&MessagesRequest::new("m", 10), "messages");
    }

    #[test]
    fn max_tokens_zero_rules() {
        let mut r = base();
        r.max_tokens = 0;
        r.validate().unwrap();
        assert_invalid(&r.clone().stream(true), "stream");
        let mut forced = r;
        forced.tool_choice = Some(crate::ToolChoice::any());
        assert_invalid(&forced, "tool_choice");
    }

    #[test]
    fn too_many_markers_counts_top_level() {
        let blocks: Vec<ContentBlock> = (0..4).map(|_| marked(None)).collect();
        let mut r = MessagesRequest::new("m", 10).user(blocks);
        r.validate().unwrap();
        r.cache_control = Some(CacheControl::ephemeral());
        assert_invalid(&r, "5 `cache_control` markers");
    }

    #[test]
    fn one_hour_after_five_minutes() {
        let r =
            MessagesRequest::new("m", 10).user(vec![marked(Some(CacheTtl::OneHour)), marked(None)]);
        r.validate().unwrap();
        let r =
            MessagesRequest::new("m", 10).user(vec![marked(None), marked(Some(CacheTtl::OneHour))]);
        assert_invalid(&r, "1h");
        let mut tool = Tool::new("t", "d", json!({"type": "object"}));
        tool.cache_control = Some(CacheControl::ephemeral());
        let mut r = MessagesRequest::new("m", 10).tools(vec![tool]).user("x");
        r.cache_control = Some(CacheControl::with_ttl(CacheTtl::OneHour));
        assert_invalid(&r, "1h");
    }

    #[test]
    fn orphan_tool_result() {
        let r = MessagesRequest::new("m", 10)
            .user("weather?")
            .assistant(vec![ContentBlock::tool_use("toolu_1", "w", json!({}))])
            .user(vec![ContentBlock::tool_result("toolu_1", "sunny")]);
        r.validate().unwrap();
        let r = MessagesRequest::new("m", 10)
            .user("weather?")
            .assistant(vec![ContentBlock::tool_use("toolu_1", "w", json!({}))])
            .user(vec![ContentBlock::tool_result("toolu_2", "sunny")]);
        assert_invalid(&r, "toolu_2");
        let r = MessagesRequest::new("m", 10).message(MessageParam::user(vec![
            ContentBlock::tool_result("toolu_1", "sunny"),
        ]));
        assert_invalid(&r, "toolu_1");
    }

    #[test]
    fn thinking_budget() {
        let mut r = base();
        r.thinking = Some(ThinkingConfig::Enabled(ThinkingEnabled {
            budget_tokens: 2048,
            ..ThinkingEnabled::default()
        }));
        assert_invalid(&r, "less than `max_tokens`");
        r.max_tokens = 4096;
        r.validate().unwrap();
    }

    #[test]
    fn temperature_range() {
        assert_invalid(&base().temperature(1.5), "temperature");
        assert_invalid(&base().temperature(f64::NAN), "temperature");
    }
}
