//! Full stack: every layer, in the canonical order, over the transport and the built-in mock
//! server (scripted to fail once), for a multi-turn conversation. Prints usage, cost, cache
//! ratio, attempts and the trim report of every turn.
//!
//! ```text
//! cargo run -p claude-tower-examples --example full_stack
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use std::time::Duration;

use claude_tower::cost::{Cost, CostLedger, MemoryBudgetStore};
use claude_tower::ext::{Attempts, ResponseCacheStatus};
use claude_tower::mock::Attempt;
use claude_tower::prelude::*;
use claude_tower::prompt_cache::PromptCacheReport;
use claude_tower::trim::{TokenBudget, TrimReport};
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (transport, mock) = claude_tower_examples::backend().await?;
    if let Some(server) = &mock {
        // The second turn's first attempt is overloaded: the retry layer absorbs it.
        server.mock().push_script([
            Attempt::ok(),
            Attempt::overloaded().with_header("retry-after-ms", "50"),
        ]);
    }
    let ledger = CostLedger::new();
    let budget =
        BudgetLayer::new(MemoryBudgetStore::new()).global("5".parse::<Usd>()?, Window::Day);
    let stack = ServiceBuilder::new()
        .claude_trace(TraceLayer::new())
        .claude_cost(CostLayer::new().ledger(ledger.clone()))
        .claude_response_cache(ResponseCacheLayer::in_memory(64 << 20))
        .claude_trim(TrimLayer::new().budget(TokenBudget::Tokens(6_000)))
        .claude_prompt_cache(PromptCacheLayer::new())
        .claude_budget(budget.clone())
        .claude_retry(RetryLayer::new())
        .claude_rate_limit(
            RateLimitLayer::new().pool("sonnet", Limits::new(1_000, 400_000, 80_000)),
        )
        .claude_timeout(
            TimeoutLayer::new()
                .first_event(Duration::from_secs(30))
                .idle(Duration::from_secs(60)),
        )
        .service(transport);
    let client = Client::new(stack);

    let system = "You are a senior support engineer. Be precise and kind. ".repeat(60);
    let mut history = MessagesRequest::new("claude-sonnet-4-6", 300)
        .system(system)
        .temperature(0.0);
    println!(
        "| turn | input | cache read | cache write | output | cost | cache ratio | attempts | dropped | response cache |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for turn in 0..8 {
        history = history.user(format!(
            "Turn {turn}: the deploy failed again, here is the log: {}",
            "error line ".repeat(60)
        ));
        let (message, extensions) = client
            .messages()
            .create_with_response(history.clone())
            .await?;
        let usage = &message.usage;
        let cost = extensions
            .get::<Cost>()
            .map_or_else(|| "-".to_owned(), |c| c.total.to_string());
        let ratio = extensions
            .get::<PromptCacheReport>()
            .map_or(0.0, PromptCacheReport::hit_ratio);
        let attempts = extensions.get::<Attempts>().map_or(1, |a| a.count);
        let dropped = extensions
            .get::<TrimReport>()
            .map_or(0, |r| r.messages_dropped);
        let status = extensions
            .get::<ResponseCacheStatus>()
            .map_or("-".to_owned(), |s| format!("{s:?}"));
        println!(
            "| {turn} | {} | {} | {} | {} | {cost} | {:.0} % | {attempts} | {dropped} | {status} |",
            usage.input_tokens,
            usage.cache_read_tokens(),
            usage.cache_write_tokens(),
            usage.output_tokens,
            ratio * 100.0
        );
        history = history.message(message.to_param());
    }
    let totals = ledger.snapshot().total;
    println!("\ntotal: {} requests, {}", totals.requests, totals.cost);
    // What the budget reserved against what the calls really cost (input side: the prompt).
    let stats = budget.reservation_stats();
    println!(
        "budget: reserved {} for input that cost {} (×{:.2}); {} in total for {} (×{:.2})",
        stats.reserved_input,
        stats.actual_input,
        stats.input_ratio().unwrap_or(0.0),
        stats.reserved,
        stats.actual,
        stats.ratio().unwrap_or(0.0),
    );
    Ok(())
}
