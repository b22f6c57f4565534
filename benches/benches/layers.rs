//! Per-layer overhead over a bare, always-ready service (the success path), one group with a
//! `BenchmarkId` per configuration. Run with `cargo xtask bench`.

use std::time::Duration;

use claude_tower_benches::{Bare, small_request};
use claude_tower_core::{Message, MessagesRequest};
use claude_tower_cost::CostLayer;
use claude_tower_prompt_cache::PromptCacheLayer;
use claude_tower_rate_limit::{Limits, RateLimitLayer};
use claude_tower_response_cache::{CachePolicy, ResponseCacheLayer};
use claude_tower_retry::{RetryLayer, TimeoutLayer};
use claude_tower_trace::TraceLayer;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tower::{Layer, ServiceExt};

fn layers(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("layers");
    group.throughput(Throughput::Elements(1));

    let bare = Bare::default();
    group.bench_function(BenchmarkId::new("bare", "1-message"), |b| {
        b.to_async(&runtime)
            .iter(|| bare.clone().oneshot(small_request()));
    });

    let retry = RetryLayer::new().layer(Bare::default());
    group.bench_function(BenchmarkId::new("retry", "1-message"), |b| {
        b.to_async(&runtime)
            .iter(|| retry.clone().oneshot(small_request()));
    });

    let timeout = TimeoutLayer::new()
        .total(Duration::from_secs(600))
        .first_event(Duration::from_secs(30))
        .idle(Duration::from_secs(60))
        .layer(Bare::default());
    group.bench_function(BenchmarkId::new("timeout", "1-message"), |b| {
        b.to_async(&runtime)
            .iter(|| timeout.clone().oneshot(small_request()));
    });

    let both = RetryLayer::new().layer(
        TimeoutLayer::new()
            .total(Duration::from_secs(600))
            .layer(Bare::default()),
    );
    group.bench_function(BenchmarkId::new("retry+timeout", "1-message"), |b| {
        b.to_async(&runtime)
            .iter(|| both.clone().oneshot(small_request()));
    });
    let rate_limit = RateLimitLayer::new()
        .pool(
            "haiku",
            Limits::new(u64::MAX / 4, u64::MAX / 4, u64::MAX / 4),
        )
        .layer(Bare::default());
    group.bench_function(BenchmarkId::new("rate-limit", "1-message"), |b| {
        b.to_async(&runtime)
            .iter(|| rate_limit.clone().oneshot(small_request()));
    });

    // Tracing: no subscriber (spans are disabled), then a registry subscriber.
    let trace = TraceLayer::new().layer(Bare::default());
    group.bench_function(BenchmarkId::new("trace-no-subscriber", "1-message"), |b| {
        b.to_async(&runtime)
            .iter(|| trace.clone().oneshot(small_request()));
    });
    {
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry());
        tracing::callsite::rebuild_interest_cache();
        group.bench_function(BenchmarkId::new("trace-subscriber", "1-message"), |b| {
            b.to_async(&runtime)
                .iter(|| trace.clone().oneshot(small_request()));
        });
    }
    tracing::callsite::rebuild_interest_cache();

    // Prompt-cache layout on a 50-message conversation.
    let conversation = fifty_messages();
    group.bench_function(BenchmarkId::new("bare", "50-messages"), |b| {
        let bare = Bare::default();
        b.to_async(&runtime)
            .iter(|| bare.clone().oneshot(conversation.clone().into_http()));
    });
    let prompt_cache = PromptCacheLayer::new().layer(Bare::default());
    group.bench_function(BenchmarkId::new("prompt-cache", "50-messages"), |b| {
        b.to_async(&runtime).iter(|| {
            prompt_cache
                .clone()
                .oneshot(conversation.clone().into_http())
        });
    });

    // The same conversation with 8 tools (12 parameters each), as an agent loop sends it.
    let with_tools = fifty_messages().tools(eight_tools());
    group.bench_function(BenchmarkId::new("bare", "50-messages-8-tools"), |b| {
        let bare = Bare::default();
        b.to_async(&runtime)
            .iter(|| bare.clone().oneshot(with_tools.clone().into_http()));
    });
    group.bench_function(
        BenchmarkId::new("prompt-cache", "50-messages-8-tools"),
        |b| {
            b.to_async(&runtime)
                .iter(|| prompt_cache.clone().oneshot(with_tools.clone().into_http()));
        },
    );

    let budget = claude_tower_cost::BudgetLayer::new(claude_tower_cost::MemoryBudgetStore::new())
        .global(
            "1000000".parse::<claude_tower_cost::Usd>().expect("usd"),
            claude_tower_cost::Window::Total,
        )
        .layer(Bare::default());
    group.bench_function(BenchmarkId::new("budget", "1-message"), |b| {
        b.to_async(&runtime)
            .iter(|| budget.clone().oneshot(small_request()));
    });

    // A deferred call end to end: queued, flushed as a one-item batch, polled, its result
    // claimed and delivered (over batches that end at once: the layer's own cost).
    let defer =
        claude_tower_batch::DeferLayer::new(claude_tower_benches::InstantBatches::default())
            .max_items(1)
            .poll(Duration::ZERO, Duration::ZERO)
            .layer(Bare::default());
    group.bench_function(BenchmarkId::new("defer", "1-message"), |b| {
        b.to_async(&runtime).iter(|| {
            let mut request = small_request();
            request
                .extensions_mut()
                .insert(claude_tower_core::ext::Deferred::new());
            defer.clone().oneshot(request)
        });
    });

    let trim = claude_tower_trim::TrimLayer::new().layer(Bare::default());
    group.bench_function(BenchmarkId::new("trim", "1-message"), |b| {
        b.to_async(&runtime)
            .iter(|| trim.clone().oneshot(small_request()));
    });

    let cost = CostLayer::new().layer(Bare::default());
    group.bench_function(BenchmarkId::new("cost", "1-message"), |b| {
        b.to_async(&runtime)
            .iter(|| cost.clone().oneshot(small_request()));
    });

    // Response cache: a 2 KB reply. Hit path (warmed once), and the miss path (a policy that
    // looks up but never stores, so every call is a miss through the single-flight table).
    let hit = ResponseCacheLayer::in_memory(1 << 26).layer(Bare::with_reply_bytes(2048));
    runtime
        .block_on(hit.clone().oneshot(deterministic_request()))
        .expect("warm");
    group.bench_function(BenchmarkId::new("bare", "2KB-reply"), |b| {
        let bare = Bare::with_reply_bytes(2048);
        b.to_async(&runtime)
            .iter(|| bare.clone().oneshot(deterministic_request()));
    });
    group.bench_function(BenchmarkId::new("response-cache-hit", "2KB-reply"), |b| {
        b.to_async(&runtime)
            .iter(|| hit.clone().oneshot(deterministic_request()));
    });
    let miss = ResponseCacheLayer::in_memory(1 << 26)
        .policy(NeverStore)
        .layer(Bare::with_reply_bytes(2048));
    group.bench_function(BenchmarkId::new("response-cache-miss", "2KB-reply"), |b| {
        b.to_async(&runtime)
            .iter(|| miss.clone().oneshot(deterministic_request()));
    });
    group.finish();

    // The full stack (all nine layers, canonical order) over the bare service.
    let mut full = c.benchmark_group("full-stack");
    full.throughput(Throughput::Elements(1));
    let stack = full_stack();
    full.bench_function(BenchmarkId::new("bare", "1-message"), |b| {
        let bare = Bare::default();
        b.to_async(&runtime)
            .iter(|| bare.clone().oneshot(small_request()));
    });
    full.bench_function(BenchmarkId::new("full-stack", "1-message"), |b| {
        b.to_async(&runtime)
            .iter(|| stack.clone().oneshot(small_request()));
    });
    let big = hundred_kb();
    full.bench_function(BenchmarkId::new("bare", "50-messages-100KB"), |b| {
        let bare = Bare::default();
        b.to_async(&runtime)
            .iter(|| bare.clone().oneshot(big.clone().into_http()));
    });
    full.bench_function(BenchmarkId::new("full-stack", "50-messages-100KB"), |b| {
        b.to_async(&runtime)
            .iter(|| stack.clone().oneshot(big.clone().into_http()));
    });
    // Per event: a 200-event stream through the full stack and straight from the bare
    // service; (full − bare) / 200 is the stack's cost per event (its per-request cost
    // included, so an upper bound).
    let bare_streaming = Bare::streaming(200);
    let streaming = full_stack_over(bare_streaming.clone());
    full.throughput(Throughput::Elements(200));
    for (name, stack) in [
        ("bare", Stack::new(bare_streaming)),
        ("full-stack", streaming),
    ] {
        full.bench_function(BenchmarkId::new(name, "stream-200-events"), |b| {
            b.to_async(&runtime).iter(|| {
                let stack = stack.clone();
                async move {
                    use futures_util::StreamExt;
                    let response = stack
                        .oneshot(small_request().map(|r| r.stream(true)))
                        .await
                        .expect("ok");
                    response.into_body().into_stream().count().await
                }
            });
        });
    }
    full.finish();
}

type Stack = tower::util::BoxCloneService<
    http::Request<MessagesRequest>,
    http::Response<claude_tower_core::MessagesBody>,
    claude_tower_core::Error,
>;

fn full_stack() -> Stack {
    full_stack_over(Bare::default())
}

fn full_stack_over<S>(bare: S) -> Stack
where
    S: tower::Service<
            http::Request<MessagesRequest>,
            Response = http::Response<claude_tower_core::MessagesBody>,
            Error = claude_tower_core::Error,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    use claude_tower::prelude::*;
    let stack = tower::ServiceBuilder::new()
        .claude_trace(TraceLayer::new())
        .claude_cost(CostLayer::new())
        .claude_response_cache(ResponseCacheLayer::in_memory(1 << 26))
        .claude_trim(TrimLayer::new())
        .claude_prompt_cache(PromptCacheLayer::new())
        .claude_budget(
            BudgetLayer::new(claude_tower::cost::MemoryBudgetStore::new())
                .global("1000000".parse::<Usd>().expect("usd"), Window::Total),
        )
        .claude_retry(RetryLayer::new())
        .claude_rate_limit(RateLimitLayer::new().pool(
            "haiku",
            Limits::new(u64::MAX / 4, u64::MAX / 4, u64::MAX / 4),
        ))
        .claude_timeout(TimeoutLayer::new().total(Duration::from_secs(600)))
        .service(bare);
    tower::util::BoxCloneService::new(stack)
}

fn hundred_kb() -> MessagesRequest {
    let mut request = MessagesRequest::new("claude-haiku-4-5", 1024)
        .system("You are a careful agent. ".repeat(100));
    for i in 0..25 {
        request = request
            .user(format!("Question {i}: {}", "context ".repeat(250)))
            .assistant(format!("Answer {i}: {}", "reply ".repeat(160)));
    }
    request.user("And finally?")
}

/// Looks every request up but never stores a reply: every call is a miss.
#[derive(Debug)]
struct NeverStore;

impl CachePolicy for NeverStore {
    fn cacheable_request(&self, _request: &http::Request<MessagesRequest>) -> bool {
        true
    }
    fn cacheable_response(&self, _message: &Message) -> bool {
        false
    }
}

fn fifty_messages() -> MessagesRequest {
    let mut request = MessagesRequest::new("claude-sonnet-4-6", 1024)
        .system("You are a careful agent. ".repeat(200));
    for i in 0..25 {
        request = request
            .user(format!("Question {i}: {}", "some context ".repeat(40)))
            .assistant(format!("Answer {i}: {}", "a reply ".repeat(30)));
    }
    request.user("And finally?")
}

fn eight_tools() -> Vec<claude_tower_core::Tool> {
    (0..8)
        .map(|i| {
            let properties: serde_json::Map<String, serde_json::Value> = (0..12)
                .map(|p| {
                    (
                        format!("param_{p}"),
                        serde_json::json!({"type": "string", "description": format!("parameter {p} of tool {i}")}),
                    )
                })
                .collect();
            claude_tower_core::Tool::new(
                format!("tool_{i}"),
                format!("Tool {i}. {}", "It does a useful thing carefully. ".repeat(12)),
                serde_json::json!({"type": "object", "properties": properties}),
            )
        })
        .collect()
}

fn deterministic_request() -> http::Request<MessagesRequest> {
    MessagesRequest::new("claude-haiku-4-5", 1024)
        .user("Hello, Claude")
        .temperature(0.0)
        .into_http()
}

criterion_group!(benches, layers);
criterion_main!(benches);
