//! The transport against `MockServer` over real loopback HTTP: error mapping for every status
//! of API-NOTES §3, streams, headers, credentials, and requests refused before sending.

use std::time::Duration;

use claude_tower_core::{ErrorKind, MessagesRequest, StreamEvent};
use claude_tower_mock::{Attempt, MockServer};
use claude_tower_transport::Transport;
use futures_util::StreamExt;
use http::StatusCode;
use tower::ServiceExt;

const KEY: &str = "sk-ant-api03-SECRET-test-key-0123456789";

fn transport(server: &MockServer) -> Transport {
    Transport::builder()
        .ignore_env()
        .api_key(KEY)
        .base_url(server.base_url())
        .build()
        .unwrap()
}

fn request() -> MessagesRequest {
    MessagesRequest::new("claude-haiku-4-5", 200).user("Hello there")
}

#[tokio::test]
async fn every_documented_status_maps_to_its_kind() {
    struct Case {
        attempt: Attempt,
        status: u16,
        error_type: &'static str,
        kind: ErrorKind,
        retry_after: Option<Duration>,
        retryable: bool,
    }
    let case = |attempt, status, error_type, kind, retry_after, retryable| Case {
        attempt,
        status,
        error_type,
        kind,
        retry_after,
        retryable,
    };
    let cases = vec![
        case(
            Attempt::error(400, "invalid_request_error", "bad"),
            400,
            "invalid_request_error",
            ErrorKind::Api,
            None,
            false,
        ),
        case(
            Attempt::error(401, "authentication_error", "bad key"),
            401,
            "authentication_error",
            ErrorKind::Api,
            None,
            false,
        ),
        case(
            Attempt::error(402, "billing_error", "pay"),
            402,
            "billing_error",
            ErrorKind::Api,
            None,
            false,
        ),
        case(
            Attempt::error(403, "permission_error", "no"),
            403,
            "permission_error",
            ErrorKind::Api,
            None,
            false,
        ),
        case(
            Attempt::error(404, "not_found_error", "none"),
            404,
            "not_found_error",
            ErrorKind::Api,
            None,
            false,
        ),
        case(
            Attempt::error(409, "conflict_error", "conflict"),
            409,
            "conflict_error",
            ErrorKind::Api,
            None,
            true,
        ),
        case(
            Attempt::error(413, "request_too_large", "big"),
            413,
            "request_too_large",
            ErrorKind::Api,
            None,
            false,
        ),
        case(
            Attempt::rate_limited(Some(Duration::from_secs(7))),
            429,
            "rate_limit_error",
            ErrorKind::RateLimited,
            Some(Duration::from_secs(7)),
            true,
        ),
        case(
            Attempt::rate_limited_ms(1500),
            429,
            "rate_limit_error",
            ErrorKind::RateLimited,
            Some(Duration::from_millis(1500)),
            true,
        ),
        case(
            Attempt::rate_limited(None),
            429,
            "rate_limit_error",
            ErrorKind::RateLimited,
            None,
            true,
        ),
        case(
            Attempt::spend_cap(),
            429,
            "rate_limit_error",
            ErrorKind::RateLimited,
            None,
            false,
        ),
        case(
            Attempt::server_error(),
            500,
            "api_error",
            ErrorKind::Api,
            None,
            true,
        ),
        case(
            Attempt::error(504, "timeout_error", "slow"),
            504,
            "timeout_error",
            ErrorKind::Api,
            None,
            true,
        ),
        case(
            Attempt::overloaded(),
            529,
            "overloaded_error",
            ErrorKind::Overloaded,
            None,
            true,
        ),
        case(
            Attempt::error(429, "rate_limit_error", "no")
                .with_header("x-should-retry", "false")
                .with_header("retry-after", "1"),
            429,
            "rate_limit_error",
            ErrorKind::RateLimited,
            Some(Duration::from_secs(1)),
            false,
        ),
    ];
    let server = MockServer::start().await.unwrap();
    server
        .mock()
        .push_script(cases.iter().map(|c| c.attempt.clone()));
    let transport = transport(&server);
    for (i, case) in cases.iter().enumerate() {
        let error = transport
            .clone()
            .oneshot(request().into_http())
            .await
            .unwrap_err();
        let label = format!("case {i} ({} {})", case.status, case.error_type);
        assert_eq!(error.kind(), case.kind, "{label}: {error}");
        assert_eq!(
            error.status(),
            Some(StatusCode::from_u16(case.status).unwrap()),
            "{label}"
        );
        assert_eq!(error.error_type(), Some(case.error_type), "{label}");
        assert_eq!(
            error.request_id(),
            Some(format!("req_mock_{:020}", i + 1).as_str()),
            "{label}"
        );
        assert_eq!(error.retry_after(), case.retry_after, "{label}");
        assert_eq!(error.is_retryable(), case.retryable, "{label}");
        assert!(
            error
                .headers()
                .unwrap()
                .contains_key("anthropic-ratelimit-requests-limit"),
            "{label}"
        );
        assert!(
            error.to_string().contains(&case.status.to_string()),
            "{label}: {error}"
        );
        if case.status == 429 && !case.retryable && case.retry_after.is_none() {
            assert!(error.is_spend_cap(), "{label}");
        }
    }
    assert_eq!(server.mock().request_count(), cases.len());
}

#[tokio::test]
async fn mid_stream_overloaded_error_is_overloaded() {
    let server = MockServer::start().await.unwrap();
    server
        .mock()
        .push_script([Attempt::mid_stream_error(3, "overloaded_error")]);
    let response = transport(&server)
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut events = response.into_body().into_stream();
    let mut seen = Vec::new();
    let error = loop {
        match events.next().await.expect("an error before the end") {
            Ok(event) => seen.push(event),
            Err(error) => break error,
        }
    };
    assert_eq!(seen.len(), 3);
    assert!(matches!(seen[0], StreamEvent::MessageStart(_)));
    assert_eq!(error.kind(), ErrorKind::Overloaded);
    assert_eq!(error.error_type(), Some("overloaded_error"));
    assert_eq!(error.status(), None, "mid-stream errors arrive after 200");
    assert_eq!(error.request_id(), Some("req_mock_00000000000000000001"));
    assert!(error.is_retryable());
    assert!(
        events.next().await.is_none(),
        "the stream ends after the error"
    );

    // into_message() reports it with the partial message attached.
    server
        .mock()
        .push_script([Attempt::mid_stream_error(4, "overloaded_error")]);
    let response = transport(&server)
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    let error = response.into_body().into_message().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Overloaded);
    let partial = error.partial_message().expect("partial message");
    assert!(!partial.text().is_empty());
}

#[tokio::test]
async fn dropped_connection_mid_stream_is_stream_interrupted() {
    let server = MockServer::start().await.unwrap();
    server.mock().push_script([Attempt::drop_connection(2)]);
    let response = transport(&server)
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    let error = response.into_body().into_message().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StreamInterrupted, "{error}");
    assert!(error.is_retryable());

    // Non-streaming: the connection closes before any response.
    server.mock().push_script([Attempt::drop_connection(0)]);
    let error = transport(&server)
        .oneshot(request().into_http())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error.kind(),
            ErrorKind::Connect | ErrorKind::StreamInterrupted
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn streams_are_decided_by_the_body_and_match_the_message() {
    let server = MockServer::start().await.unwrap();
    let t = transport(&server);
    let plain = t.clone().oneshot(request().into_http()).await.unwrap();
    assert!(!plain.body().is_stream());
    let plain = plain.into_body().into_message().await.unwrap();
    let streamed = t
        .clone()
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    assert!(streamed.body().is_stream());
    assert_eq!(streamed.headers()["content-type"], "text/event-stream");
    let streamed = streamed.into_body().into_message().await.unwrap();
    assert_eq!(streamed.text(), plain.text());
    assert_eq!(streamed.usage.input_tokens, plain.usage.input_tokens);
    assert_eq!(streamed.usage.output_tokens, plain.usage.output_tokens);
    // Both requests asked for JSON: streaming was decided from `"stream": true`.
    for recorded in server.mock().requests() {
        assert_eq!(recorded.headers["accept"], "application/json");
    }
}

#[tokio::test]
async fn headers_auth_version_betas_and_prefix() {
    let server = MockServer::builder().api_key(KEY).start().await.unwrap();
    let with_prefix = Transport::builder()
        .ignore_env()
        .auth_token(KEY)
        .base_url(format!("{}/gateway/anthropic/", server.base_url()))
        .api_version("2026-10-21")
        .build()
        .unwrap();
    let mut http_request = request().into_http();
    http_request.headers_mut().insert(
        "anthropic-beta",
        "context-1m-2025-08-07,fast-mode-2026-02-01"
            .parse()
            .unwrap(),
    );
    let response = with_prefix.oneshot(http_request).await.unwrap();
    assert!(response.headers().contains_key("request-id"));
    for name in ["requests", "input-tokens", "output-tokens"] {
        for suffix in ["limit", "remaining", "reset"] {
            assert!(
                response
                    .headers()
                    .contains_key(format!("anthropic-ratelimit-{name}-{suffix}").as_str())
            );
        }
    }
    let recorded = &server.mock().requests()[0];
    assert_eq!(recorded.path, "/gateway/anthropic/v1/messages");
    assert_eq!(
        recorded.headers["authorization"],
        format!("Bearer {KEY}").as_str()
    );
    assert!(!recorded.headers.contains_key("x-api-key"));
    assert_eq!(recorded.headers["anthropic-version"], "2026-10-21");
    assert_eq!(
        recorded.headers["anthropic-beta"],
        "context-1m-2025-08-07,fast-mode-2026-02-01"
    );
    assert_eq!(recorded.headers["content-type"], "application/json");

    // Default: x-api-key and 2023-06-01.
    transport(&server)
        .oneshot(request().into_http())
        .await
        .unwrap();
    let recorded = &server.mock().requests()[1];
    assert_eq!(recorded.headers["x-api-key"], KEY);
    assert_eq!(recorded.headers["anthropic-version"], "2023-06-01");
}

#[tokio::test]
async fn count_tokens_sends_only_accepted_fields() {
    let server = MockServer::start().await.unwrap();
    let request = request().system("be brief").temperature(0.0);
    let expected = request.estimate_input_tokens();
    let counted = transport(&server)
        .count_tokens(request.into_http())
        .await
        .unwrap();
    assert_eq!(counted, expected);
    assert_eq!(
        server.mock().request_count(),
        0,
        "count_tokens is not a Messages call"
    );
}

#[tokio::test]
async fn invalid_requests_fail_before_any_byte_is_sent() {
    let server = MockServer::start().await.unwrap();
    let t = transport(&server);
    let invalid = [
        MessagesRequest::new("", 10).user("x"),
        MessagesRequest::new("claude-haiku-4-5", 10),
        MessagesRequest::new("claude-haiku-4-5", 0)
            .user("x")
            .stream(true),
        MessagesRequest::new("claude-haiku-4-5", 10)
            .user("x")
            .assistant(vec![claude_tower_core::ContentBlock::tool_use(
                "toolu_a",
                "t",
                serde_json::json!({}),
            )])
            .user(vec![claude_tower_core::ContentBlock::tool_result(
                "toolu_b", "orphan",
            )]),
        MessagesRequest::new("claude-haiku-4-5", 10)
            .user("x")
            .temperature(2.0),
    ];
    for request in invalid {
        let error = t.clone().oneshot(request.into_http()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{error}");
    }
    assert_eq!(
        server.mock().request_count(),
        0,
        "nothing reached the server"
    );
}

#[test]
fn missing_credentials_fail_at_construction() {
    let error = Transport::builder().ignore_env().build().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(error.message().contains("ANTHROPIC_API_KEY"));
    let error = Transport::builder()
        .ignore_env()
        .api_key("k")
        .base_url("ftp://x")
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
}
