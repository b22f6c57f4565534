//! Redis unreachable: the layer fails open or closed as configured, with a `tracing` warning
//! either way. In its own test binary so that no other test shares the process-wide
//! `tracing` callsite cache.

use std::time::Duration;

use claude_tower_core::{ErrorKind, MessagesRequest};
use claude_tower_mock::{LogCapture, MockClaude, RedisServer};
use claude_tower_rate_limit::{Limits, RateLimitLayer, RedisRateLimitStore};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test]
async fn an_unreachable_store_fails_open_or_closed_as_configured_with_a_warning() {
    let capture = LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let redis = RedisServer::start().await;
    let store = RedisRateLimitStore::connect(&redis.url()).await.unwrap();
    // The server goes away after the replicas connected.
    drop(redis);
    let mock = MockClaude::new();
    let layer = RateLimitLayer::with_store(store)
        .pool("sonnet", Limits::new(1_000, 1_000_000, 100_000))
        .max_wait(Duration::from_secs(1));
    let request = || {
        MessagesRequest::new("claude-sonnet-4-6", 100)
            .user("hi")
            .into_http()
    };

    // Closed (the default): refused, nothing sent.
    let closed = ServiceBuilder::new()
        .layer(layer.clone())
        .service(mock.clone());
    let error = tokio::time::timeout(Duration::from_secs(60), closed.oneshot(request()))
        .await
        .expect("a store failure is reported, not waited on forever")
        .unwrap_err();
    assert_ne!(error.kind(), ErrorKind::RateLimited, "{error}");
    assert!(error.message().contains("redis"), "{error}");
    assert_eq!(mock.request_count(), 0);
    assert!(
        capture
            .text()
            .contains("rate-limit store failed; refusing the request (fail closed)"),
        "{}",
        capture.text()
    );

    // Open: let through, with a warning.
    let open = ServiceBuilder::new()
        .layer(layer.fail_open(true))
        .service(mock.clone());
    tokio::time::timeout(Duration::from_secs(60), open.oneshot(request()))
        .await
        .expect("a store failure is reported, not waited on forever")
        .unwrap();
    assert_eq!(mock.request_count(), 1);
    assert!(
        capture
            .text()
            .contains("rate-limit store failed; letting the request through (fail open)"),
        "{}",
        capture.text()
    );
}
