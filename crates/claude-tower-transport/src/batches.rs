//! The Message Batches endpoints over HTTP: [`BatchApi`] for [`Transport`].

use claude_tower_core::batch::{
    BatchApi, BatchHeaders, BatchPage, BatchRequest, BatchResults, ListBatches, MessageBatch,
    jsonl, validate_batch,
};
use claude_tower_core::{Error, StoreFuture};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::Transport;

const BATCHES: &str = "/v1/messages/batches";

/// A batch id as a path segment: `[A-Za-z0-9_-]` only, so an id from a store or a caller can
/// never reach another path of the API.
fn checked(id: &str) -> Result<&str, Error> {
    if !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(id)
    } else {
        Err(Error::invalid_request(format!(
            "{id:?} is not a batch id (nothing was sent)"
        )))
    }
}

impl Transport {
    async fn batch_json<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: String,
        headers: BatchHeaders,
        body: Vec<u8>,
    ) -> Result<T, Error> {
        let response = self.send_with(method, &path, &headers, body, false).await?;
        let bytes = response.bytes().await.map_err(|e| {
            Error::new(
                claude_tower_core::ErrorKind::StreamInterrupted,
                e.to_string(),
            )
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                claude_tower_core::ErrorKind::Decode,
                format!("invalid {path} response: {e}"),
            )
        })
    }
}

impl Transport {
    /// `method …/batches/{id}{suffix}`, the id checked before it enters the path.
    fn about<T: DeserializeOwned + Send + 'static>(
        &self,
        method: http::Method,
        headers: &BatchHeaders,
        id: &str,
        suffix: &'static str,
        body: Vec<u8>,
    ) -> StoreFuture<Result<T, Error>> {
        let this = self.clone();
        let headers = headers.clone();
        let path = checked(id).map(|id| format!("{BATCHES}/{id}{suffix}"));
        StoreFuture::boxed(async move { this.batch_json(method, path?, headers, body).await })
    }
}

impl BatchApi for Transport {
    fn create(
        &self,
        headers: &BatchHeaders,
        requests: Vec<BatchRequest>,
    ) -> StoreFuture<Result<MessageBatch, Error>> {
        let this = self.clone();
        let headers = headers.clone();
        StoreFuture::boxed(async move {
            validate_batch(&requests)?;
            let body = serde_json::to_vec(&serde_json::json!({ "requests": requests }))
                .map_err(|e| Error::invalid_request(e.to_string()))?;
            this.batch_json(http::Method::POST, BATCHES.to_owned(), headers, body)
                .await
        })
    }

    fn retrieve(
        &self,
        headers: &BatchHeaders,
        id: &str,
    ) -> StoreFuture<Result<MessageBatch, Error>> {
        self.about(http::Method::GET, headers, id, "", Vec::new())
    }

    fn list(
        &self,
        headers: &BatchHeaders,
        page: &ListBatches,
    ) -> StoreFuture<Result<BatchPage, Error>> {
        let this = self.clone();
        let headers = headers.clone();
        let mut query = Vec::new();
        if let Some(limit) = page.limit {
            query.push(format!("limit={}", limit.clamp(1, 1000)));
        }
        let ids = [("after_id", &page.after_id), ("before_id", &page.before_id)];
        let mut bad = None;
        for (name, id) in ids {
            if let Some(id) = id {
                match checked(id) {
                    Ok(id) => query.push(format!("{name}={id}")),
                    Err(error) => bad = Some(error),
                }
            }
        }
        let path = if query.is_empty() {
            BATCHES.to_owned()
        } else {
            format!("{BATCHES}?{}", query.join("&"))
        };
        StoreFuture::boxed(async move {
            if let Some(error) = bad {
                return Err(error);
            }
            this.batch_json(http::Method::GET, path, headers, Vec::new())
                .await
        })
    }

    fn cancel(&self, headers: &BatchHeaders, id: &str) -> StoreFuture<Result<MessageBatch, Error>> {
        self.about(http::Method::POST, headers, id, "/cancel", b"{}".to_vec())
    }

    fn delete(&self, headers: &BatchHeaders, id: &str) -> StoreFuture<Result<(), Error>> {
        let deleted =
            self.about::<serde_json::Value>(http::Method::DELETE, headers, id, "", Vec::new());
        StoreFuture::boxed(async move { deleted.await.map(|_| ()) })
    }

    fn results(
        &self,
        headers: &BatchHeaders,
        id: &str,
    ) -> StoreFuture<Result<BatchResults, Error>> {
        let this = self.clone();
        let mut headers = headers.clone();
        // What the official SDK sends for the results download.
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/binary"),
        );
        let path = checked(id).map(|id| format!("{BATCHES}/{id}/results"));
        StoreFuture::boxed(async move {
            let response = this
                .send_with(http::Method::GET, &path?, &headers, Vec::new(), true)
                .await?;
            let bytes = response.bytes_stream().boxed();
            let decoded: BatchResults =
                Box::pin(jsonl::decode(bytes, jsonl::DEFAULT_MAX_LINE_BYTES));
            Ok(decoded)
        })
    }
}
