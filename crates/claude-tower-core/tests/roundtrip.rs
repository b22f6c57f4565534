//! Types never lose data: requests with unknown top-level fields, unknown block types and
//! unknown fields inside known blocks, and unknown SSE events, round-trip unchanged; a message
//! streamed as events accumulates back to itself.

use claude_tower_core::{
    CacheControl, ContentBlock, Message, MessageAccumulator, MessageParam, MessagesRequest, Role,
    StopReason, StreamEvent, Usage,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const KNOWN_TOP_LEVEL: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
    "thinking",
    "service_tier",
    "cache_control",
    "output_config",
    "inference_geo",
    "container",
];

const KNOWN_BLOCKS: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "container_upload",
    "mid_conv_system",
    "fallback",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9 _\\-é日]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn extra_fields(known: &'static [&'static str]) -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("x_[a-z_]{1,10}|future_[a-z]{1,6}", json_value(), 0..5).prop_map(
        move |m| {
            m.into_iter()
                .filter(|(k, _)| !known.contains(&k.as_str()) && k != "type")
                .collect()
        },
    )
}

fn unknown_block() -> impl Strategy<Value = Value> {
    ("[a-z_]{3,16}", extra_fields(&[])).prop_filter_map("known type", |(kind, fields)| {
        if KNOWN_BLOCKS.contains(&kind.as_str()) {
            return None;
        }
        let mut map = fields;
        map.insert("type".to_owned(), Value::String(kind));
        Some(Value::Object(map))
    })
}

fn text_block_with_extras() -> impl Strategy<Value = Value> {
    (
        "[a-zA-Z ]{0,20}",
        extra_fields(&["text", "citations", "cache_control"]),
    )
        .prop_map(|(text, mut map)| {
            map.insert("type".to_owned(), json!("text"));
            map.insert("text".to_owned(), json!(text));
            Value::Object(map)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn requests_with_unknown_fields_and_blocks_round_trip(
        top in extra_fields(KNOWN_TOP_LEVEL),
        unknown in prop::collection::vec(unknown_block(), 0..3),
        texts in prop::collection::vec(text_block_with_extras(), 1..3),
        message_extra in extra_fields(&["role", "content"]),
    ) {
        let mut content: Vec<Value> = texts;
        content.extend(unknown);
        let mut message = message_extra;
        message.insert("role".to_owned(), json!("user"));
        message.insert("content".to_owned(), Value::Array(content));
        let mut request = top;
        request.insert("model".to_owned(), json!("claude-future-9"));
        request.insert("max_tokens".to_owned(), json!(1024));
        request.insert("messages".to_owned(), json!([message]));
        let original = Value::Object(request);

        let parsed: MessagesRequest = serde_json::from_value(original.clone()).unwrap();
        prop_assert_eq!(&serde_json::to_value(&parsed).unwrap(), &original);
        // And through bytes, as the transport sends it.
        let bytes = parsed.to_json().unwrap();
        let reparsed: Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(reparsed, original);
    }

    #[test]
    fn unknown_stream_events_round_trip(kind in "[a-z_]{3,20}", fields in extra_fields(&[])) {
        prop_assume!(!matches!(kind.as_str(),
            "message_start" | "content_block_start" | "content_block_delta" | "content_block_stop"
            | "message_delta" | "message_stop" | "ping" | "error"));
        let mut map = fields;
        map.insert("type".to_owned(), Value::String(kind.clone()));
        let data = Value::Object(map).to_string();
        let event = StreamEvent::from_sse(&kind, &data).unwrap();
        prop_assert!(matches!(event, StreamEvent::Unknown(_)));
        prop_assert_eq!(event.type_name(), kind.as_str());
        prop_assert_eq!(serde_json::to_string(&event).unwrap(), serde_json::to_string(&serde_json::from_str::<Value>(&data).unwrap()).unwrap());
        // Feeding it to the accumulator is not an error.
        let mut acc = MessageAccumulator::new();
        prop_assert!(acc.push(&event).is_ok());
    }

    #[test]
    fn a_message_streamed_as_events_accumulates_back_to_itself(
        texts in prop::collection::vec("[a-zA-Z0-9 日本\\n\"{}]{0,40}", 1..4),
        input in json_value(),
        chunk in 1usize..16,
        input_tokens in 0u64..1_000_000,
        output_tokens in 0u64..100_000,
        write in 0u64..10_000,
        read in 0u64..10_000,
    ) {
        let mut message = Message::new("msg_prop", "claude-haiku-4-5");
        for text in &texts {
            message.content.push(ContentBlock::text(text.clone()));
        }
        let input = match input { Value::Object(_) => input, other => json!({"value": other}) };
        message.content.push(ContentBlock::tool_use("toolu_1", "lookup", input));
        message.stop_reason = Some(StopReason::ToolUse);
        message.usage = Usage {
            input_tokens,
            output_tokens,
            cache_creation_input_tokens: Some(write),
            cache_read_input_tokens: Some(read),
            ..Usage::default()
        };
        let mut acc = MessageAccumulator::new();
        for event in message.to_events(chunk) {
            // Events also survive their own SSE encoding.
            let sse = event.to_sse();
            let data = sse.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            let reparsed = StreamEvent::from_sse(event.event_name(), data).unwrap();
            prop_assert_eq!(&reparsed, &event);
            acc.push(&reparsed).unwrap();
        }
        prop_assert!(acc.is_complete());
        prop_assert_eq!(acc.finish().unwrap(), message);
    }
}

#[test]
fn usage_is_overwritten_by_message_delta_not_summed() {
    let start = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":2679,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":3}}}"#;
    let delta1 = r#"{"type":"message_delta","delta":{"stop_reason":null,"stop_sequence":null},"usage":{"output_tokens":50}}"#;
    let delta2 = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":10682,"output_tokens":510,"server_tool_use":{"web_search_requests":1}}}"#;
    let mut acc = MessageAccumulator::new();
    for (name, data) in [
        ("message_start", start),
        ("message_delta", delta1),
        ("message_delta", delta2),
    ] {
        acc.push(&StreamEvent::from_sse(name, data).unwrap())
            .unwrap();
    }
    let message = acc.finish().unwrap();
    assert_eq!(
        message.usage.output_tokens, 510,
        "cumulative, not 3 + 50 + 510"
    );
    assert_eq!(
        message.usage.input_tokens, 10_682,
        "input grew with server tools"
    );
    assert_eq!(
        message.usage.server_tool_use.unwrap().web_search_requests,
        1
    );
    assert_eq!(message.stop_reason, Some(StopReason::EndTurn));
}

#[test]
fn known_event_with_a_broken_shape_is_a_decode_error_but_unknown_text_is_kept() {
    let error = StreamEvent::from_sse("message_start", r#"{"type":"message_start"}"#).unwrap_err();
    assert_eq!(error.kind(), claude_tower_core::ErrorKind::Decode);
    let kept = StreamEvent::from_sse("future", "not json at all").unwrap();
    assert_eq!(
        serde_json::to_value(&kept).unwrap(),
        json!({"event": "future", "data": "not json at all"})
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    /// `from_sse` has fast paths for the common events; whatever the text, index, delta type
    /// and padding, they give what the general deserializer gives.
    #[test]
    fn stream_event_fast_paths_agree_with_serde(
        text in any::<String>(),
        index in 0usize..100_000,
        kind in 0usize..4,
        padding in 0usize..12,
    ) {
        let (tag, field) = [
            ("text_delta", "text"),
            ("input_json_delta", "partial_json"),
            ("thinking_delta", "thinking"),
            ("signature_delta", "signature"),
        ][kind];
        let value = serde_json::to_string(&text).unwrap();
        let data = format!(
            r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"{tag}","{field}":{value}}}{}}}"#,
            " ".repeat(padding)
        );
        let general: StreamEvent = serde_json::from_str(&data).unwrap();
        let fast = StreamEvent::from_sse("content_block_delta", &data).unwrap();
        prop_assert_eq!(&fast, &general);
        // and it round-trips through our own encoder
        let StreamEvent::ContentBlockDelta(event) = fast else { panic!("{fast:?}") };
        prop_assert_eq!(event.index, index);
        let json = serde_json::to_value(&event.delta).unwrap();
        prop_assert_eq!(json[field].as_str(), Some(text.as_str()));
    }
}

/// Unknown fields nested in a response's usage and in an error envelope survive a round trip
/// (the hardening issue found `usage.cache_creation`'s dropped).
#[test]
fn unknown_fields_in_nested_usage_and_error_objects_are_kept() {
    let message = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {
            "input_tokens": 3, "output_tokens": 1,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 1, "ephemeral_1h_input_tokens": 2,
                "ephemeral_24h_input_tokens": 7, "note": {"nested": [1, 2]}
            },
            "server_tool_use": {"web_search_requests": 1, "code_execution_requests": 4},
            "output_tokens_details": {"thinking_tokens": 0, "future": true}
        }
    });
    let parsed: Message = serde_json::from_value(message.clone()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), message);
    let envelope = json!({
        "type": "error",
        "error": {"type": "overloaded_error", "message": "busy", "retry_hint": 3},
        "request_id": "req_1",
        "trace": {"region": "x"}
    });
    let parsed: claude_tower_core::ErrorEnvelope =
        serde_json::from_value(envelope.clone()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), envelope);
}

/// Compaction tokens (`usage.iterations`) are outside the top-level totals; rate limits and
/// cost add them.
#[test]
fn compaction_tokens_come_from_the_iterations() {
    let usage: Usage = serde_json::from_value(json!({
        "input_tokens": 10, "output_tokens": 5,
        "iterations": [
            {"type": "compaction", "input_tokens": 40000, "cache_creation_input_tokens": 100, "output_tokens": 2000},
            {"type": "message", "input_tokens": 10, "output_tokens": 5},
            {"type": "compaction", "input_tokens": 18446744073709551615u64, "output_tokens": 1}
        ]
    }))
    .unwrap();
    assert_eq!(usage.compaction_tokens(), (u64::MAX, 2001));
    assert_eq!(Usage::default().compaction_tokens(), (0, 0));
}

/// Events before the first `message_start` are tolerated (skipped and counted), as the
/// official SDKs do since 1.14.
#[test]
fn events_before_message_start_are_skipped() {
    let mut message = Message::new("msg_1", "claude-haiku-4-5");
    message.content.push(ContentBlock::text("Hi"));
    message.stop_reason = Some(StopReason::EndTurn);
    let events = message.to_events(1);
    let mut acc = MessageAccumulator::new();
    // A stray block and delta, then the real stream.
    for event in events.iter().skip(1).take(2).chain(events.iter()) {
        acc.push(event).unwrap();
    }
    assert_eq!(acc.skipped_before_start(), 2);
    assert_eq!(acc.finish().unwrap(), message);
}

/// A server-side fallback reply (API-NOTES §15): the `fallback` block is typed, read without
/// failing on unknown shapes, streamed like a server-tool block with no deltas, and the whole
/// message (with `stop_details.fallback_credit_token` and `usage.fallback_credit`) comes back
/// as the same JSON value.
#[test]
fn fallback_blocks_and_credit_tokens_are_typed_streamed_and_kept() {
    let wire = json!({
        "id": "msg_fb", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [
            {"type": "fallback", "from": "claude-opus-4-6", "to": "claude-sonnet-4-6",
             "trigger": {"type": "refusal", "category": "cyber"}, "future_field": [1, null]},
            {"type": "text", "text": "Here is the answer."}
        ],
        "stop_reason": "end_turn", "stop_sequence": null,
        "stop_details": {"type": "refusal", "category": null, "fallback_credit_token": "fct_1"},
        "container": null,
        "usage": {"input_tokens": 12, "output_tokens": 7, "fallback_credit": {"redeemed": true},
                  "speed": "fast"}
    });
    let message: Message = serde_json::from_value(wire.clone()).unwrap();
    assert_eq!(serde_json::to_value(&message).unwrap(), wire);
    assert!(matches!(message.content[0], ContentBlock::Fallback(_)));
    let hops: Vec<_> = message.fallback_hops().collect();
    assert_eq!(hops.len(), 1);
    assert_eq!(hops[0].from, Some("claude-opus-4-6"));
    assert_eq!(hops[0].to, Some("claude-sonnet-4-6"));
    assert_eq!(hops[0].trigger, Some("refusal"));
    assert_eq!(hops[0].category, Some("cyber"));
    assert_eq!(message.fallback_credit_token(), Some("fct_1"));
    assert_eq!(
        message.usage.fallback_credit(),
        Some(&json!({"redeemed": true}))
    );
    assert_eq!(message.usage.speed(), Some("fast"));
    // A block of another shape is still a fallback block, with nothing read from it.
    let odd: ContentBlock = serde_json::from_value(json!({"type": "fallback", "from": 7})).unwrap();
    assert_eq!(odd.fallback_hop().unwrap().from, None);

    let events = message.to_events(4);
    let fallback_deltas = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::ContentBlockDelta(d) if d.index == 0))
        .count();
    assert_eq!(fallback_deltas, 0, "streamed with no deltas");
    let mut acc = MessageAccumulator::new();
    for event in &events {
        acc.push(event).unwrap();
    }
    let streamed = acc.finish().unwrap();
    assert_eq!(serde_json::to_value(&streamed).unwrap(), wire);
}

/// `diagnostics.cache_miss_reason`: a named reason with its tokens, an object reason, and the
/// pending `null`.
#[test]
fn cache_miss_reasons_are_read_from_the_diagnostics() {
    let with = |diagnostics: Value| {
        let mut message = Message::new("msg_d", "claude-haiku-4-5");
        message.extra.insert("diagnostics".to_owned(), diagnostics);
        message
    };
    let named =
        with(json!({"cache_miss_reason": "system_changed", "cache_missed_input_tokens": 4100}));
    let miss = named.cache_miss().unwrap();
    assert_eq!(
        (miss.reason, miss.missed_input_tokens),
        (Some("system_changed"), Some(4100))
    );
    let object = with(
        json!({"cache_miss_reason": {"type": "tools_changed", "cache_missed_input_tokens": 9}}),
    );
    let miss = object.cache_miss().unwrap();
    assert_eq!(
        (miss.reason, miss.missed_input_tokens),
        (Some("tools_changed"), Some(9))
    );
    let pending = with(json!({"cache_miss_reason": null}));
    assert_eq!(pending.cache_miss().unwrap().reason, None);
    assert!(Message::new("m", "x").cache_miss().is_none());
}

/// `system`-role messages (API version `2026-10-21`) round-trip, are estimated where they are,
/// and their cache markers count toward the four breakpoints.
#[test]
fn system_role_messages_are_typed_estimated_and_validated_in_place() {
    let wire = json!({
        "model": "claude-sonnet-4-6", "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "system", "content": [{"type": "text", "text": "From now on answer in French."}]},
            {"role": "user", "content": "how are you?"}
        ]
    });
    let request: MessagesRequest = serde_json::from_value(wire.clone()).unwrap();
    assert_eq!(request.messages[2].role, Role::System);
    assert_eq!(serde_json::to_value(&request).unwrap(), wire);
    request.validate().unwrap();
    let without = {
        let mut r = request.clone();
        r.messages_mut().remove(2);
        r
    };
    assert!(request.estimate_input_tokens() > without.estimate_input_tokens());

    // Five markers, one of them on the system-role message: refused before sending.
    let marked = |text: &str| {
        ContentBlock::Text(claude_tower_core::TextBlock {
            text: text.to_owned(),
            cache_control: Some(CacheControl::ephemeral()),
            ..Default::default()
        })
    };
    let mut too_many = MessagesRequest::new("claude-sonnet-4-6", 100);
    for i in 0..4 {
        too_many = too_many.user(claude_tower_core::MessageContent::Blocks(vec![marked(
            &format!("u{i}"),
        )]));
        too_many = too_many.assistant("ok");
    }
    let four = too_many.clone().user("last");
    four.validate().unwrap();
    let five = too_many
        .message(MessageParam::system(
            claude_tower_core::MessageContent::Blocks(vec![marked("rule")]),
        ))
        .user("last");
    let error = five.validate().unwrap_err();
    assert!(
        error.to_string().contains("5 `cache_control` markers"),
        "{error}"
    );
}
