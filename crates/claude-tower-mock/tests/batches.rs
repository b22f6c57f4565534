//! The mock's Message Batches: limits with the API's errors, batch-level failures, results only
//! once ended, cancels, `request_counts`.

use std::time::Duration;

use claude_tower_core::batch::{
    BatchApi, BatchHeaders, BatchOutcome, BatchRequest, ProcessingStatus,
};
use claude_tower_core::{Error, ErrorKind, MessagesRequest};
use claude_tower_mock::{ItemFault, MockClaude};
use futures_util::StreamExt;

fn items(n: usize, text: &str) -> Vec<BatchRequest> {
    (0..n)
        .map(|i| BatchRequest {
            custom_id: format!("item-{i}"),
            params: MessagesRequest::new("claude-haiku-4-5", 16).user(text),
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn limits_and_batch_failures_answer_the_apis_errors() {
    let headers = BatchHeaders::new();
    let mock = MockClaude::new().with_batch_limits(3, 2_000);
    let too_many = mock.create(&headers, items(4, "hi")).await.unwrap_err();
    assert_eq!(too_many.status().map(|s| s.as_u16()), Some(400));
    let too_big = mock
        .create(&headers, items(2, &"x".repeat(3_000)))
        .await
        .unwrap_err();
    assert_eq!(too_big.status().map(|s| s.as_u16()), Some(413));
    mock.push_batch_create_error(Error::new(ErrorKind::Overloaded, "overloaded"));
    let failed = mock.create(&headers, items(1, "hi")).await.unwrap_err();
    assert_eq!(failed.kind(), ErrorKind::Overloaded);
    assert_eq!(mock.batch_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn results_exist_only_once_the_whole_batch_ended() {
    let headers = BatchHeaders::new();
    let mock = MockClaude::new()
        .with_batch_processing_time(Duration::from_secs(300))
        .with_batch_item_faults(|id| (id == "item-1").then_some(ItemFault::Expired));
    let batch = mock.create(&headers, items(3, "hi")).await.unwrap();
    assert_eq!(batch.request_counts.processing, 3);
    assert!(mock.results(&headers, &batch.id).await.is_err());
    tokio::time::advance(Duration::from_secs(300)).await;
    let ended = mock.retrieve(&headers, &batch.id).await.unwrap();
    assert_eq!(ended.processing_status, ProcessingStatus::Ended);
    assert_eq!(
        (ended.request_counts.succeeded, ended.request_counts.expired),
        (2, 1)
    );
    let results: Vec<_> = mock
        .results(&headers, &batch.id)
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(results.len(), 3);
    // A canceled batch ends with its unprocessed items canceled.
    let mut others = items(2, "hi");
    for item in &mut others {
        item.custom_id = format!("other-{}", item.custom_id);
    }
    let other = mock.create(&headers, others).await.unwrap();
    let canceled = mock.cancel(&headers, &other.id).await.unwrap();
    assert_eq!(canceled.request_counts.canceled, 2);
    let mut lines = mock.results(&headers, &other.id).await.unwrap();
    while let Some(line) = lines.next().await {
        assert!(matches!(line.unwrap().result, BatchOutcome::Canceled));
    }
}
