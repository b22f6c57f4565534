//! The mock answers what the API rejects as the API does: `400 invalid_request_error` with the
//! API's envelope, one test per rule (API-NOTES §5, §15), so tests on the mock catch a layer
//! that produces such a request.

use claude_tower_core::{ErrorKind, MessagesRequest};
use claude_tower_mock::MockClaude;
use serde_json::{Value, json};
use tower::ServiceExt;

fn block(ttl: Option<&str>) -> Value {
    let mut marker = json!({"type": "ephemeral"});
    if let Some(ttl) = ttl {
        marker["ttl"] = json!(ttl);
    }
    json!({"type": "text", "text": "some text", "cache_control": marker})
}

fn request(blocks: &[Value], top: Option<Value>) -> MessagesRequest {
    let mut body = json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": blocks}],
    });
    if let Some(top) = top {
        body["cache_control"] = top;
    }
    serde_json::from_value(body).unwrap()
}

/// Sends through the mock; returns the 400's message, or `None` when accepted.
async fn rejected(request: MessagesRequest) -> Option<String> {
    let mock = MockClaude::new();
    match mock.clone().oneshot(request.into_http()).await {
        Ok(_) => None,
        Err(error) => {
            assert_eq!(error.kind(), ErrorKind::Api);
            assert_eq!(error.status().map(|s| s.as_u16()), Some(400));
            assert_eq!(error.error_type(), Some("invalid_request_error"));
            let body: Value = serde_json::from_slice(error.body().unwrap()).unwrap();
            assert_eq!(body["type"], "error");
            assert!(body["request_id"].is_string());
            assert_eq!(mock.request_count(), 1, "recorded like any request");
            Some(error.message().to_owned())
        }
    }
}

#[tokio::test]
async fn empty_messages() {
    let empty: MessagesRequest = serde_json::from_value(
        json!({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": []}),
    )
    .unwrap();
    assert!(rejected(empty).await.unwrap().contains("messages"));
}

#[tokio::test]
async fn more_than_four_breakpoints() {
    assert!(
        rejected(request(
            &[block(None), block(None), block(None), block(None)],
            None
        ))
        .await
        .is_none()
    );
    let message = rejected(request(&vec![block(None); 5], None))
        .await
        .unwrap();
    assert!(message.contains("at most 4"), "{message}");
}

#[tokio::test]
async fn automatic_caching_with_four_explicit_breakpoints() {
    let top = json!({"type": "ephemeral"});
    let mut blocks = vec![block(None); 4];
    blocks.push(json!({"type": "text", "text": "tail"}));
    assert!(rejected(request(&blocks, Some(top))).await.is_some());
}

#[tokio::test]
async fn a_one_hour_marker_after_a_five_minute_one() {
    assert!(
        rejected(request(&[block(Some("1h")), block(None)], None))
            .await
            .is_none()
    );
    let message = rejected(request(&[block(None), block(Some("1h"))], None))
        .await
        .unwrap();
    assert!(message.contains("1h"), "{message}");
}

#[tokio::test]
async fn an_unknown_ttl() {
    let message = rejected(request(&[block(Some("24h"))], None))
        .await
        .unwrap();
    assert!(message.contains("24h"), "{message}");
}

#[tokio::test]
async fn automatic_caching_over_a_last_block_marker_of_another_ttl() {
    let one_hour = json!({"type": "ephemeral", "ttl": "1h"});
    // Same TTL: a no-op, accepted.
    assert!(
        rejected(request(&[block(Some("1h"))], Some(one_hour.clone())))
            .await
            .is_none()
    );
    let message = rejected(request(&[block(None)], Some(one_hour)))
        .await
        .unwrap();
    assert!(message.contains("different TTL"), "{message}");
}
