//! The router: policy, task routes, cheapest model that fits, the downgrade switch, and
//! composition with the fallback chain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use claude_tower::core::MessagesRequest;
use claude_tower::cost::PriceTable;
use claude_tower::mock::{Attempt, MockClaude};
use claude_tower::route::{
    FallbackLayer, FallbackReport, Route, RouteReason, RouteReport, RouterLayer, TaskHint,
};
use tower::{Layer, ServiceBuilder, ServiceExt};

fn task(hint: Option<TaskHint>, text: &str) -> http::Request<MessagesRequest> {
    let mut request = MessagesRequest::new("claude-opus-4-5", 512)
        .user(text)
        .into_http();
    if let Some(hint) = hint {
        request.extensions_mut().insert(hint);
    }
    request
}

fn router() -> RouterLayer {
    RouterLayer::new()
        .prices(claude_tower::router_prices(PriceTable::builtin()))
        .route(
            Route::for_tasks([TaskHint::Classify, TaskHint::Extract, TaskHint::Summarize])
                .models(["claude-sonnet-4-5", "claude-haiku-4-5"])
                .named("small"),
        )
        .route(Route::when_input_above(150_000).models(["claude-haiku-4-5", "claude-sonnet-4-6"]))
        .route(
            Route::for_tasks([TaskHint::Analyze, TaskHint::Generate])
                .models(["claude-opus-4-5", "claude-sonnet-4-5"]),
        )
}

async fn routed(layer: RouterLayer, request: http::Request<MessagesRequest>) -> RouteReport {
    let mock = MockClaude::new();
    let response = layer.layer(mock.clone()).oneshot(request).await.unwrap();
    let report = response.extensions().get::<RouteReport>().unwrap().clone();
    assert_eq!(
        mock.requests()[0].body.model,
        report.model,
        "the chosen model was sent"
    );
    report
}

#[tokio::test]
async fn tasks_go_to_the_cheapest_model_of_their_route() {
    let small = routed(router(), task(Some(TaskHint::Classify), "spam?")).await;
    assert_eq!(
        small.model, "claude-haiku-4-5",
        "cheapest of the route, not the first listed"
    );
    assert_eq!(small.reason, RouteReason::Route("small".to_owned()));
    assert!(small.estimated_usd.unwrap() > 0.0);
    let large = routed(router(), task(Some(TaskHint::Analyze), "why?")).await;
    assert_eq!(large.model, "claude-sonnet-4-5");
    let none = routed(router(), task(None, "hello")).await;
    assert_eq!(none.model, "claude-opus-4-5");
    assert_eq!(none.reason, RouteReason::Default);
}

#[tokio::test]
async fn a_long_input_gets_a_model_whose_window_holds_it() {
    let long = "lorem ipsum dolor sit amet ".repeat(30_000); // ~230k tokens
    let report = routed(router(), task(None, &long)).await;
    // Haiku 4.5 is cheaper but its 200k window is too small.
    assert_eq!(report.model, "claude-sonnet-4-6");
}

#[tokio::test]
async fn the_policy_wins_and_the_downgrade_switch_applies() {
    let over_budget = Arc::new(AtomicBool::new(false));
    let switch = Arc::clone(&over_budget);
    let layer = router()
        .policy(|request| {
            (request.body().max_tokens > 10_000).then(|| "claude-opus-4-5".to_owned())
        })
        .downgrade_when(
            move || switch.load(Ordering::Relaxed),
            [("claude-opus-4-5", "claude-sonnet-4-5")],
        );
    let big = MessagesRequest::new("claude-haiku-4-5", 20_000)
        .user("write a book")
        .into_http();
    let report = routed(layer.clone(), big.clone()).await;
    assert_eq!(
        (report.model.as_str(), &report.reason),
        ("claude-opus-4-5", &RouteReason::Policy)
    );
    over_budget.store(true, Ordering::Relaxed);
    let report = routed(layer, big).await;
    assert_eq!(report.model, "claude-sonnet-4-5");
    assert!(report.downgraded);
}

#[tokio::test]
async fn the_fallback_chain_starts_at_the_routed_model() {
    let mock = MockClaude::new().with_model_script("claude-haiku-4-5", [Attempt::overloaded()]);
    let service = ServiceBuilder::new()
        .layer(router())
        .layer(FallbackLayer::new([
            "claude-opus-4-5",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
            "claude-haiku-5-5",
        ]))
        .service(mock.clone());
    let response = service
        .oneshot(task(Some(TaskHint::Extract), "the date?"))
        .await
        .unwrap();
    let route = response.extensions().get::<RouteReport>().unwrap();
    let fallback = response.extensions().get::<FallbackReport>().unwrap();
    assert_eq!(route.model, "claude-haiku-4-5");
    assert_eq!(fallback.model, "claude-haiku-5-5");
    assert_eq!(mock.request_count_for("claude-opus-4-5"), 0);
    assert_eq!(mock.request_count_for("claude-sonnet-4-5"), 0);
}
