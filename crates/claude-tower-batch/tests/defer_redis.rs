//! Restart over a real redis-server: a layer dropped mid-run, a new one (a new connection, as
//! a new process would have) on the same Redis collects every submitted batch's results
//! exactly once — also when two recover at the same time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use claude_tower::batch::{DeferLayer, RedisDeferStore};
use claude_tower::core::MessagesRequest;
use claude_tower::core::ext::Deferred;
use claude_tower::mock::MockClaude;
use claude_tower_mock::RedisServer;
use tower::{Layer, ServiceExt};

fn document(i: usize) -> http::Request<MessagesRequest> {
    let mut request = MessagesRequest::new("claude-haiku-4-5", 32)
        .user(format!("Classify document {i}"))
        .into_http();
    request.extensions_mut().insert(Deferred::new());
    request
}

#[tokio::test]
async fn a_new_process_collects_every_submitted_batch_exactly_once() {
    let redis = RedisServer::start().await;
    let mock = MockClaude::new().with_batch_processing_time(Duration::from_millis(300));
    {
        let store = RedisDeferStore::connect(&redis.url()).await.unwrap();
        let old = DeferLayer::new(mock.clone())
            .store(store)
            .max_items(10)
            .window(Duration::from_millis(50))
            .poll(Duration::from_secs(3_600), Duration::from_secs(3_600))
            .layer(mock.clone());
        let calls: Vec<_> = (0..25)
            .map(|i| tokio::spawn(old.clone().oneshot(document(i))))
            .collect();
        // Submitted (two full batches at once, the third after the window), then the process
        // "dies" before its first poll.
        for _ in 0..100 {
            if mock.batch_count() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for call in calls {
            call.abort();
        }
    }
    assert_eq!(mock.batch_count(), 3);
    let collected = Arc::new(Mutex::new(Vec::new()));
    let recover = |collected: Arc<Mutex<Vec<String>>>| {
        let mock = mock.clone();
        let url = redis.url();
        async move {
            let store = RedisDeferStore::connect(&url).await.unwrap();
            let layer = DeferLayer::new(mock)
                .store(store)
                .poll(Duration::from_millis(100), Duration::from_millis(200))
                .sink(move |_, result| collected.lock().unwrap().push(result.custom_id));
            layer.recover().await.unwrap()
        }
    };
    // Two new processes recover at once: each item goes to exactly one of them.
    let (a, b) = tokio::join!(
        recover(Arc::clone(&collected)),
        recover(Arc::clone(&collected))
    );
    assert_eq!(a + b, 25, "{a} + {b}");
    let ids: Vec<String> = collected.lock().unwrap().clone();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (25, 25));
    // A later recovery finds nothing left.
    assert_eq!(recover(Arc::clone(&collected)).await, 0);
    println!("restart: 3 batches, 25 results collected exactly once ({a} + {b} by two recoverers)");
}
