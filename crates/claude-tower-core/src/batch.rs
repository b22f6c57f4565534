//! Message Batches: the wire types (`MessageBatch`, result lines), the [`BatchApi`] a backend
//! implements (the transport over HTTP, the mock in process), and an incremental, bounded
//! JSONL decoder for results ([`jsonl`]).
//!
//! Results exist only once the whole batch has ended; their order is not guaranteed — match
//! them by `custom_id` (unique within a batch). Limits: 100,000 requests or 256 MB per batch.

pub mod jsonl;

use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::macros::open_str_enum;
use crate::{ApiErrorBody, Error, Extra, Message, MessagesRequest, StoreFuture};

/// Most requests in one batch (the API's limit).
pub const MAX_BATCH_REQUESTS: usize = 100_000;
/// Most bytes of one batch's create body (the API's limit, 256 MB).
pub const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;

open_str_enum! {
    /// Where a batch is.
    ProcessingStatus {
        /// Items are being processed.
        InProgress => "in_progress",
        /// A cancel was asked; items still running finish.
        Canceling => "canceling",
        /// Every item has a result; `results_url` is set.
        Ended => "ended",
    }
}

/// Items by outcome.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Still running.
    #[serde(default)]
    pub processing: u64,
    /// Answered.
    #[serde(default)]
    pub succeeded: u64,
    /// Failed.
    #[serde(default)]
    pub errored: u64,
    /// Canceled before they ran.
    #[serde(default)]
    pub canceled: u64,
    /// Not processed within 24 h.
    #[serde(default)]
    pub expired: u64,
}

impl RequestCounts {
    /// Items in all.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.processing
            .saturating_add(self.succeeded)
            .saturating_add(self.errored)
            .saturating_add(self.canceled)
            .saturating_add(self.expired)
    }
}

/// A Message Batch (`type: "message_batch"`). Unknown fields are kept.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageBatch {
    /// `msgbatch_…`.
    pub id: String,
    /// `message_batch`.
    #[serde(rename = "type", default = "batch_type")]
    pub kind: String,
    /// Where it is.
    pub processing_status: ProcessingStatus,
    /// Items by outcome.
    #[serde(default)]
    pub request_counts: RequestCounts,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
    /// RFC 3339 (created + 24 h).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// RFC 3339, once ended.
    #[serde(default)]
    pub ended_at: Option<String>,
    /// RFC 3339, once a cancel was asked.
    #[serde(default)]
    pub cancel_initiated_at: Option<String>,
    /// RFC 3339, once archived.
    #[serde(default)]
    pub archived_at: Option<String>,
    /// Where the results are, once ended.
    #[serde(default)]
    pub results_url: Option<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

fn batch_type() -> String {
    "message_batch".to_owned()
}

/// One request of a batch: a `custom_id` (unique in the batch, 1–64 of `[A-Za-z0-9_-]`) and
/// non-streaming Messages params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// The caller's id for this item.
    pub custom_id: String,
    /// The Messages request.
    pub params: MessagesRequest,
}

/// The outcome of one item (`result` of a results line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BatchOutcome {
    /// Answered.
    Succeeded {
        /// The reply.
        message: Box<Message>,
    },
    /// Failed (the error envelope).
    Errored {
        /// `{"type": "error", "error": {…}}`.
        error: Value,
    },
    /// Canceled before it ran.
    Canceled,
    /// Not processed in time.
    Expired,
}

impl BatchOutcome {
    /// The API error of an `errored` item, when its envelope parses.
    #[must_use]
    pub fn api_error(&self) -> Option<ApiErrorBody> {
        match self {
            Self::Errored { error } => {
                let inner = error.get("error").unwrap_or(error);
                serde_json::from_value(inner.clone()).ok()
            }
            _ => None,
        }
    }
}

/// One line of a batch's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    /// The item's `custom_id`.
    pub custom_id: String,
    /// Its outcome.
    pub result: BatchOutcome,
}

/// A page of batches (`GET /v1/messages/batches`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchPage {
    /// The batches, newest first.
    pub data: Vec<MessageBatch>,
    /// Whether more follow.
    #[serde(default)]
    pub has_more: bool,
    /// First id of the page.
    #[serde(default)]
    pub first_id: Option<String>,
    /// Last id of the page (`after_id` of the next page).
    #[serde(default)]
    pub last_id: Option<String>,
}

/// Paging of [`BatchApi::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListBatches {
    /// 1–1000 (default 20).
    pub limit: Option<u32>,
    /// Batches after this id (the next page).
    pub after_id: Option<String>,
    /// Batches before this id.
    pub before_id: Option<String>,
}

impl ListBatches {
    crate::setters! {
        /// Page size (1–1000).
        pub fn limit(limit: u32) => limit = Some(limit);
        /// The page after `id`.
        pub fn after_id(id: impl Into<String>) => after_id = Some(id.into());
        /// The page before `id`.
        pub fn before_id(id: impl Into<String>) => before_id = Some(id.into());
    }
}

/// Headers that are batch-wide (`anthropic-version`, `anthropic-beta`, the credential): sent
/// with create and every call about the batch.
pub type BatchHeaders = http::HeaderMap;

/// The results of a batch, line by line.
pub type BatchResults = BoxStream<'static, Result<BatchResult, Error>>;

/// The Message Batches endpoints, implemented by a backend (the transport over HTTP, the mock
/// in process). Every call answers a [`StoreFuture`] that owns what it needs.
pub trait BatchApi: Send + Sync + 'static {
    /// `POST /v1/messages/batches`.
    fn create(
        &self,
        headers: &BatchHeaders,
        requests: Vec<BatchRequest>,
    ) -> StoreFuture<Result<MessageBatch, Error>>;

    /// `GET /v1/messages/batches/{id}`.
    fn retrieve(
        &self,
        headers: &BatchHeaders,
        id: &str,
    ) -> StoreFuture<Result<MessageBatch, Error>>;

    /// `GET /v1/messages/batches`.
    fn list(
        &self,
        headers: &BatchHeaders,
        page: &ListBatches,
    ) -> StoreFuture<Result<BatchPage, Error>>;

    /// `POST /v1/messages/batches/{id}/cancel`.
    fn cancel(&self, headers: &BatchHeaders, id: &str) -> StoreFuture<Result<MessageBatch, Error>>;

    /// `DELETE /v1/messages/batches/{id}`.
    fn delete(&self, headers: &BatchHeaders, id: &str) -> StoreFuture<Result<(), Error>>;

    /// The results (`GET …/{id}/results`), decoded line by line with bounded memory; an error
    /// when the batch has not ended.
    fn results(&self, headers: &BatchHeaders, id: &str)
    -> StoreFuture<Result<BatchResults, Error>>;
}

/// Checks a batch before it is sent: 1 to [`MAX_BATCH_REQUESTS`] items, unique valid
/// `custom_id`s, no streaming, `max_tokens` ≥ 1.
///
/// # Errors
/// `InvalidRequest` naming the first problem (nothing is sent).
pub fn validate_batch(requests: &[BatchRequest]) -> Result<(), Error> {
    let invalid = |message: String| Err(Error::new(crate::ErrorKind::InvalidRequest, message));
    if requests.is_empty() || requests.len() > MAX_BATCH_REQUESTS {
        return invalid(format!(
            "a batch has 1 to {MAX_BATCH_REQUESTS} requests, not {} (nothing was sent)",
            requests.len()
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(requests.len());
    for item in requests {
        let id = &item.custom_id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return invalid(format!(
                "custom_id {id:?}: 1 to 64 of [A-Za-z0-9_-] (nothing was sent)"
            ));
        }
        if !seen.insert(id.as_str()) {
            return invalid(format!("custom_id {id:?} appears twice (nothing was sent)"));
        }
        if item.params.is_stream() {
            return invalid(format!(
                "{id}: a batch item cannot stream (nothing was sent)"
            ));
        }
        if item.params.max_tokens == 0 {
            return invalid(format!(
                "{id}: max_tokens 0 is rejected in a batch (nothing was sent)"
            ));
        }
    }
    Ok(())
}
