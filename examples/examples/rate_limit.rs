//! Rate limit: 40 requests against a mock that enforces 20 requests per minute; the layer
//! admits what fits, makes the rest wait (FIFO) or refuses them when the wait is too long, and
//! the mock never answers 429.
//!
//! ```text
//! cargo run -p claude-tower-examples --example rate_limit
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use std::time::Duration;

use claude_tower::mock::{MockClaude, MockLimits};
use claude_tower::prelude::*;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockClaude::new().with_rate_limits(MockLimits::new(20, 100_000, 20_000));
    let stack = ServiceBuilder::new()
        .claude_rate_limit(
            RateLimitLayer::new()
                .pool("haiku", Limits::new(20, 100_000, 20_000))
                .max_wait(Duration::from_millis(3_500)),
        )
        .service(mock.clone());
    let started = tokio::time::Instant::now();
    let calls = (0..40).map(|i| {
        stack.clone().oneshot(
            MessagesRequest::new("claude-haiku-4-5", 100)
                .user(format!("question {i}"))
                .into_http(),
        )
    });
    let results = futures_util::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    println!(
        "{ok} admitted (the full bucket, then one every 3 s), {} refused at once, in {:.1?}",
        refused.len(),
        started.elapsed()
    );
    if let Some(error) = refused.first() {
        println!("e.g. {error}");
    }
    println!("upstream 429s: {}", mock.rate_limited_count());
    Ok(())
}
