//! Response cache: identical deterministic requests answered once — 50 concurrent copies make
//! one upstream call, and a later stream request replays the cached reply.
//!
//! ```text
//! cargo run -p claude-tower-examples --example response_cache
//! ```
#![expect(clippy::print_stdout, reason = "an example prints its results")]

use claude_tower::ext::ResponseCacheStatus;
use claude_tower::mock::MockClaude;
use claude_tower::prelude::*;
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockClaude::new();
    let client = Client::new(
        ServiceBuilder::new()
            .claude_response_cache(ResponseCacheLayer::in_memory(64 << 20))
            .service(mock.clone()),
    );
    let request = MessagesRequest::new("claude-haiku-4-5", 200)
        .user("What is the capital of France?")
        .temperature(0.0);
    let messages = client.messages();
    let calls = (0..50).map(|_| messages.create_with_response(request.clone()));
    let results = futures_util::future::join_all(calls).await;
    let hits = results
        .iter()
        .filter(|r| {
            r.as_ref().is_ok_and(|(_, e)| {
                e.get::<ResponseCacheStatus>() == Some(&ResponseCacheStatus::Hit)
            })
        })
        .count();
    println!(
        "50 concurrent identical requests: {hits} hits, upstream calls: {}",
        mock.request_count()
    );
    let mut stream = client.messages().stream(request).await?;
    let mut text = String::new();
    while let Some(piece) = stream.next_text().await? {
        text.push_str(&piece);
    }
    println!(
        "stream replayed from the cache ({:?}): {text}",
        stream.extensions().get::<ResponseCacheStatus>()
    );
    println!("upstream calls: {}", mock.request_count());
    Ok(())
}
