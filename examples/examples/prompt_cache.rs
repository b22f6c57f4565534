//! Prompt cache: a 10-turn conversation with a long system prompt through `PromptCacheLayer`,
//! on the mock that simulates Anthropic's prompt cache; prints what each turn read and wrote.
//!
//! ```text
//! cargo run -p claude-tower-examples --example prompt_cache
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use claude_tower::mock::MockClaude;
use claude_tower::prelude::*;
use claude_tower::prompt_cache::PromptCacheReport;
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let layer = PromptCacheLayer::new();
    let stats = layer.stats();
    let client = Client::new(
        ServiceBuilder::new()
            .claude_prompt_cache(layer)
            .service(MockClaude::new()),
    );
    let mut history = MessagesRequest::new("claude-sonnet-4-6", 300)
        .system("You are a meticulous code reviewer. ".repeat(150));
    for turn in 0..10 {
        history = history.user(format!(
            "Review chunk {turn}: {}",
            "fn main() {} ".repeat(40)
        ));
        let (message, extensions) = client
            .messages()
            .create_with_response(history.clone())
            .await?;
        let report = extensions
            .get::<PromptCacheReport>()
            .copied()
            .unwrap_or_default();
        println!(
            "turn {turn}: read {:>5}, wrote {:>4} (5m) + {:>4} (1h), uncached {:>3}, hit ratio {:>5.1} %",
            report.read,
            report.written_5m,
            report.written_1h,
            report.uncached,
            report.hit_ratio() * 100.0
        );
        history = history.message(message.to_param());
    }
    println!(
        "overall hit ratio: {:.1} % over {} responses",
        stats.totals().hit_ratio() * 100.0,
        stats.responses()
    );
    Ok(())
}
