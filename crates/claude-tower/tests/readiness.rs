//! The readiness discipline: a layer that does its own async work before calling the inner
//! service (trim with its summariser, the budget's reservation, a response-cache follower, the fallback chain and the key pool)
//! answers ready at once and takes the inner service's readiness only when it calls it. An
//! inner concurrency limit of one (`tower::limit::ConcurrencyLimit`, which takes its permit in
//! `poll_ready`) therefore never sits idle while that work runs: a second request gets through
//! meanwhile. And every layer, over an inner service that is not ready, waits without
//! spinning, is woken once when it becomes ready and calls it once.

use std::time::Duration;

use claude_tower::core::StoreFuture;
use claude_tower::cost::MemoryBudgetStore;
use claude_tower::mock::{Attempt, MockClaude};
use claude_tower::prelude::*;
use claude_tower::trim::{Summarizer, TokenBudget};
use tokio::time::Instant;
use tower::limit::ConcurrencyLimit;
use tower::{Layer, ServiceExt};

fn short() -> MessagesRequest {
    MessagesRequest::new("claude-haiku-4-5", 50).user("short")
}

/// The inner service: the mock behind a concurrency limit of one permit.
fn limited(mock: &MockClaude) -> ConcurrencyLimit<MockClaude> {
    ConcurrencyLimit::new(mock.clone(), 1)
}

/// While the first request's own work runs for `work`, a second short request through the
/// same stack completes at once: the permit was free.
async fn second_request_is_not_blocked<S>(
    service: S,
    first: http::Request<MessagesRequest>,
    work: Duration,
) where
    S: tower::Service<
            http::Request<MessagesRequest>,
            Response = http::Response<claude_tower::MessagesBody>,
            Error = claude_tower::Error,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let start = Instant::now();
    let slow = tokio::spawn(service.clone().oneshot(first));
    tokio::time::sleep(Duration::from_millis(10)).await;
    service.oneshot(short().into_http()).await.unwrap();
    let second_done = start.elapsed();
    assert!(
        second_done < work,
        "the second request waited {second_done:?}: the permit sat idle during the first's work"
    );
    slow.await.unwrap().unwrap();
    assert!(start.elapsed() >= work);
}

#[tokio::test(start_paused = true)]
async fn trim_does_not_hold_a_permit_while_its_summarizer_runs() {
    let work = Duration::from_secs(5);
    let summarizer_mock =
        MockClaude::new().with_script([Attempt::ok().with_first_byte_delay(work)]);
    let summarizer: Summarizer = tower::util::BoxCloneSyncService::new(summarizer_mock.clone());
    let upstream = MockClaude::new();
    let service = ServiceBuilder::new()
        .claude_trim(
            TrimLayer::new()
                .budget(TokenBudget::Tokens(1_000))
                .summarize_with(summarizer, "claude-haiku-4-5"),
        )
        .service(limited(&upstream));
    let mut long = MessagesRequest::new("claude-haiku-4-5", 50).user("the task");
    for i in 0..20 {
        long = long
            .assistant(format!("answer {i}"))
            .user(format!("more {i}: {}", "words ".repeat(60)));
    }
    second_request_is_not_blocked(service, long.into_http(), work).await;
    assert_eq!(
        summarizer_mock.request_count(),
        1,
        "the slow work was the summary"
    );
    assert_eq!(upstream.request_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_response_cache_follower_holds_no_permit() {
    // Two permits. The leader's upstream call takes 5 s and holds one; a follower of the same
    // request waits for the leader without a permit, so a third, uncacheable request still
    // gets the second permit at once.
    let work = Duration::from_secs(5);
    let upstream = MockClaude::new().with_script([Attempt::ok().with_first_byte_delay(work)]);
    let service = ServiceBuilder::new()
        .claude_response_cache(ResponseCacheLayer::in_memory(1 << 20))
        .service(ConcurrencyLimit::new(upstream.clone(), 2));
    let deterministic = || {
        MessagesRequest::new("claude-haiku-4-5", 50)
            .user("2+2?")
            .temperature(0.0)
            .into_http()
    };
    let start = Instant::now();
    let leader = tokio::spawn(service.clone().oneshot(deterministic()));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let follower = tokio::spawn(service.clone().oneshot(deterministic()));
    tokio::time::sleep(Duration::from_millis(10)).await;
    service.clone().oneshot(short().into_http()).await.unwrap();
    assert!(
        start.elapsed() < work,
        "the third request waited for a permit"
    );
    leader.await.unwrap().unwrap();
    follower.await.unwrap().unwrap();
    assert_eq!(
        upstream.request_count(),
        2,
        "one upstream call for leader and follower"
    );
}

/// A budget store that answers slowly (as Redis across a network would); with `claims_ready`
/// it wrongly says its answers are ready at once.
#[derive(Debug, Default)]
struct SlowStore(std::sync::Arc<MemoryBudgetStore>, bool);

impl claude_tower::cost::BudgetStore for SlowStore {
    fn reserve(
        &self,
        lines: &[claude_tower::cost::BudgetLine],
        id: claude_tower::cost::ReservationId,
        amount: u64,
        lease: Duration,
    ) -> StoreFuture<Result<claude_tower::cost::Reservation, claude_tower::Error>> {
        let store = std::sync::Arc::clone(&self.0);
        let lines = lines.to_vec();
        StoreFuture::boxed(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            store.reserve(&lines, id, amount, lease).await
        })
    }

    fn settle(
        &self,
        lines: &[claude_tower::cost::BudgetLine],
        id: claude_tower::cost::ReservationId,
        reserved: u64,
        actual: u64,
    ) -> StoreFuture<Result<Vec<u64>, claude_tower::Error>> {
        self.0.settle(lines, id, reserved, actual)
    }

    fn balance(
        &self,
        key: &str,
    ) -> StoreFuture<Result<claude_tower::cost::Balance, claude_tower::Error>> {
        self.0.balance(key)
    }

    fn answers_ready(&self) -> bool {
        self.1
    }
}

/// A store that claims to answer ready but answers later still works: the request is served
/// (by the inner service whose readiness the layer took) and settled; a refused one is not sent.
#[tokio::test(start_paused = true)]
async fn a_store_wrongly_claiming_ready_answers_still_serves_and_settles() {
    use claude_tower::cost::{Scope, Window};
    let memory = std::sync::Arc::new(MemoryBudgetStore::new());
    let upstream = MockClaude::new();
    let budget = BudgetLayer::new(SlowStore(std::sync::Arc::clone(&memory), true))
        .global("1".parse::<Usd>().unwrap(), Window::Total);
    let key = budget.key(Scope::Global, None, Window::Total);
    let service = budget.layer(limited(&upstream));
    let response = service.clone().oneshot(short().into_http()).await.unwrap();
    drop(response);
    let balance = claude_tower::cost::BudgetStore::balance(&*memory, &key)
        .await
        .unwrap();
    assert!(balance.spent > 0, "settled: {balance:?}");
    assert_eq!(balance.reserved, 0, "released: {balance:?}");
    // Over the limit: refused before sending.
    let huge = MessagesRequest::new("claude-opus-4-1", 64_000).user("hi");
    let refused = service.oneshot(huge.into_http()).await.unwrap_err();
    assert_eq!(refused.kind(), claude_tower::ErrorKind::BudgetExceeded);
    assert_eq!(upstream.request_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_budget_does_not_hold_a_permit_while_it_reserves() {
    let upstream = MockClaude::new();
    let budget =
        BudgetLayer::new(SlowStore::default()).per_user("1".parse::<Usd>().unwrap(), Window::Day);
    let service = ServiceBuilder::new()
        .claude_budget(budget)
        .service(limited(&upstream));
    // The first request is attributed (it reserves, slowly); the second is not (no budget
    // applies to it, so it goes straight to the inner service).
    let mut first = MessagesRequest::new("claude-haiku-4-5", 50)
        .user("hi")
        .into_http();
    first
        .extensions_mut()
        .insert(claude_tower::ext::Attribution::user("u-1"));
    second_request_is_not_blocked(service, first, Duration::from_secs(5)).await;
    assert_eq!(upstream.request_count(), 2);
}

/// An inner service that is not ready until opened: it counts its `poll_ready` calls and
/// wakes the task that last polled it when it opens (the tower-test `mock::pair` idea).
#[derive(Clone)]
struct Gate {
    inner: MockClaude,
    state: std::sync::Arc<std::sync::Mutex<GateState>>,
}

#[derive(Default)]
struct GateState {
    open: bool,
    polls: usize,
    calls: usize,
    waker: Option<std::task::Waker>,
}

impl Gate {
    fn new() -> Self {
        Self {
            inner: MockClaude::new(),
            state: std::sync::Arc::default(),
        }
    }

    fn open(&self) {
        let waker = {
            let mut state = self.state.lock().unwrap();
            state.open = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn counts(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap();
        (state.polls, state.calls)
    }
}

impl tower::Service<http::Request<MessagesRequest>> for Gate {
    type Response = http::Response<claude_tower::MessagesBody>;
    type Error = claude_tower::Error;
    type Future = <MockClaude as tower::Service<http::Request<MessagesRequest>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        let mut state = self.state.lock().unwrap();
        state.polls += 1;
        if state.open {
            drop(state);
            self.inner.poll_ready(cx)
        } else {
            state.waker = Some(cx.waker().clone());
            std::task::Poll::Pending
        }
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> Self::Future {
        self.state.lock().unwrap().calls += 1;
        self.inner.call(request)
    }
}

/// Counts wake-ups.
#[derive(Default)]
struct Wakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Every layer over a not-ready inner service: the call (`poll_ready` then `call`, as
/// `oneshot` does) waits without spinning, is woken exactly once when the inner service
/// becomes ready, then calls it exactly once.
#[tokio::test]
async fn every_layer_waits_for_an_unready_inner_service_and_is_woken_once() {
    type Boxed = tower::util::BoxCloneService<
        http::Request<MessagesRequest>,
        http::Response<claude_tower::MessagesBody>,
        claude_tower::Error,
    >;
    let layers: Vec<(&str, Box<dyn Fn(Gate) -> Boxed>)> = vec![
        (
            "retry",
            Box::new(|g| Boxed::new(RetryLayer::new().layer(g))),
        ),
        (
            "timeout",
            Box::new(|g| Boxed::new(TimeoutLayer::new().total(Duration::from_secs(600)).layer(g))),
        ),
        (
            "rate limit",
            Box::new(|g| Boxed::new(RateLimitLayer::new().layer(g))),
        ),
        (
            "prompt cache",
            Box::new(|g| Boxed::new(PromptCacheLayer::new().layer(g))),
        ),
        (
            "response cache",
            Box::new(|g| Boxed::new(ResponseCacheLayer::in_memory(1 << 20).layer(g))),
        ),
        ("cost", Box::new(|g| Boxed::new(CostLayer::new().layer(g)))),
        (
            "budget",
            Box::new(|g| {
                Boxed::new(
                    BudgetLayer::new(MemoryBudgetStore::new())
                        .global("1".parse::<Usd>().unwrap(), Window::Total)
                        .layer(g),
                )
            }),
        ),
        ("trim", Box::new(|g| Boxed::new(TrimLayer::new().layer(g)))),
        (
            "trace",
            Box::new(|g| Boxed::new(TraceLayer::new().layer(g))),
        ),
        (
            "router",
            Box::new(|g| {
                Boxed::new(
                    RouterLayer::new()
                        .route(Route::always().models(["claude-haiku-4-5"]))
                        .layer(g),
                )
            }),
        ),
        (
            "fallback",
            Box::new(|g| {
                Boxed::new(
                    FallbackLayer::new(["claude-haiku-4-5", "claude-sonnet-4-5"])
                        .breaker(CircuitBreaker::default())
                        .layer(g),
                )
            }),
        ),
        (
            "defer",
            Box::new(|g| {
                Boxed::new(claude_tower::batch::DeferLayer::new(MockClaude::new()).layer(g))
            }),
        ),
        (
            "key pool",
            Box::new(|g| {
                let key = claude_tower::route::ApiKey::new(
                    "k1",
                    "wrk-a",
                    "sk-ant-test".to_owned().into(),
                );
                Boxed::new(KeyPoolLayer::new(KeyPool::new([key])).layer(g))
            }),
        ),
    ];
    for (name, build) in layers {
        let gate = Gate::new();
        let service = build(gate.clone());
        let wakes = std::sync::Arc::new(Wakes::default());
        let waker = std::task::Waker::from(std::sync::Arc::clone(&wakes));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut call = Box::pin(service.oneshot(short().into_http()));
        for _ in 0..3 {
            assert!(
                call.as_mut().poll(&mut cx).is_pending(),
                "{name}: ready before its inner service"
            );
        }
        let (polls, calls) = gate.counts();
        assert!(
            (1..=3).contains(&polls),
            "{name}: {polls} inner poll_ready calls for 3 polls"
        );
        assert_eq!(calls, 0, "{name}: called an unready inner service");
        assert_eq!(
            wakes.0.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{name}: woke itself"
        );
        gate.open();
        assert_eq!(
            wakes.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{name}: not woken"
        );
        let response = loop {
            match call.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(response) => break response,
                std::task::Poll::Pending => tokio::task::yield_now().await,
            }
        };
        assert!(response.unwrap().status().is_success(), "{name}");
        assert_eq!(
            gate.counts().1,
            1,
            "{name}: the inner service is called once"
        );
    }
}
