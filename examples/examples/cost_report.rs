//! Cost report: a small workload for three users on the mock, through a cost meter with a
//! ledger and a per-user daily budget, then a per-user cost table.
//!
//! ```text
//! cargo run -p claude-tower-examples --example cost_report
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use claude_tower_core::MessagesRequest;
use claude_tower_core::ext::Attribution;
use claude_tower_cost::{BudgetLayer, CostLayer, CostLedger, MemoryBudgetStore, Usd, Window};
use claude_tower_mock::MockClaude;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ledger = CostLedger::new();
    let service = ServiceBuilder::new()
        .layer(BudgetLayer::new(MemoryBudgetStore::new()).per_user(Usd::from_cents(5), Window::Day))
        .layer(CostLayer::new().ledger(ledger.clone()))
        .service(MockClaude::new());

    let workload = [
        (
            "ann",
            "claude-haiku-4-5",
            "Summarise this week's tickets",
            400,
        ),
        (
            "ann",
            "claude-sonnet-4-6",
            "Draft a reply to the customer about the outage",
            800,
        ),
        (
            "bob",
            "claude-opus-4-8",
            "Review this design document for risks",
            1_200,
        ),
        ("bob", "claude-haiku-4-5", "Classify this email", 50),
        (
            "cho",
            "claude-sonnet-4-6",
            "Explain the quarterly numbers in two paragraphs",
            600,
        ),
        (
            "cho",
            "claude-opus-4-8",
            "Write a detailed migration plan for the billing system",
            16_000,
        ),
    ];
    let mut refused = 0;
    for (user, model, prompt, max_tokens) in workload {
        let mut request = MessagesRequest::new(model, max_tokens)
            .user(prompt)
            .into_http();
        request
            .extensions_mut()
            .insert(Attribution::user(user).with_feature("demo"));
        match service.clone().oneshot(request).await {
            Ok(_) => {}
            Err(error) => {
                refused += 1;
                println!("refused for {user}: {error}");
            }
        }
    }

    let snapshot = ledger.snapshot();
    println!("\n| user | requests | input tok | output tok | cost |");
    println!("|---|---|---|---|---|");
    for (user, totals) in &snapshot.by_user {
        println!(
            "| {user} | {} | {} | {} | {} |",
            totals.requests, totals.input_tokens, totals.output_tokens, totals.cost
        );
    }
    println!(
        "| **total** | {} | {} | {} | {} |",
        snapshot.total.requests,
        snapshot.total.input_tokens,
        snapshot.total.output_tokens,
        snapshot.total.cost
    );
    println!(
        "\n{refused} request(s) refused by the per-user budget of $0.05/day (worst case reserved before sending)"
    );
    Ok(())
}
