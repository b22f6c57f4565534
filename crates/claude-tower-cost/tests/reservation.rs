//! What a budget reserves for a request's input, against what the mock (which simulates the
//! prompt cache) bills: a marker below the model's minimum reserves no cache write, prefixes
//! seen cached are reserved as reads, and over a conversation the input-side reservation stays
//! within 2× the real input-side cost with no overshoot.

use claude_tower_core::layout::{Slot, positions, set_marker};
use claude_tower_core::{CacheControl, CacheTtl, MessagesRequest};
use claude_tower_cost::{BudgetLayer, MemoryBudgetStore, ReservationStats, Usd, Window};
use claude_tower_mock::MockClaude;
use tower::{ServiceBuilder, ServiceExt};

const MODEL: &str = "claude-sonnet-4-6"; // minimum cacheable prompt: 1,024 tokens

/// The markers a prompt-cache layout puts: 1 h on the system prompt, 5 min on the tail.
fn marked(mut request: MessagesRequest) -> MessagesRequest {
    set_marker(
        &mut request,
        Slot::SystemText,
        CacheControl::with_ttl(CacheTtl::OneHour),
    );
    let tail = positions(&request).last().map(|p| p.slot);
    if let Some(tail) = tail {
        set_marker(&mut request, tail, CacheControl::ephemeral());
    }
    request
}

async fn conversation(budget: &BudgetLayer, system: &str, turns: usize) -> ReservationStats {
    let service = ServiceBuilder::new()
        .layer(budget.clone())
        .service(MockClaude::new());
    let mut history = MessagesRequest::new(MODEL, 200).system(system);
    for turn in 0..turns {
        history = history.user(format!(
            "Turn {turn}: {}",
            "the log says error. ".repeat(40)
        ));
        let message = service
            .clone()
            .oneshot(marked(history.clone()).into_http())
            .await
            .unwrap()
            .into_body()
            .into_message()
            .await
            .unwrap();
        history = history.message(message.to_param());
    }
    budget.reservation_stats()
}

fn budget() -> BudgetLayer {
    BudgetLayer::new(MemoryBudgetStore::new()).global("100".parse::<Usd>().unwrap(), Window::Day)
}

#[tokio::test]
async fn a_conversation_reserves_within_twice_its_input_cost() {
    let system = "You are a careful support engineer. ".repeat(200); // ≈ 2,000 tokens
    let aware = budget();
    let stats = conversation(&aware, &system, 8).await;
    let ratio = stats.input_ratio().unwrap();
    println!("cache-aware: input-side reservation / real = {ratio:.2} ({stats:?})");
    assert!(ratio >= 1.0, "never below the real cost: {ratio}");
    assert!(ratio <= 2.0, "{ratio}");
    assert_eq!(aware.overshoots(), 0);

    // Pricing every prefix as a write is never short, and several times the real cost.
    let strict = budget().expect_cache_reads(false);
    let strict_ratio = conversation(&strict, &system, 8)
        .await
        .input_ratio()
        .unwrap();
    println!("writes only: input-side reservation / real = {strict_ratio:.2}");
    assert!(strict_ratio > ratio * 2.0, "{strict_ratio} vs {ratio}");
    assert_eq!(strict.overshoots(), 0);
}

#[tokio::test]
async fn a_marker_below_the_minimum_reserves_no_cache_write() {
    // ≈ 300 tokens: below Sonnet 4.6's 1,024, so the API caches (and bills) nothing.
    let short = budget();
    let stats = conversation(&short, &"Be brief. ".repeat(100), 1).await;
    let ratio = stats.input_ratio().unwrap();
    // Only the estimate's error bound (×1.12 + 64 tokens) separates the two.
    assert!(
        ratio <= 1.5,
        "{ratio}: a short prompt is reserved as plain input"
    );
    // Above the minimum the first turn writes the cache: reserved (and billed) as writes.
    let long = budget();
    let stats = conversation(&long, &"Be brief and exact. ".repeat(300), 1).await;
    let ratio = stats.input_ratio().unwrap();
    assert!((1.0..=1.5).contains(&ratio), "{ratio}");
    assert!(stats.actual_input > Usd::ZERO);
}
