//! Trimming never produces an invalid request (a proptest over 10,000 conversations), keeps
//! the prompt cache warm with chunked dropping (measured with the mock's cache simulation),
//! summarizes once per dropped range, and fails clearly when nothing can fit.

use std::sync::Arc;

use claude_tower_core::layout::{Slot, positions, set_marker};
use claude_tower_core::{
    CacheControl, CacheTtl, ContentBlock, ErrorKind, MediaBlock, MessageParam, MessagesRequest,
    Role, System, ThinkingBlock,
};
use claude_tower_mock::MockClaude;
use claude_tower_trim::{
    Summarizer, TRUNCATION_MARKER, TokenBudget, TrimLayer, TrimOptions, TrimReport, trim,
};
use proptest::prelude::*;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};

/// One exchange: an assistant turn (maybe thinking, text, parallel tool calls) and the user
/// turn that follows (tool results, maybe an image, maybe text).
fn arb_exchange() -> impl Strategy<Value = (Vec<ContentBlock>, Vec<ContentBlock>)> {
    (
        any::<bool>(),
        "[a-z ]{0,300}",
        0usize..4,
        "[a-z ]{0,600}",
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(|(thinking, text, calls, result, image, seed)| {
            let mut assistant = Vec::new();
            if thinking {
                assistant.push(ContentBlock::Thinking(ThinkingBlock {
                    thinking: "hmm".into(),
                    signature: "sig".into(),
                    ..Default::default()
                }));
            }
            if !text.is_empty() || calls == 0 {
                assistant.push(ContentBlock::text(format!("reply {text}")));
            }
            let mut user = Vec::new();
            for k in 0..calls {
                let id = format!("toolu_{seed}_{k}");
                assistant.push(ContentBlock::tool_use(
                    id.clone(),
                    "lookup",
                    json!({"k": k}),
                ));
                user.push(ContentBlock::tool_result(id, format!("{result} {k}")));
            }
            if image {
                user.push(ContentBlock::Image(MediaBlock {
                    source: json!({"type": "url", "url": "https://example.com/a.png"}),
                    ..Default::default()
                }));
            }
            if calls == 0 || !result.is_empty() {
                user.push(ContentBlock::text(format!("next {result}")));
            }
            (assistant, user)
        })
}

fn arb_conversation() -> impl Strategy<Value = MessagesRequest> {
    (
        "[a-z ]{1,400}",
        prop::collection::vec(arb_exchange(), 0..10),
        prop::option::of("[a-z ]{0,800}"),
    )
        .prop_map(|(first, exchanges, system)| {
            let mut request =
                MessagesRequest::new("claude-sonnet-4-6", 512).user(format!("task: {first}"));
            if let Some(system) = system {
                request = request.system(system);
            }
            for (seed, (assistant, user)) in exchanges.into_iter().enumerate() {
                // Unique tool ids across exchanges.
                let rename = |blocks: Vec<ContentBlock>| -> Vec<ContentBlock> {
                    blocks
                        .into_iter()
                        .map(|b| match b {
                            ContentBlock::ToolUse(mut t) => {
                                t.id = format!("{}_{seed}", t.id);
                                ContentBlock::ToolUse(t)
                            }
                            ContentBlock::ToolResult(mut r) => {
                                r.tool_use_id = format!("{}_{seed}", r.tool_use_id);
                                ContentBlock::ToolResult(r)
                            }
                            other => other,
                        })
                        .collect()
                };
                request = request
                    .message(MessageParam::assistant(rename(assistant)))
                    .message(MessageParam::user(rename(user)));
            }
            request
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn trimmed_requests_are_valid_fit_and_keep_the_newest_user_turn(
        request in arb_conversation(),
        fraction in 0.05f64..1.2,
        hysteresis in prop::sample::select(vec![0.5, 0.7, 1.0]),
        pin in any::<bool>(),
        truncate in any::<bool>(),
    ) {
        request.validate().unwrap();
        let total = request.estimate_input_tokens();
        let budget = ((total as f64 * fraction) as u64).max(1);
        let options = TrimOptions::default().with_pinned_first_message(pin).with_hysteresis(hysteresis).with_truncation(truncate);
        match trim(&request, budget, &options) {
            Ok((out, report)) => {
                prop_assert!(out.validate().is_ok(), "{:?}", out.validate());
                prop_assert!(out.estimate_input_tokens() <= budget);
                prop_assert_eq!(out.messages.first().map(|m| &m.role), Some(&Role::User), "no leading assistant turn");
                // The newest user turn is kept (cut only by opt-in truncation, with its marker).
                let (kept, newest) = (out.messages.last().unwrap(), request.messages.last().unwrap());
                if report.blocks_truncated == 0 {
                    prop_assert_eq!(kept, newest, "the newest user turn is kept");
                } else {
                    prop_assert_eq!(&kept.role, &newest.role);
                    prop_assert_eq!(kept.content.blocks().len(), newest.content.blocks().len());
                }
                prop_assert_eq!(&out.system, &request.system, "the system prompt is kept");
                if pin && report.blocks_truncated == 0 {
                    prop_assert_eq!(&out.messages[0], &request.messages[0], "the pinned message is kept");
                }
                prop_assert_eq!(report.tokens_after, out.estimate_input_tokens());
                // Kept assistant turns are untouched (thinking blocks included).
                for m in out.messages.iter().filter(|m| m.role == Role::Assistant) {
                    prop_assert!(request.messages.contains(m));
                }
            }
            Err(error) => {
                prop_assert_eq!(error.kind(), ErrorKind::InvalidRequest);
                prop_assert!(error.message().contains("over by"), "{}", error.message());
            }
        }
    }
}

/// Marks the request as the prompt-cache layer does (system, previous tail, tail), so the
/// cache measurement does not depend on that crate.
fn with_cache_markers(request: MessagesRequest) -> MessagesRequest {
    let p = positions(&request);
    let mut out = request;
    let tail = p.iter().rposition(|x| x.cacheable);
    let system = p
        .iter()
        .rposition(|x| matches!(x.slot, Slot::SystemText | Slot::System(_)));
    let last_assistant = out.messages.iter().rposition(|m| m.role == Role::Assistant);
    let previous = last_assistant.and_then(|a| {
        p.iter().rposition(|x| {
            matches!(x.slot, Slot::Message(m, _) | Slot::MessageText(m) if m < a) && x.cacheable
        })
    });
    if let Some(s) = system {
        set_marker(
            &mut out,
            p[s].slot,
            CacheControl::with_ttl(CacheTtl::OneHour),
        );
    }
    for i in [previous, tail].into_iter().flatten() {
        set_marker(&mut out, p[i].slot, CacheControl::ephemeral());
    }
    out
}

async fn run_200_turns(hysteresis: f64) -> (f64, usize) {
    let mock = MockClaude::new();
    let budget = 12_000;
    let options = TrimOptions::default().with_hysteresis(hysteresis);
    let trimmer = ServiceBuilder::new()
        .layer(
            TrimLayer::new()
                .budget(TokenBudget::Tokens(budget))
                .options(options),
        )
        .map_request(|r: http::Request<MessagesRequest>| {
            let (parts, body) = r.into_parts();
            http::Request::from_parts(parts, with_cache_markers(body))
        })
        .service(mock.clone());
    let mut history = MessagesRequest::new("claude-sonnet-4-6", 1024)
        .system("You are a patient assistant for a long support conversation. ".repeat(60))
        .user("The customer's original question, kept pinned.");
    let (mut read, mut prompt, mut trims) = (0u64, 0u64, 0usize);
    for turn in 0..200 {
        let response = trimmer
            .clone()
            .oneshot(history.clone().into_http())
            .await
            .unwrap();
        if response
            .extensions()
            .get::<TrimReport>()
            .is_some_and(|r| r.messages_dropped > 0)
        {
            trims += 1;
        }
        let message = response.into_body().into_message().await.unwrap();
        read += message.usage.cache_read_tokens();
        prompt += message.usage.total_input_tokens();
        history = history
            .assistant(format!(
                "Answer {turn}: {}",
                "we checked the logs ".repeat(8)
            ))
            .user(format!(
                "Follow-up {turn}: {}",
                "more details here ".repeat(10)
            ));
    }
    (read as f64 / prompt as f64, trims)
}

#[tokio::test]
async fn chunked_dropping_keeps_the_prompt_cache_warm() {
    let (chunked, chunked_trims) = run_200_turns(0.7).await;
    let (sliding, sliding_trims) = run_200_turns(1.0).await;
    println!(
        "200 turns over a 12,000-token budget: cache read ratio {:.1} % with chunked dropping (70 %), {:.1} % with a sliding window ({chunked_trims} / {sliding_trims} trimmed requests)",
        chunked * 100.0,
        sliding * 100.0
    );
    assert!(chunked >= 0.80, "chunked {chunked}");
    assert!(
        chunked > sliding + 0.2,
        "chunked {chunked} vs sliding {sliding}"
    );
}

#[tokio::test]
async fn the_summarizer_is_called_once_per_dropped_range() {
    let summarizer_mock = MockClaude::new();
    let summarizer: Summarizer = tower::util::BoxCloneSyncService::new(summarizer_mock.clone());
    let upstream = MockClaude::new();
    let service = ServiceBuilder::new()
        .layer(
            TrimLayer::new()
                .budget(TokenBudget::Tokens(3_000))
                .summarize_with(summarizer, "claude-haiku-4-5"),
        )
        .service(upstream.clone());
    let mut history = MessagesRequest::new("claude-sonnet-4-6", 256).user("the task");
    let mut summaries = 0;
    for turn in 0..60 {
        let response = service
            .clone()
            .oneshot(history.clone().into_http())
            .await
            .unwrap();
        if response
            .extensions()
            .get::<TrimReport>()
            .unwrap()
            .summary_used
        {
            summaries += 1;
            let sent = upstream.requests().last().unwrap().body.clone();
            assert!(
                sent.messages[1]
                    .content
                    .text()
                    .starts_with("[Summary of the earlier conversation]")
            );
        }
        history = history
            .assistant(format!("answer {turn}"))
            .user(format!("question {turn}: {}", "context ".repeat(30)));
    }
    let ranges = summarizer_mock.request_count();
    println!(
        "{summaries} trimmed requests used a summary; the summarizer was called {ranges} times"
    );
    assert!(summaries > 10);
    assert!(
        ranges * 3 <= summaries,
        "a summary is reused while its range is unchanged"
    );
}

#[tokio::test]
async fn what_cannot_fit_fails_before_sending_and_truncation_is_opt_in() {
    let mock = MockClaude::new();
    let huge = MessagesRequest::new("claude-sonnet-4-6", 256)
        .user(format!("paste: {}", "log line ".repeat(5_000)));
    let service = ServiceBuilder::new()
        .layer(TrimLayer::new().budget(TokenBudget::Tokens(2_000)))
        .service(mock.clone());
    let error = service.oneshot(huge.clone().into_http()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert!(error.message().contains("over by"), "{error}");
    assert_eq!(mock.request_count(), 0);
    let options = TrimOptions::default().with_truncation(true);
    let service = ServiceBuilder::new()
        .layer(
            TrimLayer::new()
                .budget(TokenBudget::Tokens(2_000))
                .options(options),
        )
        .service(mock.clone());
    service.oneshot(huge.into_http()).await.unwrap();
    let sent = &mock.requests()[0].body;
    assert!(sent.messages[0].content.text().contains(TRUNCATION_MARKER));
    assert!(sent.estimate_input_tokens() <= 2_000);
    // The context-window budget: a small conversation is left alone.
    let service = ServiceBuilder::new()
        .layer(TrimLayer::new())
        .service(MockClaude::new());
    let response = service
        .oneshot(
            MessagesRequest::new("claude-haiku-4-5", 100)
                .user("hi")
                .into_http(),
        )
        .await
        .unwrap();
    assert_eq!(
        response
            .extensions()
            .get::<TrimReport>()
            .unwrap()
            .messages_dropped,
        0
    );
    let _ = (System::Text(String::new()), Arc::new(0));
}

/// Compaction blocks are opaque: only whole turns before the latest compaction are dropped,
/// and the compaction block itself comes back byte for byte.
#[test]
fn only_turns_before_the_latest_compaction_are_dropped() {
    let compaction: ContentBlock = serde_json::from_value(json!({
        "type": "compaction",
        "content": "Summary of everything so far.",
        "encrypted_content": "opaque==",
        "signature": "sig",
        "tool_changes": null
    }))
    .unwrap();
    let long = "word ".repeat(400);
    let mut request = MessagesRequest::new("claude-sonnet-4-6", 100);
    for i in 0..6 {
        request = request.user(format!("{i}: {long}"));
        let mut reply = vec![ContentBlock::text(format!("reply {i}: {long}"))];
        if i == 3 {
            reply.insert(0, compaction.clone());
        }
        request = request.assistant(claude_tower_core::MessageContent::Blocks(reply));
    }
    let request = request.user("latest question");
    // Turn 3's assistant message (index 7) holds the compaction.
    let options = TrimOptions::default().with_hysteresis(1.0);
    let cut = claude_tower_trim::find_cut(&request, 50, &options).expect("something to cut");
    assert!(cut.resume <= 7, "resumed after the compaction: {cut:?}");
    let trimmed = claude_tower_trim::apply_cut(&request, cut, None);
    let kept = serde_json::to_value(&trimmed).unwrap().to_string();
    assert!(kept.contains(r#""encrypted_content":"opaque==""#));
    assert!(
        kept.contains(r#""tool_changes":null"#),
        "kept byte for byte"
    );
}

/// `system`-role messages (API version `2026-10-21`) are instructions from their position on:
/// a cut keeps them, in order, after the summary and before the resumed turns; they are not
/// counted as freed, not handed to the summarizer, and the trimmed request stays valid.
#[test]
fn system_role_messages_survive_a_cut_in_order() {
    let long = "word ".repeat(400);
    let mut request = MessagesRequest::new("claude-sonnet-4-6", 100);
    for i in 0..6 {
        request = request.user(format!("{i}: {long}"));
        if i == 1 || i == 3 {
            request = request.message(MessageParam::system(format!("rule {i}: be brief")));
        }
        request = request.assistant(format!("reply {i}: {long}"));
    }
    let request = request.user("latest question");
    let options = TrimOptions::default().with_hysteresis(1.0);
    let cut = claude_tower_trim::find_cut(&request, 500, &options).expect("something to cut");
    let dropped = claude_tower_trim::dropped_messages(&request, cut);
    assert!(dropped.iter().all(|m| m.role != Role::System));
    assert!(!dropped.is_empty());
    let trimmed = claude_tower_trim::apply_cut(&request, cut, Some("earlier talk"));
    trimmed.validate().unwrap();
    let roles: Vec<Role> = trimmed.messages.iter().map(|m| m.role.clone()).collect();
    let texts: Vec<String> = trimmed.messages.iter().map(|m| m.content.text()).collect();
    let rules: Vec<&String> = texts.iter().filter(|t| t.starts_with("rule ")).collect();
    assert_eq!(rules, ["rule 1: be brief", "rule 3: be brief"], "{texts:?}");
    // The pinned first turn, the summary, then the rules, then the resumed turns.
    assert!(texts[0].starts_with("0: "), "{texts:?}");
    assert!(texts[1].contains("earlier talk"), "{texts:?}");
    assert_eq!(roles[2], Role::System);
    assert_eq!(
        trimmed.messages.last().unwrap().content.text(),
        "latest question"
    );
    // The cut freed what it dropped and nothing for the kept rules.
    let freed = request.estimate_input_tokens() - trimmed.estimate_input_tokens();
    assert!(freed > 0);
}
