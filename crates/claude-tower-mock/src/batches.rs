//! Message Batches in the mock: [`BatchApi`] for [`MockClaude`]. Items are answered with the
//! mock's normal reply (usage `service_tier: "batch"`) after a processing time on tokio's
//! clock; results exist only once the whole batch has ended; items can be scripted to error,
//! expire or be canceled; the API's limits are enforced with its errors.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use claude_tower_core::batch::{
    BatchApi, BatchHeaders, BatchOutcome, BatchPage, BatchRequest, BatchResult, BatchResults,
    ListBatches, MessageBatch, ProcessingStatus, RequestCounts, jsonl,
};
use claude_tower_core::clock::rfc3339;
use claude_tower_core::{Error, StoreFuture};
use serde_json::json;
use tokio::time::Instant;

use crate::batch_state::{ItemFault, MockBatch};
use crate::reply::reply;
use crate::service::MockClaude;

fn api_error(status: u16, kind: &str, message: &str) -> Error {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    Error::from_response(
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST),
        &http::HeaderMap::new(),
        Bytes::from(body.to_string()),
    )
}

impl MockClaude {
    /// How long a batch takes to end (default 60 s, on tokio's clock).
    #[must_use]
    pub fn with_batch_processing_time(self, time: Duration) -> Self {
        self.lock().batches.processing_time = time;
        self
    }

    /// Batch limits (default 100,000 requests, 256 MB): over them, create answers the API's
    /// 400 / 413.
    #[must_use]
    pub fn with_batch_limits(self, max_requests: usize, max_bytes: usize) -> Self {
        let mut state = self.lock();
        state.batches.max_requests = max_requests;
        state.batches.max_bytes = max_bytes;
        drop(state);
        self
    }

    /// Scripts batch items by `custom_id`: `Some(fault)` for those that error, expire or are
    /// canceled.
    #[must_use]
    pub fn with_batch_item_faults(
        self,
        faults: impl Fn(&str) -> Option<ItemFault> + Send + Sync + 'static,
    ) -> Self {
        self.lock().batches.faults = Some(Arc::new(faults));
        self
    }

    /// The next batch create fails with `error` (a batch-level failure).
    pub fn push_batch_create_error(&self, error: Error) {
        self.lock().batches.create_errors.push(error);
    }

    /// Batches created so far (deleted ones included).
    #[must_use]
    pub fn batch_count(&self) -> u64 {
        self.lock().batches.next
    }

    fn batch_view(&self, id: &str) -> Result<MessageBatch, Error> {
        let mut state = self.lock();
        let processing = state.batches.processing_time;
        let faults = state.batches.faults.clone();
        let now = Instant::now();
        let batch =
            state.batches.batches.get_mut(id).ok_or_else(|| {
                api_error(404, "not_found_error", &format!("batch {id} not found"))
            })?;
        let ended = batch.ended(now, processing);
        if ended && batch.results.is_none() {
            batch.results = Some(Arc::new(answer(batch, faults.as_deref())));
        }
        let mut counts = RequestCounts::default();
        match &batch.results {
            Some(results) => {
                for result in results.iter() {
                    match result.result {
                        BatchOutcome::Succeeded { .. } => counts.succeeded += 1,
                        BatchOutcome::Errored { .. } => counts.errored += 1,
                        BatchOutcome::Canceled => counts.canceled += 1,
                        _ => counts.expired += 1,
                    }
                }
            }
            None => counts.processing = batch.requests.len() as u64,
        }
        let status = if ended {
            ProcessingStatus::Ended
        } else if batch.canceled.is_some() {
            ProcessingStatus::Canceling
        } else {
            ProcessingStatus::InProgress
        };
        Ok(MessageBatch {
            id: batch.id.clone(),
            kind: "message_batch".to_owned(),
            processing_status: status,
            request_counts: counts,
            created_at: Some(rfc3339(batch.created_at)),
            expires_at: Some(rfc3339(batch.created_at + Duration::from_secs(86_400))),
            ended_at: ended.then(|| rfc3339(batch.created_at + processing)),
            cancel_initiated_at: batch.canceled.map(|_| rfc3339(batch.created_at)),
            archived_at: None,
            results_url: ended.then(|| format!("/v1/messages/batches/{}/results", batch.id)),
            extra: claude_tower_core::Extra::new(),
        })
    }
}

/// Every item's result: the mock's reply (usage `service_tier: "batch"`), or its fault.
fn answer(
    batch: &MockBatch,
    faults: Option<&(dyn Fn(&str) -> Option<ItemFault> + Send + Sync)>,
) -> Vec<BatchResult> {
    batch
        .requests
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let fault = faults.and_then(|f| f(&item.custom_id));
            let result = match fault {
                Some(ItemFault::Errored) => BatchOutcome::Errored {
                    error: json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}),
                },
                Some(ItemFault::Expired) => BatchOutcome::Expired,
                Some(ItemFault::Canceled) => BatchOutcome::Canceled,
                None if batch.canceled.is_some() => BatchOutcome::Canceled,
                None => {
                    let mut message = reply(&item.params, i as u64 + 1);
                    message.usage.service_tier = Some("batch".to_owned());
                    BatchOutcome::Succeeded {
                        message: Box::new(message),
                    }
                }
            };
            BatchResult {
                custom_id: item.custom_id.clone(),
                result,
            }
        })
        .collect()
}

impl BatchApi for MockClaude {
    fn create(
        &self,
        _headers: &BatchHeaders,
        requests: Vec<BatchRequest>,
    ) -> StoreFuture<Result<MessageBatch, Error>> {
        let result = (|| {
            let mut state = self.lock();
            if let Some(error) = state.batches.create_errors.pop() {
                return Err(error);
            }
            let (max_requests, max_bytes) = (state.batches.max_requests, state.batches.max_bytes);
            drop(state);
            if requests.len() > max_requests {
                return Err(api_error(
                    400,
                    "invalid_request_error",
                    &format!(
                        "requests: at most {max_requests} items, got {}",
                        requests.len()
                    ),
                ));
            }
            claude_tower_core::batch::validate_batch(&requests)
                .map_err(|e| api_error(400, "invalid_request_error", e.message()))?;
            let bytes = serde_json::to_vec(&json!({"requests": requests}))
                .map(|b| b.len())
                .unwrap_or(usize::MAX);
            if bytes > max_bytes {
                return Err(api_error(
                    413,
                    "request_too_large",
                    &format!("Request exceeds the maximum allowed number of bytes ({max_bytes})"),
                ));
            }
            let mut state = self.lock();
            state.batches.next += 1;
            let id = format!("msgbatch_mock_{:016}", state.batches.next);
            state.batches.order.push(id.clone());
            state.batches.batches.insert(
                id.clone(),
                MockBatch {
                    id: id.clone(),
                    created: Instant::now(),
                    created_at: SystemTime::now(),
                    requests,
                    canceled: None,
                    results: None,
                },
            );
            drop(state);
            self.batch_view(&id)
        })();
        StoreFuture::ready(result)
    }

    fn retrieve(
        &self,
        _headers: &BatchHeaders,
        id: &str,
    ) -> StoreFuture<Result<MessageBatch, Error>> {
        StoreFuture::ready(self.batch_view(id))
    }

    fn list(
        &self,
        _headers: &BatchHeaders,
        page: &ListBatches,
    ) -> StoreFuture<Result<BatchPage, Error>> {
        let ids: Vec<String> = {
            let state = self.lock();
            state.batches.order.iter().rev().cloned().collect()
        };
        let start = page
            .after_id
            .as_ref()
            .and_then(|after| ids.iter().position(|id| id == after).map(|i| i + 1))
            .unwrap_or(0);
        let limit = page.limit.unwrap_or(20).clamp(1, 1000) as usize;
        let slice: Vec<&String> = ids.iter().skip(start).take(limit).collect();
        let data: Result<Vec<MessageBatch>, Error> =
            slice.iter().map(|id| self.batch_view(id)).collect();
        StoreFuture::ready(data.map(|data| BatchPage {
            has_more: start + data.len() < ids.len(),
            first_id: data.first().map(|b| b.id.clone()),
            last_id: data.last().map(|b| b.id.clone()),
            data,
        }))
    }

    fn cancel(
        &self,
        _headers: &BatchHeaders,
        id: &str,
    ) -> StoreFuture<Result<MessageBatch, Error>> {
        let found = {
            let mut state = self.lock();
            match state.batches.batches.get_mut(id) {
                Some(batch) => {
                    if batch.results.is_none() && batch.canceled.is_none() {
                        batch.canceled = Some(Instant::now());
                    }
                    true
                }
                None => false,
            }
        };
        StoreFuture::ready(if found {
            self.batch_view(id)
        } else {
            Err(api_error(
                404,
                "not_found_error",
                &format!("batch {id} not found"),
            ))
        })
    }

    fn delete(&self, _headers: &BatchHeaders, id: &str) -> StoreFuture<Result<(), Error>> {
        let view = self.batch_view(id);
        StoreFuture::ready(view.and_then(|batch| {
            if batch.processing_status != ProcessingStatus::Ended {
                return Err(api_error(
                    400,
                    "invalid_request_error",
                    "a batch can be deleted only once it has ended",
                ));
            }
            let mut state = self.lock();
            state.batches.batches.remove(id);
            state.batches.order.retain(|b| b != id);
            Ok(())
        }))
    }

    fn results(
        &self,
        _headers: &BatchHeaders,
        id: &str,
    ) -> StoreFuture<Result<BatchResults, Error>> {
        let view = self.batch_view(id);
        let results = view.and_then(|batch| {
            if batch.processing_status != ProcessingStatus::Ended {
                return Err(api_error(
                    400,
                    "invalid_request_error",
                    &format!("batch {id} has not ended: no results yet"),
                ));
            }
            let state = self.lock();
            Ok(state
                .batches
                .batches
                .get(id)
                .and_then(|b| b.results.clone())
                .unwrap_or_default())
        });
        StoreFuture::ready(results.map(|results| {
            // Served as JSONL bytes, one line at a time, through the same decoder as the API's.
            let lines = futures_util::stream::iter((0..results.len()).map(move |i| {
                let mut line = serde_json::to_vec(&results[i]).unwrap_or_default();
                line.push(b'\n');
                Ok::<_, std::convert::Infallible>(Bytes::from(line))
            }));
            let decoded: BatchResults =
                Box::pin(jsonl::decode(lines, jsonl::DEFAULT_MAX_LINE_BYTES));
            decoded
        }))
    }
}
