//! The in-process mock: scripts play in order, delays run on tokio's (paused) clock, replies
//! are derived from the request, and everything is recorded.

use std::time::Duration;

use claude_tower_core::{
    ContentBlock, ErrorKind, MessagesRequest, StopReason, StreamEvent, Tool, ToolChoice,
};
use claude_tower_mock::{Attempt, MockClaude};
use futures_util::StreamExt;
use serde_json::json;
use tokio::time::Instant;
use tower::ServiceExt;

fn request() -> MessagesRequest {
    MessagesRequest::new("claude-haiku-4-5", 300).user("What is tower?")
}

#[tokio::test(start_paused = true)]
async fn script_plays_in_order_then_answers_normally() {
    let mock = MockClaude::new().with_script([
        Attempt::rate_limited_ms(250),
        Attempt::spend_cap(),
        Attempt::server_error().with_header("x-should-retry", "false"),
    ]);
    let e1 = mock
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap_err();
    assert_eq!(
        (e1.kind(), e1.retry_after()),
        (ErrorKind::RateLimited, Some(Duration::from_millis(250)))
    );
    let e2 = mock
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap_err();
    assert!(e2.is_spend_cap() && !e2.is_retryable());
    let e3 = mock
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap_err();
    assert_eq!(e3.should_retry_header(), Some(false));
    let ok = mock.clone().oneshot(request().into_http()).await.unwrap();
    assert!(ok.headers().contains_key("request-id"));
    assert_eq!(mock.request_count(), 4);
    assert_eq!(mock.remaining_script(), 0);
    assert_eq!(mock.requests()[3].body, request());
}

#[tokio::test(start_paused = true)]
async fn delays_use_the_tokio_clock() {
    let mock = MockClaude::new().with_script([Attempt::ok()
        .with_first_byte_delay(Duration::from_secs(3))
        .with_event_delay(Duration::from_millis(100))]);
    let started = Instant::now();
    let response = mock
        .clone()
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    let events: Vec<_> = response.into_body().into_stream().collect().await;
    let n = u32::try_from(events.len()).unwrap();
    assert!(n > 5);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3) + Duration::from_millis(100) * n
    );
}

#[tokio::test]
async fn mid_stream_error_and_drop_in_process() {
    let mock = MockClaude::new().with_script([
        Attempt::mid_stream_error(2, "overloaded_error"),
        Attempt::drop_connection(4),
        Attempt::mid_stream_error(2, "overloaded_error"),
    ]);
    let response = mock
        .clone()
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    let items: Vec<_> = response.into_body().into_stream().collect().await;
    assert_eq!(items.len(), 3);
    assert!(matches!(items[0], Ok(StreamEvent::MessageStart(_))));
    assert_eq!(items[2].as_ref().unwrap_err().kind(), ErrorKind::Overloaded);

    let response = mock
        .clone()
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    let error = response.into_body().into_message().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StreamInterrupted);
    assert!(error.partial_message().is_some());

    // A non-streaming request gets the HTTP form of the error.
    let error = mock
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(529));
}

#[tokio::test]
async fn replies_follow_the_request() {
    let mock = MockClaude::new();
    // max_tokens truncates.
    let short = MessagesRequest::new("claude-haiku-4-5", 5)
        .user("Tell me everything about tower middleware");
    let message = mock
        .clone()
        .oneshot(short.into_http())
        .await
        .unwrap()
        .into_body()
        .into_message()
        .await
        .unwrap();
    assert_eq!(message.stop_reason, Some(StopReason::MaxTokens));
    assert!(message.usage.output_tokens <= 5);

    // stop sequences cut the text.
    let mut stop = request();
    stop.stop_sequences = Some(vec!["mock".to_owned()]);
    let message = mock
        .clone()
        .oneshot(stop.into_http())
        .await
        .unwrap()
        .into_body()
        .into_message()
        .await
        .unwrap();
    assert_eq!(message.stop_reason, Some(StopReason::StopSequence));
    assert_eq!(message.stop_sequence.as_deref(), Some("mock"));
    assert!(!message.text().contains("mock"));

    // Tools: a tool_use with an input that satisfies the schema, then a text after the result.
    let weather = Tool::new(
        "get_weather",
        "Weather for a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}, "days": {"type": "integer"}}, "required": ["city", "unit"]}),
    );
    let with_tools = request().tools(vec![weather]);
    let message = mock
        .clone()
        .oneshot(with_tools.clone().into_http())
        .await
        .unwrap()
        .into_body()
        .into_message()
        .await
        .unwrap();
    assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
    let tool_use = message.tool_uses().next().unwrap().clone();
    assert_eq!(tool_use.input, json!({"city": "mock", "unit": "c"}));
    let follow_up = with_tools
        .message(message.to_param())
        .user(vec![ContentBlock::tool_result(
            tool_use.id.clone(),
            "sunny, 21 C",
        )]);
    follow_up.validate().unwrap();
    let message = mock
        .clone()
        .oneshot(follow_up.into_http())
        .await
        .unwrap()
        .into_body()
        .into_message()
        .await
        .unwrap();
    assert_eq!(message.stop_reason, Some(StopReason::EndTurn));
    assert!(message.text().contains("sunny, 21 C"));

    // tool_choice none: no tool call.
    let mut none = request().tools(vec![Tool::new("t", "d", json!({"type": "object"}))]);
    none.tool_choice = Some(ToolChoice::none());
    let message = mock
        .clone()
        .oneshot(none.into_http())
        .await
        .unwrap()
        .into_body()
        .into_message()
        .await
        .unwrap();
    assert_eq!(message.tool_uses().count(), 0);

    // Usage comes from the estimator.
    let message = mock
        .clone()
        .oneshot(request().into_http())
        .await
        .unwrap()
        .into_body()
        .into_message()
        .await
        .unwrap();
    assert_eq!(
        message.usage.input_tokens,
        request().estimate_input_tokens()
    );
}

/// A scripted refusal carries `stop_details` with the fallback credit token, streamed or not,
/// and the streamed message accumulates to the same stop details.
#[tokio::test]
async fn a_scripted_refusal_carries_its_fallback_credit_token() {
    let mock = MockClaude::new().with_script([
        Attempt::refusal(Some("cyber"), Some("tok_mock_1")),
        Attempt::refusal(None, Some("tok_mock_2")),
    ]);
    for (stream, token, category) in [
        (false, "tok_mock_1", json!("cyber")),
        (true, "tok_mock_2", json!(null)),
    ] {
        let message = mock
            .clone()
            .oneshot(request().stream(stream).into_http())
            .await
            .unwrap()
            .into_body()
            .into_message()
            .await
            .unwrap();
        assert_eq!(message.stop_reason, Some(StopReason::Refusal));
        let details = message.stop_details.unwrap();
        assert_eq!(details["fallback_credit_token"], token);
        assert_eq!(details["category"], category, "explicit null kept");
    }
}

/// The mock reports the December-2026 usage fields: `usage.speed` echoes the request's
/// `speed`, [`Attempt::compacted`] adds `usage.iterations` (a compaction entry plus the message
/// entry equal to the top-level totals), and [`Attempt::with_usage`] merges scripted fields;
/// streamed and unstreamed replies carry the same usage.
#[tokio::test]
async fn usage_carries_speed_iterations_and_scripted_fields() {
    let script = || {
        [
            Attempt::compacted(41_000, 1_900),
            Attempt::ok().with_usage(json!({"fallback_credit": {"redeemed": true}})),
        ]
    };
    let mut usages = Vec::new();
    for stream in [false, true] {
        let mock = MockClaude::new().with_script(script());
        let mut request = request().stream(stream);
        request.extra.insert("speed".to_owned(), json!("fast"));
        for _ in 0..2 {
            let message = mock
                .clone()
                .oneshot(request.clone().into_http())
                .await
                .unwrap()
                .into_body()
                .into_message()
                .await
                .unwrap();
            usages.push(message.usage);
        }
    }
    let (compacted, credited) = (&usages[0], &usages[1]);
    assert_eq!(compacted.speed(), Some("fast"));
    assert_eq!(compacted.compaction_tokens(), (41_000, 1_900));
    let entries = compacted.extra["iterations"].as_array().unwrap();
    assert_eq!(entries[0]["type"], "compaction");
    assert_eq!(entries[1]["type"], "message");
    assert_eq!(entries[1]["input_tokens"], compacted.input_tokens);
    assert_eq!(entries[1]["output_tokens"], compacted.output_tokens);
    assert_eq!(credited.fallback_credit(), Some(&json!({"redeemed": true})));
    assert!(credited.extra.get("iterations").is_none());
    assert_eq!(usages[0], usages[2], "streamed = unstreamed");
    assert_eq!(usages[1], usages[3], "streamed = unstreamed");
}
