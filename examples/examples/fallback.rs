//! Fallback: a 529 storm on the primary model, served by the fallback. The circuit breaker
//! opens after a few failures, so most requests go straight to the fallback; one probe per
//! cooldown checks whether the primary is back, and once the storm ends the primary answers
//! again.
//!
//! ```text
//! cargo run -p claude-tower-examples --example fallback
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use std::collections::BTreeMap;
use std::time::Duration;

use claude_tower::mock::{Attempt, MockClaude};
use claude_tower::prelude::*;
use claude_tower::route::{BreakerConfig, FallbackReport};
use futures_util::StreamExt;

const PRIMARY: &str = "claude-opus-4-5";
const FALLBACK: &str = "claude-sonnet-4-5";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The primary answers 529 for two seconds.
    let mock =
        MockClaude::new().with_model_outage(PRIMARY, Attempt::overloaded(), Duration::from_secs(2));
    let breaker = CircuitBreaker::new(
        BreakerConfig::default()
            .cooldown(Duration::from_millis(500))
            .max_cooldown(Duration::from_secs(1)),
    );
    let service = Stack::new()
        .fallback(
            FallbackLayer::new([
                Candidate::new(PRIMARY),
                Candidate::new(FALLBACK).max_tokens(1_024),
            ])
            .breaker(breaker.clone()),
        )
        .retry(RetryLayer::new().max_retries(1))
        .service(mock.clone());
    let client = Client::new(service);

    const REQUESTS: usize = 300;
    let answered_by: Vec<Result<String, Error>> = futures_util::stream::iter(0..REQUESTS)
        .map(|i| {
            let client = client.clone();
            async move {
                // Spread over about three seconds: the storm, then the recovery.
                tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                let request = MessagesRequest::new(PRIMARY, 256).user(format!("Question {i}"));
                let (_, extensions) = client.messages().create_with_response(request).await?;
                let report = extensions
                    .get::<FallbackReport>()
                    .expect("a fallback report");
                Ok(report.model.clone())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;

    let mut by_model = BTreeMap::new();
    let mut failed = 0;
    for result in &answered_by {
        match result {
            Ok(model) => *by_model.entry(model.clone()).or_insert(0) += 1,
            Err(_) => failed += 1,
        }
    }
    println!("{REQUESTS} requests, {failed} failed; answered by: {by_model:?}");
    println!(
        "upstream requests: {} ({} to the primary, {} to the fallback)",
        mock.request_count(),
        mock.request_count_for(PRIMARY),
        mock.request_count_for(FALLBACK)
    );
    println!("primary circuit now: {:?}", breaker.state(PRIMARY));
    Ok(())
}
