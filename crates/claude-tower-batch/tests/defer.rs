//! The deferring layer against the mock's batches (paused clock): many calls delivered exactly
//! once each, at exactly half the price; item faults; pass-through; recovery after a restart.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use claude_tower::batch::{DeferLayer, DeferReport, MemoryDeferStore};
use claude_tower::core::batch::BatchOutcome;
use claude_tower::core::ext::Deferred;
use claude_tower::core::{ErrorKind, MessagesRequest};
use claude_tower::cost::{Cost, CostLayer, Usd};
use claude_tower::mock::{ItemFault, MockClaude};
use tower::{Layer, ServiceBuilder, ServiceExt};

fn document(i: usize, deferred: bool) -> http::Request<MessagesRequest> {
    let mut request = MessagesRequest::new("claude-haiku-4-5", 32)
        .user(format!(
            "Classify document {i}: {}",
            "lorem ipsum ".repeat(i % 7 + 1)
        ))
        .into_http();
    if deferred {
        request.extensions_mut().insert(Deferred::new());
    }
    request
}

/// The must-show: 10,000 deferred calls — every one delivered to its own caller, none lost,
/// none twice — and the cost meter's total is exactly half of the same calls made directly.
#[tokio::test(start_paused = true)]
async fn ten_thousand_deferred_calls_half_price_exactly_once() {
    const CALLS: usize = 10_000;
    let mock = MockClaude::new().with_batch_processing_time(Duration::from_secs(1_800));
    let deferred = ServiceBuilder::new()
        .layer(CostLayer::new())
        .layer(DeferLayer::new(mock.clone()).max_items(2_000))
        .service(mock.clone());
    let answers = futures_util::future::join_all((0..CALLS).map(|i| {
        let service = deferred.clone();
        async move {
            let response = service.oneshot(document(i, true)).await?;
            let cost = response.extensions().get::<Cost>().unwrap().total;
            let report = response.extensions().get::<DeferReport>().unwrap().clone();
            let message = response.into_body().into_message().await?;
            Ok::<_, claude_tower::Error>((i, cost, report, message))
        }
    }))
    .await;
    let mut deferred_total = Usd::ZERO;
    let mut custom_ids = HashSet::new();
    let mut delivered = 0;
    for answer in answers {
        let (i, cost, report, message) = answer.unwrap();
        assert!(
            message.text().contains(&format!("document {i}:")),
            "call {i} got another call's answer"
        );
        assert!(
            custom_ids.insert(report.custom_id),
            "a result delivered twice"
        );
        deferred_total += cost;
        delivered += 1;
    }
    assert_eq!(
        mock.request_count(),
        0,
        "nothing went to the Messages endpoint"
    );
    let batches = mock.batch_count();

    let direct = ServiceBuilder::new()
        .layer(CostLayer::new())
        .service(MockClaude::new());
    let mut direct_total = Usd::ZERO;
    for i in 0..CALLS {
        let response = direct.clone().oneshot(document(i, false)).await.unwrap();
        direct_total += response.extensions().get::<Cost>().unwrap().total;
    }
    println!(
        "{CALLS} deferred calls in {batches} batches: {delivered} delivered, {} lost, {} duplicated; \
         cost deferred {deferred_total} vs direct {direct_total}",
        CALLS - delivered,
        delivered - custom_ids.len(),
    );
    assert_eq!(delivered, CALLS);
    assert_eq!(batches, 5);
    assert_eq!(
        deferred_total.picodollars() * 2,
        direct_total.picodollars(),
        "exactly half"
    );
}

/// Errored, expired and canceled items are typed errors; with `retry_sync` they are sent again
/// as ordinary calls.
#[tokio::test(start_paused = true)]
async fn item_faults_are_typed_errors_or_retried_synchronously() {
    for retry in [false, true] {
        let mock = MockClaude::new()
            .with_batch_processing_time(Duration::from_secs(60))
            .with_batch_item_faults(|id| match id.as_bytes().last() {
                Some(b'1') => Some(ItemFault::Errored),
                Some(b'2') => Some(ItemFault::Expired),
                Some(b'3') => Some(ItemFault::Canceled),
                _ => None,
            });
        let service = DeferLayer::new(mock.clone())
            .retry_sync(retry)
            .layer(mock.clone());
        let answers = futures_util::future::join_all(
            (0..4).map(|i| service.clone().oneshot(document(i, true))),
        )
        .await;
        let kinds: Vec<Option<ErrorKind>> = answers
            .iter()
            .map(|a| a.as_ref().err().map(claude_tower::Error::kind))
            .collect();
        if retry {
            assert!(kinds.iter().all(Option::is_none), "{kinds:?}");
            assert_eq!(mock.request_count(), 3, "three sent again directly");
        } else {
            assert_eq!(
                kinds,
                vec![
                    None,
                    Some(ErrorKind::Api),
                    Some(ErrorKind::Timeout),
                    Some(ErrorKind::Other)
                ]
            );
        }
    }
}

/// Streams, `max_tokens: 0` and unmarked calls pass through to the inner service.
#[tokio::test(start_paused = true)]
async fn streams_and_unmarked_calls_pass_through() {
    let mock = MockClaude::new();
    let service = DeferLayer::new(mock.clone()).layer(mock.clone());
    let mut stream = MessagesRequest::new("claude-haiku-4-5", 32)
        .user("hi")
        .stream(true)
        .into_http();
    stream.extensions_mut().insert(Deferred::new());
    service.clone().oneshot(stream).await.unwrap();
    service.clone().oneshot(document(1, false)).await.unwrap();
    assert_eq!(mock.request_count(), 2);
    assert_eq!(mock.batch_count(), 0);
}

/// A caller's deadline passes before the batch ends: a typed timeout (or, with `retry_sync`,
/// an ordinary call); the batch's later result is not delivered to anyone else.
#[tokio::test(start_paused = true)]
async fn a_deadline_shorter_than_the_batch() {
    let mock = MockClaude::new().with_batch_processing_time(Duration::from_secs(3_600));
    let sunk = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&sunk);
    let service = DeferLayer::new(mock.clone())
        .sink(move |_, result| sink.lock().unwrap().push(result.custom_id))
        .layer(mock.clone());
    let mut request = document(1, false);
    request
        .extensions_mut()
        .insert(Deferred::within(Duration::from_secs(60)));
    let error = service.clone().oneshot(request).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    // The batch ends later; its result goes to the sink, once.
    tokio::time::sleep(Duration::from_secs(7_200)).await;
    assert_eq!(sunk.lock().unwrap().len(), 1);
}

/// A layer dropped mid-run: a new one on the same store collects every submitted batch's
/// results into its sink, exactly once (a second recovery delivers nothing).
#[tokio::test(start_paused = true)]
async fn a_restarted_layer_collects_what_the_old_one_submitted() {
    let mock = MockClaude::new().with_batch_processing_time(Duration::from_secs(600));
    let store = Arc::new(MemoryDeferStore::new());
    {
        let old = DeferLayer::new(mock.clone())
            .store(Arc::clone(&store))
            .max_items(10)
            .layer(mock.clone());
        let calls: Vec<_> = (0..25)
            .map(|i| tokio::spawn(old.clone().oneshot(document(i, true))))
            .collect();
        // Let the batches be submitted (two full ones at once, the rest after the window).
        tokio::time::sleep(Duration::from_secs(10)).await;
        for call in calls {
            call.abort(); // The process "dies": callers and collectors are gone.
        }
    }
    assert_eq!(mock.batch_count(), 3);
    let collected = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&collected);
    let new = DeferLayer::new(mock.clone())
        .store(Arc::clone(&store))
        .sink(move |_, result| {
            assert!(matches!(result.result, BatchOutcome::Succeeded { .. }));
            sink.lock().unwrap().push(result.custom_id);
        });
    let delivered = new.recover().await.unwrap();
    assert_eq!(delivered, 25);
    assert_eq!(new.recover().await.unwrap(), 0, "nothing twice");
    let ids: HashSet<String> = collected.lock().unwrap().iter().cloned().collect();
    assert_eq!(ids.len(), 25);
}

/// The budget reserves a deferred call at batch prices (half), and settles it at half.
#[tokio::test(start_paused = true)]
async fn the_budget_reserves_deferred_calls_at_batch_prices() {
    use claude_tower::cost::{BudgetLayer, MemoryBudgetStore, Window};
    let mut reserved = Vec::new();
    for deferred in [false, true] {
        let mock = MockClaude::new().with_batch_processing_time(Duration::from_secs(60));
        let budget = BudgetLayer::new(MemoryBudgetStore::new())
            .global("100".parse::<Usd>().unwrap(), Window::Total);
        let service = ServiceBuilder::new()
            .layer(budget.clone())
            .layer(DeferLayer::new(mock.clone()))
            .service(mock);
        service.oneshot(document(3, deferred)).await.unwrap();
        let stats = budget.reservation_stats();
        reserved.push((stats.reserved, stats.actual));
    }
    assert_eq!(
        reserved[0].0.picodollars(),
        reserved[1].0.picodollars() * 2,
        "{reserved:?}"
    );
    assert_eq!(reserved[0].1.picodollars(), reserved[1].1.picodollars() * 2);
}
