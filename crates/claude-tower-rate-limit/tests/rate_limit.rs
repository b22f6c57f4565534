//! The rate limiter against the mock with enforced limits: a paused-clock simulation at 3×
//! the limits, three replicas sharing Redis, refusals, pauses, header correction, per-key
//! limits and the concurrency limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use claude_tower_core::StoreFuture;
use claude_tower_core::ext::Attribution;
use claude_tower_core::{ErrorKind, MessagesRequest};
#[cfg(feature = "redis")]
use claude_tower_mock::RedisServer;
use claude_tower_mock::{Attempt, MockClaude, MockLimits};
#[cfg(feature = "redis")]
use claude_tower_rate_limit::RedisRateLimitStore;
use claude_tower_rate_limit::{Dimension, Limits, RateLimitLayer, RateLimitStore};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

const MODEL: &str = "claude-sonnet-4-6";

/// A request of `chars` characters of prose and `max_tokens`.
fn sized(chars: usize, max_tokens: u32) -> MessagesRequest {
    let text: String = "the quick brown fox jumps over the lazy dog "
        .chars()
        .cycle()
        .take(chars)
        .collect();
    MessagesRequest::new(MODEL, max_tokens).user(text)
}

/// Sends `request` and returns its error, asserting it is `RateLimited` and names `limit`.
async fn refused<S>(
    service: &S,
    request: http::Request<MessagesRequest>,
    limit: &str,
) -> claude_tower_core::Error
where
    S: tower::Service<
            http::Request<MessagesRequest>,
            Response = http::Response<claude_tower_core::MessagesBody>,
            Error = claude_tower_core::Error,
        > + Clone,
{
    let error = service.clone().oneshot(request).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
    assert!(error.message().contains(limit), "{error}");
    error
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    refused: AtomicUsize,
    input: AtomicU64,
    output: AtomicU64,
}

#[tokio::test(start_paused = true)]
async fn three_times_the_load_for_five_minutes_gets_no_429_and_full_goodput() {
    let (rpm, itpm, otpm) = (60, 20_000, 6_000);
    let mock = MockClaude::new().with_rate_limits(MockLimits::new(rpm, itpm, otpm));
    let service = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new()
                .pool("sonnet", Limits::new(rpm, itpm, otpm))
                .max_wait(Duration::from_secs(20)),
        )
        .service(mock.clone());
    // ~460 input tokens per request on average; the limit admits ~43 a minute: offer 3×.
    let minutes = 5;
    let per_minute = 130;
    let total = minutes * per_minute;
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 * 60.0 / per_minute as f64);
        let request = sized(rng.usize(200..3_000), rng.u32(100..600));
        let stream = rng.bool();
        let (service, tally) = (service.clone(), Arc::clone(&tally));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            match service.oneshot(request.stream(stream).into_http()).await {
                Ok(response) => {
                    let message = response
                        .into_body()
                        .into_message()
                        .await
                        .expect("a complete reply");
                    tally.ok.fetch_add(1, Ordering::SeqCst);
                    tally
                        .input
                        .fetch_add(message.usage.input_tokens, Ordering::SeqCst);
                    tally
                        .output
                        .fetch_add(message.usage.output_tokens, Ordering::SeqCst);
                }
                Err(error) => {
                    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
                    assert!(error.message().contains("nothing was sent"), "{error}");
                    tally.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed_min = start.elapsed().as_secs_f64() / 60.0;
    let upstream_429 = mock.rate_limited_count();
    let ok = tally.ok.load(Ordering::SeqCst);
    let input = tally.input.load(Ordering::SeqCst) as f64;
    let output = tally.output.load(Ordering::SeqCst) as f64;
    // Goodput of the binding limit over the run (the bucket starts full: one extra minute).
    let goodput = [
        ok as f64 / rpm as f64,
        input / itpm as f64,
        output / otpm as f64,
    ]
    .into_iter()
    .fold(0.0f64, f64::max)
        / (elapsed_min + 1.0);
    println!(
        "simulation: {total} offered over {elapsed_min:.2} min, {ok} served, {} refused locally, {upstream_429} upstream 429s, goodput {:.1}% of the binding limit",
        tally.refused.load(Ordering::SeqCst),
        goodput * 100.0
    );
    assert_eq!(upstream_429, 0, "no 429 reached the caller's upstream");
    assert!(goodput >= 0.95, "goodput {goodput}");
    assert_eq!(mock.request_count(), ok);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_sharing_redis_get_no_429() {
    let redis = RedisServer::start().await;
    let (rpm, itpm, otpm) = (1_000, 6_000, 60_000);
    let mock = MockClaude::new().with_rate_limits(MockLimits::new(rpm, itpm, otpm));
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let store = RedisRateLimitStore::connect(&redis.url()).await.unwrap();
        replicas.push(
            ServiceBuilder::new()
                .layer(
                    RateLimitLayer::with_store(store)
                        .pool("sonnet", Limits::new(rpm, itpm, otpm))
                        .max_wait(Duration::from_secs(5)),
                )
                .service(mock.clone()),
        );
    }
    let seconds = 20.0;
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut rng = fastrand::Rng::with_seed(11);
    // ~100 input tokens a request at 600 requests a minute: 10× the ITPM, 2.5× what the
    // limit admits in 20 s (a full bucket plus a third of a minute of refill).
    let count = (seconds / 60.0 * 600.0) as usize;
    for i in 0..count {
        let at = start + Duration::from_secs_f64(i as f64 * seconds / count as f64);
        let request = sized(rng.usize(250..450), 200);
        let (service, tally) = (replicas[i % 3].clone(), Arc::clone(&tally));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            match service.oneshot(request.into_http()).await {
                Ok(response) => {
                    let message = response.into_body().into_message().await.unwrap();
                    tally.ok.fetch_add(1, Ordering::SeqCst);
                    tally
                        .input
                        .fetch_add(message.usage.input_tokens, Ordering::SeqCst);
                }
                Err(error) => {
                    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
                    tally.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let minutes = start.elapsed().as_secs_f64() / 60.0;
    let input = tally.input.load(Ordering::SeqCst) as f64;
    let goodput = input / (itpm as f64 * (minutes + 1.0));
    assert!(
        tally.refused.load(Ordering::SeqCst) > 0,
        "the offered load exceeded the limit"
    );
    println!(
        "redis, 3 replicas: {} served, {} refused, {} upstream 429s, ITPM goodput {:.1}% over {:.1} s",
        tally.ok.load(Ordering::SeqCst),
        tally.refused.load(Ordering::SeqCst),
        mock.rate_limited_count(),
        goodput * 100.0,
        minutes * 60.0
    );
    assert_eq!(mock.rate_limited_count(), 0);
    assert!(goodput >= 0.90, "goodput {goodput}");
}

#[tokio::test(start_paused = true)]
async fn a_request_larger_than_a_bucket_fails_at_once_naming_the_limit() {
    let mock = MockClaude::new();
    let service = ServiceBuilder::new()
        .layer(RateLimitLayer::new().pool("sonnet", Limits::new(50, 1_000, 8_000)))
        .service(mock.clone());
    let start = Instant::now();
    let error = refused(
        &service,
        sized(10_000, 100).into_http(),
        "input tokens per minute (limit 1000)",
    )
    .await;
    assert!(error.message().contains("can never fit"), "{error}");
    assert_eq!(start.elapsed(), Duration::ZERO, "at once");
    // A request that would fit only later than max_wait: refused, with when it would fit.
    let service = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new()
                .pool("sonnet", Limits::new(2, 100_000, 10_000))
                .max_wait(Duration::from_secs(5)),
        )
        .service(mock.clone());
    service
        .clone()
        .oneshot(sized(100, 100).into_http())
        .await
        .unwrap();
    service
        .clone()
        .oneshot(sized(100, 100).into_http())
        .await
        .unwrap();
    let error = refused(
        &service,
        sized(100, 100).into_http(),
        "requests per minute (limit 2)",
    )
    .await;
    assert_eq!(
        error.retry_after(),
        Some(Duration::from_secs(30)),
        "one request refills in 30 s"
    );
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_upstream_429_pauses_the_pool_for_its_retry_after() {
    let mock = MockClaude::new().with_script([Attempt::rate_limited(Some(Duration::from_secs(7)))]);
    let service = ServiceBuilder::new()
        .layer(RateLimitLayer::new().pool("sonnet", Limits::new(1_000, 1_000_000, 100_000)))
        .service(mock.clone());
    let error = service
        .clone()
        .oneshot(sized(100, 100).into_http())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    let start = Instant::now();
    // Concurrent callers all wait for the pause instead of stampeding.
    let calls = (0..5).map(|_| service.clone().oneshot(sized(100, 100).into_http()));
    for result in futures_util::future::join_all(calls).await {
        result.unwrap();
    }
    assert!(
        start.elapsed() >= Duration::from_secs(7),
        "{:?}",
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_millis(7_100));
    // Other pools are not paused.
    let haiku = MessagesRequest::new("claude-haiku-4-5", 100).user("hi");
    mock.push_script([Attempt::rate_limited(Some(Duration::from_secs(30)))]);
    service
        .clone()
        .oneshot(sized(100, 100).into_http())
        .await
        .unwrap_err();
    let start = Instant::now();
    service.oneshot(haiku.into_http()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn headers_correct_the_bucket_to_the_servers_remaining() {
    // The server already served other clients: its buckets are lower than ours.
    let upstream = MockClaude::new().with_rate_limits(MockLimits::new(1_000, 50_000, 10_000));
    for _ in 0..20 {
        upstream
            .clone()
            .oneshot(sized(3_000, 100).into_http())
            .await
            .unwrap();
    }
    let store = Arc::new(claude_tower_rate_limit::MemoryRateLimitStore::new());
    let layer = RateLimitLayer::with_store(SharedStore(Arc::clone(&store)))
        .pool("sonnet", Limits::new(1_000, 50_000, 10_000));
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(upstream.clone());
    let response = service.oneshot(sized(100, 100).into_http()).await.unwrap();
    let server_remaining: f64 = response.headers()["anthropic-ratelimit-input-tokens-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bucket = layer.bucket("sonnet", Dimension::InputTokens).unwrap();
    let local = store.available(&bucket).await.unwrap();
    assert!(
        (local - server_remaining).abs() <= 1.0,
        "local {local} vs server {server_remaining}"
    );
    assert!(
        server_remaining < 50_000.0 - 15_000.0,
        "the server's view was lower"
    );
}

/// A store handle the test can keep while the layer uses it.
#[derive(Debug, Clone)]
struct SharedStore(Arc<claude_tower_rate_limit::MemoryRateLimitStore>);

/// Answers through boxed futures, as a store across the network does.
impl RateLimitStore for SharedStore {
    fn acquire(
        &self,
        buckets: &[claude_tower_rate_limit::BucketSpec],
        amounts: &[u64],
        pause_key: &str,
        max_wait: Duration,
    ) -> StoreFuture<Result<claude_tower_rate_limit::Admission, claude_tower_core::Error>> {
        StoreFuture::boxed(self.0.acquire(buckets, amounts, pause_key, max_wait))
    }
    fn adjust(
        &self,
        buckets: &[claude_tower_rate_limit::BucketSpec],
        deltas: &[f64],
    ) -> StoreFuture<Result<(), claude_tower_core::Error>> {
        StoreFuture::boxed(self.0.adjust(buckets, deltas))
    }
    fn correct(
        &self,
        bucket: &claude_tower_rate_limit::BucketSpec,
        remaining: u64,
    ) -> StoreFuture<Result<(), claude_tower_core::Error>> {
        StoreFuture::boxed(self.0.correct(bucket, remaining))
    }
    fn pause(
        &self,
        pause_key: &str,
        duration: Duration,
    ) -> StoreFuture<Result<(), claude_tower_core::Error>> {
        StoreFuture::boxed(self.0.pause(pause_key, duration))
    }
    fn available(
        &self,
        bucket: &claude_tower_rate_limit::BucketSpec,
    ) -> StoreFuture<Result<f64, claude_tower_core::Error>> {
        StoreFuture::boxed(self.0.available(bucket))
    }
}

#[tokio::test(start_paused = true)]
async fn per_key_limits_and_fifo_waits() {
    let mock = MockClaude::new();
    let service = ServiceBuilder::new()
        .layer(RateLimitLayer::new().per_key(Limits::learn().with_requests_per_minute(2)))
        .service(mock.clone());
    let for_tenant = |tenant: &str| {
        let mut request = sized(100, 50).into_http();
        request.extensions_mut().insert(Attribution::tenant(tenant));
        request
    };
    let start = Instant::now();
    service.clone().oneshot(for_tenant("a")).await.unwrap();
    service.clone().oneshot(for_tenant("a")).await.unwrap();
    service.clone().oneshot(for_tenant("b")).await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "tenant b has its own bucket"
    );
    // Tenant a's third request waits for one token: 30 s at 2 per minute.
    service.clone().oneshot(for_tenant("a")).await.unwrap();
    assert_eq!(start.elapsed().as_secs(), 30);
    // A refusal by the per-key limit says so (not only the pool's name).
    let impatient = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new()
                .per_key(Limits::learn().with_requests_per_minute(1))
                .max_wait(Duration::from_secs(1)),
        )
        .service(mock);
    impatient.clone().oneshot(for_tenant("c")).await.unwrap();
    let error = impatient.oneshot(for_tenant("c")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert!(error.to_string().contains("per-key limit"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_taken_in_poll_ready_and_held_until_the_stream_ends() {
    let mock = MockClaude::new().with_script(vec![
        Attempt::ok()
            .with_event_delay(Duration::from_millis(100));
        3
    ]);
    let service = ServiceBuilder::new()
        .layer(RateLimitLayer::new().max_concurrent(1))
        .service(mock.clone());
    let start = Instant::now();
    let first = service
        .clone()
        .oneshot(sized(50, 50).stream(true).into_http())
        .await
        .unwrap();
    let second = tokio::spawn(service.clone().oneshot(sized(50, 50).into_http()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(mock.request_count(), 1, "the second waits for the permit");
    first.into_body().into_message().await.unwrap();
    let streamed_for = start.elapsed();
    second.await.unwrap().unwrap();
    assert_eq!(mock.request_count(), 2);
    assert!(start.elapsed() >= streamed_for);
}

/// Capacity minus what the bucket holds now: what the layer has charged.
async fn charged(store: &dyn RateLimitStore, layer: &RateLimitLayer, dimension: Dimension) -> f64 {
    let bucket = layer.bucket("sonnet", dimension).unwrap();
    bucket.per_minute as f64 - store.available(&bucket).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn reservations_are_reconciled_to_the_real_usage_on_both_paths() {
    // The memory store answers synchronously (the layer adds no future of its own); the same
    // store behind `SharedStore` answers only through futures (the boxed path, as Redis).
    // Not adaptive: the mock's headers would otherwise lower the buckets to its own view.
    let sync_store = Arc::new(claude_tower_rate_limit::MemoryRateLimitStore::new());
    let async_store = Arc::new(claude_tower_rate_limit::MemoryRateLimitStore::new());
    let limits = Limits::new(1_000_000, 1_000_000_000, 1_000_000_000);
    for (store, layer) in [
        (
            Arc::clone(&sync_store),
            RateLimitLayer::with_store(Arc::clone(&sync_store))
                .pool("sonnet", limits)
                .adaptive(false),
        ),
        (
            Arc::clone(&async_store),
            RateLimitLayer::with_store(SharedStore(Arc::clone(&async_store)))
                .pool("sonnet", limits)
                .adaptive(false),
        ),
    ] {
        let service = ServiceBuilder::new()
            .layer(layer.clone())
            .service(MockClaude::new());
        // A complete message: charged its real input and output, not the reservation.
        let message = service
            .clone()
            .oneshot(sized(4_000, 2_000).into_http())
            .await
            .unwrap()
            .into_body()
            .into_message()
            .await
            .unwrap();
        let usage = message.usage.clone();
        assert!(usage.output_tokens < 2_000, "the reservation was larger");
        let input = charged(&*store, &layer, Dimension::InputTokens).await;
        let output = charged(&*store, &layer, Dimension::OutputTokens).await;
        assert_eq!(input, usage.input_tokens as f64);
        assert_eq!(output, usage.output_tokens as f64);
        assert_eq!(charged(&*store, &layer, Dimension::Requests).await, 1.0);
        // A stream: reconciled when it ends.
        let streamed = service
            .oneshot(sized(4_000, 2_000).stream(true).into_http())
            .await
            .unwrap()
            .into_body()
            .into_message()
            .await
            .unwrap();
        let input = charged(&*store, &layer, Dimension::InputTokens).await;
        let output = charged(&*store, &layer, Dimension::OutputTokens).await;
        assert_eq!(
            input,
            (usage.input_tokens + streamed.usage.input_tokens) as f64
        );
        assert_eq!(
            output,
            (usage.output_tokens + streamed.usage.output_tokens) as f64
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_gives_its_tokens_back() {
    let store = Arc::new(claude_tower_rate_limit::MemoryRateLimitStore::new());
    let layer = RateLimitLayer::with_store(Arc::clone(&store))
        .pool("sonnet", Limits::new(1_000, 100_000, 100_000));
    let mock = MockClaude::new()
        .with_script([Attempt::ok().with_first_byte_delay(Duration::from_secs(10))]);
    let service = ServiceBuilder::new().layer(layer.clone()).service(mock);
    let mut call = Box::pin(service.oneshot(sized(4_000, 20_000).into_http()));
    // Admitted and in flight: the reservation is taken.
    assert!(
        tokio::time::timeout(Duration::from_millis(1), &mut call)
            .await
            .is_err()
    );
    let output = charged(&*store, &layer, Dimension::OutputTokens).await;
    assert!(output > 19_000.0, "reserved {output}");
    assert!(charged(&*store, &layer, Dimension::InputTokens).await > 500.0);
    drop(call);
    // Refunded at once (no task needed for the memory store); the request itself counts.
    assert_eq!(charged(&*store, &layer, Dimension::OutputTokens).await, 0.0);
    assert_eq!(charged(&*store, &layer, Dimension::InputTokens).await, 0.0);
    assert!(charged(&*store, &layer, Dimension::Requests).await > 0.9);
}

/// Bucket `k` with a per-minute limit (the same bucket, seen with an older or newer limit).
fn bucket_k(per_minute: u64) -> claude_tower_rate_limit::BucketSpec {
    claude_tower_rate_limit::BucketSpec {
        key: "k".into(),
        per_minute,
    }
}

#[tokio::test(start_paused = true)]
async fn reconciling_with_older_limits_does_not_change_a_bucket_s_capacity() {
    use claude_tower_rate_limit::{Admission, MemoryRateLimitStore};
    let store = MemoryRateLimitStore::new();
    let learned = bucket_k(1_000);
    // A reservation taken before the limit was learned carries the configured 10,000.
    let configured = bucket_k(10_000);
    let admission = store
        .acquire(
            std::slice::from_ref(&learned),
            &[400],
            "pause",
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(
        admission,
        Admission::Granted {
            wait: Duration::ZERO
        }
    );
    store.adjust(&[configured], &[100.0]).await.unwrap();
    assert_eq!(store.available(&learned).await.unwrap(), 700.0);
    // Refilled at the learned rate (1,000 per minute), not the configured one.
    tokio::time::advance(Duration::from_secs(6)).await;
    let available = store.available(&learned).await.unwrap();
    assert!((available - 800.0).abs() < 1e-6, "{available}");
}

#[tokio::test(start_paused = true)]
async fn pools_and_keys_have_their_own_concurrency_limits() {
    let mock = MockClaude::new();
    let service = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new()
                .pool(
                    "sonnet",
                    Limits::new(1_000, 1_000_000, 1_000_000).with_max_concurrent(1),
                )
                .per_key(Limits::learn().with_max_concurrent(1))
                .max_wait(Duration::from_secs(5)),
        )
        .service(mock.clone());
    let for_tenant = |request: MessagesRequest, tenant: &str| {
        let mut request = request.into_http();
        request.extensions_mut().insert(Attribution::tenant(tenant));
        request
    };
    // A sonnet stream holds the pool's one slot until it is read to the end.
    let held = service
        .clone()
        .oneshot(sized(100, 50).stream(true).into_http())
        .await
        .unwrap();
    let waiting = tokio::spawn(service.clone().oneshot(sized(100, 50).into_http()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(mock.request_count(), 1, "the second sonnet call waits");
    // Another pool is not held up.
    let haiku = MessagesRequest::new("claude-haiku-4-5", 50).user("hi");
    service.clone().oneshot(haiku.into_http()).await.unwrap();
    assert_eq!(mock.request_count(), 2);
    held.into_body().into_message().await.unwrap();
    waiting.await.unwrap().unwrap();
    assert_eq!(mock.request_count(), 3);

    // Past max_wait, a call waiting for a slot fails naming the limit (nothing sent).
    let held = service
        .clone()
        .oneshot(sized(100, 50).stream(true).into_http())
        .await
        .unwrap();
    let start = Instant::now();
    refused(
        &service,
        sized(100, 50).into_http(),
        "pool sonnet: concurrent requests (limit 1)",
    )
    .await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(mock.request_count(), 4);
    drop(held);

    // Per key: tenant a's one slot does not hold up tenant b.
    let haiku = || MessagesRequest::new("claude-haiku-4-5", 50).user("hi");
    let held = service
        .clone()
        .oneshot(for_tenant(haiku().stream(true), "a"))
        .await
        .unwrap();
    service
        .clone()
        .oneshot(for_tenant(haiku(), "b"))
        .await
        .unwrap();
    refused(
        &service,
        for_tenant(haiku(), "a"),
        "per key: concurrent requests (limit 1)",
    )
    .await;
    held.into_body().into_message().await.unwrap();
    service.oneshot(for_tenant(haiku(), "a")).await.unwrap();
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_reconciling_with_older_limits_does_not_change_a_bucket_s_capacity() {
    let redis = RedisServer::start().await;
    let store = RedisRateLimitStore::connect(&redis.url()).await.unwrap();
    let learned = bucket_k(6_000);
    let configured = bucket_k(600_000);
    store
        .acquire(
            std::slice::from_ref(&learned),
            &[4_000],
            "pause",
            Duration::ZERO,
        )
        .await
        .unwrap();
    // In flight for 500 ms (real clock, Redis TIME): 50 tokens refill at 6,000 per minute,
    // 5,000 at the configured rate (which would fill the bucket).
    tokio::time::sleep(Duration::from_millis(500)).await;
    store.adjust(&[configured], &[1_000.0]).await.unwrap();
    let available = store.available(&learned).await.unwrap();
    assert!(
        (3_000.0..3_500.0).contains(&available),
        "refilled at the configured rate: {available}"
    );
}
