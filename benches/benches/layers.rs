//! Per-layer overhead over a bare, always-ready service (the success path), one group with a
//! `BenchmarkId` per configuration. Run with `cargo xtask bench`.

use std::time::Duration;

use claude_tower_benches::{Bare, small_request};
use claude_tower_retry::{RetryLayer, TimeoutLayer};
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
    group.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
