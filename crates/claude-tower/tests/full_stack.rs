//! The full stack over the loopback mock server with faults — a 429 storm, a mid-stream
//! overload, budget exhaustion, trimming, response-cache hits — losing and duplicating nothing.

use std::time::Duration;

use claude_tower::cost::{CostLedger, MemoryBudgetStore};
use claude_tower::ext::{Attempts, ResponseCacheStatus};
use claude_tower::mock::{Attempt, MockServer};
use claude_tower::prelude::*;
use claude_tower::trim::{TokenBudget, TrimReport};
use tower::ServiceBuilder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lose_and_duplicate_nothing() {
    let server = MockServer::start().await.unwrap();
    let transport = server.transport().unwrap();
    let ledger = CostLedger::new();
    let budget = BudgetLayer::new(MemoryBudgetStore::new())
        .per_tenant("0.012".parse::<Usd>().unwrap(), Window::Total);
    let stack = ServiceBuilder::new()
        .claude_trace(TraceLayer::new())
        .claude_cost(CostLayer::new().ledger(ledger.clone()))
        .claude_response_cache(ResponseCacheLayer::in_memory(1 << 24))
        .claude_trim(TrimLayer::new().budget(TokenBudget::Tokens(3_000)))
        .claude_prompt_cache(PromptCacheLayer::new())
        .claude_budget(budget)
        .claude_retry(RetryLayer::new().initial_backoff(Duration::from_millis(5)))
        .claude_rate_limit(
            RateLimitLayer::new().pool("haiku", Limits::new(10_000, 10_000_000, 1_000_000)),
        )
        .service(transport);
    let client = Client::new(stack.clone());
    let mock = server.mock();

    // 1. A 429 storm: two 429s then success — one logical request, three upstream attempts.
    mock.push_script([Attempt::rate_limited_ms(10), Attempt::rate_limited_ms(10)]);
    let (message, ext) = client
        .messages()
        .create_with_response(MessagesRequest::new("claude-haiku-4-5", 100).user("storm"))
        .await
        .unwrap();
    assert!(message.text().contains("storm"));
    assert_eq!(ext.get::<Attempts>().unwrap().count, 3);
    assert_eq!(mock.request_count(), 3);

    // 2. A mid-stream overload before content: retried into one clean stream.
    mock.push_script([Attempt::mid_stream_error(1, "overloaded_error")]);
    let mut stream = client
        .messages()
        .stream(MessagesRequest::new("claude-haiku-4-5", 100).user("stream me"))
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(piece) = stream.next_text().await.unwrap() {
        text.push_str(&piece);
    }
    assert!(text.contains("stream me"));
    assert_eq!(stream.into_message().unwrap().text(), text);
    assert_eq!(mock.request_count(), 5);

    // 3. Trimming: a long conversation is cut before it is sent.
    let mut long = MessagesRequest::new("claude-haiku-4-5", 100).user("task");
    for i in 0..60 {
        long = long
            .assistant(format!("answer {i}"))
            .user(format!("more {i}: {}", "words ".repeat(30)));
    }
    let (_, ext) = client.messages().create_with_response(long).await.unwrap();
    assert!(ext.get::<TrimReport>().unwrap().messages_dropped > 0);
    assert!(mock.requests().last().unwrap().body.estimate_input_tokens() <= 3_000);
    assert_eq!(mock.request_count(), 6);

    // 4. Response-cache hits: deterministic requests are answered once.
    let deterministic = MessagesRequest::new("claude-haiku-4-5", 100)
        .user("2+2?")
        .temperature(0.0);
    for expected in [
        ResponseCacheStatus::Miss,
        ResponseCacheStatus::Hit,
        ResponseCacheStatus::Hit,
    ] {
        let (_, ext) = client
            .messages()
            .create_with_response(deterministic.clone())
            .await
            .unwrap();
        assert_eq!(ext.get::<ResponseCacheStatus>(), Some(&expected));
    }
    assert_eq!(mock.request_count(), 7);

    // 5. Budget exhaustion: a tenant's requests stop before anything is sent.
    let before = mock.request_count();
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..40 {
        let mut request = MessagesRequest::new("claude-haiku-4-5", 2_000)
            .user(format!("tenant request {i}"))
            .into_http();
        request
            .extensions_mut()
            .insert(claude_tower::ext::Attribution::tenant("acme"));
        match tower::ServiceExt::oneshot(stack.clone(), request).await {
            Ok(_) => admitted += 1,
            Err(error) if error.kind() == ErrorKind::BudgetExceeded => refused += 1,
            Err(error) => panic!("{error}"),
        }
    }
    assert!(
        admitted > 0 && refused > 0,
        "admitted {admitted}, refused {refused}"
    );
    assert_eq!(
        mock.request_count() - before,
        admitted,
        "refused requests were not sent"
    );

    // Every logical request that succeeded was metered exactly once (cache hits included).
    let snapshot = ledger.snapshot();
    assert_eq!(snapshot.total.requests as usize, 1 + 1 + 1 + 3 + admitted);
    assert_eq!(snapshot.total.cached_responses, 2);
}

/// Betas the SDKs deprecated (API-NOTES §15: prompt caching, extended cache TTL, token
/// counting, token-efficient tools, PDFs, cache diagnosis, message batches) are never
/// injected by any layer — 1h cache markers and `diagnostics` go out with no `anthropic-beta`
/// header, streamed or not — and a caller's own beta header passes through byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_layer_injects_a_deprecated_beta() {
    const DEPRECATED: &[&str] = &[
        "prompt-caching-2024-07-31",
        "extended-cache-ttl-2025-04-11",
        "token-counting-2024-11-01",
        "token-efficient-tools-2025-02-19",
        "pdfs-2024-09-25",
        "cache-diagnosis-2026-04-07",
        "message-batches-2024-09-24",
    ];
    let server = MockServer::start().await.unwrap();
    let transport = server.transport().unwrap();
    let stack = ServiceBuilder::new()
        .claude_trace(TraceLayer::new())
        .claude_cost(CostLayer::new())
        .claude_response_cache(ResponseCacheLayer::in_memory(1 << 20))
        .claude_trim(TrimLayer::new().budget(TokenBudget::Tokens(50_000)))
        .claude_prompt_cache(PromptCacheLayer::new())
        .claude_budget(
            BudgetLayer::new(MemoryBudgetStore::new())
                .per_tenant("5".parse::<Usd>().unwrap(), Window::Total),
        )
        .claude_retry(RetryLayer::new())
        .claude_rate_limit(RateLimitLayer::new())
        .service(transport);
    let client = Client::new(stack.clone());
    let mut request = MessagesRequest::new("claude-sonnet-4-6", 100)
        .system("You are terse. ".repeat(400))
        .user("Summarise the document.");
    request.extra.insert(
        "diagnostics".to_owned(),
        serde_json::json!({"previous_message_id": "msg_previous"}),
    );
    client.messages().create(request.clone()).await.unwrap();
    let mut stream = client.messages().stream(request.clone()).await.unwrap();
    while stream.next_text().await.unwrap().is_some() {}
    let mut own = request.into_http();
    own.headers_mut().insert(
        "anthropic-beta",
        "compact-2026-01-12, fast-mode".parse().unwrap(),
    );
    tower::ServiceExt::oneshot(stack, own).await.unwrap();

    let requests = server.mock().requests();
    assert_eq!(requests.len(), 3);
    for (i, recorded) in requests.iter().enumerate() {
        let betas: Vec<&str> = recorded
            .headers
            .get_all("anthropic-beta")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        for beta in &betas {
            assert!(
                !DEPRECATED.iter().any(|d| beta.contains(d)),
                "request {i} carries a deprecated beta: {betas:?}"
            );
        }
        if i < 2 {
            assert!(betas.is_empty(), "request {i}: {betas:?}");
        } else {
            assert_eq!(
                betas,
                ["compact-2026-01-12, fast-mode"],
                "passed through as sent"
            );
        }
    }
}
