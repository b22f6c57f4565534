//! Budget reservations cannot leak: 400 calls cancelled at random points through a real
//! `redis-server` that is paused (SIGSTOP) for 8 s and later killed and restarted. After a
//! quiet period plus the lease, nothing is reserved and the spend is exactly the sum of the
//! real costs of the responses the upstream produced. Plus the same rules on the memory store
//! with tokio's paused clock.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use claude_tower_core::ext::Attribution;
use claude_tower_core::{Error, MessagesBody, MessagesRequest, StoreFuture};
use claude_tower_cost::{
    BudgetLayer, BudgetLine, BudgetStore, MemoryBudgetStore, Modifiers, PriceTable,
    RedisBudgetStore, Reservation, ReservationId, Scope, UnknownInput, Usd, Window,
};
use claude_tower_mock::{Attempt, MockClaude, RedisServer};
use tower::{Service, ServiceBuilder, ServiceExt};

const MODEL: &str = "claude-haiku-4-5";

/// Counts, in nano-dollars rounded up per response (as the budget charges), the cost of every
/// response that leaves the upstream: the "real cost" ground truth.
#[derive(Clone)]
struct Recorder {
    inner: MockClaude,
    spent: Arc<AtomicU64>,
}

type Request = http::Request<MessagesRequest>;
type Response = http::Response<MessagesBody>;

impl Service<Request> for Recorder {
    type Response = Response;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let body = request.body().clone();
        let future = self.inner.call(request);
        let spent = Arc::clone(&self.spent);
        Box::pin(async move {
            let response = future.await?;
            if let MessagesBody::Message(message) = response.body() {
                let cost = PriceTable::builtin()
                    .cost(
                        &message.model,
                        &message.usage,
                        Modifiers::of(Some(&body), Some(&message.usage)),
                    )
                    .unwrap();
                spent.fetch_add(cost.total.nanodollars_ceil(), Ordering::SeqCst);
            }
            Ok(response)
        })
    }
}

fn request(i: usize) -> Request {
    let mut request = MessagesRequest::new(MODEL, 200)
        .user(format!("Call {i}: say something short."))
        .into_http();
    request
        .extensions_mut()
        .insert(Attribution::tenant(if i.is_multiple_of(2) {
            "even"
        } else {
            "odd"
        }));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_redis_paused_and_restarted_leave_nothing_reserved() {
    const CALLS: usize = 400;
    const LEASE: Duration = Duration::from_secs(4);
    const RETRY_FOR: Duration = Duration::from_secs(20);
    let mut redis = RedisServer::start_persistent().await;
    let store = RedisBudgetStore::connect(&redis.url()).await.unwrap();
    let layer = BudgetLayer::new(store)
        .global(Usd::from_cents(100_000), Window::Total)
        .per_tenant(Usd::from_cents(100_000), Window::Total)
        .lease(LEASE)
        .settle_retry_for(RETRY_FOR);
    let spent = Arc::new(AtomicU64::new(0));
    let delays: Vec<Attempt> = (0..CALLS)
        .map(|_| Attempt::ok().with_first_byte_delay(Duration::from_millis(fastrand::u64(0..40))))
        .collect();
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(Recorder {
            inner: MockClaude::new().with_script(delays),
            spent: Arc::clone(&spent),
        });

    let (ok, cancelled, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut calls = Vec::new();
    let started = tokio::time::Instant::now();
    let mut paused = false;
    let mut restarted = false;
    for i in 0..CALLS {
        // ~12 s of traffic: Redis frozen from 2 s to 10 s, killed and restarted at 11 s.
        let elapsed = started.elapsed();
        if !paused && elapsed >= Duration::from_secs(2) {
            redis.pause();
            paused = true;
            tokio::spawn({
                let pid = redis.pid();
                async move {
                    tokio::time::sleep(Duration::from_secs(8)).await;
                    let _ = std::process::Command::new("kill")
                        .args(["-CONT", &pid.to_string()])
                        .status();
                }
            });
        }
        if !restarted && elapsed >= Duration::from_secs(11) {
            redis.restart().await;
            restarted = true;
        }
        let service = service.clone();
        let (ok, cancelled, failed) = (ok.clone(), cancelled.clone(), failed.clone());
        // Most calls are cancelled at a random point; every fourth waits long enough to see
        // the store fail while Redis is frozen or down.
        let cancel_after = if i.is_multiple_of(4) {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(fastrand::u64(0..60))
        };
        calls.push(tokio::spawn(async move {
            match tokio::time::timeout(cancel_after, service.oneshot(request(i))).await {
                Ok(Ok(_)) => ok.fetch_add(1, Ordering::SeqCst),
                Ok(Err(_)) => failed.fetch_add(1, Ordering::SeqCst),
                Err(_) => cancelled.fetch_add(1, Ordering::SeqCst),
            };
        }));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        paused && restarted,
        "the run covered the pause and the restart"
    );
    for call in calls {
        call.await.unwrap();
    }
    let (ok, cancelled, failed) = (
        ok.load(Ordering::SeqCst),
        cancelled.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
    );
    println!("{ok} completed, {cancelled} cancelled, {failed} failed (store unreachable)");
    assert_eq!(ok + cancelled + failed, CALLS);
    assert!(
        ok > 0 && cancelled > 0 && failed > 0,
        "every path was taken"
    );

    // Quiet period: background settles finish (or give up), then every lease lapses.
    tokio::time::sleep(RETRY_FOR + LEASE + Duration::from_secs(1)).await;
    let check = RedisBudgetStore::connect(&redis.url()).await.unwrap();
    let real = spent.load(Ordering::SeqCst);
    let mut tenants_spent = 0;
    for (scope, who) in [
        (Scope::Global, None),
        (Scope::Tenant, Some("even")),
        (Scope::Tenant, Some("odd")),
    ] {
        let balance = check
            .balance(&layer.key(scope, who, Window::Total))
            .await
            .unwrap();
        assert_eq!(
            balance.reserved, 0,
            "{scope:?} {who:?}: nothing stays reserved"
        );
        if scope == Scope::Global {
            assert_eq!(balance.spent, real, "global spend is the sum of real costs");
        } else {
            tenants_spent += balance.spent;
        }
    }
    assert_eq!(
        tenants_spent, real,
        "tenant spends add up to the real costs"
    );
    assert!(real > 0);
}

fn line(key: &str) -> Vec<BudgetLine> {
    vec![BudgetLine {
        key: key.to_owned(),
        limit: 1_000,
        ttl: None,
    }]
}

#[tokio::test(start_paused = true)]
async fn memory_leases_lapse_settles_are_idempotent_and_late_reserves_reserve_nothing() {
    let store = MemoryBudgetStore::new();
    let lines = line("k");
    let lease = Duration::from_secs(60);
    let (a, b, late) = (
        ReservationId::from_u128(1),
        ReservationId::from_u128(2),
        ReservationId::from_u128(3),
    );
    assert_eq!(
        store.reserve(&lines, a, 600, lease).await.unwrap(),
        Reservation::Granted
    );
    // The lease holds the room until it lapses.
    assert!(matches!(
        store.reserve(&lines, b, 600, lease).await.unwrap(),
        Reservation::Refused { .. }
    ));
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(store.balance("k").await.unwrap().reserved, 0, "lapsed");
    assert_eq!(
        store.reserve(&lines, b, 600, lease).await.unwrap(),
        Reservation::Granted
    );
    // Settling twice charges once; a settle after the lease still charges.
    assert_eq!(store.settle(&lines, b, 600, 100).await.unwrap(), vec![100]);
    assert_eq!(store.settle(&lines, b, 600, 100).await.unwrap(), vec![100]);
    assert_eq!(store.settle(&lines, a, 600, 50).await.unwrap(), vec![150]);
    // A reserve arriving after its id was settled (released) reserves nothing.
    store.settle(&lines, late, 300, 0).await.unwrap();
    store.reserve(&lines, late, 300, lease).await.unwrap();
    let balance = store.balance("k").await.unwrap();
    assert_eq!((balance.spent, balance.reserved), (150, 0));
}

#[tokio::test(start_paused = true)]
async fn a_call_cancelled_while_reserving_leaves_nothing_reserved() {
    /// A store whose reserve takes a while (so the caller can be cancelled in the middle).
    #[derive(Debug, Clone, Default)]
    struct Slow(Arc<MemoryBudgetStore>);

    impl BudgetStore for Slow {
        fn reserve(
            &self,
            lines: &[BudgetLine],
            id: ReservationId,
            amount: u64,
            lease: Duration,
        ) -> StoreFuture<Result<Reservation, Error>> {
            let granted = self.0.reserve(lines, id, amount, lease);
            StoreFuture::boxed(async move {
                let granted = granted.await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                granted
            })
        }
        fn settle(
            &self,
            lines: &[BudgetLine],
            id: ReservationId,
            reserved: u64,
            actual: u64,
        ) -> StoreFuture<Result<Vec<u64>, Error>> {
            self.0.settle(lines, id, reserved, actual)
        }
        fn balance(&self, key: &str) -> StoreFuture<Result<claude_tower_cost::Balance, Error>> {
            self.0.balance(key)
        }
    }

    let store = Slow::default();
    let layer = BudgetLayer::new(store.clone()).global(Usd::from_cents(100), Window::Total);
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(MockClaude::new());
    let key = layer.key(Scope::Global, None, Window::Total);
    for _ in 0..50 {
        let call = service.clone().oneshot(request(0));
        assert!(
            tokio::time::timeout(Duration::from_millis(500), call)
                .await
                .is_err()
        );
    }
    // The background releases run.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let balance = store.balance(&key).await.unwrap();
    assert_eq!(
        (balance.spent, balance.reserved),
        (0, 0),
        "no reservation outlives its cancelled caller"
    );
}

#[tokio::test]
async fn inputs_of_unknown_size_are_reserved_at_a_worst_case_or_refused() {
    let url_pdf = || {
        let document: claude_tower_core::ContentBlock = serde_json::from_value(serde_json::json!({
            "type": "document",
            "source": {"type": "url", "url": "https://example.com/big.pdf"}
        }))
        .unwrap();
        MessagesRequest::new("claude-sonnet-4-6", 100)
            .user(claude_tower_core::MessageContent::Blocks(vec![
                document,
                claude_tower_core::ContentBlock::text("Summarise this."),
            ]))
            .into_http()
    };
    // $0.01 cannot hold a 100-page PDF of unknown size: refused before sending.
    let layer =
        BudgetLayer::new(MemoryBudgetStore::new()).global(Usd::from_cents(1), Window::Total);
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(MockClaude::new());
    let error = service.oneshot(url_pdf()).await.unwrap_err();
    assert_eq!(error.kind(), claude_tower_core::ErrorKind::BudgetExceeded);
    // The refuse policy says why, whatever the budget.
    let layer = BudgetLayer::new(MemoryBudgetStore::new())
        .global(Usd::from_cents(100_000), Window::Total)
        .unknown_input(UnknownInput::Refuse);
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(MockClaude::new());
    let error = service.oneshot(url_pdf()).await.unwrap_err();
    assert!(error.message().contains("cannot be known"), "{error}");
    // A plain request is unaffected.
    let layer = BudgetLayer::new(MemoryBudgetStore::new())
        .global(Usd::from_cents(1), Window::Total)
        .unknown_input(UnknownInput::Refuse);
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(MockClaude::new());
    service.oneshot(request(1)).await.unwrap();
}
