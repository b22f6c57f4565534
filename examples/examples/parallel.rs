//! Parallel: 300 requests fired at once through a concurrency limit and rate limits, on the
//! built-in mock (which enforces its own limits too), with a progress bar.
//!
//! ```text
//! cargo run -p claude-tower-examples --example parallel
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use claude_tower::mock::{MockClaude, MockLimits};
use claude_tower::prelude::*;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    const N: usize = 300;
    let mock = MockClaude::new().with_rate_limits(MockLimits::new(60_000, 4_000_000, 800_000));
    let stack = ServiceBuilder::new()
        .claude_retry(RetryLayer::new())
        .claude_rate_limit(
            RateLimitLayer::new()
                .pool("haiku", Limits::new(60_000, 4_000_000, 800_000))
                .max_concurrent(32),
        )
        .service(mock.clone());
    let done = Arc::new(AtomicUsize::new(0));
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (stack, done) = (stack.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let request = MessagesRequest::new("claude-haiku-4-5", 128)
                    .user(format!("Summarize item {i}"));
                let result = stack.oneshot(request.into_http()).await;
                let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
                if finished % 10 == 0 || finished == N {
                    let filled = finished * 40 / N;
                    print!(
                        "\r[{}{}] {finished}/{N}",
                        "#".repeat(filled),
                        "-".repeat(40 - filled)
                    );
                    let _ = std::io::stdout().flush();
                }
                result
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        if task.await?.is_ok() {
            ok += 1;
        }
    }
    println!(
        "\n{ok}/{N} succeeded in {:.2?}; upstream saw {} requests and answered {} with 429",
        started.elapsed(),
        mock.request_count(),
        mock.rate_limited_count()
    );
    Ok(())
}
