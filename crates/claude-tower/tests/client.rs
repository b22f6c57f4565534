//! The facade's client from a service author's side: per-call attribution reaches the budget
//! and the ledger without being sent upstream, a budget that cannot apply is counted (not
//! silent), the text and event streams are `Stream`s, the boxed stack is one cloneable
//! `Send + Sync` type, and `MockServer` hands out a ready transport whose address the
//! responses carry.

use std::sync::Arc;

use claude_tower::ClaudeService;
use claude_tower::cost::{BudgetStore, MemoryBudgetStore, Scope};
use claude_tower::ext::{Attribution, ServerAddress};
use claude_tower::mock::MockServer;
use claude_tower::prelude::*;
use futures_util::StreamExt;
use tower::ServiceBuilder;

fn assert_shareable<T: Clone + Send + Sync + 'static>(_: &T) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boxed_client_carries_attribution_and_streams() {
    let server = MockServer::start().await.unwrap();
    let ledger = CostLedger::new();
    let store = Arc::new(MemoryBudgetStore::new());
    let budget =
        BudgetLayer::new(Arc::clone(&store)).per_user("1".parse::<Usd>().unwrap(), Window::Day);
    let stack = ServiceBuilder::new()
        .claude_budget(budget.clone())
        .claude_cost(CostLayer::new().ledger(ledger.clone()))
        .claude_retry(RetryLayer::new())
        .service(server.transport().unwrap());
    let client: Client<ClaudeService> = Client::boxed(stack);
    assert_shareable(&client);
    let request = || MessagesRequest::new("claude-haiku-4-5", 100).user("hello there");

    // 1. Attribution per call: the ledger and the per-user budget see the user.
    let (_, extensions) = client
        .messages()
        .attribution(Attribution::tenant("acme").with_user("u-42"))
        .create_with_response(request())
        .await
        .unwrap();
    let server_address = extensions.get::<ServerAddress>().unwrap();
    assert_eq!(server_address.host(), "127.0.0.1");
    assert_eq!(server_address.port(), server.addr().port());
    let snapshot = ledger.snapshot();
    assert_eq!(snapshot.by_user["u-42"].requests, 1);
    assert_eq!(snapshot.by_tenant["acme"].requests, 1);
    assert_eq!(budget.unattributed(), 0);
    let sent = server.mock().requests().pop().unwrap();
    assert!(
        sent.body.metadata.is_none(),
        "attribution is not sent upstream"
    );
    let spent = store
        .balance(&budget.key(Scope::User, Some("u-42"), Window::Day))
        .await
        .unwrap();
    assert!(spent.spent > 0, "{spent:?}");

    // 2. Without attribution the per-user budget cannot apply: counted, not silent.
    client.messages().create(request()).await.unwrap();
    assert_eq!(budget.unattributed(), 1);

    // 3. The text stream is a `Stream` of text pieces, then the final message.
    let mut stream = client
        .messages()
        .attribution(Attribution::user("u-42"))
        .stream(request())
        .await
        .unwrap();
    let pieces: Vec<String> = (&mut stream).map(Result::unwrap).collect().await;
    let message = stream.into_message().unwrap();
    assert_eq!(pieces.concat(), message.text());
    assert!(pieces.len() > 1);

    // 4. The raw events, ready to relay as SSE frames.
    let (events, _) = client.messages().stream_events(request()).await.unwrap();
    let frames: Vec<String> = events.map(|e| e.unwrap().to_sse()).collect().await;
    assert!(frames[0].starts_with("event: message_start\n"));
    assert!(frames.last().unwrap().starts_with("event: message_stop\n"));

    // 5. A per-call header goes upstream as given.
    client
        .messages()
        .header(
            http::HeaderName::from_static("anthropic-beta"),
            http::HeaderValue::from_static("fast-mode-2026-01-01"),
        )
        .create(request())
        .await
        .unwrap();
    let sent = server.mock().requests().pop().unwrap();
    assert_eq!(sent.headers["anthropic-beta"], "fast-mode-2026-01-01");
}

/// `Stack` puts the layers in the canonical order whatever order they are given in: the cost
/// meter sits above the response cache (a hit is priced at 0), the budget below it (a hit
/// reserves nothing), and the timeout inside retry (a stalled first attempt is retried).
#[tokio::test(start_paused = true)]
async fn stack_orders_the_layers_whatever_order_they_are_given_in() {
    use claude_tower::cost::Cost;
    use claude_tower::ext::{Attempts, ResponseCacheStatus};
    use claude_tower::mock::{Attempt, MockClaude};
    use std::time::Duration;

    let mock = MockClaude::new().with_script([
        Attempt::ok().with_first_byte_delay(Duration::from_secs(10)),
        Attempt::ok(),
    ]);
    let budget =
        BudgetLayer::new(MemoryBudgetStore::new()).global("1".parse::<Usd>().unwrap(), Window::Day);
    let service = Stack::new()
        .timeout(TimeoutLayer::new().total(Duration::from_secs(1)))
        .budget(budget.clone())
        .retry(RetryLayer::new().initial_backoff(Duration::from_millis(1)))
        .response_cache(ResponseCacheLayer::in_memory(1 << 20))
        .cost(CostLayer::new())
        .trace(TraceLayer::new())
        .service(mock.clone());
    let client = Client::new(service);
    let request = || {
        MessagesRequest::new("claude-haiku-4-5", 64)
            .user("2+2?")
            .temperature(0.0)
    };
    let (_, first) = client
        .messages()
        .create_with_response(request())
        .await
        .unwrap();
    assert_eq!(
        first.get::<Attempts>().unwrap().count,
        2,
        "timeout inside retry"
    );
    assert_eq!(
        first.get::<ResponseCacheStatus>(),
        Some(&ResponseCacheStatus::Miss)
    );
    assert!(first.get::<Cost>().unwrap().total > Usd::ZERO);
    let (_, hit) = client
        .messages()
        .create_with_response(request())
        .await
        .unwrap();
    assert_eq!(
        hit.get::<ResponseCacheStatus>(),
        Some(&ResponseCacheStatus::Hit)
    );
    assert_eq!(
        hit.get::<Cost>().unwrap().total,
        Usd::ZERO,
        "cost above the cache"
    );
    assert_eq!(
        budget.reservation_stats().requests,
        1,
        "budget below the cache"
    );
    assert_eq!(mock.request_count(), 2);
}
