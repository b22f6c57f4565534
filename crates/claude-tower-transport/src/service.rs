//! The [`Transport`] service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use claude_tower_core::{Error, ErrorKind, EventStream, Message, MessagesBody, MessagesRequest};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Map, Value};

use crate::config::{Config, TransportBuilder};
use crate::future::ResponseFuture;

/// The leaf `tower::Service` of a claude-tower stack: sends
/// `http::Request<MessagesRequest>` to `POST {base}/v1/messages` with reqwest and returns
/// `http::Response<MessagesBody>`.
///
/// - Authenticates with `x-api-key` or `Authorization: Bearer` (unless the request carries its
///   own credentials header), sets `anthropic-version` unless the request has one, and passes
///   every request header through (`anthropic-beta`, custom headers).
/// - Validates the request first ([`MessagesRequest::validate`]): an invalid request fails
///   with [`ErrorKind::InvalidRequest`] before any byte is sent.
/// - `stream: true` in the body → the body is decoded incrementally as SSE into typed
///   [`StreamEvent`](claude_tower_core::StreamEvent)s as bytes arrive; a mid-stream `error` event becomes an `Err` with the
///   matching kind (e.g. [`ErrorKind::Overloaded`]).
/// - Non-2xx → [`Error`] with status, `error.type`, message, `request-id`, `retry-after`,
///   `x-should-retry` and the body. Response headers (request id, `anthropic-ratelimit-*`)
///   stay on the `http::Response`.
///
/// Always ready; cheap to clone (the client and config are shared).
#[derive(Clone)]
pub struct Transport {
    pub(crate) client: reqwest::Client,
    pub(crate) config: Arc<Config>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("base_url", &self.config.base_url)
            .field("auth", &self.config.auth)
            .field("api_version", &self.config.api_version)
            .field("timeout", &self.config.timeout)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A builder; see [`TransportBuilder`] for the defaults.
    #[must_use]
    pub fn builder() -> TransportBuilder {
        TransportBuilder::new()
    }

    /// A transport configured from the environment (`ANTHROPIC_API_KEY` or
    /// `ANTHROPIC_AUTH_TOKEN`, optional `ANTHROPIC_BASE_URL`).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when no credentials are set.
    pub fn from_env() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// The base URL requests go to.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// Counts the input tokens of a request with `POST /v1/messages/count_tokens` (exact, per
    /// model, free; has its own rate limit). Only the fields that endpoint accepts are sent.
    ///
    /// # Errors
    /// As for a Messages call.
    pub async fn count_tokens(
        &self,
        request: http::Request<MessagesRequest>,
    ) -> Result<u64, Error> {
        let (parts, body) = request.into_parts();
        if body.model.trim().is_empty() || body.messages.is_empty() {
            return Err(Error::invalid_request(
                "count_tokens needs a `model` and at least one message",
            ));
        }
        let full = serde_json::to_value(&body)
            .map_err(|e| Error::invalid_request(format!("cannot serialize request: {e}")))?;
        let mut count_body = Map::new();
        if let Value::Object(map) = full {
            for (key, value) in map {
                let accepted = matches!(
                    key.as_str(),
                    "model"
                        | "messages"
                        | "system"
                        | "tools"
                        | "tool_choice"
                        | "thinking"
                        | "cache_control"
                        | "output_config"
                );
                if accepted {
                    count_body.insert(key, value);
                }
            }
        }
        let bytes =
            serde_json::to_vec(&count_body).map_err(|e| Error::invalid_request(e.to_string()))?;
        let response = self
            .send("/v1/messages/count_tokens", &parts.headers, bytes, false)
            .await?;
        let request_id = request_id(response.headers());
        let body = read_capped(response, self.config.max_body_bytes, "the response body")
            .await?
            .map_err(|_| Error::too_large("the response body", self.config.max_body_bytes))?;
        let parsed: Value = serde_json::from_slice(&body).map_err(|e| {
            decode_error(
                format!("invalid count_tokens response: {e}"),
                request_id.as_deref(),
            )
        })?;
        parsed
            .get("input_tokens")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                decode_error(
                    "count_tokens response has no `input_tokens`".to_owned(),
                    request_id.as_deref(),
                )
            })
    }

    async fn send(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: Vec<u8>,
        stream: bool,
    ) -> Result<reqwest::Response, Error> {
        self.send_with(http::Method::POST, path, headers, body, stream)
            .await
    }

    /// Sends `method path` with the configured credentials and version; a non-success status
    /// is the API's error. `stream`: no total timeout on the body (it is read incrementally).
    pub(crate) async fn send_with(
        &self,
        method: http::Method,
        path: &str,
        headers: &HeaderMap,
        body: Vec<u8>,
        stream: bool,
    ) -> Result<reqwest::Response, Error> {
        let url = format!("{}{path}", self.config.base_url);
        let mut outgoing = headers.clone();
        outgoing.remove(header::HOST);
        outgoing.remove(header::CONTENT_LENGTH);
        if !outgoing.contains_key("x-api-key") && !outgoing.contains_key(header::AUTHORIZATION) {
            let (name, value) = self.config.auth.header()?;
            outgoing.insert(name, value);
        }
        // Credentials a request carries itself are secrets too (kept out of `Debug` and of
        // HTTP/2 header compression tables).
        for name in ["x-api-key", header::AUTHORIZATION.as_str()] {
            if let http::header::Entry::Occupied(mut entry) = outgoing.entry(name) {
                for value in entry.iter_mut() {
                    value.set_sensitive(true);
                }
            }
        }
        if !outgoing.contains_key("anthropic-version") {
            outgoing.insert("anthropic-version", self.config.api_version.clone());
        }
        outgoing.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        outgoing
            .entry(header::ACCEPT)
            .or_insert(HeaderValue::from_static("application/json"));

        let mut builder = self
            .client
            .request(method, &url)
            .headers(outgoing)
            .body(body);
        if !stream {
            builder = builder.timeout(self.config.timeout);
        }
        tracing::debug!(target: "claude_tower::transport", %url, stream, "sending request");
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let sent = tokio::time::timeout_at(deadline, builder.send()).await;
        let response = match sent {
            Err(_) => {
                return Err(Error::timeout(format!(
                    "no response head within {:?}",
                    self.config.timeout
                )));
            }
            Ok(Err(e)) => return Err(map_reqwest(&e, Phase::Send)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        tracing::debug!(
            target: "claude_tower::transport",
            status = status.as_u16(),
            request_id = request_id(response.headers()).as_deref().unwrap_or(""),
            "response head"
        );
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        // The error body is read under the same deadline as the head (a streaming call has no
        // reqwest timeout, and a trickling body must not hold the caller), and up to a cap.
        let limit = self.config.max_error_body_bytes;
        let read = tokio::time::timeout_at(deadline, read_capped(response, limit, "error body"));
        let (body, note) = match read.await {
            Ok(Ok(Ok(body))) => (body, None),
            Ok(Ok(Err(cut))) => (cut, Some(format!("error body cut at {limit} bytes"))),
            Ok(Err(_)) => (Bytes::new(), Some("error body unreadable".to_owned())),
            Err(_) => (
                Bytes::new(),
                Some(format!(
                    "error body not read within {:?}",
                    self.config.timeout
                )),
            ),
        };
        let error = Error::from_response(status, &headers, body);
        Err(match note {
            // Said, not silent: the error's `source()` tells that its body is incomplete.
            Some(note) => error.with_source(note),
            None => error,
        })
    }

    async fn messages(
        self,
        request: http::Request<MessagesRequest>,
    ) -> Result<http::Response<MessagesBody>, Error> {
        let (parts, body) = request.into_parts();
        body.validate()?;
        let stream = body.is_stream();
        let bytes = body.to_json()?;
        let response = self
            .send("/v1/messages", &parts.headers, bytes, stream)
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let request_id = request_id(&headers);
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = if stream && !is_json {
            MessagesBody::Stream(decode_sse(
                response,
                request_id,
                self.config.max_event_bytes,
            ))
        } else {
            let limit = self.config.max_body_bytes;
            let bytes = read_capped(response, limit, "the response body")
                .await?
                .map_err(|_| {
                    let error = Error::too_large("the response body", limit);
                    match request_id.as_deref() {
                        Some(id) => error.with_request_id(id),
                        None => error,
                    }
                })?;
            let message: Message = serde_json::from_slice(&bytes).map_err(|e| {
                decode_error(format!("invalid message JSON: {e}"), request_id.as_deref())
            })?;
            MessagesBody::Message(Box::new(message))
        };
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        out.extensions_mut().insert(self.config.server.clone());
        Ok(out)
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn decode_error(message: String, request_id: Option<&str>) -> Error {
    let error = Error::decode(message);
    match request_id {
        Some(id) => error.with_request_id(id),
        None => error,
    }
}

/// Reads a body up to `limit` bytes: `Ok(Ok(body))` when whole, `Ok(Err(first_bytes))` when
/// it is longer (the rest is never read; dropping the response drops the connection).
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Result<Bytes, Bytes>, Error> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        tracing::debug!(target: "claude_tower::transport", what, limit, "declared length over the limit");
        return Ok(Err(Bytes::new()));
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| map_reqwest(&e, Phase::Body))?
    {
        let room = limit - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok(Err(buf.freeze()));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Ok(buf.freeze()))
}

/// Decodes the SSE body incrementally into typed events.
fn decode_sse(
    response: reqwest::Response,
    request_id: Option<String>,
    max_event_bytes: usize,
) -> EventStream {
    let bytes = response
        .bytes_stream()
        .map(|chunk| chunk.map_err(|e| map_reqwest(&e, Phase::Stream)));
    crate::sse::decode_with_limit(bytes, request_id, max_event_bytes)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Send,
    Body,
    Stream,
}

fn map_reqwest(error: &reqwest::Error, phase: Phase) -> Error {
    // reqwest's Display names the URL only; no headers, so no credentials.
    let text = error.to_string();
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_connect() {
        ErrorKind::Connect
    } else if phase == Phase::Stream {
        ErrorKind::StreamInterrupted
    } else if error.is_decode() {
        ErrorKind::Decode
    } else {
        ErrorKind::Connect
    };
    let mut message = text;
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Error::new(kind, message)
}

impl tower_service::Service<http::Request<MessagesRequest>> for Transport {
    type Response = http::Response<MessagesBody>;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<MessagesRequest>) -> ResponseFuture {
        ResponseFuture::new(Box::pin(self.clone().messages(request)))
    }
}
