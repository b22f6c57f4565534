//! Streaming: print the reply's text as it arrives, then the final usage.
//!
//! ```text
//! cargo run -p claude-tower-examples --example streaming
//! ```
//!
//! Uses the built-in mock server unless `ANTHROPIC_API_KEY` is set.
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use std::io::Write as _;

use claude_tower_core::{Delta, MessageAccumulator, MessagesRequest, StreamEvent};
use claude_tower_mock::MockServer;
use claude_tower_transport::Transport;
use futures_util::StreamExt;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let live = std::env::var("ANTHROPIC_API_KEY").is_ok_and(|k| !k.trim().is_empty());
    let mut _mock = None;
    let transport = if live {
        Transport::from_env()?
    } else {
        let server = MockServer::start().await?;
        let transport = Transport::builder()
            .ignore_env()
            .api_key("mock-key")
            .base_url(server.base_url())
            .build()?;
        _mock = Some(server);
        transport
    };
    let model = std::env::var("CLAUDE_MODEL").unwrap_or_else(|_| "claude-haiku-4-5".to_owned());
    let request = MessagesRequest::new(model, 512)
        .user("Write a haiku about middleware.")
        .stream(true);

    let response = transport.oneshot(request.into_http()).await?;
    let mut events = response.into_body().into_stream();
    let mut accumulator = MessageAccumulator::new();
    let mut stdout = std::io::stdout();
    while let Some(event) = events.next().await {
        let event = event?;
        if let StreamEvent::ContentBlockDelta(delta) = &event
            && let Delta::Text(text) = &delta.delta
        {
            print!("{}", text.text);
            stdout.flush()?;
        }
        accumulator.push(&event)?;
    }
    let message = accumulator.finish()?;
    println!();
    println!(
        "usage: input {} tokens, output {} tokens",
        message.usage.input_tokens, message.usage.output_tokens
    );
    Ok(())
}
