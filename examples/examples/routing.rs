//! Routing: a mixed workload (classify, extract, summarise, analyse, generate) routed to the
//! cheapest model that fits each task, priced by the cost meter beside the same workload sent
//! to one large model.
//!
//! ```text
//! cargo run -p claude-tower-examples --example routing
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use std::collections::BTreeMap;

use claude_tower::cost::{Cost, PriceTable, Usd};
use claude_tower::mock::MockClaude;
use claude_tower::prelude::*;
use claude_tower::route::RouteReport;

const TASKS: [(TaskHint, &str, u32); 5] = [
    (TaskHint::Classify, "Is this e-mail spam? ", 16),
    (
        TaskHint::Extract,
        "Extract the invoice number and total: ",
        128,
    ),
    (TaskHint::Summarize, "Summarise in three bullets: ", 256),
    (
        TaskHint::Analyze,
        "Find the root cause in this incident log: ",
        1_024,
    ),
    (TaskHint::Generate, "Draft a migration plan for: ", 2_048),
];

/// Runs the workload through `stack`; returns (task → model → (calls, cost)), total.
async fn run(
    client: &Client<ClaudeService>,
) -> Result<(BTreeMap<String, (String, u32, Usd)>, Usd), Error> {
    let mut rows: BTreeMap<String, (String, u32, Usd)> = BTreeMap::new();
    let mut total = Usd::ZERO;
    for i in 0..200 {
        let (hint, prompt, max_tokens) = TASKS[i % TASKS.len()];
        let request = MessagesRequest::new("claude-opus-4-5", max_tokens).user(format!(
            "{prompt}{}",
            "Lorem ipsum dolor sit amet. ".repeat(40)
        ));
        let (message, extensions) = client
            .messages()
            .extension(hint)
            .create_with_response(request)
            .await?;
        let cost = extensions.get::<Cost>().map_or(Usd::ZERO, |c| c.total);
        let model = extensions
            .get::<RouteReport>()
            .map_or_else(|| message.model.clone(), |r| r.model.clone());
        let row = rows
            .entry(format!("{hint:?}"))
            .or_insert((model, 0, Usd::ZERO));
        row.1 += 1;
        row.2 += cost;
        total += cost;
    }
    Ok((rows, total))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let router = RouterLayer::new()
        .prices(claude_tower::router_prices(PriceTable::builtin()))
        .route(
            Route::for_tasks([TaskHint::Classify, TaskHint::Extract, TaskHint::Summarize])
                .models(["claude-haiku-4-5", "claude-sonnet-4-5"]),
        )
        .route(Route::for_tasks([TaskHint::Analyze]).models(["claude-sonnet-4-5"]))
        .route(Route::for_tasks([TaskHint::Generate]).models(["claude-opus-4-5"]));
    let routed = Client::new(
        Stack::new()
            .router(router)
            .cost(CostLayer::new())
            .service(MockClaude::new()),
    );
    let single = Client::new(
        Stack::new()
            .cost(CostLayer::new())
            .service(MockClaude::new()),
    );

    let (rows, routed_total) = run(&routed).await?;
    let (_, single_total) = run(&single).await?;
    println!("| task | model | calls | cost |");
    println!("|---|---|---|---|");
    for (task, (model, calls, cost)) in &rows {
        println!("| {task} | {model} | {calls} | {cost} |");
    }
    println!("\nrouted: {routed_total}; everything on claude-opus-4-5: {single_total}");
    Ok(())
}
