//! Properties of the layout: for any request, at most 4 markers, 1h before 5m, the caller's
//! markers untouched, otherwise the same content, and accepted by the mock, which rejects what
//! the API rejects.

use std::sync::Arc;

use claude_tower_core::layout::{Slot, positions};
use claude_tower_core::models::ModelTable;
use claude_tower_core::{
    CacheControl, CacheTtl, ContentBlock, MessageContent, MessageParam, MessagesRequest, System,
    ThinkingBlock, Tool,
};
use claude_tower_mock::MockClaude;
use claude_tower_prompt_cache::{TtlPolicy, place_breakpoints};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

fn arb_marker() -> impl Strategy<Value = Option<CacheControl>> {
    prop_oneof![
        6 => Just(None),
        1 => Just(Some(CacheControl::ephemeral())),
        1 => Just(Some(CacheControl::with_ttl(CacheTtl::OneHour))),
    ]
}

fn arb_block() -> impl Strategy<Value = ContentBlock> {
    prop_oneof![
        ("[a-z ]{0,400}", arb_marker()).prop_map(|(text, marker)| {
            let mut block = ContentBlock::text(text);
            *block.cache_control_mut().unwrap() = marker;
            block
        }),
        "[a-z]{1,40}".prop_map(|t| ContentBlock::Thinking(ThinkingBlock {
            thinking: t,
            signature: "sig".into(),
            ..Default::default()
        })),
    ]
}

fn arb_request() -> impl Strategy<Value = MessagesRequest> {
    (
        prop::collection::vec(("[a-z]{1,8}", "[a-z ]{0,2000}", arb_marker()), 0..4),
        prop::option::of(prop_oneof![
            "[a-z ]{0,6000}".prop_map(System::Text),
            prop::collection::vec(arb_block(), 1..3).prop_map(System::Blocks)
        ]),
        prop::collection::vec(
            (
                0u8..4,
                prop_oneof![
                    "[a-z ]{1,300}".prop_map(MessageContent::Text),
                    prop::collection::vec(arb_block(), 1..25).prop_map(MessageContent::Blocks)
                ],
            ),
            1..8,
        ),
        prop::option::of(arb_marker()),
        prop::sample::select(vec![
            "claude-sonnet-4-6",
            "claude-haiku-4-5",
            "claude-opus-5",
        ]),
    )
        .prop_map(|(tools, system, messages, top, model)| {
            let mut request = MessagesRequest::new(model, 100);
            if !tools.is_empty() {
                request.tools = Some(Arc::new(
                    tools
                        .into_iter()
                        .map(|(name, description, marker)| {
                            let mut tool = Tool::new(name, description, json!({"type": "object"}));
                            tool.cache_control = marker;
                            tool
                        })
                        .collect(),
                ));
            }
            request.system = system.map(Arc::new);
            // Roles: user and assistant turns, and `system`-role messages (API version
            // `2026-10-21`) anywhere after the first message.
            for (i, (pick, content)) in messages.into_iter().enumerate() {
                let role = match pick {
                    1 | 2 if i % 2 == 1 => claude_tower_core::Role::Assistant,
                    3 if i > 0 => claude_tower_core::Role::System,
                    _ => claude_tower_core::Role::User,
                };
                request = request.message(MessageParam::new(role, content));
            }
            request.cache_control = top.flatten();
            request
        })
}

/// The request as JSON without any marker, strings turned into single text blocks.
fn normalized(request: &MessagesRequest) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("cache_control");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut copy = request.clone();
    if let Some(system) = &mut copy.system
        && let System::Text(text) = Arc::make_mut(system)
    {
        let text = std::mem::take(text);
        *Arc::make_mut(system) = System::Blocks(vec![ContentBlock::text(text)]);
    }
    for message in copy.messages_mut() {
        let message = Arc::make_mut(message);
        if let MessageContent::Text(text) = &mut message.content {
            message.content =
                MessageContent::Blocks(vec![ContentBlock::text(std::mem::take(text))]);
        }
    }
    let mut value = serde_json::to_value(&copy).unwrap();
    strip(&mut value);
    value
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn markers_are_valid_callers_untouched_content_identical(request in arb_request()) {
        prop_assume!(request.cache_markers().len() <= 4);
        // Callers cannot send 1h after 5m, nor an automatic marker over a last-block marker of
        // another TTL; skip such inputs (validate() refuses them).
        prop_assume!(request.validate().map_or_else(
            |e| !(e.message().contains("1h") || e.message().contains("different TTL")),
            |()| true
        ));
        let before = positions(&request);
        let out = place_breakpoints(&request, &TtlPolicy::default(), ModelTable::builtin());
        let after = positions(&out);
        let markers = out.cache_markers();
        prop_assert!(markers.len() <= 4, "{} markers", markers.len());
        let mut seen_short = false;
        for marker in &markers {
            match marker.effective_ttl() {
                CacheTtl::OneHour => prop_assert!(!seen_short, "1h after 5m"),
                _ => seen_short = true,
            }
        }
        prop_assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            if b.marker.is_some() {
                prop_assert_eq!(&b.marker, &a.marker, "a caller marker moved or changed");
            }
            if a.marker.is_some() && b.marker.is_none() {
                prop_assert!(a.cacheable);
            }
        }
        prop_assert_eq!(&out.cache_control, &request.cache_control);
        prop_assert_eq!(normalized(&out), normalized(&request), "content changed");
        // The mock rejects what the API rejects (400): a valid request must stay valid.
        if request.validate().is_ok() {
            let sent = RUNTIME.with(|rt| {
                rt.block_on(MockClaude::new().oneshot(out.clone().into_http()))
            });
            if let Err(error) = sent {
                prop_assert!(false, "the mock rejected the laid-out request: {}", error);
            }
        }
        // Only the messages that got a marker were copied; the rest are still the caller's.
        let marked: Vec<usize> = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b.marker != a.marker)
            .filter_map(|(_, a)| match a.slot {
                Slot::Message(m, _) | Slot::MessageText(m) => Some(m),
                _ => None,
            })
            .collect();
        for (m, (sent, original)) in out.messages.iter().zip(request.messages.iter()).enumerate() {
            prop_assert_eq!(
                Arc::ptr_eq(sent, original),
                !marked.contains(&m),
                "message {} shared only when unmarked", m
            );
        }
    }
}

/// `diagnostics.cache_miss_reason` (API-NOTES §15) reaches the report: an object with a
/// type and missed tokens, `null` while pending, and an unknown value as `Other`.
#[test]
fn the_report_surfaces_the_cache_miss_reason() {
    use claude_tower_prompt_cache::{CacheMissReason, PromptCacheReport};
    let message = |diagnostics: Value| {
        let mut body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [], "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 0}
        });
        body["diagnostics"] = diagnostics;
        serde_json::from_value::<claude_tower_core::Message>(body).unwrap()
    };
    let report = PromptCacheReport::from_message(&message(json!({
        "cache_miss_reason": {"type": "tools_changed", "cache_missed_input_tokens": 4096}
    })));
    assert_eq!(report.miss_reason, Some(CacheMissReason::ToolsChanged));
    assert_eq!(report.missed_tokens, Some(4096));
    let pending = PromptCacheReport::from_message(&message(json!({"cache_miss_reason": null})));
    assert_eq!(pending.miss_reason, Some(CacheMissReason::Pending));
    let unknown =
        PromptCacheReport::from_message(&message(json!({"cache_miss_reason": "moon_phase"})));
    assert_eq!(unknown.miss_reason, Some(CacheMissReason::Other));
    assert_eq!(
        PromptCacheReport::from_message(&message(json!(null))).miss_reason,
        None
    );
}

/// A prompt shorter than the model's minimum cacheable length cannot be cached: the report
/// says so (with the minimum) instead of a silent 0 % hit ratio, streamed or not.
#[tokio::test]
async fn a_prompt_below_the_minimum_is_reported() {
    use claude_tower_prompt_cache::{PromptCacheLayer, PromptCacheReport, PromptCacheReportHandle};
    use tower::{ServiceBuilder, ServiceExt};
    let service = ServiceBuilder::new()
        .layer(PromptCacheLayer::new())
        .service(claude_tower_mock::MockClaude::new());
    for (system, stream, expected) in [
        ("Be brief. ".repeat(10), false, Some(4_096)),
        ("Be brief. ".repeat(10), true, Some(4_096)),
        (
            "Be brief and exact in every answer. ".repeat(600),
            false,
            None,
        ),
    ] {
        let request = MessagesRequest::new("claude-haiku-4-5", 50)
            .system(system)
            .user("hi")
            .stream(stream);
        let response = service.clone().oneshot(request.into_http()).await.unwrap();
        let handle = response
            .extensions()
            .get::<PromptCacheReportHandle>()
            .unwrap()
            .clone();
        response.into_body().into_message().await.unwrap();
        let report: PromptCacheReport = *handle.get().unwrap();
        assert_eq!(report.below_minimum, expected, "stream={stream}");
    }
}

/// A deferred call (it waits for a Message Batch, often longer than 5 minutes) gets 1 h
/// markers everywhere; an ordinary call keeps the layer's policy (5 min everywhere here).
#[tokio::test]
async fn deferred_calls_get_one_hour_markers() {
    use claude_tower_prompt_cache::PromptCacheLayer;
    use tower::{ServiceBuilder, ServiceExt};
    let mock = claude_tower_mock::MockClaude::new();
    let service = ServiceBuilder::new()
        .layer(PromptCacheLayer::new().ttl(TtlPolicy::uniform(CacheTtl::FiveMinutes)))
        .service(mock.clone());
    for deferred in [false, true] {
        let mut request = MessagesRequest::new("claude-haiku-4-5", 50)
            .system("Be brief and exact in every answer. ".repeat(600))
            .user("hi")
            .into_http();
        if deferred {
            request
                .extensions_mut()
                .insert(claude_tower_core::ext::Deferred::new());
        }
        service.clone().oneshot(request).await.unwrap();
        let sent = mock.requests().pop().unwrap().body;
        let ttls: Vec<CacheTtl> = sent
            .cache_markers()
            .into_iter()
            .map(|m| m.effective_ttl())
            .collect();
        assert!(!ttls.is_empty());
        let expected = if deferred {
            CacheTtl::OneHour
        } else {
            CacheTtl::FiveMinutes
        };
        assert!(
            ttls.iter().all(|t| *t == expected),
            "deferred={deferred}: {ttls:?}"
        );
    }
}
