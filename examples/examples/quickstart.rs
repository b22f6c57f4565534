//! Quickstart: one Messages call through claude-tower's transport.
//!
//! ```text
//! cargo run -p claude-tower-examples --example quickstart
//! ```
//!
//! With `ANTHROPIC_API_KEY` unset it starts the built-in mock server on a loopback port and
//! talks to it over real HTTP; with the key set it calls the real API (model from
//! `CLAUDE_MODEL`, default `claude-haiku-4-5`). The stack is cost meter → retry →
//! transport, placed in the canonical order by `Stack`. It prints the reply, the usage (including prompt-cache reads and writes), the
//! exact cost, the attempts and the request id.
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use claude_tower::cost::Cost;
use claude_tower::ext::Attempts;
use claude_tower::prelude::*;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (transport, mock) = claude_tower_examples::backend().await?;
    match &mock {
        Some(server) => println!(
            "backend: built-in mock at {} (set ANTHROPIC_API_KEY to call the real API)",
            server.base_url()
        ),
        None => println!("backend: the Claude API (ANTHROPIC_API_KEY is set)"),
    }
    let model = claude_tower_examples::model();

    let request = MessagesRequest::new(model, 256)
        .system("You are a concise assistant.")
        .user("In one sentence: what is a tower middleware?");
    println!(
        "estimated input tokens: {}",
        request.estimate_input_tokens()
    );

    let stack = Stack::new()
        .cost(CostLayer::new())
        .retry(RetryLayer::new())
        .service(transport);
    let response = stack.oneshot(request.into_http()).await?;
    let cost = response
        .extensions()
        .get::<Cost>()
        .cloned()
        .unwrap_or_default();
    let attempts = response
        .extensions()
        .get::<Attempts>()
        .map_or(1, |a| a.count);
    let request_id = response
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let message = response.into_body().into_message().await?;
    let usage = &message.usage;

    println!("reply: {}", message.text());
    println!(
        "stop reason: {}",
        message.stop_reason.as_ref().map_or("-", |r| r.as_str())
    );
    println!(
        "usage: input {} tokens, output {} tokens, cache read {}, cache write {} (total prompt {})",
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens(),
        usage.cache_write_tokens(),
        usage.total_input_tokens()
    );
    println!("cost: {cost}");
    println!("attempts: {attempts}");
    println!("request id: {request_id}");
    Ok(())
}
