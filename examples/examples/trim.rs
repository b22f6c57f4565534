//! Trim: a 120-turn conversation against a 4,000-token budget; the trimmer drops old turns in
//! chunks (so the kept prefix stays cacheable) and never orphans a tool result.
//!
//! ```text
//! cargo run -p claude-tower-examples --example trim
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use claude_tower::core::ContentBlock;
use claude_tower::mock::MockClaude;
use claude_tower::prelude::*;
use claude_tower::trim::{TokenBudget, TrimReport};
use serde_json::json;
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockClaude::new();
    let client = Client::new(
        ServiceBuilder::new()
            .claude_trim(TrimLayer::new().budget(TokenBudget::Tokens(4_000)))
            .service(mock.clone()),
    );
    let mut history =
        MessagesRequest::new("claude-haiku-4-5", 300).user("The task: audit the repository.");
    let mut last_dropped = usize::MAX;
    for turn in 0..120 {
        let id = format!("toolu_{turn}");
        history = history
            .message(claude_tower::core::MessageParam::assistant(vec![
                ContentBlock::tool_use(
                    id.clone(),
                    "read_file",
                    json!({"path": format!("src/{turn}.rs")}),
                ),
            ]))
            .user(vec![ContentBlock::tool_result(
                id,
                format!("contents of file {turn}: {}", "code ".repeat(40)),
            )]);
        let (_, extensions) = client
            .messages()
            .create_with_response(history.clone())
            .await?;
        let report = extensions.get::<TrimReport>().cloned().unwrap_or_default();
        if report.messages_dropped != last_dropped {
            println!(
                "turn {turn:>3}: {} messages dropped, {} → {} tokens",
                report.messages_dropped, report.tokens_before, report.tokens_after
            );
            last_dropped = report.messages_dropped;
        }
    }
    let sent = mock
        .requests()
        .last()
        .map(|r| r.body.clone())
        .expect("sent");
    sent.validate()?;
    println!(
        "last request: {} messages, valid, about {} tokens",
        sent.messages.len(),
        sent.estimate_input_tokens()
    );
    Ok(())
}
