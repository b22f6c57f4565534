//! Agent loop: a tool-use loop over several turns through retry, cost and prompt-cache layers,
//! on the built-in mock (which calls the offered tool, then answers from its result).
//!
//! ```text
//! cargo run -p claude-tower-examples --example agent_loop
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use claude_tower::core::{ContentBlock, StopReason, Tool};
use claude_tower::cost::CostLedger;
use claude_tower::mock::MockClaude;
use claude_tower::prelude::*;
use serde_json::json;
use tower::ServiceBuilder;

fn run_tool(name: &str, input: &serde_json::Value) -> String {
    match name {
        "get_weather" => format!("{} is sunny, 21 °C", input["city"].as_str().unwrap_or("?")),
        other => format!("unknown tool {other}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ledger = CostLedger::new();
    let stack = ServiceBuilder::new()
        .claude_cost(CostLayer::new().ledger(ledger.clone()))
        .claude_prompt_cache(PromptCacheLayer::new())
        .claude_retry(RetryLayer::new())
        .service(MockClaude::new());
    let client = Client::new(stack);
    let weather = Tool::new(
        "get_weather",
        "Current weather for a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    );
    let mut request = MessagesRequest::new("claude-haiku-4-5", 512)
        .system("You are a travel assistant. Use tools when useful.")
        .tools(vec![weather])
        .user("What's the weather in Paris?");
    for step in 1..=5 {
        let message = client.messages().create(request.clone()).await?;
        println!(
            "step {step}: stop_reason = {}",
            message.stop_reason.as_ref().map_or("-", StopReason::as_str)
        );
        request = request.message(message.to_param());
        if message.stop_reason != Some(StopReason::ToolUse) {
            println!("answer: {}", message.text());
            break;
        }
        let results: Vec<ContentBlock> = message
            .tool_uses()
            .map(|call| {
                let output = run_tool(&call.name, &call.input);
                println!("  tool {}({}) -> {output}", call.name, call.input);
                ContentBlock::tool_result(call.id.clone(), output)
            })
            .collect();
        request = request.user(results);
    }
    println!("cost: {}", ledger.snapshot().total.cost);
    Ok(())
}
