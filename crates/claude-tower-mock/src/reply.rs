//! The mock's deterministic answer to a request.

use claude_tower_core::estimate::estimate_text_tokens;
use claude_tower_core::{
    CacheCreation, ContentBlock, Message, MessagesRequest, Role, StopReason, Tool,
    ToolResultContent, Usage,
};
use serde_json::{Map, Value, json};

/// Builds the reply for `request`; `seq` makes ids unique.
///
/// - With client tools offered (and `tool_choice` not `none`) and no `tool_result` in the last
///   user turn: a short text plus a `tool_use` of the forced or first tool, with an input made
///   from its schema; `stop_reason: tool_use`.
/// - Otherwise a text that quotes the last user text (or the tool results).
/// - The text is cut at the first stop sequence (`stop_sequence`) or at `max_tokens`
///   (`max_tokens`); usage comes from the core estimator.
pub(crate) fn reply(request: &MessagesRequest, seq: u64) -> Message {
    let mut message = Message::new(format!("msg_mock_{seq:020}"), request.model.clone());
    let last_user = request.messages.iter().rev().find(|m| m.role == Role::User);
    let tool_results: Vec<String> = last_user
        .map(|m| {
            m.content
                .blocks()
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::ToolResult(r) => Some(match &r.content {
                        Some(ToolResultContent::Text(t)) => t.clone(),
                        Some(ToolResultContent::Blocks(blocks)) => {
                            blocks.iter().filter_map(ContentBlock::as_text).collect()
                        }
                        None => String::new(),
                    }),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();

    let tool = pick_tool(request);
    let mut text = if !tool_results.is_empty() {
        format!("The tool returned: {}.", tool_results.join("; "))
    } else if let Some(tool) = tool {
        format!("I'll use the {} tool.", tool.name)
    } else {
        let said = last_user.map(|m| m.content.text()).unwrap_or_default();
        let said: String = said.chars().take(200).collect();
        format!("Hello from the claude-tower mock! You said: \"{said}\"")
    };

    let mut stop_reason = StopReason::EndTurn;
    let mut stop_sequence = None;
    for sequence in request.stop_sequences.iter().flatten() {
        if let Some(at) = text
            .find(sequence.as_str())
            .filter(|_| !sequence.is_empty())
        {
            text.truncate(at);
            stop_reason = StopReason::StopSequence;
            stop_sequence = Some(sequence.clone());
            break;
        }
    }
    let budget = u64::from(request.max_tokens);
    if estimate_text_tokens(&text) > budget {
        text = truncate_to_tokens(&text, budget);
        stop_reason = StopReason::MaxTokens;
        stop_sequence = None;
    }
    let mut output_tokens = estimate_text_tokens(&text);
    if !text.is_empty() {
        message.content.push(ContentBlock::text(text));
    }
    if let (Some(tool), true, true) = (
        tool,
        tool_results.is_empty(),
        stop_reason == StopReason::EndTurn,
    ) {
        let input = input_from_schema(tool.input_schema.as_deref());
        let block =
            ContentBlock::tool_use(format!("toolu_mock_{seq:020}"), tool.name.clone(), input);
        output_tokens += claude_tower_core::estimate::estimate_block_tokens(&block);
        if output_tokens <= budget {
            message.content.push(block);
            stop_reason = StopReason::ToolUse;
        } else {
            stop_reason = StopReason::MaxTokens;
            output_tokens = budget;
        }
    }
    message.stop_reason = Some(stop_reason);
    message.stop_sequence = stop_sequence;
    message.usage = Usage {
        input_tokens: request.estimate_input_tokens(),
        output_tokens: output_tokens.min(budget),
        cache_creation_input_tokens: Some(0),
        cache_read_input_tokens: Some(0),
        cache_creation: Some(CacheCreation::default()),
        service_tier: Some("standard".to_owned()),
        ..Usage::default()
    };
    message
}

fn pick_tool(request: &MessagesRequest) -> Option<&Tool> {
    let tools = request.tools.as_deref()?;
    let choice = request.tool_choice.as_ref();
    if choice.is_some_and(|c| c.kind == "none") {
        return None;
    }
    let client = |t: &&Tool| t.input_schema.is_some();
    match choice.and_then(|c| c.name.as_deref()) {
        Some(name) => tools.iter().filter(client).find(|t| t.name == name),
        None => tools.iter().find(client),
    }
}

/// An input object that satisfies the schema's required properties (or all of them).
fn input_from_schema(schema: Option<&Value>) -> Value {
    let mut input = Map::new();
    let Some(properties) = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return Value::Object(input);
    };
    let required: Vec<&str> = schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_else(|| properties.keys().map(String::as_str).collect());
    for name in required {
        let Some(property) = properties.get(name) else {
            continue;
        };
        let value = if let Some(first) = property
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            first.clone()
        } else {
            match property.get("type").and_then(Value::as_str) {
                Some("integer" | "number") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!("mock"),
            }
        };
        input.insert(name.to_owned(), value);
    }
    Value::Object(input)
}

fn truncate_to_tokens(text: &str, budget: u64) -> String {
    let mut out = String::new();
    for c in text.chars() {
        out.push(c);
        if estimate_text_tokens(&out) > budget {
            out.pop();
            break;
        }
    }
    out
}

/// What the API rejects with `400 invalid_request_error`: everything
/// [`MessagesRequest::validate`] refuses (empty `messages`, more than 4 cache breakpoints with
/// the automatic one, a 1h marker after a 5m one, an automatic marker over a last-block marker
/// of another TTL, …), plus what only today's API refuses: a `ttl` other than `5m` / `1h`.
pub(crate) fn api_rejects(body: &MessagesRequest) -> Result<(), String> {
    body.validate().map_err(|e| e.message().to_owned())?;
    for marker in body.cache_markers() {
        if let Some(claude_tower_core::CacheTtl::Other(ttl)) = &marker.ttl {
            return Err(format!(
                "cache_control.ttl: Input should be '5m' or '1h', got {ttl:?}"
            ));
        }
    }
    Ok(())
}

/// The reply's usage as the API would report it: `usage.speed` echoes the request's `speed`,
/// then the attempt's scripted fields are merged (a compaction becomes `usage.iterations`).
pub(crate) fn apply_usage(
    usage: &mut claude_tower_core::Usage,
    request: &MessagesRequest,
    fields: &serde_json::Map<String, serde_json::Value>,
) {
    use serde_json::{Value, json};
    if let Some(speed) = request.extra.get("speed").filter(|s| s.is_string()) {
        usage.extra.insert("speed".to_owned(), speed.clone());
    }
    // A refusal's credit token carried to a fallback model: redeemed (Dec-2026 API: `usage.fallback_credit`).
    if request
        .extra
        .get("fallback_credit_token")
        .is_some_and(|token| token.as_str().is_some_and(|t| !t.is_empty()))
    {
        usage.extra.insert(
            "fallback_credit".to_owned(),
            json!({"status": {"type": "redeemed"}}),
        );
    }
    for (key, value) in fields {
        if key == crate::script::ITERATIONS_COMPACTION {
            let mut compaction = value.clone();
            compaction["type"] = json!("compaction");
            let message = json!({
                "type": "message",
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens.unwrap_or(0),
                "cache_creation_input_tokens": usage.cache_creation_input_tokens.unwrap_or(0),
            });
            usage.extra.insert(
                "iterations".to_owned(),
                Value::Array(vec![compaction, message]),
            );
        } else {
            usage.extra.insert(key.clone(), value.clone());
        }
    }
}
