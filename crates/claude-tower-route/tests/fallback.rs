//! The fallback chain and the circuit breaker against the mock (paused clock): a 529 storm,
//! refusals with the credit token, context windows, what never falls back, pinning.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use claude_tower::core::{ErrorKind, MessagesRequest};
use claude_tower::cost::{Cost, CostLayer, PriceTable};
use claude_tower::mock::{Attempt, MockClaude};
use claude_tower::retry::RetryLayer;
use claude_tower::route::{
    BreakerConfig, Candidate, CircuitBreaker, CircuitState, ConversationId, FALLBACK_CREDIT_BETA,
    FallbackLayer, FallbackReport, OnRefusal, SkipReason,
};
use futures_util::StreamExt;
use tokio::time::Instant;
use tower::{Layer, ServiceBuilder, ServiceExt};

const PRIMARY: &str = "claude-opus-4-5";
const FALLBACK: &str = "claude-sonnet-4-5";

fn request(model: &str) -> MessagesRequest {
    MessagesRequest::new(model, 256).user("Summarise the quarterly report.")
}

/// The must-show: a minutes-long 529 storm on the primary under concurrent load, a healthy
/// fallback, retries below the chain. Every request succeeds, upstream attempts stay within
/// 1.2× the requests, and once the circuit opened the primary sees at most one probe per
/// half-open interval (the cooldown, doubling while probes fail).
#[tokio::test(start_paused = true)]
async fn a_529_storm_on_the_primary_is_served_by_the_fallback() {
    const WORKERS: usize = 50;
    const PER_WORKER: usize = 40;
    const REQUESTS: usize = WORKERS * PER_WORKER;
    let mock = MockClaude::new().with_model_outage(
        PRIMARY,
        Attempt::overloaded(),
        Duration::from_secs(600),
    );
    let breaker = CircuitBreaker::new(BreakerConfig::default());
    // Every request that reaches the primary, with the state of its circuit at that moment.
    let arrivals = Arc::new(Mutex::new(Vec::<(Instant, CircuitState)>::new()));
    let recorded = {
        let arrivals = Arc::clone(&arrivals);
        let breaker = breaker.clone();
        ServiceBuilder::new()
            .map_request(move |request: http::Request<MessagesRequest>| {
                if request.body().model == PRIMARY {
                    let state = breaker.state(PRIMARY);
                    arrivals.lock().unwrap().push((Instant::now(), state));
                }
                request
            })
            .service(mock.clone())
    };
    let service = ServiceBuilder::new()
        .layer(FallbackLayer::new([PRIMARY, FALLBACK]).breaker(breaker.clone()))
        .layer(RetryLayer::new())
        .service(recorded);
    let start = Instant::now();
    let successes: usize = futures_util::stream::iter(0..WORKERS)
        .map(|_| {
            let service = service.clone();
            async move {
                let mut ok = 0;
                for _ in 0..PER_WORKER {
                    let response = service.clone().oneshot(request(PRIMARY).into_http()).await;
                    if let Ok(response) = response {
                        let report = response.extensions().get::<FallbackReport>().unwrap();
                        assert_eq!(report.model, FALLBACK);
                        ok += 1;
                    }
                    // One request per worker per second: the run spans 40 s of the storm.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                ok
            }
        })
        .buffer_unordered(WORKERS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .sum();
    let attempts = mock.request_count();
    let arrivals = arrivals.lock().unwrap().clone();
    // Before the circuit first opened the primary was tried (with retries); after, only
    // half-open probes may reach it.
    let first_open = arrivals
        .iter()
        .position(|(_, state)| *state != CircuitState::Closed)
        .unwrap_or(arrivals.len());
    let probes: Vec<Duration> = arrivals[first_open..]
        .iter()
        .map(|(at, _)| *at - start)
        .collect();
    println!(
        "storm: {REQUESTS} requests ({WORKERS} concurrent), {successes} succeeded ({:.1} %), \
         {attempts} upstream attempts ({:.3}× requests); the primary got {} before its circuit opened \
         and {} probes after, at {probes:?}",
        successes as f64 * 100.0 / REQUESTS as f64,
        attempts as f64 / REQUESTS as f64,
        first_open,
        probes.len(),
    );
    assert!(
        arrivals[first_open..]
            .iter()
            .all(|(_, state)| *state == CircuitState::HalfOpen),
        "after opening, only probes: {arrivals:?}"
    );
    assert_eq!(successes, REQUESTS, "100 % success");
    assert!(
        attempts as f64 <= 1.2 * REQUESTS as f64,
        "{attempts} attempts for {REQUESTS} requests"
    );
    assert!(
        !probes.is_empty(),
        "the primary was probed during the storm"
    );
    let cooldown = breaker.config().cooldown;
    for pair in probes.windows(2) {
        assert!(
            pair[1] - pair[0] >= cooldown,
            "probes closer than one half-open interval: {probes:?}"
        );
    }
}

/// The must-show: a refusal on the primary is answered by the fallback; the refusal's credit
/// token (and its beta) go with the retry; the cost meter prices the answer at the fallback's
/// prices with its input at the cache-read rate (the credit was redeemed), and the refusal at
/// the primary's.
#[tokio::test(start_paused = true)]
async fn a_refusal_is_answered_by_the_fallback_with_the_credit_token() {
    let mock = MockClaude::new().with_model_script(
        PRIMARY,
        [Attempt::refusal(Some("cyber"), Some("credit-token-1"))],
    );
    let service = ServiceBuilder::new()
        .layer(FallbackLayer::new([PRIMARY, FALLBACK]))
        .layer(CostLayer::new())
        .service(mock.clone());
    let response = service.oneshot(request(PRIMARY).into_http()).await.unwrap();
    let report = response
        .extensions()
        .get::<FallbackReport>()
        .unwrap()
        .clone();
    let cost = response.extensions().get::<Cost>().unwrap().clone();
    let message = response.into_body().into_message().await.unwrap();
    assert_eq!(report.model, FALLBACK);
    assert_eq!(
        report.hops[0].reason,
        SkipReason::Refused {
            category: Some("cyber".to_owned()),
            credit_carried: true
        }
    );
    let sent = mock.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].body.model, FALLBACK);
    assert_eq!(
        sent[1].body.extra.get("fallback_credit_token"),
        Some(&serde_json::json!("credit-token-1"))
    );
    let betas: Vec<_> = sent[1].headers.get_all("anthropic-beta").iter().collect();
    assert!(
        betas
            .iter()
            .any(|b| b.to_str().unwrap().contains(FALLBACK_CREDIT_BETA))
    );
    assert!(sent[0].body.extra.get("fallback_credit_token").is_none());

    // Priced at the fallback's row, its input at the cache-read rate (credit redeemed).
    let table = PriceTable::builtin();
    let usage = &message.usage;
    assert!(usage.fallback_credit().is_some());
    let row = table.row(FALLBACK).unwrap();
    let expected_input = row.cache_read.cost(usage.input_tokens);
    assert_eq!(cost.input, expected_input);
    assert_eq!(cost.output, row.output.cost(usage.output_tokens));
    assert!(cost.fallback_credit);
    assert_eq!(cost.model, FALLBACK);
    // The refusal was billed at the primary's prices (its usage is in the report).
    let refused = report.hops[0].usage.as_ref().unwrap();
    let primary = table
        .cost(PRIMARY, refused, claude_tower::cost::Modifiers::default())
        .unwrap();
    assert!(primary.total > claude_tower::cost::Usd::ZERO);
}

/// The must-show: a 300k-token prompt never goes to a 200k-window candidate.
#[tokio::test(start_paused = true)]
async fn a_prompt_larger_than_a_window_is_not_sent_to_it() {
    let mock = MockClaude::new().with_context_window("claude-haiku-4-5", 200_000);
    let service = FallbackLayer::new(["claude-haiku-4-5", "claude-sonnet-4-6"]).layer(mock.clone());
    let big = "lorem ipsum dolor sit amet ".repeat(40_000); // ~1.1 MB, ~300k tokens
    let request = MessagesRequest::new("claude-haiku-4-5", 256).user(big);
    let estimate = request.estimate_input_tokens();
    assert!((290_000..400_000).contains(&estimate), "{estimate}");
    let response = service.oneshot(request.into_http()).await.unwrap();
    let report = response.extensions().get::<FallbackReport>().unwrap();
    assert_eq!(report.model, "claude-sonnet-4-6");
    assert!(matches!(
        report.hops[0].reason,
        SkipReason::ContextWindow {
            window: 200_000,
            ..
        }
    ));
    assert_eq!(mock.request_count_for("claude-haiku-4-5"), 0);
    assert_eq!(mock.request_count(), 1);
    println!("300k-token prompt (estimate {estimate}): 0 requests to the 200k-window candidate");
}

/// "prompt is too long" from the API (the estimate was under the window) moves to a larger
/// window, skipping candidates whose window is not larger.
#[tokio::test(start_paused = true)]
async fn prompt_too_long_moves_to_a_larger_window() {
    let mock = MockClaude::new().with_context_window("claude-haiku-4-5", 10);
    let service =
        FallbackLayer::new(["claude-haiku-4-5", "claude-sonnet-4-5", "claude-sonnet-4-6"])
            .layer(mock.clone());
    let response = service
        .oneshot(request("claude-haiku-4-5").into_http())
        .await
        .unwrap();
    let report = response.extensions().get::<FallbackReport>().unwrap();
    assert_eq!(report.model, "claude-sonnet-4-6");
    assert_eq!(report.hops[0].reason, SkipReason::PromptTooLong);
    assert_eq!(
        report.hops[1].reason,
        SkipReason::WindowNotLarger { window: 200_000 }
    );
    assert_eq!(mock.request_count(), 2);
}

/// 400, 401, 403, 413, 429 and spend caps answer as they are: no other candidate is tried.
#[tokio::test(start_paused = true)]
async fn client_errors_rate_limits_and_spend_caps_never_fall_back() {
    for attempt in [
        Attempt::error(400, "invalid_request_error", "bad"),
        Attempt::error(401, "authentication_error", "no"),
        Attempt::error(403, "permission_error", "no"),
        Attempt::error(413, "request_too_large", "big"),
        Attempt::rate_limited(Some(Duration::from_secs(1))),
        Attempt::spend_cap(),
    ] {
        let mock = MockClaude::new().with_model_script(PRIMARY, [attempt]);
        let breaker = CircuitBreaker::default();
        let service = FallbackLayer::new([PRIMARY, FALLBACK])
            .breaker(breaker.clone())
            .layer(mock.clone());
        let error = service
            .oneshot(request(PRIMARY).into_http())
            .await
            .unwrap_err();
        assert_ne!(error.kind(), ErrorKind::Overloaded);
        assert_eq!(mock.request_count(), 1, "{error}");
        assert_eq!(mock.request_count_for(FALLBACK), 0);
    }
}

/// Refusals never open a circuit; server errors do; an open circuit is skipped without
/// sending; every candidate open is a typed error with nothing sent.
#[tokio::test(start_paused = true)]
async fn open_circuits_are_skipped_and_refusals_do_not_count() {
    let breaker = CircuitBreaker::new(BreakerConfig::default().consecutive_failures(2));
    let mock = MockClaude::new()
        .with_model_script(
            PRIMARY,
            [
                Attempt::refusal(None, None),
                Attempt::refusal(None, None),
                Attempt::refusal(None, None),
            ],
        )
        .with_model_outage(FALLBACK, Attempt::server_error(), Duration::from_secs(60));
    let service = FallbackLayer::new([PRIMARY, FALLBACK])
        .breaker(breaker.clone())
        .layer(mock.clone());
    for _ in 0..2 {
        // The primary refuses, the fallback fails: the refusal is the answer.
        let response = service
            .clone()
            .oneshot(request(PRIMARY).into_http())
            .await
            .unwrap();
        let message = response.into_body().into_message().await.unwrap();
        assert_eq!(
            message.stop_reason,
            Some(claude_tower::core::StopReason::Refusal)
        );
    }
    assert_eq!(
        breaker.state(PRIMARY),
        claude_tower::route::CircuitState::Closed
    );
    assert!(matches!(
        breaker.state(FALLBACK),
        claude_tower::route::CircuitState::Open { .. }
    ));
    let before = mock.request_count_for(FALLBACK);
    let response = service
        .clone()
        .oneshot(request(PRIMARY).into_http())
        .await
        .unwrap();
    let report = response
        .extensions()
        .get::<FallbackReport>()
        .unwrap()
        .clone();
    assert_eq!(report.model, PRIMARY);
    assert_eq!(
        mock.request_count_for(FALLBACK),
        before,
        "open circuit: not sent"
    );

    // Every circuit open: a typed error, nothing sent.
    let only = FallbackLayer::new([FALLBACK])
        .breaker(breaker)
        .layer(mock.clone());
    let count = mock.request_count();
    let error = only
        .oneshot(request(FALLBACK).into_http())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Overloaded);
    assert!(error.to_string().contains("nothing was sent"), "{error}");
    assert_eq!(mock.request_count(), count);
}

/// With server-side fallbacks, the request carries the rest of the chain and the beta; the
/// client does not hop on refusal.
#[tokio::test(start_paused = true)]
async fn server_side_refusal_fallback_sends_the_chain() {
    let mock = MockClaude::new().with_model_script(PRIMARY, [Attempt::refusal(None, None)]);
    let service = FallbackLayer::new([
        Candidate::new(PRIMARY),
        Candidate::new(FALLBACK).max_tokens(128),
    ])
    .on_refusal(OnRefusal::ServerSide)
    .layer(mock.clone());
    let response = service.oneshot(request(PRIMARY).into_http()).await.unwrap();
    assert_eq!(mock.request_count(), 1);
    let sent = &mock.requests()[0];
    assert_eq!(
        sent.body.extra.get("fallbacks"),
        Some(&serde_json::json!([{"model": FALLBACK, "max_tokens": 128}]))
    );
    assert!(sent.headers.get_all("anthropic-beta").iter().any(|b| {
        b.to_str()
            .unwrap()
            .contains(claude_tower::route::SERVER_SIDE_FALLBACK_BETA)
    }));
    let report = response.extensions().get::<FallbackReport>().unwrap();
    assert_eq!(report.model, PRIMARY);
}

/// A conversation that fell back stays on the model that answered it.
#[tokio::test(start_paused = true)]
async fn conversations_are_pinned_to_the_model_that_answered() {
    let mock = MockClaude::new().with_model_script(PRIMARY, [Attempt::overloaded()]);
    let service = FallbackLayer::new([PRIMARY, FALLBACK])
        .pin_conversations(1_000, Duration::from_secs(600))
        .layer(mock.clone());
    let pinned = |id: &str| {
        let mut request = request(PRIMARY).into_http();
        request
            .extensions_mut()
            .insert(ConversationId(id.to_owned()));
        request
    };
    let first = service.clone().oneshot(pinned("c-1")).await.unwrap();
    assert_eq!(
        first.extensions().get::<FallbackReport>().unwrap().model,
        FALLBACK
    );
    // The primary is healthy again, but conversation c-1 stays on the fallback…
    let second = service.clone().oneshot(pinned("c-1")).await.unwrap();
    let report = second.extensions().get::<FallbackReport>().unwrap();
    assert_eq!(report.model, FALLBACK);
    assert!(report.pinned);
    // …and a new conversation starts at the primary.
    let other = service.oneshot(pinned("c-2")).await.unwrap();
    assert_eq!(
        other.extensions().get::<FallbackReport>().unwrap().model,
        PRIMARY
    );
}

/// A request starts at its own model's place in the chain: models before it are not tried.
#[tokio::test(start_paused = true)]
async fn a_request_starts_at_its_own_model_in_the_chain() {
    let mock = MockClaude::new().with_model_script(FALLBACK, [Attempt::overloaded()]);
    let service = FallbackLayer::new([PRIMARY, FALLBACK, "claude-haiku-4-5"]).layer(mock.clone());
    let response = service
        .oneshot(request(FALLBACK).into_http())
        .await
        .unwrap();
    let report = response.extensions().get::<FallbackReport>().unwrap();
    assert_eq!(report.model, "claude-haiku-4-5");
    assert_eq!(report.index, 2);
    assert_eq!(mock.request_count_for(PRIMARY), 0);
    assert_eq!(mock.request_count(), 2);
}

/// An overload inside a stream before any content: the retry layer below peeks the stream
/// and reports it as an error once its retries are spent, so the chain moves on.
#[tokio::test(start_paused = true)]
async fn an_in_stream_overload_before_content_falls_back() {
    let mock = MockClaude::new().with_model_outage(
        PRIMARY,
        Attempt::mid_stream_error(1, "overloaded_error"),
        Duration::from_secs(60),
    );
    let service = ServiceBuilder::new()
        .layer(FallbackLayer::new([PRIMARY, FALLBACK]))
        .layer(RetryLayer::new().max_retries(1))
        .service(mock.clone());
    let response = service
        .oneshot(request(PRIMARY).stream(true).into_http())
        .await
        .unwrap();
    let report = response
        .extensions()
        .get::<FallbackReport>()
        .unwrap()
        .clone();
    assert_eq!(report.model, FALLBACK);
    assert!(matches!(
        report.hops[0].reason,
        SkipReason::Failed {
            kind: ErrorKind::Overloaded,
            ..
        }
    ));
    let message = response.into_body().into_message().await.unwrap();
    assert!(!message.text().is_empty());
    assert_eq!(
        mock.request_count_for(PRIMARY),
        2,
        "one retry, then the fallback"
    );
}
