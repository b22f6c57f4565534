//! The API key never appears in `Debug` output, error messages or logs. In its own test
//! binary so that no other test shares the process-wide `tracing` callsite cache.

use claude_tower_core::MessagesRequest;
use claude_tower_mock::{Attempt, LogCapture, MockServer};
use claude_tower_transport::Transport;
use http::StatusCode;
use tower::ServiceExt;

const KEY: &str = "sk-ant-api03-SECRET-test-key-0123456789";

fn request() -> MessagesRequest {
    MessagesRequest::new("claude-haiku-4-5", 200).user("Hello there")
}

#[tokio::test]
async fn the_api_key_never_appears_in_debug_errors_or_logs() {
    let capture = LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::builder()
        .api_key("the-right-key")
        .start()
        .await
        .unwrap();
    server.mock().push_script([
        Attempt::overloaded(),
        Attempt::mid_stream_error(2, "overloaded_error"),
    ]);
    let builder = Transport::builder()
        .ignore_env()
        .api_key(KEY)
        .base_url(server.base_url());
    let builder_debug = format!("{builder:?}");
    let t = builder.build().unwrap();
    let mut texts = vec![builder_debug, format!("{t:?}"), format!("{t:#?}")];

    // 401 from the server (wrong key), a 529, a mid-stream error, and a success.
    for stream in [false, false, true] {
        let result = t
            .clone()
            .oneshot(request().stream(stream).into_http())
            .await;
        match result {
            Ok(response) => {
                if let Err(error) = response.into_body().into_message().await {
                    texts.push(format!("{error} {error:?} {error:#?}"));
                }
            }
            Err(error) => texts.push(format!("{error} {error:?} {error:#?}")),
        }
    }
    let bearer = Transport::builder()
        .ignore_env()
        .auth_token(KEY)
        .base_url(server.base_url())
        .build()
        .unwrap();
    texts.push(format!("{bearer:?}"));
    let error = bearer.oneshot(request().into_http()).await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    texts.push(format!("{error} {error:?}"));

    let logs = capture.text();
    assert!(
        logs.contains("sending request"),
        "the transport logged something: {logs}"
    );
    texts.push(logs);
    for text in &texts {
        assert!(!text.contains(KEY), "the key leaked: {text}");
        assert!(!text.contains("SECRET"), "part of the key leaked: {text}");
    }
}
