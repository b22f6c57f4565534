//! Batch results decoding holds one line at a time: a 100 MB JSONL stream decodes with the
//! process's peak memory growing by far less than the stream (bound: 32 MB, documented
//! margin; the lines are ~1 KB, the chunks 64 KB). One test in its own binary, so no other
//! test's memory counts.

use bytes::Bytes;
use claude_tower_core::batch::{BatchOutcome, jsonl};
use futures_util::StreamExt;

/// Peak resident memory in KB (`VmHWM`), on Linux.
fn peak_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "current_thread")]
async fn a_100_mb_results_stream_decodes_in_bounded_memory() {
    const TOTAL: usize = 100 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let line = |i: usize| {
        format!(
            "{{\"custom_id\":\"item-{i}\",\"result\":{{\"type\":\"succeeded\",\"message\":{{\"id\":\"msg_{i}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[{{\"type\":\"text\",\"text\":\"{}\"}}],\"stop_reason\":\"end_turn\",\"usage\":{{\"input_tokens\":10,\"output_tokens\":200}}}}}}}}\n",
            "x".repeat(800)
        )
    };
    // Generated lazily, cut into chunks that split lines anywhere.
    let mut produced = 0usize;
    let mut next_line = 0usize;
    let mut pending: Vec<u8> = Vec::new();
    let chunks = futures_util::stream::poll_fn(move |_| {
        while pending.len() < CHUNK && produced + pending.len() < TOTAL {
            pending.extend_from_slice(line(next_line).as_bytes());
            next_line += 1;
        }
        if pending.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let take = CHUNK.min(pending.len());
        let chunk: Vec<u8> = pending.drain(..take).collect();
        produced += chunk.len();
        std::task::Poll::Ready(Some(Ok::<_, std::convert::Infallible>(Bytes::from(chunk))))
    });
    let before = peak_kb();
    let mut decoded = std::pin::pin!(jsonl::decode(chunks, jsonl::DEFAULT_MAX_LINE_BYTES));
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(result) = decoded.next().await {
        let result = result.unwrap();
        assert!(matches!(result.result, BatchOutcome::Succeeded { .. }));
        lines += 1;
        bytes += result.custom_id.len() as u64;
    }
    let after = peak_kb();
    assert!(lines > 90_000, "{lines} lines");
    assert!(bytes > 0);
    if let (Some(before), Some(after)) = (before, after) {
        let grew_mb = (after.saturating_sub(before)) / 1024;
        println!("100 MB of JSONL, {lines} lines: peak memory grew by {grew_mb} MB");
        assert!(grew_mb < 32, "peak memory grew by {grew_mb} MB");
    }
}

/// A line past the bound is a typed error and ends the stream; a bad line is a typed error
/// and the next line is still read.
#[tokio::test(flavor = "current_thread")]
async fn long_and_bad_lines_are_typed_errors() {
    let ok = "{\"custom_id\":\"a\",\"result\":{\"type\":\"expired\"}}\n";
    let body = format!("{ok}not json\n{ok}{}\n{ok}", "y".repeat(200));
    let chunks = futures_util::stream::iter(
        body.into_bytes()
            .chunks(7)
            .map(|c| Ok::<_, std::convert::Infallible>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let results: Vec<_> = jsonl::decode(chunks, 100).collect().await;
    let kinds: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().err().map(claude_tower_core::Error::kind))
        .collect();
    use claude_tower_core::ErrorKind::{Decode, TooLarge};
    assert_eq!(kinds, vec![None, Some(Decode), None, Some(TooLarge)]);
}
