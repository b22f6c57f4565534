//! The stack against a hostile upstream: a raw HTTP/1.1 server on 127.0.0.1 that sends any
//! bytes, trickles, floods, resets and redirects. One test per failure class of the hardening
//! issue; each asserts the typed error kind (or the documented tolerated result), no panic,
//! bounded wall time, and — where the upstream is endless — bounded peak memory.
//!
//! **Memory bound.** Peak RSS growth is read from `VmHWM` in `/proc/self/status` after
//! resetting it (`/proc/self/clear_refs`), on Linux. The caps here are ≤ 1 MiB per body or
//! event, 8 MiB per recording, 32 held events; the asserted bound is 64 MiB, generous for
//! allocator slack and the runtime, and far below what an uncapped flood reaches in the same
//! time (hundreds of MiB per second on loopback). Tests in this file run one at a time (a
//! shared lock), so a parallel test's memory is never counted.

#![cfg(feature = "full")]
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the suite reports the times and memory it measured"
)]

use std::time::Duration;

use claude_tower::cost::{CostLedger, MemoryBudgetStore};
use claude_tower::mock::hostile::{HostileServer, Reply};
use claude_tower::mock::{Attempt, MockClaude};
use claude_tower::prelude::*;
use claude_tower::trim::TokenBudget as TrimBudget;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

const KEY: &str = "sk-ant-api03-HOSTILE-test-key-0123456789";
/// Peak RSS growth allowed for any one scenario.
const MEMORY_BOUND_KIB: u64 = 64 * 1024;
/// Wall time allowed for any one scenario (its own timeouts are a few seconds).
const TIME_BOUND: Duration = Duration::from_secs(30);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Resets the peak RSS counter; returns a probe that reports the growth since.
struct Peak(Option<u64>);

impl Peak {
    fn start() -> Self {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        Self(vm_hwm_kib())
    }

    fn assert_within(&self, what: &str) {
        let (Some(before), Some(after)) = (self.0, vm_hwm_kib()) else {
            eprintln!("{what}: no /proc/self/status here; memory not checked");
            return;
        };
        let growth = after.saturating_sub(before);
        println!("{what}: peak RSS grew by {growth} KiB (bound {MEMORY_BOUND_KIB} KiB)");
        assert!(
            growth < MEMORY_BOUND_KIB,
            "{what}: peak RSS grew by {growth} KiB"
        );
    }
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn transport(server: &HostileServer) -> Transport {
    Transport::builder()
        .ignore_env()
        .api_key(KEY)
        .base_url(server.base_url())
        .timeout(Duration::from_secs(4))
        .read_timeout(Duration::from_secs(3))
        .max_body_bytes(1 << 20)
        .max_error_body_bytes(64 << 10)
        .max_event_bytes(256 << 10)
        .build()
        .unwrap()
}

fn request() -> MessagesRequest {
    MessagesRequest::new("claude-haiku-4-5", 100)
        .user("hello")
        .temperature(0.0)
}

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = tokio::time::timeout(TIME_BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: still pending after {TIME_BOUND:?}"));
    println!("{what}: {:?}", started.elapsed());
    out
}

const MESSAGE_START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-haiku-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n";
const BLOCK_START: &str = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
const BLOCK_DELTA: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n";
const PING: &str = "event: ping\ndata: {\"type\":\"ping\"}\n\n";

fn ok_json(usage: &str) -> Reply {
    Reply::complete(
        200,
        &[("content-type", "application/json")],
        format!(
            "{{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[{{\"type\":\"text\",\"text\":\"ok\"}}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{usage}}}"
        ),
    )
}

/// Class 1a: events in an order the accumulator cannot apply are a `Decode` error, through the
/// retry layer, the response cache and the client.
#[tokio::test]
async fn events_out_of_order_are_a_decode_error_not_a_panic() {
    let _one = ONE_AT_A_TIME.lock().await;
    let body = format!("{MESSAGE_START}{BLOCK_START}{MESSAGE_START}{BLOCK_DELTA}");
    let server = HostileServer::start(vec![Reply::sse(&body)]).await;
    let stack = ServiceBuilder::new()
        .claude_response_cache(ResponseCacheLayer::in_memory(1 << 20))
        .claude_retry(RetryLayer::new().initial_backoff(Duration::from_millis(5)))
        .service(transport(&server));
    let client = Client::new(stack);
    let result = bounded("out of order", async {
        let mut stream = client.messages().stream(request()).await?;
        while stream.next_text().await?.is_some() {}
        stream.into_message()
    })
    .await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Decode);
}

/// Class 1b: absurd retry hints are ignored (the computed backoff applies), never a panic.
#[tokio::test]
async fn absurd_retry_after_hints_are_ignored() {
    let _one = ONE_AT_A_TIME.lock().await;
    let error = |name: &str, value: &str| {
        Reply::complete(
            429,
            &[("content-type", "application/json"), (name, value)],
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        )
    };
    let server = HostileServer::start(vec![
        error("retry-after", "1e20"),
        error("retry-after-ms", "1e300"),
        ok_json(r#"{"input_tokens":1,"output_tokens":1}"#),
    ])
    .await;
    let stack = ServiceBuilder::new()
        .claude_retry(RetryLayer::new().initial_backoff(Duration::from_millis(10)))
        .service(transport(&server));
    let message = bounded(
        "retry-after 1e20 / 1e300",
        Client::new(stack).messages().create(request()),
    )
    .await
    .unwrap();
    assert_eq!(message.text(), "ok");
    assert_eq!(server.received().len(), 3);
}

/// Class 1c: usage numbers near `u64::MAX` saturate in cost, budget and rate limiter.
#[tokio::test]
async fn absurd_usage_numbers_saturate() {
    let _one = ONE_AT_A_TIME.lock().await;
    let max = u64::MAX;
    let usage = format!(
        r#"{{"input_tokens":{max},"output_tokens":{max},"cache_read_input_tokens":{max},"cache_creation_input_tokens":{max},"cache_creation":{{"ephemeral_5m_input_tokens":{max},"ephemeral_1h_input_tokens":{max}}},"server_tool_use":{{"web_search_requests":{max}}}}}"#
    );
    let server = HostileServer::start(vec![ok_json(&usage)]).await;
    let ledger = CostLedger::new();
    let stack = ServiceBuilder::new()
        .claude_cost(CostLayer::new().ledger(ledger.clone()))
        .claude_prompt_cache(PromptCacheLayer::new())
        .claude_budget(
            BudgetLayer::new(MemoryBudgetStore::new()).global(Usd::from_cents(1_000), Window::Day),
        )
        .claude_rate_limit(
            RateLimitLayer::new().pool("haiku", Limits::new(1_000, 1_000_000, 100_000)),
        )
        .service(transport(&server));
    let client = Client::new(stack);
    let message = bounded("u64::MAX usage", client.messages().create(request()))
        .await
        .unwrap();
    assert_eq!(message.usage.input_tokens, u64::MAX);
    assert_eq!(message.usage.total_input_tokens(), u64::MAX, "saturated");
    assert!(ledger.snapshot().total.cost > Usd::from_cents(u64::MAX));
    // The budget is now spent (saturated), and says so instead of wrapping.
    let error = client.messages().create(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BudgetExceeded);
}

/// Class 1d: trimming a request without messages does not index into nothing.
#[tokio::test]
async fn trimming_a_request_without_messages_does_not_panic() {
    let _one = ONE_AT_A_TIME.lock().await;
    let stack = ServiceBuilder::new()
        .claude_trim(TrimLayer::new().budget(TrimBudget::Tokens(10)))
        .service(MockClaude::new());
    let request = MessagesRequest::new("claude-haiku-4-5", 100).system("x".repeat(10_000));
    let result = bounded("trim, no messages", stack.oneshot(request.into_http())).await;
    // Nothing to cut: the request goes on and is refused before sending as invalid.
    assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidRequest);
}

/// Class 2: an endless JSON body, and an endless error body, stop at their caps.
#[tokio::test]
async fn endless_bodies_stop_at_their_caps() {
    let _one = ONE_AT_A_TIME.lock().await;
    let json = Reply::flood(
        Reply::head(200, &[("content-type", "application/json")]),
        vec![b'['; 64 << 10],
    );
    let error = Reply::flood(
        Reply::head(500, &[("content-type", "application/json")]),
        vec![b'x'; 64 << 10],
    );
    let server = HostileServer::start(vec![json, error]).await;
    let peak = Peak::start();
    let transport = transport(&server);
    let error = bounded(
        "endless JSON body",
        transport.clone().oneshot(request().into_http()),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TooLarge);
    let stack = ServiceBuilder::new()
        .claude_retry(RetryLayer::new().initial_backoff(Duration::from_millis(5)))
        .service(transport);
    let error = bounded(
        "endless 500 body, retried",
        stack.oneshot(request().into_http()),
    )
    .await
    .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(500));
    assert!(
        std::error::Error::source(&error).is_some_and(|s| s.to_string().contains("cut")),
        "the error says its body was cut: {error:?}"
    );
    assert_eq!(server.received().len(), 4, "1 + 3 attempts");
    peak.assert_within("endless bodies");
}

/// Class 2 and 3: a flood of pings (or of unknown events) through retry peeking and response
/// cache recording is bounded in memory and cut by the idle / total timers.
#[tokio::test]
async fn event_floods_are_bounded_and_cut_by_timeouts() {
    let _one = ONE_AT_A_TIME.lock().await;
    let head = || {
        let mut head = Reply::head(200, &[("content-type", "text/event-stream")]);
        head.extend_from_slice(MESSAGE_START.as_bytes());
        head
    };
    let pings = PING.repeat(1000);
    let unknown = "event: surprise\ndata: {\"type\":\"surprise\",\"pad\":\"".to_owned()
        + &"y".repeat(4000)
        + "\"}\n\n";
    let server = HostileServer::start(vec![
        Reply::flood(head(), pings.into_bytes()),
        Reply::flood(head(), unknown.repeat(16).into_bytes()),
    ])
    .await;
    let stack = ServiceBuilder::new()
        .claude_response_cache(ResponseCacheLayer::in_memory(1 << 26))
        .claude_retry(RetryLayer::new().max_retries(0))
        .layer(
            TimeoutLayer::new()
                .first_event(Duration::from_secs(2))
                .idle(Duration::from_secs(2))
                .total(Duration::from_secs(5)),
        )
        .service(transport(&server));
    let client = Client::new(stack);
    let peak = Peak::start();
    for what in ["ping flood", "unknown-event flood"] {
        let error = bounded(what, async {
            let mut stream = client.messages().stream(request()).await?;
            while stream.next_text().await?.is_some() {}
            stream.into_message()
        })
        .await
        .unwrap_err();
        // Pings before content never end the retry layer's peeking: the timeout reaches the
        // caller as is. Unknown events are delivered after 32, so the timeout comes after
        // delivery, wrapped as an interrupted stream.
        let timed_out = error.kind() == ErrorKind::Timeout
            || (error.kind() == ErrorKind::StreamInterrupted
                && error.to_string().contains("timed out"));
        assert!(timed_out, "{what}: {error}");
    }
    peak.assert_within("event floods");
}

/// Class 3: the error body of a streaming call is read under the deadline, however slowly it
/// trickles.
#[tokio::test]
async fn a_trickling_error_body_of_a_stream_is_cut_at_the_deadline() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(vec![Reply::trickle(
        Reply::head(529, &[("content-type", "application/json")]),
        b"x".to_vec(),
        Duration::from_secs(1),
    )])
    .await;
    let started = Instant::now();
    let error = bounded(
        "529 body at 1 byte/s",
        transport(&server).oneshot(request().stream(true).into_http()),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Overloaded);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut at the 4 s deadline"
    );
}

/// Class 4: a redirect is never followed, so the key never reaches another origin.
#[tokio::test]
async fn redirects_are_not_followed_and_the_key_stays_home() {
    let _one = ONE_AT_A_TIME.lock().await;
    let elsewhere =
        HostileServer::start(vec![ok_json(r#"{"input_tokens":1,"output_tokens":1}"#)]).await;
    let location = format!("{}/v1/messages", elsewhere.base_url());
    let server =
        HostileServer::start(vec![Reply::complete(307, &[("location", &location)], "")]).await;
    let error = bounded("307", transport(&server).oneshot(request().into_http()))
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(307));
    assert_eq!(server.received()[0].header("x-api-key"), Some(KEY));
    assert!(
        elsewhere.received().is_empty(),
        "nothing reached the other origin"
    );
    assert!(!format!("{error:?}{error}").contains(KEY));
}

/// Class 5: two requests identical but for their credential never share a cache entry.
#[tokio::test]
async fn the_response_cache_is_credential_scoped() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mock = MockClaude::new();
    let stack = ServiceBuilder::new()
        .claude_response_cache(ResponseCacheLayer::in_memory(1 << 20))
        .service(mock.clone());
    let with = |name: &'static str, value: &str| {
        let mut request = request().into_http();
        request.headers_mut().insert(name, value.parse().unwrap());
        request
    };
    for request in [
        with("x-api-key", "key-a"),
        with("x-api-key", "key-b"),
        with("authorization", "Bearer token-c"),
        with("x-api-key", "key-a"),
    ] {
        let response = stack.clone().oneshot(request).await.unwrap();
        response.into_body().into_message().await.unwrap();
    }
    assert_eq!(mock.request_count(), 3, "one upstream call per credential");
}

/// Class 6: a learned limit of 0 does not close the pool, and a 429's absurd hint pauses it
/// for at most the cap.
#[tokio::test(start_paused = true)]
async fn limiter_learning_is_sanitised_and_pauses_are_capped() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mock = MockClaude::new().with_script([
        Attempt::ok().with_header("anthropic-ratelimit-requests-limit", "0"),
        Attempt::ok().with_header("anthropic-ratelimit-input-tokens-limit", "1"),
        Attempt::ok(),
        Attempt::rate_limited(Some(Duration::from_secs(99_999_999))),
    ]);
    let stack = ServiceBuilder::new()
        .claude_rate_limit(RateLimitLayer::new().max_wait(Duration::from_secs(120)))
        .service(mock.clone());
    for _ in 0..3 {
        stack.clone().oneshot(request().into_http()).await.unwrap();
    }
    let error = stack
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    let started = Instant::now();
    stack.oneshot(request().into_http()).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited <= claude_tower::core::DEFAULT_MAX_RETRY_AFTER + Duration::from_secs(1),
        "the pool was paused for {waited:?}"
    );
    assert_eq!(mock.request_count(), 5);
}

/// Class 2: an endless stream of text deltas through every layer that watches a stream
/// (trace, response cache, retry, timeout) keeps no growing buffer: the caller, consuming
/// the events without keeping them, sees the total timeout.
#[tokio::test]
async fn an_endless_text_stream_is_not_buffered_by_any_layer() {
    use futures_util::StreamExt;
    let _one = ONE_AT_A_TIME.lock().await;
    let mut head = Reply::head(200, &[("content-type", "text/event-stream")]);
    head.extend_from_slice(MESSAGE_START.as_bytes());
    head.extend_from_slice(BLOCK_START.as_bytes());
    let delta = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"".to_owned()
        + &"z".repeat(8000)
        + "\"}}\n\n";
    let server = HostileServer::start(vec![Reply::flood(head, delta.repeat(8).into_bytes())]).await;
    let stack = ServiceBuilder::new()
        .claude_trace(TraceLayer::new())
        .claude_cost(CostLayer::new())
        .claude_response_cache(ResponseCacheLayer::in_memory(1 << 26))
        .claude_prompt_cache(PromptCacheLayer::new())
        .claude_budget(
            BudgetLayer::new(MemoryBudgetStore::new()).global(Usd::from_cents(100), Window::Day),
        )
        .claude_retry(RetryLayer::new().max_retries(0))
        .claude_rate_limit(RateLimitLayer::new())
        .layer(TimeoutLayer::new().total(Duration::from_secs(4)))
        .service(transport(&server));
    let peak = Peak::start();
    let (events, error) = bounded("text-delta flood", async {
        let response = stack.oneshot(request().stream(true).into_http()).await?;
        let mut stream = response.into_body().into_stream();
        let mut events = 0u64;
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => events += 1,
                Err(error) => return Ok::<_, claude_tower::Error>((events, error)),
            }
        }
        panic!("an endless stream ended");
    })
    .await
    .unwrap();
    println!(
        "text-delta flood: {events} events ({} MiB) before: {error}",
        events * 8 / 1024
    );
    assert!(events > 1_000, "the flood flowed");
    assert!(error.to_string().contains("timed out"), "{error}");
    peak.assert_within("text-delta flood");
}
