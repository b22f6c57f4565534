//! [`RecordedRequest`]: what the mock received.

use http::HeaderMap;

use claude_tower_core::MessagesRequest;

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The request path (`/v1/messages` in process; the real path over HTTP).
    pub path: String,
    /// The request headers (over HTTP: as received, credentials included, so tests can check
    /// them; never logged).
    pub headers: HeaderMap,
    /// The parsed body.
    pub body: MessagesRequest,
}
