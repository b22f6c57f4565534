//! The Message Batches endpoints over real loopback HTTP against `MockServer`: create,
//! retrieve, list, results (decoded line by line), cancel, delete; ids that are not ids are
//! refused before anything is sent.

use std::time::Duration;

use claude_tower::core::batch::{
    BatchApi, BatchHeaders, BatchOutcome, BatchRequest, ListBatches, ProcessingStatus,
};
use claude_tower::core::{ErrorKind, MessagesRequest};
use claude_tower::transport::Transport;
use claude_tower_mock::{MockClaude, MockServer};
use futures_util::StreamExt;

fn items(n: usize) -> Vec<BatchRequest> {
    (0..n)
        .map(|i| BatchRequest {
            custom_id: format!("doc-{i}"),
            params: MessagesRequest::new("claude-haiku-4-5", 32).user(format!("document {i}")),
        })
        .collect()
}

fn transport(server: &MockServer) -> Transport {
    Transport::builder()
        .ignore_env()
        .api_key("sk-ant-test")
        .base_url(server.base_url())
        .build()
        .unwrap()
}

#[tokio::test]
async fn batches_round_trip_over_http() {
    let mock = MockClaude::new().with_batch_processing_time(Duration::from_millis(200));
    let server = MockServer::builder().mock(mock).start().await.unwrap();
    let transport = transport(&server);
    let headers = BatchHeaders::new();
    let batch = transport.create(&headers, items(3)).await.unwrap();
    assert_eq!(batch.processing_status, ProcessingStatus::InProgress);
    assert_eq!(batch.request_counts.processing, 3);
    // Not ended: no results yet (the API's error).
    let early = transport.results(&headers, &batch.id).await.err().unwrap();
    assert_eq!(early.status().map(|s| s.as_u16()), Some(400));
    let second = transport.create(&headers, items(1)).await.unwrap();
    let page = transport
        .list(&headers, &ListBatches::default().limit(1))
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
    assert!(page.has_more);
    assert_eq!(page.data[0].id, second.id, "newest first");
    let canceled = transport.cancel(&headers, &second.id).await.unwrap();
    assert_ne!(canceled.processing_status, ProcessingStatus::InProgress);

    let mut ended = batch.clone();
    for _ in 0..50 {
        ended = transport.retrieve(&headers, &batch.id).await.unwrap();
        if ended.processing_status == ProcessingStatus::Ended {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ended.processing_status, ProcessingStatus::Ended);
    assert_eq!(ended.request_counts.succeeded, 3);
    let mut results = transport.results(&headers, &batch.id).await.unwrap();
    let mut ids = Vec::new();
    while let Some(line) = results.next().await {
        let line = line.unwrap();
        let BatchOutcome::Succeeded { message } = &line.result else {
            panic!("{line:?}");
        };
        assert_eq!(message.usage.service_tier.as_deref(), Some("batch"));
        ids.push(line.custom_id);
    }
    ids.sort();
    assert_eq!(ids, ["doc-0", "doc-1", "doc-2"]);
    transport.delete(&headers, &batch.id).await.unwrap();
    let gone = transport.retrieve(&headers, &batch.id).await.err().unwrap();
    assert_eq!(gone.status().map(|s| s.as_u16()), Some(404));
}

#[tokio::test]
async fn bad_ids_and_bad_batches_are_refused_before_sending() {
    let server = MockServer::start().await.unwrap();
    let transport = transport(&server);
    let headers = BatchHeaders::new();
    for id in ["../../v1/messages", "a/b", "", "id?x=1"] {
        let error = transport.retrieve(&headers, id).await.err().unwrap();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{id}");
    }
    let mut duplicate = items(2);
    duplicate[1].custom_id = "doc-0".to_owned();
    let error = transport.create(&headers, duplicate).await.err().unwrap();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert_eq!(server.mock().batch_count(), 0, "nothing was sent");
}
