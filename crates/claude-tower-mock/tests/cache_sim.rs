//! The mock's prompt-cache simulation, rule by rule (API-NOTES §5).

use std::time::Duration;

use claude_tower_core::{
    CacheControl, CacheTtl, ContentBlock, MessageParam, MessagesRequest, Usage,
};
use claude_tower_mock::MockClaude;
use tower::ServiceExt;

const MODEL: &str = "claude-sonnet-4-6"; // minimum cacheable length 1,024

fn marked(text: String, ttl: Option<CacheTtl>) -> ContentBlock {
    let mut block = ContentBlock::text(text);
    *block.cache_control_mut().unwrap() =
        Some(ttl.map_or_else(CacheControl::ephemeral, CacheControl::with_ttl));
    block
}

/// A long system prompt (~2,000 tokens) in block form, optionally marked.
fn system(ttl: Option<Option<CacheTtl>>) -> Vec<ContentBlock> {
    let text = "You are a careful assistant. ".repeat(250);
    vec![match ttl {
        Some(ttl) => marked(text, ttl),
        None => ContentBlock::text(text),
    }]
}

fn request(system_blocks: Vec<ContentBlock>, user: Vec<ContentBlock>) -> MessagesRequest {
    let mut r = MessagesRequest::new(MODEL, 50).message(MessageParam::user(user));
    r.system = Some(std::sync::Arc::new(claude_tower_core::System::Blocks(
        system_blocks,
    )));
    r
}

async fn usage(mock: &MockClaude, request: MessagesRequest) -> Usage {
    mock.clone()
        .oneshot(request.into_http())
        .await
        .unwrap()
        .into_body()
        .into_message()
        .await
        .unwrap()
        .usage
}

#[tokio::test(start_paused = true)]
async fn writes_at_breakpoints_then_reads_and_splits_ttls() {
    let mock = MockClaude::new();
    let first = request(
        system(Some(Some(CacheTtl::OneHour))),
        vec![marked("question one".into(), None)],
    );
    let total = first.estimate_input_tokens();
    let u = usage(&mock, first.clone()).await;
    assert_eq!(u.cache_read_tokens(), 0);
    let split = u.cache_creation.clone().unwrap();
    assert!(
        split.ephemeral_1h_input_tokens > 2_000,
        "the system prompt, written for 1h"
    );
    assert!(
        split.ephemeral_5m_input_tokens > 0,
        "the tail, written for 5m"
    );
    assert_eq!(
        u.cache_write_tokens(),
        split.ephemeral_1h_input_tokens + split.ephemeral_5m_input_tokens
    );
    assert_eq!(u.total_input_tokens(), total);
    assert_eq!(u.input_tokens, 0, "nothing after the last breakpoint");
    // Same request again: everything read.
    let u = usage(&mock, first).await;
    assert_eq!(u.cache_read_tokens(), total);
    assert_eq!(u.cache_write_tokens(), 0);
}

#[tokio::test(start_paused = true)]
async fn below_the_minimum_nothing_is_cached() {
    let mock = MockClaude::new();
    let short = request(
        vec![marked("short system".into(), None)],
        vec![ContentBlock::text("hi")],
    );
    for _ in 0..2 {
        let u = usage(&mock, short.clone()).await;
        assert_eq!((u.cache_write_tokens(), u.cache_read_tokens()), (0, 0));
        assert_eq!(u.input_tokens, short.estimate_input_tokens());
    }
    assert_eq!(mock.prompt_cache_entries(), 0);
}

/// A conversation whose first user turn is `n` small blocks, the last one marked.
fn with_blocks(n: usize, marked_at: Option<usize>) -> MessagesRequest {
    let blocks = (0..n)
        .map(|i| {
            if Some(i) == marked_at {
                marked(format!("block {i}"), None)
            } else {
                ContentBlock::text(format!("block {i}"))
            }
        })
        .collect();
    request(system(None), blocks)
}

#[tokio::test(start_paused = true)]
async fn lookback_finds_an_entry_19_positions_back_but_not_20() {
    for (distance, expect_hit) in [(19, true), (20, false)] {
        let mock = MockClaude::new();
        // Write an entry at position 1 + 5 (system + 6 blocks, the 6th marked).
        usage(&mock, with_blocks(6, Some(5))).await;
        // Same prefix, the marker now `distance` positions later: the lookback window
        // (20 positions, the breakpoint included) reaches back exactly 19.
        let u = usage(&mock, with_blocks(6 + distance, Some(5 + distance))).await;
        assert_eq!(
            u.cache_read_tokens() > 0,
            expect_hit,
            "distance {distance}: {u:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn ttls_expire_and_hits_refresh_them() {
    let mock = MockClaude::new();
    let req = request(system(Some(None)), vec![ContentBlock::text("q")]);
    usage(&mock, req.clone()).await;
    tokio::time::advance(Duration::from_secs(299)).await;
    assert!(
        usage(&mock, req.clone()).await.cache_read_tokens() > 0,
        "read at 4:59, which refreshes the entry"
    );
    tokio::time::advance(Duration::from_secs(299)).await;
    assert!(
        usage(&mock, req.clone()).await.cache_read_tokens() > 0,
        "alive 4:59 after the refresh"
    );
    tokio::time::advance(Duration::from_secs(301)).await;
    let u = usage(&mock, req.clone()).await;
    assert_eq!(
        u.cache_read_tokens(),
        0,
        "expired after 5 minutes without a hit"
    );
    assert!(u.cache_write_tokens() > 0, "written again");
    // A 1h entry survives the same pause.
    let long = request(
        system(Some(Some(CacheTtl::OneHour))),
        vec![ContentBlock::text("q")],
    );
    let fresh = MockClaude::new();
    usage(&fresh, long.clone()).await;
    tokio::time::advance(Duration::from_secs(1800)).await;
    assert!(usage(&fresh, long).await.cache_read_tokens() > 0);
}

#[tokio::test(start_paused = true)]
async fn the_top_level_automatic_breakpoint_moves_with_the_conversation() {
    let mock = MockClaude::new();
    let mut first = request(system(None), vec![ContentBlock::text("question one")]);
    first.cache_control = Some(CacheControl::ephemeral());
    let u = usage(&mock, first.clone()).await;
    assert_eq!(u.input_tokens, 0);
    assert!(u.cache_write_tokens() > 2_000);
    let mut second = first.clone().assistant("answer one").user("question two");
    second.cache_control = Some(CacheControl::ephemeral());
    let u = usage(&mock, second.clone()).await;
    assert_eq!(
        u.cache_read_tokens(),
        first.estimate_input_tokens(),
        "the whole previous prompt is read"
    );
    assert_eq!(
        u.cache_write_tokens(),
        second.estimate_input_tokens() - first.estimate_input_tokens()
    );
}
