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
use futures_util::StreamExt;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (transport, _mock) = claude_tower_examples::backend().await?;
    let model = claude_tower_examples::model();
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
