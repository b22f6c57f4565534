//! [`Plan`]: what the mock decided to do for one request.

use std::time::Duration;

use bytes::Bytes;
use claude_tower_core::{ApiErrorBody, Message, StreamEvent};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// What the mock decided to do for one request.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) first_byte_delay: Duration,
    pub(crate) event_delay: Duration,
    pub(crate) kind: PlanKind,
}

#[derive(Debug)]
pub(crate) enum PlanKind {
    Error {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Message {
        headers: HeaderMap,
        message: Box<Message>,
    },
    Stream {
        headers: HeaderMap,
        events: Vec<StreamEvent>,
        fault: Option<StreamFault>,
    },
    Drop,
}

#[derive(Debug)]
pub(crate) enum StreamFault {
    /// Send an `error` event after this many events.
    Error {
        after_events: usize,
        error: ApiErrorBody,
    },
    /// Close the connection after this many events.
    Drop { after_events: usize },
}

/// A 400 `invalid_request_error` as the API sends it.
pub(crate) fn invalid_request(request_id: &str, message: &str) -> Plan {
    let mut headers = HeaderMap::new();
    insert(&mut headers, "request-id", request_id);
    insert(&mut headers, "content-type", "application/json");
    let envelope = serde_json::json!({
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
        "request_id": request_id,
    });
    Plan {
        first_byte_delay: Duration::ZERO,
        event_delay: Duration::ZERO,
        kind: PlanKind::Error {
            status: StatusCode::BAD_REQUEST,
            headers,
            body: Bytes::from(envelope.to_string()),
        },
    }
}

pub(crate) fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        headers.append(name, value);
    }
}
