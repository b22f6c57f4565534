//! The response cache against the mock: single-flight, streams recorded and replayed, TTLs
//! on the paused clock, the size bound, the key, the policy, and sharing through Redis.

use std::time::Duration;

use claude_tower_core::ext::{Attribution, ResponseCacheStatus};
use claude_tower_core::{
    ContentBlock, ErrorKind, Message, MessageAccumulator, MessagesBody, MessagesRequest, Metadata,
    StopReason, StreamEvent, ThinkingConfig, ThinkingEnabled, Tool, ToolChoice,
};
#[cfg(feature = "redis")]
use claude_tower_mock::RedisServer;
use claude_tower_mock::{Attempt, MockClaude};
#[cfg(feature = "redis")]
use claude_tower_response_cache::RedisResponseStore;
use claude_tower_response_cache::{
    MemoryResponseStore, ResponseCacheLayer, ResponseCacheMode, cache_key,
};
use futures_util::StreamExt;
use tower::{ServiceBuilder, ServiceExt};

fn request() -> MessagesRequest {
    MessagesRequest::new("claude-haiku-4-5", 200)
        .user("What is 2 + 2?")
        .temperature(0.0)
}

fn status(response: &http::Response<MessagesBody>) -> ResponseCacheStatus {
    *response.extensions().get::<ResponseCacheStatus>().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_identical_requests_make_one_upstream_call() {
    let mock = MockClaude::new()
        .with_script([Attempt::ok().with_first_byte_delay(Duration::from_millis(500))]);
    let service = ServiceBuilder::new()
        .layer(ResponseCacheLayer::in_memory(1 << 26))
        .service(mock.clone());
    let calls = (0..100).map(|i| {
        let request = if i % 2 == 0 {
            request()
        } else {
            request().stream(true)
        };
        service.clone().oneshot(request.into_http())
    });
    let responses = futures_util::future::join_all(calls).await;
    assert_eq!(mock.request_count(), 1, "exactly one upstream request");
    let expected = MockClaude::new()
        .oneshot(request().into_http())
        .await
        .unwrap()
        .into_body()
        .into_message()
        .await
        .unwrap();
    let mut statuses = (0, 0);
    for response in responses {
        let response = response.unwrap();
        match status(&response) {
            ResponseCacheStatus::Miss => statuses.0 += 1,
            ResponseCacheStatus::Hit => statuses.1 += 1,
            other => panic!("unexpected {other:?}"),
        }
        let message = response.into_body().into_message().await.unwrap();
        assert_eq!(message.text(), expected.text());
        assert_eq!(message.usage, expected.usage, "the original usage");
    }
    assert_eq!(statuses, (1, 99));
}

#[tokio::test(start_paused = true)]
async fn followers_share_the_leaders_error_and_nothing_is_cached() {
    let mock = MockClaude::new()
        .with_script([Attempt::overloaded().with_first_byte_delay(Duration::from_millis(100))]);
    let service = ServiceBuilder::new()
        .layer(ResponseCacheLayer::in_memory(1 << 26))
        .service(mock.clone());
    let calls = (0..10).map(|_| service.clone().oneshot(request().into_http()));
    for result in futures_util::future::join_all(calls).await {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Overloaded);
        assert_eq!(error.status().map(|s| s.as_u16()), Some(529));
    }
    assert_eq!(mock.request_count(), 1);
    let next = service.oneshot(request().into_http()).await.unwrap();
    assert_eq!(
        status(&next),
        ResponseCacheStatus::Miss,
        "the error was not cached"
    );
    assert_eq!(mock.request_count(), 2);
}

async fn events(response: http::Response<MessagesBody>) -> Vec<StreamEvent> {
    response
        .into_body()
        .into_stream()
        .map(Result::unwrap)
        .collect()
        .await
}

#[tokio::test]
async fn a_streamed_miss_is_replayed_exactly_and_serves_non_stream_requests() {
    let mock = MockClaude::new();
    let service = ServiceBuilder::new()
        .layer(ResponseCacheLayer::in_memory(1 << 26))
        .service(mock.clone());
    let miss = service
        .clone()
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    assert_eq!(status(&miss), ResponseCacheStatus::Miss);
    let original = events(miss).await;
    let hit = service
        .clone()
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    assert_eq!(status(&hit), ResponseCacheStatus::Hit);
    assert_eq!(events(hit).await, original, "the same event sequence");
    let mut acc = MessageAccumulator::new();
    for event in &original {
        acc.push(event).unwrap();
    }
    let accumulated = acc.finish().unwrap();
    let as_message = service
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap();
    assert_eq!(status(&as_message), ResponseCacheStatus::Hit);
    assert_eq!(
        as_message.into_body().into_message().await.unwrap(),
        accumulated
    );
    assert_eq!(mock.request_count(), 1);

    // And a complete message serves a stream request.
    let other = MessagesRequest::new("claude-haiku-4-5", 200)
        .user("Another question")
        .temperature(0.0);
    let message = service
        .clone()
        .oneshot(other.clone().into_http())
        .await
        .unwrap()
        .into_body()
        .into_message()
        .await
        .unwrap();
    let replayed = service
        .oneshot(other.stream(true).into_http())
        .await
        .unwrap();
    assert_eq!(status(&replayed), ResponseCacheStatus::Hit);
    assert_eq!(replayed.into_body().into_message().await.unwrap(), message);
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn entries_expire_and_can_be_served_stale_on_error() {
    let mock = MockClaude::new();
    let layer = ResponseCacheLayer::in_memory(1 << 26)
        .ttl(Duration::from_secs(60))
        .serve_stale_on_error(true);
    let service = ServiceBuilder::new().layer(layer).service(mock.clone());
    service
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(
        status(
            &service
                .clone()
                .oneshot(request().into_http())
                .await
                .unwrap()
        ),
        ResponseCacheStatus::Hit
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    mock.push_script([Attempt::overloaded()]);
    let stale = service
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap();
    assert_eq!(
        status(&stale),
        ResponseCacheStatus::Stale,
        "upstream failed; expired entry served"
    );
    let fresh = service
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap();
    assert_eq!(
        status(&fresh),
        ResponseCacheStatus::Miss,
        "expired: goes upstream again"
    );
    assert_eq!(mock.request_count(), 3);
}

#[tokio::test]
async fn the_size_bound_evicts() {
    let store = MemoryResponseStore::new(20_000);
    let service = ServiceBuilder::new()
        .layer(ResponseCacheLayer::new(store.clone()))
        .service(MockClaude::new());
    for i in 0..200 {
        let request = MessagesRequest::new("claude-haiku-4-5", 300)
            .user(format!("question number {i} {}", "x".repeat(150)))
            .temperature(0.0);
        service.clone().oneshot(request.into_http()).await.unwrap();
    }
    let held = store.entry_count().await;
    assert!(held > 0 && held < 200, "bounded: {held} entries of 200");
}

#[tokio::test]
async fn policy_modes_and_what_is_never_stored() {
    let mock = MockClaude::new();
    let service = ServiceBuilder::new()
        .layer(ResponseCacheLayer::in_memory(1 << 26))
        .service(mock.clone());
    // Not deterministic: bypassed.
    let warm = MessagesRequest::new("claude-haiku-4-5", 200)
        .user("hi")
        .temperature(0.7);
    assert_eq!(
        status(
            &service
                .clone()
                .oneshot(warm.clone().into_http())
                .await
                .unwrap()
        ),
        ResponseCacheStatus::Bypass
    );
    // Opted in per request.
    let mut opted = warm.into_http();
    opted.extensions_mut().insert(ResponseCacheMode::OptIn);
    let opted_again = {
        let mut r = MessagesRequest::new("claude-haiku-4-5", 200)
            .user("hi")
            .temperature(0.7)
            .into_http();
        r.extensions_mut().insert(ResponseCacheMode::OptIn);
        r
    };
    assert_eq!(
        status(&service.clone().oneshot(opted).await.unwrap()),
        ResponseCacheStatus::Miss
    );
    assert_eq!(
        status(&service.clone().oneshot(opted_again).await.unwrap()),
        ResponseCacheStatus::Hit
    );
    // Bypass and refresh.
    let mut bypass = request().into_http();
    bypass.extensions_mut().insert(ResponseCacheMode::Bypass);
    assert_eq!(
        status(&service.clone().oneshot(bypass).await.unwrap()),
        ResponseCacheStatus::Bypass
    );
    service
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap();
    let mut refresh = request().into_http();
    refresh.extensions_mut().insert(ResponseCacheMode::Refresh);
    assert_eq!(
        status(&service.clone().oneshot(refresh).await.unwrap()),
        ResponseCacheStatus::Miss
    );
    // Truncated and refused replies are not stored.
    let short = MessagesRequest::new("claude-haiku-4-5", 3)
        .user("Tell me everything")
        .temperature(0.0);
    assert_misses_twice(&service, &short).await;
    let mut refusal = Message::new("msg_r", "claude-haiku-4-5");
    refusal.stop_reason = Some(StopReason::Refusal);
    mock.push_script([Attempt::message(refusal.clone()), Attempt::message(refusal)]);
    let refused = MessagesRequest::new("claude-haiku-4-5", 50)
        .user("something refused")
        .temperature(0.0);
    assert_misses_twice(&service, &refused).await;
}

#[test]
fn every_answer_changing_field_changes_the_key_and_metadata_does_not() {
    let key = |r: MessagesRequest| cache_key(&r.into_http(), false).unwrap();
    let base = key(request());
    let mut variants: Vec<(&str, MessagesRequest)> = vec![
        (
            "model",
            MessagesRequest {
                model: "claude-sonnet-4-6".into(),
                ..request()
            },
        ),
        ("system", request().system("be terse")),
        ("messages", request().assistant("4").user("and 3 + 3?")),
        (
            "tools",
            request().tools(vec![Tool::new(
                "calc",
                "adds",
                serde_json::json!({"type": "object"}),
            )]),
        ),
        ("temperature", request().temperature(0.5)),
        (
            "max_tokens",
            MessagesRequest {
                max_tokens: 201,
                ..request()
            },
        ),
    ];
    let mut r = request();
    r.tool_choice = Some(ToolChoice::any());
    variants.push(("tool_choice", r));
    let mut r = MessagesRequest {
        max_tokens: 4000,
        ..request()
    };
    let thinking_base = key(r.clone());
    r.thinking = Some(ThinkingConfig::Enabled(ThinkingEnabled {
        budget_tokens: 2048,
        ..Default::default()
    }));
    assert_ne!(key(r), thinking_base, "thinking");
    let mut r = request();
    r.top_p = Some(0.9);
    variants.push(("top_p", r));
    let mut r = request();
    r.top_k = Some(5);
    variants.push(("top_k", r));
    let mut r = request();
    r.stop_sequences = Some(vec!["END".into()]);
    variants.push(("stop_sequences", r));
    let mut r = request();
    r.output_config = Some(claude_tower_core::OutputConfig {
        effort: Some("low".into()),
        ..Default::default()
    });
    variants.push(("output_config", r));
    let mut r = request();
    r.extra.insert("speed".into(), serde_json::json!("fast"));
    variants.push(("unknown field", r));
    for (field, variant) in variants {
        assert_ne!(key(variant), base, "{field} must change the key");
    }
    // Headers.
    let with_header = |name: &'static str, value: &str| {
        let mut r = request().into_http();
        r.headers_mut().insert(name, value.parse().unwrap());
        cache_key(&r, false).unwrap()
    };
    assert_ne!(with_header("anthropic-version", "2026-10-21"), base);
    assert_ne!(with_header("anthropic-beta", "context-1m-2025-08-07"), base);
    assert_eq!(
        with_header("anthropic-beta", "b,a"),
        with_header("anthropic-beta", "a, b"),
        "betas are a set"
    );
    let mut two_lines = request().into_http();
    two_lines
        .headers_mut()
        .append("anthropic-beta", "b".parse().unwrap());
    two_lines
        .headers_mut()
        .append("anthropic-beta", "a".parse().unwrap());
    assert_eq!(
        cache_key(&two_lines, false).unwrap(),
        with_header("anthropic-beta", "a, b"),
        "one header line or several"
    );
    assert_eq!(
        with_header("anthropic-beta", " a "),
        with_header("anthropic-beta", "a,a"),
        "trimmed, deduplicated"
    );
    assert_eq!(with_header("x-unrelated", "1"), base);
    // What does not change the answer.
    let mut meta = request();
    meta.metadata = Some(Metadata {
        user_id: Some("u1".into()),
        ..Default::default()
    });
    assert_eq!(key(meta.clone()), base, "metadata");
    assert_eq!(key(request().stream(true)), base, "stream");
    let mut marked = request();
    let mut block = ContentBlock::text("What is 2 + 2?");
    *block.cache_control_mut().unwrap() = Some(claude_tower_core::CacheControl::ephemeral());
    *marked.message_mut(0).unwrap() = claude_tower_core::MessageParam::user(vec![block]);
    let unmarked = MessagesRequest::new("claude-haiku-4-5", 200)
        .user(vec![ContentBlock::text("What is 2 + 2?")])
        .temperature(0.0);
    assert_eq!(key(marked), key(unmarked), "cache_control markers");
    // Per-user partitioning makes metadata (or the attribution user) count.
    let partitioned = |r: MessagesRequest| cache_key(&r.into_http(), true).unwrap();
    let mut other = request();
    other.metadata = Some(Metadata {
        user_id: Some("u2".into()),
        ..Default::default()
    });
    assert_ne!(partitioned(meta), partitioned(other));
    let mut by_extension = request().into_http();
    by_extension
        .extensions_mut()
        .insert(Attribution::user("u1"));
    let mut by_metadata = request();
    by_metadata.metadata = Some(Metadata {
        user_id: Some("u1".into()),
        ..Default::default()
    });
    assert_eq!(
        cache_key(&by_extension, true).unwrap(),
        partitioned(by_metadata)
    );
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_layers_share_hits_through_redis() {
    let redis = RedisServer::start().await;
    let mock = MockClaude::new();
    let a = ServiceBuilder::new()
        .layer(ResponseCacheLayer::new(
            RedisResponseStore::connect(&redis.url()).await.unwrap(),
        ))
        .service(mock.clone());
    let b = ServiceBuilder::new()
        .layer(ResponseCacheLayer::new(
            RedisResponseStore::connect(&redis.url()).await.unwrap(),
        ))
        .service(mock.clone());
    let first = a.oneshot(request().stream(true).into_http()).await.unwrap();
    assert_eq!(status(&first), ResponseCacheStatus::Miss);
    let original = events(first).await;
    let second = b
        .clone()
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    assert_eq!(
        status(&second),
        ResponseCacheStatus::Hit,
        "the other replica's entry"
    );
    assert_eq!(events(second).await, original);
    let third = b.oneshot(request().into_http()).await.unwrap();
    assert_eq!(status(&third), ResponseCacheStatus::Hit);
    assert_eq!(mock.request_count(), 1);
}

/// Sends `request` twice and checks both are misses (nothing was stored).
async fn assert_misses_twice<S>(service: &S, request: &MessagesRequest)
where
    S: tower::Service<
            http::Request<MessagesRequest>,
            Response = http::Response<claude_tower_core::MessagesBody>,
            Error = claude_tower_core::Error,
        > + Clone,
{
    for _ in 0..2 {
        let response = service
            .clone()
            .oneshot(request.clone().into_http())
            .await
            .unwrap();
        assert_eq!(status(&response), ResponseCacheStatus::Miss);
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn an_unreachable_redis_store_is_a_miss_within_seconds() {
    let redis = RedisServer::start().await;
    let store = RedisResponseStore::connect(&redis.url()).await.unwrap();
    drop(redis);
    let mock = MockClaude::new();
    let service = ServiceBuilder::new()
        .layer(ResponseCacheLayer::new(store))
        .service(mock.clone());
    for expected in 1..=2 {
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            service.clone().oneshot(request().into_http()),
        )
        .await
        .expect("an unreachable store is reported within seconds")
        .unwrap();
        assert_eq!(status(&response), ResponseCacheStatus::Miss);
        response.into_body().into_message().await.unwrap();
        assert_eq!(mock.request_count(), expected, "every call goes upstream");
    }
}

/// A reply holding a signed `compaction` block (API-NOTES §15: sent back verbatim, explicit
/// `null`s included) comes out of the cache as the same JSON value, whether it was recorded
/// from a stream or a message, and whether the hit is streamed or not.
#[tokio::test]
async fn compaction_blocks_are_replayed_byte_for_byte() {
    let compaction: ContentBlock = serde_json::from_value(serde_json::json!({
        "type": "compaction",
        "content": null,
        "encrypted_content": "b3BhcXVl+/==",
        "signature": "sig_1",
        "tool_changes": [{"removed": ["search"]}]
    }))
    .unwrap();
    let mut message = Message::new("msg_c", "claude-haiku-4-5");
    message.content = vec![compaction, ContentBlock::text("Continuing.")];
    message.stop_reason = Some(StopReason::EndTurn);
    let expected = serde_json::to_value(&message).unwrap();
    for record_streamed in [false, true] {
        let mock = MockClaude::new().with_script([Attempt::message(message.clone())]);
        let service = ServiceBuilder::new()
            .layer(ResponseCacheLayer::in_memory(1 << 20))
            .service(mock.clone());
        let first = service
            .clone()
            .oneshot(request().stream(record_streamed).into_http())
            .await
            .unwrap();
        assert_eq!(status(&first), ResponseCacheStatus::Miss);
        first.into_body().into_message().await.unwrap();
        for hit_streamed in [false, true] {
            let hit = service
                .clone()
                .oneshot(request().stream(hit_streamed).into_http())
                .await
                .unwrap();
            assert_eq!(status(&hit), ResponseCacheStatus::Hit);
            let replayed = hit.into_body().into_message().await.unwrap();
            assert_eq!(
                serde_json::to_value(&replayed).unwrap(),
                expected,
                "recorded streamed={record_streamed}, hit streamed={hit_streamed}"
            );
        }
        assert_eq!(mock.request_count(), 1);
    }
}
