//! A request's input tokens are estimated once per logical request and shared through the
//! request's extensions (`layout::InputEstimate`): the rate limiter reserves what an outer
//! layer estimated, and trimming (which changes the request) drops the estimate so the next
//! layer estimates the trimmed request.

use claude_tower::core::MessagesBody;
use claude_tower::core::layout::InputEstimate;
use claude_tower::mock::MockClaude;
use claude_tower::prelude::*;
use claude_tower::rate_limit::Limits;
use claude_tower::trim::TokenBudget;
use tower::ServiceExt;

/// A stack with an input-token limit of `itpm` per minute.
fn limited(
    itpm: u64,
) -> impl tower::Service<
    http::Request<MessagesRequest>,
    Response = http::Response<MessagesBody>,
    Error = claude_tower::Error,
> + Clone {
    ServiceBuilder::new()
        .layer(RateLimitLayer::new().pool("haiku", Limits::new(1_000, itpm, 1_000_000)))
        .service(MockClaude::new())
}

fn request() -> MessagesRequest {
    MessagesRequest::new("claude-haiku-4-5", 50).user("hello")
}

#[tokio::test]
async fn the_rate_limiter_reserves_the_shared_estimate() {
    // Without an estimate the request is small and goes through.
    limited(1_000).oneshot(request().into_http()).await.unwrap();
    // With one planted (as an outer layer would have stored it) it is believed: 10 000 tokens
    // cannot fit a 1 000-token bucket.
    let mut huge = request().into_http();
    // The same layout (one message), 20 000 words' worth of tokens.
    let big = MessagesRequest::new("claude-haiku-4-5", 50).user("big ".repeat(20_000));
    let ten_thousand = InputEstimate::of(&big);
    assert!(ten_thousand.total() > 1_000);
    huge.extensions_mut().insert(ten_thousand);
    let error = limited(1_000).oneshot(huge).await.unwrap_err();
    assert_eq!(
        error.kind(),
        claude_tower::ErrorKind::RateLimited,
        "{error}"
    );
}

#[tokio::test]
async fn trimming_drops_the_estimate_of_the_untrimmed_request() {
    // 40 long turns, trimmed to a small budget; an estimate of the untrimmed request is
    // planted before the trim layer (by an outer layer, say).
    let mut long = MessagesRequest::new("claude-haiku-4-5", 50);
    for i in 0..20 {
        long = long
            .user(format!("question {i}: {}", "words ".repeat(200)))
            .assistant(format!("answer {i}: {}", "words ".repeat(200)));
    }
    let long = long.user("and now?");
    let mut http = long.clone().into_http();
    let untrimmed = InputEstimate::shared(&mut http);
    // The rate limiter's bucket fits the trimmed request, not the untrimmed one: it passes only
    // if the limiter estimated the trimmed request itself.
    let budget = 2_000;
    assert!(untrimmed.total() > 5 * budget);
    let stack = ServiceBuilder::new()
        .layer(TrimLayer::new().budget(TokenBudget::Tokens(budget)))
        .layer(RateLimitLayer::new().pool("haiku", Limits::new(1_000, budget * 2, 1_000_000)))
        .service(MockClaude::new());
    stack.oneshot(http).await.unwrap();
}
