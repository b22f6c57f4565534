//! Every SSE fixture in `../shared/data/anthropic-fixtures/` (the official Python SDK's
//! streaming fixtures and the OpenLLMetry cassettes recorded from the real API) goes through
//! the real SSE decoder, in several chunkings, and the accumulated message is checked against
//! values read off the fixtures independently.

use std::path::PathBuf;

use bytes::Bytes;
use claude_tower_core::{
    ContentBlock, Error, ErrorKind, Message, MessageAccumulator, MessagesRequest, StreamEvent,
};
use claude_tower_transport::sse;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// The shared fixtures, or `None` (the test is skipped with a note) when they are absent.
fn fixtures() -> Option<PathBuf> {
    claude_tower_mock::fixtures::shared_fixtures()
}

/// Decodes `body` split into `chunk`-byte pieces; returns all items.
async fn decode(body: &[u8], chunk: usize) -> Vec<Result<StreamEvent, Error>> {
    let chunks: Vec<Result<Bytes, Error>> = body
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    sse::decode(
        futures_util::stream::iter(chunks),
        Some("req_fixture".to_owned()),
    )
    .collect()
    .await
}

struct Outcome {
    events: Vec<StreamEvent>,
    message: Option<Message>,
    accumulate_error: Option<Error>,
    stream_error: Option<Error>,
    accumulator: MessageAccumulator,
}

async fn run(body: &[u8]) -> Outcome {
    let mut reference: Option<Vec<String>> = None;
    let mut last = None;
    for chunk in [1, 7, 64, usize::MAX] {
        let items = decode(body, chunk.min(body.len().max(1))).await;
        // Every chunking yields the same sequence.
        let rendered: Vec<String> = items
            .iter()
            .map(|i| match i {
                Ok(e) => serde_json::to_string(e).unwrap(),
                Err(e) => format!("error: {:?}", e.kind()),
            })
            .collect();
        match &reference {
            None => reference = Some(rendered),
            Some(r) => assert_eq!(
                r, &rendered,
                "chunk size {chunk} changed the event sequence"
            ),
        }
        last = Some(items);
    }
    let items = last.unwrap();
    let mut events = Vec::new();
    let mut stream_error = None;
    for item in items {
        match item {
            Ok(event) => events.push(event),
            Err(error) => stream_error = Some(error),
        }
    }
    let mut accumulator = MessageAccumulator::new();
    let mut accumulate_error = None;
    for event in &events {
        if let Err(error) = accumulator.push(event) {
            accumulate_error.get_or_insert(error);
        }
    }
    let message = accumulator.snapshot().cloned();
    Outcome {
        events,
        message,
        accumulate_error,
        stream_error,
        accumulator,
    }
}

struct Expect {
    file: &'static str,
    blocks: &'static [&'static str],
    stop_reason: &'static str,
    text: &'static str,
    text_chars: usize,
    tool_input: Option<Value>,
    input_tokens: u64,
    output_tokens: u64,
    cache_write: Option<u64>,
    cache_read: Option<u64>,
}

const HELLO: &str = "Hello there!";

fn expectations() -> Vec<Expect> {
    let simple = |file, blocks, input_tokens, output_tokens, cache: Option<(u64, u64)>| Expect {
        file,
        blocks,
        stop_reason: "end_turn",
        text: HELLO,
        text_chars: 12,
        tool_input: None,
        input_tokens,
        output_tokens,
        cache_write: cache.map(|c| c.0),
        cache_read: cache.map(|c| c.1),
    };
    vec![
        simple("basic_response.txt", &["text"], 11, 6, None),
        simple(
            "compaction_response.txt",
            &["compaction", "text"],
            30,
            8,
            None,
        ),
        simple(
            "context_management_response.txt",
            &["text"],
            25,
            8,
            Some((0, 0)),
        ),
        simple("fallback_credit_response.txt", &["text"], 25, 8, None),
        simple("fallback_response.txt", &["fallback", "text"], 25, 8, None),
        simple(
            "input_transformations_delta_response.txt",
            &["text"],
            25,
            8,
            Some((0, 0)),
        ),
        simple(
            "input_transformations_empty_delta_response.txt",
            &["text"],
            25,
            8,
            Some((0, 0)),
        ),
        simple(
            "input_transformations_start_only_response.txt",
            &["text"],
            25,
            8,
            Some((0, 0)),
        ),
        simple(
            "message_delta_fields_response.txt",
            &["text"],
            40,
            8,
            Some((12, 7)),
        ),
        simple(
            "message_delta_omitted_usage_response.txt",
            &["text"],
            25,
            8,
            Some((10, 5)),
        ),
        simple("unknown_events_response.txt", &["text"], 11, 6, None),
        Expect {
            file: "fable-fallback-stream-a-refusal.sse",
            blocks: &["thinking", "text"],
            stop_reason: "refusal",
            text: "Hi",
            text_chars: 2,
            tool_input: None,
            input_tokens: 28,
            output_tokens: 106,
            cache_write: Some(0),
            cache_read: Some(0),
        },
        Expect {
            file: "fable-fallback-stream-a-toolrefusal.sse",
            blocks: &["server_tool_use", "web_search_tool_result", "text"],
            stop_reason: "refusal",
            text: "Here's a summary of this year's solar eclipses and how",
            text_chars: 54,
            tool_input: Some(json!({"query": "solar eclipse viewing safety news 2026"})),
            input_tokens: 28,
            output_tokens: 106,
            cache_write: Some(0),
            cache_read: Some(0),
        },
        Expect {
            file: "fable-fallback-stream-b-fallback.sse",
            blocks: &["text"],
            stop_reason: "end_turn",
            text: " there! Happy to explain.",
            text_chars: 1312,
            tool_input: None,
            input_tokens: 31,
            output_tokens: 547,
            cache_write: Some(0),
            cache_read: Some(0),
        },
        Expect {
            file: "refusal_response.txt",
            blocks: &["text"],
            stop_reason: "refusal",
            text: "",
            text_chars: 0,
            tool_input: None,
            input_tokens: 20,
            output_tokens: 0,
            cache_write: None,
            cache_read: None,
        },
        Expect {
            file: "server_tool_use_response.txt",
            blocks: &["server_tool_use", "web_search_tool_result", "text"],
            stop_reason: "end_turn",
            text: "Claude Opus 4.7 is now generally available",
            text_chars: 109,
            tool_input: Some(json!({"query": "anthropic claude release notes"})),
            input_tokens: 9281,
            output_tokens: 97,
            cache_write: Some(0),
            cache_read: Some(0),
        },
        Expect {
            file: "tool_use_response.txt",
            blocks: &["text", "tool_use"],
            stop_reason: "tool_use",
            text: "I'll check the current weather in Paris for you.",
            text_chars: 48,
            tool_input: Some(json!({"location": "Paris"})),
            input_tokens: 377,
            output_tokens: 65,
            cache_write: Some(0),
            cache_read: Some(0),
        },
        Expect {
            file: "incomplete_partial_json_response.txt",
            blocks: &["text", "tool_use"],
            stop_reason: "max_tokens",
            text: "I'll create a comprehensive tax guide",
            text_chars: 135,
            tool_input: Some(json!({})),
            input_tokens: 450,
            output_tokens: 124,
            cache_write: Some(0),
            cache_read: Some(0),
        },
        Expect {
            file: "tool_use_invalid_json_response.txt",
            blocks: &["text", "tool_use"],
            stop_reason: "tool_use",
            text: "I'll check the current weather in Paris for you.",
            text_chars: 48,
            tool_input: Some(json!({})),
            input_tokens: 377,
            output_tokens: 65,
            cache_write: Some(0),
            cache_read: Some(0),
        },
    ]
}

fn check(expect: &Expect, message: &Message, source: &str) {
    let blocks: Vec<&str> = message
        .content
        .iter()
        .map(ContentBlock::type_name)
        .collect();
    assert_eq!(blocks, expect.blocks, "{source}: block types");
    assert_eq!(
        message.stop_reason.as_ref().map(|r| r.as_str()),
        Some(expect.stop_reason),
        "{source}: stop_reason"
    );
    let text = message.text();
    assert!(text.starts_with(expect.text), "{source}: text {text:?}");
    assert_eq!(
        text.chars().count(),
        expect.text_chars,
        "{source}: text length"
    );
    if let Some(input) = &expect.tool_input {
        let tool = message
            .content
            .iter()
            .find_map(|b| match b {
                ContentBlock::ToolUse(t) | ContentBlock::ServerToolUse(t) => Some(t),
                _ => None,
            })
            .expect("a tool block");
        assert_eq!(&tool.input, input, "{source}: tool input");
    }
    assert_eq!(
        message.usage.input_tokens, expect.input_tokens,
        "{source}: input_tokens"
    );
    assert_eq!(
        message.usage.output_tokens, expect.output_tokens,
        "{source}: output_tokens"
    );
    assert_eq!(
        message.usage.cache_creation_input_tokens, expect.cache_write,
        "{source}: cache writes"
    );
    assert_eq!(
        message.usage.cache_read_input_tokens, expect.cache_read,
        "{source}: cache reads"
    );
}

#[tokio::test]
async fn every_sdk_fixture_decodes_and_accumulates() {
    let Some(root) = fixtures() else {
        return;
    };
    let dir = root.join("sdk-python-2.12.0-sse");
    let expectations = expectations();
    let mut seen = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !(name.ends_with(".txt") || name.ends_with(".sse")) {
            continue;
        }
        let expect = expectations
            .iter()
            .find(|e| e.file == name)
            .unwrap_or_else(|| panic!("no expectation for new fixture {name}: add one"));
        let body = std::fs::read(&path).unwrap();
        let outcome = run(&body).await;
        assert!(
            outcome.stream_error.is_none(),
            "{name}: {:?}",
            outcome.stream_error
        );
        assert!(outcome.accumulator.is_complete(), "{name}: no message_stop");
        let message = outcome.message.as_ref().expect("message_start");
        check(expect, message, &name);

        match name.as_str() {
            "tool_use_invalid_json_response.txt" => {
                let error = outcome
                    .accumulate_error
                    .expect("invalid tool JSON is reported");
                assert_eq!(error.kind(), ErrorKind::Decode);
                assert!(error.message().contains("celsius}"), "{error}");
            }
            "incomplete_partial_json_response.txt" => {
                assert!(outcome.accumulate_error.is_none());
                let partial = outcome
                    .accumulator
                    .partial_json(1)
                    .expect("partial JSON kept");
                assert!(
                    partial.starts_with("{\"filename\": \"taxes.txt\""),
                    "{partial}"
                );
            }
            _ => assert!(
                outcome.accumulate_error.is_none(),
                "{name}: {:?}",
                outcome.accumulate_error
            ),
        }
        if name == "unknown_events_response.txt" {
            let unknown: Vec<&StreamEvent> = outcome
                .events
                .iter()
                .filter(|e| matches!(e, StreamEvent::Unknown(_)))
                .collect();
            assert_eq!(unknown.len(), 3);
            assert!(unknown.iter().all(|e| e.type_name() == "future_event"));
            // Unknown events serialize back unchanged.
            let value = serde_json::to_value(unknown[0]).unwrap();
            assert_eq!(
                value,
                json!({"type": "future_event", "usage": {"input_tokens": 99, "output_tokens": 99}})
            );
        }
        if name == "compaction_response.txt" {
            let compaction = serde_json::to_value(&message.content[0]).unwrap();
            assert_eq!(compaction["content"], "Earlier conversation summarized.");
            assert_eq!(
                compaction["encrypted_content"],
                "EpwBCioIDxgCEAEYASJALd_opaque_compaction_payload"
            );
        }
        if name == "fable-fallback-stream-a-refusal.sse" {
            let ContentBlock::Thinking(thinking) = &message.content[0] else {
                panic!("thinking block")
            };
            assert_eq!(thinking.thinking.chars().count(), 212);
            assert!(!thinking.signature.is_empty());
            assert_eq!(
                message
                    .usage
                    .output_tokens_details
                    .as_ref()
                    .unwrap()
                    .thinking_tokens,
                67
            );
        }
        if name == "message_delta_fields_response.txt" {
            // message_delta overwrote the start's usage and brought server tool use.
            assert_eq!(
                message
                    .usage
                    .server_tool_use
                    .as_ref()
                    .unwrap()
                    .web_search_requests,
                1
            );
            assert_eq!(
                message
                    .usage
                    .output_tokens_details
                    .as_ref()
                    .unwrap()
                    .thinking_tokens,
                3
            );
        }
        seen += 1;
    }
    assert_eq!(
        seen,
        expectations.len(),
        "every expectation matched a fixture"
    );
}

#[tokio::test]
async fn every_cassette_body_decodes_and_accumulates() {
    struct Cassette {
        file: &'static str,
        interaction: usize,
        blocks: &'static [&'static str],
        stop_reason: &'static str,
        text_chars: usize,
        usage: (u64, u64, u64, u64),
        tool_inputs: Vec<Value>,
    }
    let expected = [
        Cassette {
            file: "test_anthropic_prompt_caching_stream_legacy.yaml",
            interaction: 0,
            blocks: &["text"],
            stop_reason: "end_turn",
            text_chars: 913,
            usage: (4, 201, 1165, 0),
            tool_inputs: vec![],
        },
        Cassette {
            file: "test_anthropic_prompt_caching_stream_legacy.yaml",
            interaction: 1,
            blocks: &["text"],
            stop_reason: "end_turn",
            text_chars: 1016,
            usage: (4, 221, 0, 1165),
            tool_inputs: vec![],
        },
        Cassette {
            file: "test_anthropic_streaming_helper_methods_legacy.yaml",
            interaction: 0,
            blocks: &["text"],
            stop_reason: "end_turn",
            text_chars: 12,
            usage: (11, 6, 0, 0),
            tool_inputs: vec![],
        },
        Cassette {
            file: "test_anthropic_thinking_streaming_with_events_with_content.yaml",
            interaction: 0,
            blocks: &["thinking", "text"],
            stop_reason: "end_turn",
            text_chars: 56,
            usage: (52, 216, 0, 0),
            tool_inputs: vec![],
        },
        Cassette {
            file: "test_anthropic_tools_streaming_legacy.yaml",
            interaction: 0,
            blocks: &["text", "tool_use", "tool_use"],
            stop_reason: "tool_use",
            text_chars: 175,
            usage: (506, 153, 0, 0),
            tool_inputs: vec![
                json!({"location": "San Francisco, CA", "unit": "celsius"}),
                json!({"timezone": "America/Los_Angeles"}),
            ],
        },
    ];
    let Some(root) = fixtures() else {
        return;
    };
    let dir = root.join("openllmetry-cassettes");
    let mut interactions_seen = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let name = path.file_name().unwrap().to_str().unwrap();
        let cassette: Value =
            serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let interactions = cassette["interactions"].as_array().unwrap();
        for (index, interaction) in interactions.iter().enumerate() {
            let expect = expected
                .iter()
                .find(|c| c.file == name && c.interaction == index)
                .unwrap_or_else(|| panic!("no expectation for {name} #{index}"));
            // The recorded request body parses and round-trips unchanged.
            let request_text = interaction["request"]["body"].as_str().unwrap();
            let request_json: Value = serde_json::from_str(request_text).unwrap();
            let request: MessagesRequest = serde_json::from_value(request_json.clone()).unwrap();
            assert_eq!(
                serde_json::to_value(&request).unwrap(),
                request_json,
                "{name}: request round trip"
            );

            let body = interaction["response"]["body"]["string"].as_str().unwrap();
            let outcome = run(body.as_bytes()).await;
            assert!(
                outcome.stream_error.is_none(),
                "{name}: {:?}",
                outcome.stream_error
            );
            assert!(
                outcome.accumulate_error.is_none(),
                "{name}: {:?}",
                outcome.accumulate_error
            );
            assert!(outcome.accumulator.is_complete(), "{name}");
            let message = outcome.message.unwrap();
            let blocks: Vec<&str> = message
                .content
                .iter()
                .map(ContentBlock::type_name)
                .collect();
            assert_eq!(blocks, expect.blocks, "{name}");
            assert_eq!(
                message.stop_reason.as_ref().unwrap().as_str(),
                expect.stop_reason,
                "{name}"
            );
            assert_eq!(message.text().chars().count(), expect.text_chars, "{name}");
            let u = &message.usage;
            assert_eq!(
                (
                    u.input_tokens,
                    u.output_tokens,
                    u.cache_write_tokens(),
                    u.cache_read_tokens()
                ),
                expect.usage,
                "{name} #{index}: usage"
            );
            let inputs: Vec<Value> = message.tool_uses().map(|t| t.input.clone()).collect();
            assert_eq!(inputs, expect.tool_inputs, "{name}");
            if expect.blocks[0] == "thinking" {
                let ContentBlock::Thinking(thinking) = &message.content[0] else {
                    panic!()
                };
                assert!(!thinking.thinking.is_empty() && !thinking.signature.is_empty());
            }
            interactions_seen += 1;
        }
    }
    assert_eq!(interactions_seen, expected.len());
}

#[tokio::test]
async fn recorded_tool_runner_responses_parse_as_messages() {
    let Some(root) = fixtures() else {
        return;
    };
    let path = root.join("sdk-python-2.12.0-sse/recorded-tool-runner-opus-4-5.json");
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut count = 0;
    let mut walk = vec![&recorded];
    while let Some(value) = walk.pop() {
        match value {
            Value::Object(map)
                if map.get("type") == Some(&json!("message")) && map.contains_key("usage") =>
            {
                let message: Message = serde_json::from_value(value.clone()).unwrap();
                assert_eq!(
                    serde_json::to_value(&message).unwrap(),
                    *value,
                    "message round trip"
                );
                count += 1;
            }
            Value::Object(map) => walk.extend(map.values()),
            Value::Array(items) => walk.extend(items),
            Value::String(text) if text.starts_with('{') => {
                if let Ok(inner) = serde_json::from_str::<Value>(text)
                    && inner.get("type") == Some(&json!("message"))
                {
                    let message: Message = serde_json::from_value(inner.clone()).unwrap();
                    assert_eq!(serde_json::to_value(&message).unwrap(), inner);
                    count += 1;
                }
            }
            _ => {}
        }
    }
    assert!(count > 0, "the recording holds messages");
}

#[tokio::test]
async fn events_are_yielded_as_bytes_arrive() {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Bytes, Error>>();
    let bytes = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut events = sse::decode(bytes, None);
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n";
    // Half a frame: nothing yet.
    tx.send(Ok(Bytes::from(&start[..40]))).unwrap();
    let pending = tokio::time::timeout(std::time::Duration::from_millis(20), events.next()).await;
    assert!(pending.is_err(), "no event from half a frame");
    // The rest of the frame plus the start of the next: exactly one event, before the stream ends.
    tx.send(Ok(Bytes::from(format!(
        "{}event: ping\ndata: {{\"type\":",
        &start[40..]
    ))))
    .unwrap();
    let first = events.next().await.unwrap().unwrap();
    assert!(matches!(first, StreamEvent::MessageStart(_)));
    tx.send(Ok(Bytes::from_static(b" \"ping\"}\n\n"))).unwrap();
    assert!(matches!(
        events.next().await.unwrap().unwrap(),
        StreamEvent::Ping(_)
    ));
    // The sender goes away before `message_stop`: the stream reports the interruption.
    drop(tx);
    let error = events.next().await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StreamInterrupted);
    assert!(events.next().await.is_none());
}

/// Every JSON value in the fixtures — each SSE `data:` line, and each recorded response body —
/// re-serialises to the identical JSON value (explicit `null`s and unknown fields included).
#[test]
fn every_fixture_value_round_trips_unchanged() {
    let mut checked = 0;
    let Some(root) = fixtures() else {
        return;
    };
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (event, data) in sse_frames(&text) {
                let Ok(original) = serde_json::from_str::<Value>(&data) else {
                    continue;
                };
                let parsed = StreamEvent::from_sse(&event, &data)
                    .unwrap_or_else(|e| panic!("{}: {event}: {e}", path.display()));
                assert_eq!(
                    serde_json::to_value(&parsed).unwrap(),
                    original,
                    "{}: {event}",
                    path.display()
                );
                if let StreamEvent::MessageStart(start) = &parsed {
                    let message = original.get("message").unwrap();
                    assert_eq!(&serde_json::to_value(&start.message).unwrap(), message);
                }
                checked += 1;
            }
            if path.extension().is_some_and(|e| e == "json") {
                for body in response_bodies(&serde_json::from_str(&text).unwrap_or(Value::Null)) {
                    let parsed: Message = serde_json::from_value(body.clone()).unwrap();
                    assert_eq!(
                        serde_json::to_value(&parsed).unwrap(),
                        body,
                        "{}",
                        path.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} values checked");
}

/// `(event, data)` of each frame of an SSE text (simple framing: fixtures are well-formed).
fn sse_frames(text: &str) -> Vec<(String, String)> {
    let mut frames = Vec::new();
    let (mut event, mut data) = (String::new(), String::new());
    for line in text.lines().chain([""]) {
        if line.is_empty() {
            if !data.is_empty() {
                frames.push((std::mem::take(&mut event), std::mem::take(&mut data)));
            }
            event.clear();
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    frames
}

/// Objects that are whole Messages API responses (`"type": "message"` with an `id`).
fn response_bodies(value: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("message") && map.contains_key("id")
            {
                out.push(value.clone());
            }
            for v in map.values() {
                out.extend(response_bodies(v));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| out.extend(response_bodies(v))),
        Value::String(text) if text.starts_with('{') => {
            if let Ok(inner) = serde_json::from_str::<Value>(text) {
                out.extend(response_bodies(&inner));
            }
        }
        _ => {}
    }
    out
}

/// `message_delta` carries `context_management` beside `delta`: the streamed message gets it,
/// as the non-streamed response has it.
#[tokio::test]
async fn a_streamed_context_management_lands_on_the_message() {
    let Some(root) = fixtures() else {
        return;
    };
    let path = root.join("sdk-python-2.12.0-sse/context_management_response.txt");
    let body = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&body).into_owned();
    let expected = sse_frames(&text)
        .into_iter()
        .rev()
        .filter(|(event, _)| event == "message_delta")
        .filter_map(|(_, data)| {
            serde_json::from_str::<Value>(&data)
                .ok()?
                .get("context_management")
                .cloned()
        })
        .next()
        .expect("the fixture's message_delta has context_management");
    for chunk in [1, 7, 4096] {
        let mut acc = MessageAccumulator::new();
        for item in decode(&body, chunk).await {
            acc.push(&item.unwrap()).unwrap();
        }
        let message = acc.finish().unwrap();
        assert_eq!(message.extra.get("context_management"), Some(&expected));
        let as_json = serde_json::to_value(&message).unwrap();
        assert_eq!(as_json["context_management"], expected);
    }
}

/// A request with a tool that has no `name` (an MCP toolset) parses and round-trips.
#[test]
fn an_mcp_toolset_request_round_trips() {
    let request = json!({
        "model": "claude-sonnet-4-6",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "What does deepwiki say?"}],
        "mcp_servers": [{"type": "url", "url": "https://mcp.deepwiki.com/mcp", "name": "deepwiki"}],
        "tools": [{"type": "mcp_toolset", "mcp_server_name": "deepwiki"}]
    });
    let parsed: MessagesRequest = serde_json::from_value(request.clone()).unwrap();
    parsed.validate().unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), request);
}
