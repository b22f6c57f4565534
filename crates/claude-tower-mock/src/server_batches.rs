//! The Message Batches endpoints of the loopback [`MockServer`](crate::MockServer), over the
//! in-process batches of [`MockClaude`].

use bytes::Bytes;
use claude_tower_core::Error;
use claude_tower_core::batch::{BatchApi, BatchHeaders, BatchRequest, ListBatches};
use futures_util::StreamExt;
use http::{Method, StatusCode};

use crate::service::MockClaude;

/// An answer: status, content type, body.
pub(crate) type Answer = (StatusCode, &'static str, Bytes);

const JSON: &str = "application/json";

fn error(error: &Error) -> Answer {
    let status = error.status().unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": error.error_type().unwrap_or("invalid_request_error"), "message": error.message()},
    });
    (status, JSON, Bytes::from(body.to_string()))
}

fn json(value: serde_json::Result<serde_json::Value>) -> Answer {
    match value.and_then(|v| serde_json::to_vec(&v)) {
        Ok(body) => (StatusCode::OK, JSON, Bytes::from(body)),
        Err(e) => error(&Error::new(
            claude_tower_core::ErrorKind::Other,
            e.to_string(),
        )),
    }
}

/// Answers a request under `/v1/messages/batches`, or `None` when the path is not one.
pub(crate) async fn answer(
    mock: &MockClaude,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &BatchHeaders,
    body: &[u8],
) -> Option<Answer> {
    let rest = path.strip_prefix("/v1/messages/batches")?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let answer = match (method, segments.as_slice()) {
        (&Method::POST, []) => {
            let requests = serde_json::from_slice::<serde_json::Value>(body).and_then(|mut v| {
                serde_json::from_value::<Vec<BatchRequest>>(v["requests"].take())
            });
            match requests {
                Ok(requests) => match mock.create(headers, requests).await {
                    Ok(batch) => json(serde_json::to_value(&batch)),
                    Err(e) => error(&e),
                },
                Err(e) => error(&Error::invalid_request(format!("invalid JSON body: {e}"))),
            }
        }
        (&Method::GET, []) => {
            let mut page = ListBatches::default();
            for pair in query.unwrap_or("").split('&') {
                match pair.split_once('=') {
                    Some(("limit", n)) => page.limit = n.parse().ok(),
                    Some(("after_id", id)) => page.after_id = Some(id.to_owned()),
                    Some(("before_id", id)) => page.before_id = Some(id.to_owned()),
                    _ => {}
                }
            }
            match mock.list(headers, &page).await {
                Ok(page) => json(serde_json::to_value(&page)),
                Err(e) => error(&e),
            }
        }
        (&Method::GET, [id]) => match mock.retrieve(headers, id).await {
            Ok(batch) => json(serde_json::to_value(&batch)),
            Err(e) => error(&e),
        },
        (&Method::POST, [id, "cancel"]) => match mock.cancel(headers, id).await {
            Ok(batch) => json(serde_json::to_value(&batch)),
            Err(e) => error(&e),
        },
        (&Method::DELETE, [id]) => match mock.delete(headers, id).await {
            Ok(()) => json(Ok(
                serde_json::json!({"id": id, "type": "message_batch_deleted"}),
            )),
            Err(e) => error(&e),
        },
        (&Method::GET, [id, "results"]) => match mock.results(headers, id).await {
            Ok(mut results) => {
                let mut out = Vec::new();
                while let Some(line) = results.next().await {
                    if let Ok(line) = line
                        && let Ok(text) = serde_json::to_vec(&line)
                    {
                        out.extend_from_slice(&text);
                        out.push(b'\n');
                    }
                }
                (StatusCode::OK, "application/binary", Bytes::from(out))
            }
            Err(e) => error(&e),
        },
        _ => error(&Error::from_response(
            StatusCode::NOT_FOUND,
            &http::HeaderMap::new(),
            Bytes::from_static(
                br#"{"type":"error","error":{"type":"not_found_error","message":"Not found"}}"#,
            ),
        )),
    };
    Some(answer)
}
