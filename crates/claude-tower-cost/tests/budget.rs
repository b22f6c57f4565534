//! Budgets never overspend: concurrent requests against a budget that fits N worst cases, in
//! memory and with two layer instances sharing a real `redis-server`; refunds on errors,
//! streams and drops; windows and soft limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use claude_tower_core::ext::Attribution;
use claude_tower_core::{ErrorKind, MessagesRequest};
#[cfg(feature = "redis")]
use claude_tower_cost::RedisBudgetStore;
use claude_tower_cost::{
    BudgetLayer, BudgetStore, CostLayer, CostLedger, InputSplit, MemoryBudgetStore, Modifiers,
    PriceTable, Scope, Usd, Window,
};
#[cfg(feature = "redis")]
use claude_tower_mock::RedisServer;
use claude_tower_mock::{Attempt, MockClaude};
use futures_util::StreamExt;
use tower::{ServiceBuilder, ServiceExt};

const MODEL: &str = "claude-sonnet-4-6";

fn request() -> MessagesRequest {
    MessagesRequest::new(MODEL, 2_000).user("Write a short poem about budgets.")
}

/// The reservation the layer makes for `request()` (no cache marker): the estimate raised to
/// its documented error bound at the input price, plus max_tokens of output.
fn worst_case() -> Usd {
    let input = claude_tower_core::estimate::upper_bound(request().estimate_input_tokens(), true);
    let (_, worst) = PriceTable::builtin()
        .reservation(
            MODEL,
            &InputSplit::input(input),
            2_000,
            0,
            Modifiers::default(),
        )
        .unwrap();
    Usd::from_nanodollars(worst.nanodollars_ceil())
}

struct Outcome {
    granted: usize,
    refused: usize,
    spent: Usd,
}

/// Fires `n` concurrent requests through `services` (round robin); the mock holds every
/// response for `hold`, so all reservations are made before any is settled.
async fn storm(
    services: Vec<claude_tower_cost::budget::Budget<claude_tower_cost::CostMeter<MockClaude>>>,
    n: usize,
    ledger: &CostLedger,
) -> Outcome {
    let calls = (0..n).map(|i| {
        services[i % services.len()]
            .clone()
            .oneshot(request().into_http())
    });
    let results = futures_util::future::join_all(calls).await;
    let mut outcome = Outcome {
        granted: 0,
        refused: 0,
        spent: Usd::ZERO,
    };
    for result in results {
        match result {
            Ok(response) => {
                response.into_body().into_message().await.unwrap();
                outcome.granted += 1;
            }
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::BudgetExceeded, "{error}");
                assert!(error.message().contains("limit"), "{error}");
                outcome.refused += 1;
            }
        }
    }
    outcome.spent = ledger.snapshot().total.cost;
    outcome
}

fn mock(n: usize, hold: Duration) -> MockClaude {
    MockClaude::new().with_script(vec![Attempt::ok().with_first_byte_delay(hold); n])
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_never_overspend_in_memory() {
    const N: u64 = 10;
    let limit = Usd::from_picodollars(worst_case().picodollars() * u128::from(N));
    let ledger = CostLedger::new();
    let store = Arc::new(MemoryBudgetStore::new());
    let budget = BudgetLayer::new(store.clone()).global(limit, Window::Day);
    let service = ServiceBuilder::new()
        .layer(budget.clone())
        .layer(CostLayer::new().ledger(ledger.clone()))
        .service(mock(64, Duration::from_secs(1)));
    let outcome = storm(vec![service], 64, &ledger).await;
    println!(
        "memory: {} granted, {} refused, spent {} of {limit}",
        outcome.granted, outcome.refused, outcome.spent
    );
    assert_eq!(
        outcome.granted, N as usize,
        "exactly the N worst cases that fit were admitted"
    );
    assert_eq!(outcome.refused, 64 - N as usize);
    assert!(outcome.spent <= limit);
    // Everything settled: nothing left reserved; the store's spend is the ledger's, rounded up
    // to the nano-dollar per request.
    let balance = store
        .balance(&budget.key(Scope::Global, None, Window::Day))
        .await
        .unwrap();
    assert_eq!(balance.reserved, 0);
    let spent = Usd::from_nanodollars(balance.spent);
    assert!(spent >= outcome.spent && spent <= limit);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_never_overspend() {
    const N: u64 = 10;
    let redis = RedisServer::start().await;
    let limit = Usd::from_picodollars(worst_case().picodollars() * u128::from(N));
    let ledger = CostLedger::new();
    let mut services = Vec::new();
    let mut layers = Vec::new();
    for _ in 0..2 {
        let store = RedisBudgetStore::connect(&redis.url()).await.unwrap();
        let layer = BudgetLayer::new(store).global(limit, Window::Month);
        layers.push(layer.clone());
        services.push(
            ServiceBuilder::new()
                .layer(layer)
                .layer(CostLayer::new().ledger(ledger.clone()))
                .service(mock(64, Duration::from_millis(300))),
        );
    }
    let outcome = storm(services, 64, &ledger).await;
    println!(
        "redis, 2 replicas: {} granted, {} refused, spent {} of {limit}",
        outcome.granted, outcome.refused, outcome.spent
    );
    assert_eq!(outcome.granted, N as usize);
    assert!(outcome.spent <= limit);
    let store = RedisBudgetStore::connect(&redis.url()).await.unwrap();
    let balance = store
        .balance(&layers[0].key(Scope::Global, None, Window::Month))
        .await
        .unwrap();
    assert_eq!(balance.reserved, 0, "every reservation was settled");
    let spent = Usd::from_nanodollars(balance.spent);
    assert!(
        spent >= outcome.spent && spent <= limit,
        "store spend {spent} vs ledger {}",
        outcome.spent
    );
}

async fn balance_of(
    store: &Arc<MemoryBudgetStore>,
    layer: &BudgetLayer,
    scope: Scope,
    who: Option<&str>,
) -> (u64, u64) {
    let b = store
        .balance(&layer.key(scope, who, Window::Total))
        .await
        .unwrap();
    (b.spent, b.reserved)
}

#[tokio::test]
async fn errors_refund_streams_settle_at_their_end_and_drops_settle_too() {
    let store = Arc::new(MemoryBudgetStore::new());
    let layer = BudgetLayer::new(store.clone()).per_tenant(Usd::from_cents(100), Window::Total);
    let mock = MockClaude::new().with_script([Attempt::overloaded()]);
    let service = ServiceBuilder::new().layer(layer.clone()).service(mock);
    let acme = |r: MessagesRequest| {
        let mut r = r.into_http();
        r.extensions_mut().insert(Attribution::tenant("acme"));
        r
    };
    // An upstream error refunds everything.
    service.clone().oneshot(acme(request())).await.unwrap_err();
    assert_eq!(
        balance_of(&store, &layer, Scope::Tenant, Some("acme")).await,
        (0, 0)
    );
    // A stream settles before it reports its end.
    let response = service
        .clone()
        .oneshot(acme(request().stream(true)))
        .await
        .unwrap();
    assert!(
        balance_of(&store, &layer, Scope::Tenant, Some("acme"))
            .await
            .1
            > 0,
        "reserved while streaming"
    );
    let _: Vec<_> = response.into_body().into_stream().collect().await;
    let (spent, reserved) = balance_of(&store, &layer, Scope::Tenant, Some("acme")).await;
    assert!(spent > 0);
    assert_eq!(reserved, 0);
    // A dropped stream settles through a spawned task.
    let response = service
        .clone()
        .oneshot(acme(request().stream(true)))
        .await
        .unwrap();
    let mut events = response.into_body().into_stream();
    events.next().await.unwrap().unwrap();
    drop(events);
    tokio::task::yield_now().await;
    let (spent_after, reserved) = balance_of(&store, &layer, Scope::Tenant, Some("acme")).await;
    assert_eq!(reserved, 0);
    assert!(
        spent_after > spent,
        "the input of the dropped stream is charged"
    );
    // Requests without a tenant are not limited by a per-tenant budget.
    service.oneshot(request().into_http()).await.unwrap();
}

#[tokio::test]
async fn windows_roll_over_and_soft_limits_alert_once() {
    let now = Arc::new(std::sync::Mutex::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_856_000),
    ));
    let clock = Arc::clone(&now);
    let alerts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&alerts);
    let per_request = worst_case();
    // Room for two worst cases a day; alert at 1 %.
    let limit = Usd::from_picodollars(per_request.picodollars() * 2);
    let layer = BudgetLayer::new(MemoryBudgetStore::new())
        .global(limit, Window::Day)
        .soft_limit(1, move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .clock(move || *clock.lock().unwrap());
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(MockClaude::new());
    let day1 = layer.key(Scope::Global, None, Window::Day);
    assert!(day1.ends_with("day:2025-11-23"), "{day1}");
    for _ in 0..5 {
        service
            .clone()
            .oneshot(request().into_http())
            .await
            .unwrap();
    }
    assert_eq!(
        alerts.load(Ordering::SeqCst),
        1,
        "the 1 % threshold is crossed once"
    );
    *now.lock().unwrap() += Duration::from_secs(86_400);
    assert!(
        layer
            .key(Scope::Global, None, Window::Day)
            .ends_with("day:2025-11-24")
    );
    // A request bigger than the whole budget never fits.
    let huge = MessagesRequest::new(MODEL, 64_000).user("x");
    let error = service.oneshot(huge.into_http()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BudgetExceeded);
    assert!(
        error.message().contains("day:2025-11-24") && error.message().contains("nothing was sent"),
        "{error}"
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn an_unreachable_redis_store_fails_closed_or_open_within_seconds() {
    let redis = RedisServer::start().await;
    let store = RedisBudgetStore::connect(&redis.url()).await.unwrap();
    drop(redis);
    let mock = MockClaude::new();
    let layer = BudgetLayer::new(store).global(Usd::from_cents(100), Window::Day);
    let closed = ServiceBuilder::new()
        .layer(layer.clone())
        .service(mock.clone());
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        closed.oneshot(request().into_http()),
    )
    .await
    .expect("an unreachable store is reported within seconds")
    .unwrap_err();
    assert!(error.message().contains("budget store (redis)"), "{error}");
    assert_eq!(mock.request_count(), 0, "nothing sent when failing closed");
    let open = ServiceBuilder::new()
        .layer(layer.fail_open(true))
        .service(mock.clone());
    tokio::time::timeout(Duration::from_secs(10), open.oneshot(request().into_http()))
        .await
        .expect("an unreachable store is reported within seconds")
        .unwrap();
    assert_eq!(mock.request_count(), 1);
}

/// A response future polled again after it answered says so with an error (a caller's bug
/// must not panic the process).
#[tokio::test]
async fn a_budget_future_polled_after_completion_answers_an_error() {
    use tower::Service;
    let mut service = ServiceBuilder::new()
        .layer(
            BudgetLayer::new(MemoryBudgetStore::new()).global(Usd::from_cents(100), Window::Total),
        )
        .service(MockClaude::new());
    let mut future = Box::pin(service.call(request().into_http()));
    let response = std::future::poll_fn(|cx| future.as_mut().poll(cx)).await;
    assert!(response.unwrap().status().is_success());
    let again = std::future::poll_fn(|cx| future.as_mut().poll(cx)).await;
    assert_eq!(again.unwrap_err().kind(), ErrorKind::Other);
}
