//! Retry: the official SDKs' retry contract on a mock that fails twice (429 with a hint, then
//! 529), and a stream that breaks before any content, retried into one clean stream.
//!
//! ```text
//! cargo run -p claude-tower-examples --example retry
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use std::time::Duration;

use claude_tower::ext::Attempts;
use claude_tower::mock::{Attempt, MockClaude};
use claude_tower::prelude::*;
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mock =
        MockClaude::new().with_script([Attempt::rate_limited_ms(200), Attempt::overloaded()]);
    let stack = ServiceBuilder::new()
        .claude_retry(RetryLayer::sdk_compatible().max_elapsed(Duration::from_secs(30)))
        .claude_timeout(TimeoutLayer::new().first_event(Duration::from_secs(10)))
        .service(mock.clone());
    let client = Client::new(stack);
    let (message, extensions) = client
        .messages()
        .create_with_response(MessagesRequest::new("claude-haiku-4-5", 200).user("Hello"))
        .await?;
    let attempts = extensions.get::<Attempts>().expect("attempts");
    println!(
        "reply after {} attempts (delays {:?}, errors {:?}): {}",
        attempts.count,
        attempts.delays,
        attempts.errors,
        message.text()
    );
    let mut stream = client
        .messages()
        .stream(MessagesRequest::new("claude-haiku-4-5", 200).user("Stream please"))
        .await?;
    let mut text = String::new();
    while let Some(piece) = stream.next_text().await? {
        text.push_str(&piece);
    }
    println!("stream retried transparently: {text}");
    println!("upstream saw {} requests", mock.request_count());
    Ok(())
}
