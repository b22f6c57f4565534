//! The one error type of claude-tower: an opaque [`Error`] with an [`ErrorKind`] and accessors
//! for everything the API tells about a failure.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::content::Extra;
use crate::headers::header_str;
use crate::response::Message;
use crate::retry_after::parse_retry_after;

/// A boxed error, as plain tower middleware uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong, broadly. Match on this; use the accessors on [`Error`] for details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The API answered with an error status (see [`Error::status`] and
    /// [`Error::error_type`]), or a mid-stream `error` event of another kind.
    Api,
    /// HTTP 429 / `rate_limit_error` (including the spend-cap variant, see
    /// [`Error::is_spend_cap`]), or a local rate limiter refused the request.
    RateLimited,
    /// HTTP 529 / `overloaded_error`, before or after the stream started.
    Overloaded,
    /// A client-side timeout (connect, total or idle).
    Timeout,
    /// The connection could not be made.
    Connect,
    /// A body or event could not be decoded.
    Decode,
    /// A stream ended or broke before `message_stop`.
    StreamInterrupted,
    /// The request is certainly invalid; it was not sent.
    InvalidRequest,
    /// The client is misconfigured (no credentials, bad base URL, …).
    Config,
    /// A budget would be exceeded; the request was not sent.
    BudgetExceeded,
    /// A response body, a stream event or a buffer a layer keeps for a stream grew past its
    /// configured size limit; the connection was dropped (never retried: the same request
    /// would most likely produce the same answer).
    TooLarge,
    /// Anything else.
    Other,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::Api => "api error",
            Self::RateLimited => "rate limited",
            Self::Overloaded => "overloaded",
            Self::Timeout => "timed out",
            Self::Connect => "connection failed",
            Self::Decode => "decode error",
            Self::StreamInterrupted => "stream interrupted",
            Self::InvalidRequest => "invalid request",
            Self::Config => "configuration error",
            Self::BudgetExceeded => "budget exceeded",
            Self::TooLarge => "response too large",
            Self::Other => "error",
        }
    }
}

/// The `error` object of the API's error envelope:
/// `{"type": "error", "error": {"type", "message", "details"?}, "request_id"}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// `invalid_request_error`, `rate_limit_error`, … (an open set).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Extra details, e.g. `{"error_code": "enforced_spend_limit_reached"}`.
    #[serde(
        default,
        deserialize_with = "crate::macros::keep_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub details: Option<Value>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The whole error envelope.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// Always `"error"`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The error.
    pub error: ApiErrorBody,
    /// `req_…`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `error_code` the API uses when a monthly spend cap is reached (429 without
/// `retry-after`; retries keep failing until the next month).
pub const SPEND_CAP_ERROR_CODE: &str = "enforced_spend_limit_reached";

/// Every `error_code` of a spend limit (Dec-2026 API, SDK 2.16.0): retrying cannot succeed, so
/// [`Error::is_spend_cap`] is true and [`Error::is_retryable`] false for each.
/// (`ramp_limit_exceeded` is not among them: it is a 429 with `retry-after`, retried.)
pub const SPEND_LIMIT_ERROR_CODES: &[&str] =
    &[SPEND_CAP_ERROR_CODE, "contract_spend_limit_reached"];

/// The error type of every claude-tower service.
///
/// Opaque on purpose: match on [`Error::kind`] and read the details through the accessors.
/// It is `std::error::Error + Send + Sync + 'static`, so it converts into [`BoxError`] for
/// plain tower middleware, and [`From<BoxError>`] turns known tower errors back into kinds.
///
/// It never contains credentials: only response headers and bodies are kept.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    status: Option<StatusCode>,
    error_type: Option<String>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    should_retry: Option<bool>,
    details: Option<Value>,
    body: Option<Bytes>,
    headers: Option<HeaderMap>,
    partial: Option<Message>,
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a message.
    #[must_use]
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                status: None,
                error_type: None,
                request_id: None,
                retry_after: None,
                should_retry: None,
                details: None,
                body: None,
                headers: None,
                partial: None,
                source: None,
            }),
        }
    }

    /// [`ErrorKind::InvalidRequest`] with a message.
    #[must_use]
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// [`ErrorKind::Config`] with a message.
    #[must_use]
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// [`ErrorKind::Decode`] with a message.
    #[must_use]
    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Decode, message)
    }

    /// [`ErrorKind::TooLarge`]: `what` went past `limit` bytes.
    #[must_use]
    pub fn too_large(what: &str, limit: usize) -> Self {
        Self::new(
            ErrorKind::TooLarge,
            format!("{what} exceeds the limit of {limit} bytes; the connection was dropped"),
        )
    }

    /// [`ErrorKind::StreamInterrupted`] with a message.
    #[must_use]
    pub fn stream_interrupted(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::StreamInterrupted, message)
    }

    /// [`ErrorKind::Timeout`] with a message.
    #[must_use]
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// Maps an HTTP error response (status, headers, body) to an error, reading the JSON
    /// envelope, `request-id`, `retry-after-ms`/`retry-after` and `x-should-retry`.
    #[must_use]
    pub fn from_response(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Self {
        Self::from_response_at(status, headers, body, SystemTime::now())
    }

    /// [`Error::from_response`] with an explicit wall clock (for HTTP-date `retry-after`).
    #[must_use]
    pub fn from_response_at(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        now: SystemTime,
    ) -> Self {
        let envelope: Option<ErrorEnvelope> = serde_json::from_slice(&body).ok();
        let (error_type, message, details, body_request_id) = match envelope {
            Some(envelope) => (
                Some(envelope.error.kind).filter(|t| !t.is_empty()),
                envelope.error.message,
                envelope.error.details,
                envelope.request_id,
            ),
            None => {
                let text = String::from_utf8_lossy(&body);
                let text = text.trim();
                let message = if text.is_empty() {
                    status.canonical_reason().unwrap_or("no body").to_owned()
                } else {
                    text.chars().take(500).collect()
                };
                (None, message, None, None)
            }
        };
        let kind = kind_for(Some(status), error_type.as_deref());
        let request_id = header_str(headers, "request-id")
            .map(str::to_owned)
            .or(body_request_id);
        let mut error = Self::new(kind, message);
        let inner = &mut error.inner;
        inner.status = Some(status);
        inner.error_type = error_type;
        inner.request_id = request_id;
        inner.retry_after = parse_retry_after(headers, now);
        inner.should_retry = parse_should_retry(headers);
        inner.details = details;
        inner.body = Some(body);
        inner.headers = Some(headers.clone());
        error
    }

    /// Maps a mid-stream `error` event (sent after HTTP 200) to an error of the same kind an
    /// HTTP error of that type would have: `overloaded_error` → [`ErrorKind::Overloaded`], …
    #[must_use]
    pub fn from_stream_error(body: &ApiErrorBody) -> Self {
        let error_type = Some(body.kind.clone()).filter(|t| !t.is_empty());
        let kind = kind_for(None, error_type.as_deref());
        let mut error = Self::new(kind, body.message.clone());
        error.inner.error_type = error_type;
        error.inner.details.clone_from(&body.details);
        error
    }

    /// Sets the source error.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.inner.request_id = Some(request_id.into());
        self
    }

    /// Sets the server's (or a local limiter's) retry hint.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.inner.retry_after = Some(retry_after);
        self
    }

    /// Attaches the partial message accumulated before a stream broke.
    #[must_use]
    pub fn with_partial_message(mut self, message: Message) -> Self {
        self.inner.partial = Some(message);
        self
    }

    /// A copy of this error for another waiter (e.g. callers coalesced onto one upstream
    /// request). Everything is copied except the source, whose text is kept in the message.
    #[must_use]
    pub fn duplicate(&self) -> Self {
        let inner = &self.inner;
        let message = match &inner.source {
            Some(source) if !inner.message.contains(&source.to_string()) => {
                format!("{}: {source}", inner.message)
            }
            _ => inner.message.clone(),
        };
        Self {
            inner: Box::new(Inner {
                kind: inner.kind,
                message,
                status: inner.status,
                error_type: inner.error_type.clone(),
                request_id: inner.request_id.clone(),
                retry_after: inner.retry_after,
                should_retry: inner.should_retry,
                details: inner.details.clone(),
                body: inner.body.clone(),
                headers: inner.headers.clone(),
                partial: inner.partial.clone(),
                source: None,
            }),
        }
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The HTTP status, for errors the API answered with a status (not for mid-stream
    /// errors, which arrive after 200).
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The API's `error.type` (`rate_limit_error`, `overloaded_error`, …), an open set.
    #[must_use]
    pub fn error_type(&self) -> Option<&str> {
        self.inner.error_type.as_deref()
    }

    /// The human-readable message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The `request-id` response header (or the envelope's `request_id`).
    #[must_use]
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// How long the server asked to wait: `retry-after-ms`, else `retry-after` as seconds,
    /// else as an HTTP date (relative to the time the error was built).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The `x-should-retry` header, which overrides the status rule when present.
    #[must_use]
    pub fn should_retry_header(&self) -> Option<bool> {
        self.inner.should_retry
    }

    /// `error.details` of the envelope, if any.
    #[must_use]
    pub fn details(&self) -> Option<&Value> {
        self.inner.details.as_ref()
    }

    /// The raw error body.
    #[must_use]
    pub fn body(&self) -> Option<&Bytes> {
        self.inner.body.as_ref()
    }

    /// The response headers of an HTTP error (including `anthropic-ratelimit-*`).
    #[must_use]
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.inner.headers.as_ref()
    }

    /// The message accumulated before a stream broke, if a layer attached one.
    #[must_use]
    pub fn partial_message(&self) -> Option<&Message> {
        self.inner.partial.as_ref()
    }

    /// Whether this is a spend limit (`error.details.error_code` in
    /// [`SPEND_LIMIT_ERROR_CODES`]: the monthly spend cap, a contract's limit): retrying cannot
    /// help until the limit resets.
    #[must_use]
    pub fn is_spend_cap(&self) -> bool {
        self.error_code()
            .is_some_and(|code| SPEND_LIMIT_ERROR_CODES.contains(&code))
    }

    /// `error.details.error_code`, e.g. `ramp_limit_exceeded` (retryable with its hint) or a
    /// spend limit ([`SPEND_LIMIT_ERROR_CODES`], terminal).
    #[must_use]
    pub fn error_code(&self) -> Option<&str> {
        self.inner
            .details
            .as_ref()
            .and_then(|d| d.get("error_code"))
            .and_then(Value::as_str)
    }

    /// The official SDKs' retry rule: `x-should-retry` wins when present; otherwise 408, 409,
    /// 429 and every status ≥ 500, connection errors, timeouts, overloads and broken streams
    /// are retryable. Never the spend cap, never a request this library refused to send.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        if self.is_spend_cap() {
            return false;
        }
        if let Some(should_retry) = self.inner.should_retry {
            return should_retry;
        }
        match self.inner.kind {
            ErrorKind::Connect
            | ErrorKind::Timeout
            | ErrorKind::Overloaded
            | ErrorKind::StreamInterrupted => true,
            ErrorKind::RateLimited => {
                self.inner.status.is_some() || self.inner.error_type.is_some()
            }
            ErrorKind::Api => match self.inner.status {
                Some(status) => {
                    matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
                }
                None => matches!(self.error_type(), Some("api_error" | "timeout_error")),
            },
            _ => false,
        }
    }
}

fn kind_for(status: Option<StatusCode>, error_type: Option<&str>) -> ErrorKind {
    match (status.map(|s| s.as_u16()), error_type) {
        (Some(429), _) | (None, Some("rate_limit_error")) => ErrorKind::RateLimited,
        (Some(529), _) | (_, Some("overloaded_error")) => ErrorKind::Overloaded,
        _ => ErrorKind::Api,
    }
}

fn parse_should_retry(headers: &HeaderMap) -> Option<bool> {
    match header_str(headers, "x-should-retry")? {
        v if v.eq_ignore_ascii_case("true") => Some(true),
        v if v.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.kind.describe())?;
        match (self.inner.status, &self.inner.error_type) {
            (Some(status), Some(t)) => write!(f, " ({} {t})", status.as_u16())?,
            (Some(status), None) => write!(f, " ({})", status.as_u16())?,
            (None, Some(t)) => write!(f, " ({t})")?,
            (None, None) => {}
        }
        if !self.inner.message.is_empty() {
            write!(f, ": {}", self.inner.message)?;
        }
        if let Some(retry_after) = self.inner.retry_after {
            write!(f, "; retry after {:.3}s", retry_after.as_secs_f64())?;
        }
        if let Some(id) = &self.inner.request_id {
            write!(f, " [request-id {id}]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(status) = self.inner.status {
            d.field("status", &status.as_u16());
        }
        if let Some(t) = &self.inner.error_type {
            d.field("error_type", t);
        }
        if let Some(id) = &self.inner.request_id {
            d.field("request_id", id);
        }
        if let Some(r) = self.inner.retry_after {
            d.field("retry_after", &r);
        }
        if let Some(s) = self.inner.should_retry {
            d.field("should_retry", &s);
        }
        if let Some(details) = &self.inner.details {
            d.field("details", details);
        }
        if self.inner.partial.is_some() {
            d.field("partial_message", &true);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish_non_exhaustive()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<BoxError> for Error {
    /// Downcasts the errors tower middleware produces: our own [`Error`], tower's
    /// `timeout::error::Elapsed` (→ [`ErrorKind::Timeout`]) and `load_shed::error::Overloaded`
    /// (→ [`ErrorKind::Overloaded`]); anything else becomes [`ErrorKind::Other`].
    fn from(error: BoxError) -> Self {
        let error = match error.downcast::<Self>() {
            Ok(ours) => return *ours,
            Err(other) => other,
        };
        if error.is::<tower::timeout::error::Elapsed>() {
            return Self::timeout("request timed out").with_source(error);
        }
        if error.is::<tower::load_shed::error::Overloaded>() {
            return Self::new(ErrorKind::Overloaded, "service overloaded (load shed)")
                .with_source(error);
        }
        Self::new(ErrorKind::Other, error.to_string()).with_source(error)
    }
}

#[cfg(test)]
mod tests;
