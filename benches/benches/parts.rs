//! Building blocks on the hot paths, measured alone (to see where a layer's time goes).

use claude_tower_core::MessagesRequest;
use claude_tower_response_cache::{CachedResponse, MemoryResponseStore, ResponseStore, cache_key};
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;

fn parts(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("parts");
    let request = MessagesRequest::new("claude-haiku-4-5", 1024)
        .user("Hello, Claude")
        .temperature(0.0)
        .into_http();
    group.bench_function("request-build", |b| {
        b.iter(|| {
            MessagesRequest::new("claude-haiku-4-5", 1024)
                .user("Hello, Claude")
                .temperature(0.0)
                .into_http()
        });
    });
    group.bench_function("cache-key", |b| {
        b.iter(|| cache_key(&request, false).expect("key"))
    });
    group.bench_function("request-to-json", |b| {
        b.iter(|| serde_json::to_vec(request.body()).expect("json"))
    });
    let bytes = serde_json::to_vec(request.body()).expect("json");
    group.bench_function("xxh3-128", |b| {
        b.iter(|| xxhash_rust::xxh3::xxh3_128(&bytes))
    });
    group.bench_function("cache-markers", |b| {
        b.iter(|| request.body().cache_markers())
    });
    group.bench_function("cache-key-string", |b| {
        b.iter(|| cache_key(&request, false).expect("key").to_string())
    });
    let store = MemoryResponseStore::new(1 << 26);
    let mut message = claude_tower_core::Message::new("m", "claude-haiku-4-5");
    message
        .content
        .push(claude_tower_core::ContentBlock::text("x".repeat(2048)));
    let key = cache_key(&request, false).expect("key");
    runtime
        .block_on(store.put(
            &key,
            Arc::new(CachedResponse::from_message(message.clone())),
            std::time::Duration::from_secs(600),
        ))
        .expect("put");
    group.bench_function("moka-get", |b| b.iter(|| store.get(&key).into_ready().ok()));
    group.bench_function("message-clone-2KB", |b| b.iter(|| message.clone()));
    // Trimming a 200-message, ~500 KB conversation to 20k tokens.
    let mut long = MessagesRequest::new("claude-sonnet-4-6", 1024).user("The task.");
    for i in 0..100 {
        long = long
            .assistant(format!("answer {i}: {}", "x ".repeat(1200)))
            .user(format!("question {i}: {}", "y ".repeat(1300)));
    }
    let options = claude_tower_trim::TrimOptions::default();
    group.bench_function("trim-200-messages-500KB", |b| {
        b.iter(|| claude_tower_trim::trim(&long, 20_000, &options).expect("fits"))
    });
    group.finish();

    // SSE decoding throughput: a long streamed reply, decoded from 1 KB chunks.
    let mut message = claude_tower_core::Message::new("msg_bench", "claude-haiku-4-5");
    message.content.push(claude_tower_core::ContentBlock::text(
        "The quick brown fox jumps over the lazy dog. ".repeat(4_000),
    ));
    message.stop_reason = Some(claude_tower_core::StopReason::EndTurn);
    let sse: String = message
        .to_events(24)
        .iter()
        .map(claude_tower_core::StreamEvent::to_sse)
        .collect();
    let bytes = bytes::Bytes::from(sse);
    let mut sse_group = c.benchmark_group("sse");
    sse_group.throughput(criterion::Throughput::Bytes(bytes.len() as u64));
    sse_group.bench_function("decode", |b| {
        b.to_async(&runtime).iter(|| {
            let chunks: Vec<Result<bytes::Bytes, claude_tower_core::Error>> =
                bytes.chunks(1024).map(|c| Ok(bytes.slice_ref(c))).collect();
            async move {
                use futures_util::StreamExt;
                claude_tower_transport::sse::decode(futures_util::stream::iter(chunks), None)
                    .count()
                    .await
            }
        });
    });
    // Where the decode time goes: the JSON of each frame alone, without the framing.
    let frames: Vec<(String, String)> = message
        .to_events(24)
        .iter()
        .map(|event| {
            (
                event.event_name().to_owned(),
                serde_json::to_string(event).expect("json"),
            )
        })
        .collect();
    sse_group.bench_function("parse-only", |b| {
        b.iter(|| {
            frames
                .iter()
                .map(|(event, data)| claude_tower_core::StreamEvent::from_sse(event, data))
                .filter(Result::is_ok)
                .count()
        });
    });
    sse_group.finish();
}

criterion_group!(benches, parts);
criterion_main!(benches);
