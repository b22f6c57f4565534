//! Parallel: 300 requests fired at once through a concurrency limit and rate limits, on the
//! built-in mock (which enforces its own limits too), with a progress bar.
//!
//! ```text
//! cargo run -p claude-tower-examples --example parallel
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use claude_tower::mock::{MockClaude, MockLimits};
use claude_tower::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
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
    let bar = ProgressBar::new(N as u64).with_style(ProgressStyle::with_template(
        "[{bar:40}] {pos}/{len} {elapsed}",
    )?);
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (stack, bar) = (stack.clone(), bar.clone());
            tokio::spawn(async move {
                let request = MessagesRequest::new("claude-haiku-4-5", 128)
                    .user(format!("Summarize item {i}"));
                let result = stack.oneshot(request.into_http()).await;
                bar.inc(1);
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
    bar.finish();
    println!(
        "{ok}/{N} succeeded in {:.2?}; upstream saw {} requests and answered {} with 429",
        started.elapsed(),
        mock.request_count(),
        mock.rate_limited_count()
    );
    Ok(())
}
