//! The retry layer against `MockClaude` scripts on tokio's paused clock: every row of the
//! official SDK's observed retry table (API-NOTES §10), streams retried before content, the
//! budget in a 529 storm, and the timeouts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use claude_tower_core::ext::Attempts;
use claude_tower_core::{Error, ErrorKind, MessagesBody, MessagesRequest, StreamEvent};
use claude_tower_mock::{Attempt, MockClaude};
use claude_tower_retry::{RetryLayer, TimeoutLayer};
use futures_util::StreamExt;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

type Req = http::Request<MessagesRequest>;
type Resp = http::Response<MessagesBody>;

fn request() -> MessagesRequest {
    MessagesRequest::new("claude-haiku-4-5", 300).user("What is a retry budget?")
}

/// Wraps the mock to record when each attempt arrives (seconds since `start`).
fn timed(
    mock: MockClaude,
    start: Instant,
) -> (
    impl Service<Req, Response = Resp, Error = Error, Future: Send> + Clone + Send,
    Arc<Mutex<Vec<f64>>>,
) {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&arrivals);
    let service = tower::service_fn(move |request: Req| {
        log.lock().unwrap().push(start.elapsed().as_secs_f64());
        mock.clone().oneshot(request)
    });
    (service, arrivals)
}

async fn run(script: Vec<Attempt>) -> (Result<Resp, Error>, Vec<f64>) {
    let start = Instant::now();
    let (service, arrivals) = timed(MockClaude::new().with_script(script), start);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .service(service);
    let result = service.oneshot(request().into_http()).await;
    let arrivals = arrivals.lock().unwrap().clone();
    (result, arrivals)
}

fn assert_between(value: f64, low: f64, high: f64, what: &str) {
    assert!(
        value >= low - 1e-6 && value <= high + 1e-6,
        "{what}: {value} not in [{low}, {high}]"
    );
}

#[tokio::test(start_paused = true)]
async fn sdk_row_429_retry_after_2_then_ok() {
    let (result, at) = run(vec![Attempt::rate_limited(Some(Duration::from_secs(2)))]).await;
    let response = result.unwrap();
    assert_eq!(at.len(), 2);
    assert_between(at[1], 2.0, 2.0, "second attempt");
    let attempts = response.extensions().get::<Attempts>().unwrap();
    assert_eq!(attempts.count, 2);
    assert_eq!(attempts.delays, vec![Duration::from_secs(2)]);
    assert_eq!(attempts.errors, vec![ErrorKind::RateLimited]);
}

#[tokio::test(start_paused = true)]
async fn sdk_row_retry_after_ms_beats_retry_after() {
    let (result, at) = run(vec![
        Attempt::rate_limited_ms(300).with_header("retry-after", "5"),
    ])
    .await;
    result.unwrap();
    assert_eq!(at.len(), 2);
    assert_between(at[1], 0.3, 0.3, "ms wins");
}

#[tokio::test(start_paused = true)]
async fn sdk_row_429_without_hint_always() {
    let (result, at) = run(vec![Attempt::rate_limited(None); 5]).await;
    let error = result.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(at.len(), 3, "2 retries, 3 attempts");
    assert_between(at[1], 0.375, 0.5, "retry 1");
    assert_between(at[2] - at[1], 0.75, 1.0, "retry 2");
}

#[tokio::test(start_paused = true)]
async fn sdk_row_529_always() {
    let (result, at) = run(vec![Attempt::overloaded(); 5]).await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Overloaded);
    assert_eq!(at.len(), 3);
    assert_between(at[1], 0.375, 0.5, "retry 1");
    assert_between(at[2] - at[1], 0.75, 1.0, "retry 2");
}

#[tokio::test(start_paused = true)]
async fn sdk_row_should_retry_false_stops_at_once() {
    let script = vec![
        Attempt::rate_limited(Some(Duration::from_secs(1))).with_header("x-should-retry", "false"),
    ];
    let (result, at) = run(script).await;
    assert_eq!(result.unwrap_err().should_retry_header(), Some(false));
    assert_eq!(at.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn sdk_row_400_with_should_retry_true_is_retried() {
    let script = vec![
        Attempt::error(400, "invalid_request_error", "flaky").with_header("x-should-retry", "true"),
    ];
    let (result, at) = run(script).await;
    result.unwrap();
    assert_eq!(at.len(), 2);
    assert_between(at[1], 0.375, 0.5, "retry 1");
}

#[tokio::test(start_paused = true)]
async fn sdk_row_500_once_then_ok() {
    let (result, at) = run(vec![Attempt::server_error()]).await;
    result.unwrap();
    assert_eq!(at.len(), 2);
    assert_between(at[1], 0.375, 0.5, "retry 1");
}

#[tokio::test(start_paused = true)]
async fn sdk_row_retry_after_70_gives_up_at_once_with_the_hint() {
    let (result, at) = run(vec![Attempt::rate_limited(Some(Duration::from_secs(70)))]).await;
    let error = result.unwrap_err();
    assert_eq!(
        at.len(),
        1,
        "no sleeping through a 70 s hint, no ignoring it either"
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(70)));
}

#[tokio::test(start_paused = true)]
async fn never_retried_statuses() {
    for attempt in [
        Attempt::spend_cap(),
        Attempt::error(400, "invalid_request_error", "spend limit reached"),
        Attempt::error(401, "authentication_error", "x"),
        Attempt::error(402, "billing_error", "x"),
        Attempt::error(403, "permission_error", "x"),
        Attempt::error(404, "not_found_error", "x"),
        Attempt::error(413, "request_too_large", "x"),
        Attempt::error(422, "invalid_request_error", "x"),
    ] {
        let (result, at) = run(vec![attempt]).await;
        assert!(result.is_err());
        assert_eq!(at.len(), 1);
    }
    // 408 and 409 are retried.
    for status in [408, 409] {
        let (result, at) = run(vec![Attempt::error(status, "x", "x")]).await;
        result.unwrap();
        assert_eq!(at.len(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_bounds_the_whole_call() {
    let mock =
        MockClaude::new().with_script(vec![Attempt::rate_limited(Some(Duration::from_secs(5))); 3]);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new().max_elapsed(Duration::from_secs(8)))
        .service(mock.clone());
    let error = service.oneshot(request().into_http()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(
        mock.request_count(),
        2,
        "the second 5 s wait would end after 8 s"
    );
}

async fn events_of(response: Resp) -> Vec<Result<StreamEvent, Error>> {
    response.into_body().into_stream().collect().await
}

#[tokio::test(start_paused = true)]
async fn stream_failing_before_content_is_retried_into_one_clean_stream() {
    let clean: Vec<String> = {
        let mock = MockClaude::new();
        let events = events_of(
            mock.oneshot(request().stream(true).into_http())
                .await
                .unwrap(),
        )
        .await;
        events
            .iter()
            .map(|e| e.as_ref().unwrap().event_name().to_owned())
            .collect()
    };
    let mock = MockClaude::new().with_script([Attempt::mid_stream_error(1, "overloaded_error")]);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .service(mock.clone());
    let response = service
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    let attempts = response.extensions().get::<Attempts>().unwrap().clone();
    let events = events_of(response).await;
    assert!(
        events.iter().all(Result::is_ok),
        "no error reaches the caller"
    );
    let names: Vec<String> = events
        .iter()
        .map(|e| e.as_ref().unwrap().event_name().to_owned())
        .collect();
    assert_eq!(names, clean, "exactly one complete stream");
    assert_eq!(names.iter().filter(|n| *n == "message_start").count(), 1);
    let mut acc = claude_tower_core::MessageAccumulator::new();
    for event in &events {
        acc.push(event.as_ref().unwrap()).unwrap();
    }
    assert!(acc.is_complete());
    assert!(
        acc.finish()
            .unwrap()
            .text()
            .contains("What is a retry budget?")
    );
    assert_eq!(mock.request_count(), 2);
    assert_eq!(
        (attempts.count, attempts.errors.clone()),
        (2, vec![ErrorKind::Overloaded])
    );
}

#[tokio::test(start_paused = true)]
async fn stream_dropped_before_content_is_retried() {
    let mock =
        MockClaude::new().with_script([Attempt::drop_connection(1), Attempt::drop_connection(0)]);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .service(mock.clone());
    let message = service
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap()
        .into_body()
        .into_message()
        .await
        .unwrap();
    assert!(!message.text().is_empty());
    assert_eq!(mock.request_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn stream_failing_after_content_is_interrupted_with_the_partial_message() {
    // message_start, content_block_start, one 8-character text delta, then overloaded_error.
    let mock = MockClaude::new().with_script([Attempt::mid_stream_error(3, "overloaded_error")]);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .service(mock.clone());
    let response = service
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    let events = events_of(response).await;
    assert_eq!(events.len(), 4);
    let error = events[3].as_ref().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StreamInterrupted);
    let partial = error.partial_message().expect("partial message");
    assert_eq!(partial.text(), "Hello fr");
    assert_eq!(error.request_id(), Some("req_mock_00000000000000000001"));
    assert_eq!(
        mock.request_count(),
        1,
        "no retry once content went downstream"
    );
}

#[tokio::test(start_paused = true)]
async fn storm_is_bounded_by_the_budget_and_a_lone_request_keeps_its_retries() {
    const N: usize = 1000;
    let mock = MockClaude::new().with_script(vec![Attempt::overloaded(); 4 * N]);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .service(mock.clone());
    let calls = (0..N).map(|_| service.clone().oneshot(request().into_http()));
    let results = futures_util::future::join_all(calls).await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap_err().kind() == ErrorKind::Overloaded)
    );
    let upstream = mock.request_count();
    let ratio = upstream as f64 / N as f64;
    println!("529 storm: {N} requests -> {upstream} upstream attempts (ratio {ratio:.3})");
    assert!(ratio <= 1.2, "ratio {ratio}");
    assert!(
        upstream > N,
        "the reserve and the 10 % still allow some retries"
    );

    // Calm traffic on a fresh layer: a lone failing request gets both retries.
    let calm = MockClaude::new().with_script(vec![Attempt::overloaded(); 3]);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .service(calm.clone());
    let _ = service.oneshot(request().into_http()).await;
    assert_eq!(calm.request_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn clones_of_one_layer_share_the_budget() {
    let mock = MockClaude::new().with_script(vec![Attempt::overloaded(); 200]);
    let layer = RetryLayer::new();
    let a = ServiceBuilder::new()
        .layer(layer.clone())
        .service(mock.clone());
    let b = ServiceBuilder::new().layer(layer).service(mock.clone());
    // 40 failing requests through two services: reserve 10 + 10 % of 40 = 14 retries in all.
    let mut calls = Vec::new();
    for i in 0..40 {
        let service = if i % 2 == 0 { a.clone() } else { b.clone() };
        calls.push(service.oneshot(request().into_http()));
    }
    futures_util::future::join_all(calls).await;
    assert!(mock.request_count() <= 40 + 14, "{}", mock.request_count());
}

#[tokio::test(start_paused = true)]
async fn first_event_timeout_fires_and_is_retried() {
    let mock =
        MockClaude::new().with_script([Attempt::ok().with_event_delay(Duration::from_secs(10))]);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .layer(TimeoutLayer::new().first_event(Duration::from_secs(2)))
        .service(mock.clone());
    let start = Instant::now();
    let response = service
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    let attempts = response.extensions().get::<Attempts>().unwrap().clone();
    let message = response.into_body().into_message().await.unwrap();
    assert!(!message.text().is_empty());
    assert_eq!(attempts.errors, vec![ErrorKind::Timeout]);
    assert_eq!(mock.request_count(), 2);
    // 2 s timeout + one backoff (0.375–0.5 s); the retry streams without delay.
    assert_between(start.elapsed().as_secs_f64(), 2.375, 2.5, "elapsed");
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_before_content_is_retried_after_content_interrupts() {
    // Events every 2 s, idle limit 1 s: the first event (message_start) arrives within the
    // 5 s first-event limit, then the stream goes silent → timeout before content → retried.
    let mock =
        MockClaude::new().with_script([Attempt::ok().with_event_delay(Duration::from_secs(2))]);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .layer(
            TimeoutLayer::new()
                .first_event(Duration::from_secs(5))
                .idle(Duration::from_secs(1)),
        )
        .service(mock.clone());
    let response = service
        .oneshot(request().stream(true).into_http())
        .await
        .unwrap();
    assert_eq!(
        response.extensions().get::<Attempts>().unwrap().errors,
        vec![ErrorKind::Timeout]
    );
    response.into_body().into_message().await.unwrap();
    assert_eq!(mock.request_count(), 2);

    // Without retry, an idle timeout is a Timeout error on the stream.
    let slow =
        MockClaude::new().with_script([Attempt::ok().with_event_delay(Duration::from_secs(2))]);
    let service = ServiceBuilder::new()
        .layer(
            TimeoutLayer::new()
                .idle(Duration::from_secs(3))
                .total(Duration::from_secs(5)),
        )
        .service(slow);
    let items = events_of(
        service
            .oneshot(request().stream(true).into_http())
            .await
            .unwrap(),
    )
    .await;
    let error = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(error.message().contains("total"), "{error}");
    assert_eq!(items.len(), 3, "events at 2 s and 4 s, total limit at 5 s");
}

#[tokio::test(start_paused = true)]
async fn total_timeout_on_a_slow_response_head() {
    let mock = MockClaude::new()
        .with_script([Attempt::ok().with_first_byte_delay(Duration::from_secs(30))]);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .layer(TimeoutLayer::new().total(Duration::from_secs(10)))
        .service(mock.clone());
    let start = Instant::now();
    service.oneshot(request().into_http()).await.unwrap();
    assert_eq!(mock.request_count(), 2);
    assert_between(start.elapsed().as_secs_f64(), 10.375, 10.5, "elapsed");
}

#[tokio::test(start_paused = true)]
async fn retry_polls_the_inner_service_ready_before_each_retry() {
    // A concurrency limit of 1 inside the retry: the retry must wait for readiness, and the
    // permit is held by the in-flight attempt only.
    let mock = MockClaude::new().with_script([Attempt::server_error()]);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .map_err(Error::from)
        .buffer(4)
        .concurrency_limit(1)
        .service(mock.clone());
    let a = service.clone().oneshot(request().into_http());
    let b = service.clone().oneshot(request().into_http());
    let (a, b) = futures_util::future::join(a, b).await;
    a.unwrap();
    b.unwrap();
    assert_eq!(mock.request_count(), 3);
}
