//! Batch: classify 1,000 documents as deferred calls (Message Batches, half price) with a
//! progress bar, and print the cost beside the same run made synchronously.
//!
//! ```text
//! cargo run -p claude-tower-examples --example batch
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use std::time::Duration;

use claude_tower::batch::DeferLayer;
use claude_tower::core::ext::Deferred;
use claude_tower::cost::{Cost, Usd};
use claude_tower::mock::MockClaude;
use claude_tower::prelude::*;
use futures_util::StreamExt;

const DOCUMENTS: usize = 1_000;

fn document(i: usize) -> MessagesRequest {
    MessagesRequest::new("claude-haiku-4-5", 16).user(format!(
        "Label this support ticket as billing, bug or other. Ticket {i}: {}",
        "The invoice total looks wrong after the upgrade. ".repeat(i % 5 + 1)
    ))
}

async fn run(client: &Client<ClaudeService>, deferred: bool) -> Result<Usd, Error> {
    let bar = indicatif::ProgressBar::new(DOCUMENTS as u64);
    let costs: Vec<Result<Usd, Error>> = futures_util::stream::iter(0..DOCUMENTS)
        .map(|i| {
            let client = client.clone();
            let bar = bar.clone();
            async move {
                let messages = client.messages();
                let messages = if deferred {
                    messages.extension(Deferred::within(Duration::from_secs(60)))
                } else {
                    messages
                };
                let (_, extensions) = messages.create_with_response(document(i)).await?;
                bar.inc(1);
                Ok(extensions.get::<Cost>().map_or(Usd::ZERO, |c| c.total))
            }
        })
        .buffer_unordered(DOCUMENTS)
        .collect()
        .await;
    bar.finish();
    costs
        .into_iter()
        .try_fold(Usd::ZERO, |sum, cost| Ok(sum + cost?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The mock's batches end after two seconds (the API's usually take minutes).
    let mock = MockClaude::new().with_batch_processing_time(Duration::from_secs(2));
    let deferring = Client::new(
        Stack::new()
            .cost(CostLayer::new())
            .defer(
                DeferLayer::new(mock.clone())
                    .max_items(500)
                    .window(Duration::from_millis(500))
                    .poll(Duration::from_millis(500), Duration::from_secs(1)),
            )
            .service(mock.clone()),
    );
    let direct = Client::new(
        Stack::new()
            .cost(CostLayer::new())
            .service(MockClaude::new()),
    );

    println!("{DOCUMENTS} tickets, deferred into Message Batches:");
    let deferred_cost = run(&deferring, true).await?;
    println!("{DOCUMENTS} tickets, sent one by one:");
    let direct_cost = run(&direct, false).await?;
    println!(
        "\nbatches: {}; deferred cost {deferred_cost}, synchronous cost {direct_cost}",
        mock.batch_count()
    );
    Ok(())
}
