//! [`MockServer`]: the mock over real HTTP on a loopback port.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use claude_tower_core::{BoxError, MessagesRequest, StreamEvent};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::service::{MockClaude, PlanKind, timed_events};

type Body = BoxBody<Bytes, BoxError>;

/// The mock served over HTTP/1.1 on `127.0.0.1`, with the real wire format: JSON bodies, SSE
/// framing, the error envelope, `request-id` and `anthropic-ratelimit-*` headers.
///
/// - `POST …/v1/messages` and `POST …/v1/messages/count_tokens` (any path prefix, so a
///   base URL with a prefix works);
/// - requires credentials (`x-api-key` or `Authorization: Bearer`), checked against
///   [`MockServer::with_api_key`] when set (401 `authentication_error` otherwise), and an
///   `anthropic-version` header (any value, e.g. `2023-06-01` or `2026-10-21`);
/// - streams when the body says `"stream": true` (never decided from `Accept`);
/// - shares its script and record with [`MockServer::mock`]; stops when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use claude_tower::mock::MockServer;
///
/// let server = MockServer::start().await.unwrap();
/// assert!(server.base_url().starts_with("http://127.0.0.1:"));
/// assert_eq!(server.mock().request_count(), 0);
/// # }
/// ```
pub struct MockServer {
    addr: SocketAddr,
    mock: MockClaude,
    task: JoinHandle<()>,
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .field("mock", &self.mock)
            .finish()
    }
}

#[derive(Clone)]
struct Config {
    mock: MockClaude,
    api_key: Option<String>,
}

impl MockServer {
    /// Starts a server with a fresh [`MockClaude`] on a free loopback port.
    ///
    /// # Errors
    /// If the port cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// A builder for the server's options.
    #[must_use]
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder {
            mock: MockClaude::new(),
            api_key: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// Starts a server that shares `mock`'s script and record.
    ///
    /// # Errors
    /// If the port cannot be bound.
    pub async fn with_mock(mock: MockClaude) -> std::io::Result<Self> {
        Self::builder().mock(mock).start().await
    }

    /// `http://127.0.0.1:PORT`
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A [`Transport`](claude_tower_transport::Transport) ready to call this server: its base
    /// URL, a placeholder API key, and nothing read from the environment (feature
    /// `transport`).
    ///
    /// # Errors
    /// Only if the transport cannot be built (its TLS backend fails to initialise).
    #[cfg(feature = "transport")]
    pub fn transport(&self) -> Result<claude_tower_transport::Transport, claude_tower_core::Error> {
        claude_tower_transport::Transport::builder()
            .ignore_env()
            .api_key("sk-ant-mock")
            .base_url(self.base_url())
            .build()
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The mock behind the server (script it, read its record).
    #[must_use]
    pub fn mock(&self) -> &MockClaude {
        &self.mock
    }

    /// Serves until the future completes (used by the binary).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Options of a [`MockServer`].
#[derive(Debug)]
pub struct MockServerBuilder {
    mock: MockClaude,
    api_key: Option<String>,
    addr: SocketAddr,
}

impl MockServerBuilder {
    claude_tower_core::setters! {
        /// Share this mock's script and record.
        pub fn mock(mock: MockClaude) => mock = mock;
        /// Accept only this key (as `x-api-key` or `Authorization: Bearer`).
        pub fn api_key(key: impl Into<String>) => api_key = Some(key.into());
        /// Bind this address (default `127.0.0.1:0`).
        pub fn addr(addr: SocketAddr) => addr = addr;
    }

    /// Binds and starts serving in the background.
    ///
    /// # Errors
    /// If the address cannot be bound.
    pub async fn start(self) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(self.addr).await?;
        let addr = listener.local_addr()?;
        let config = Config {
            mock: self.mock.clone(),
            api_key: self.api_key,
        };
        let task = tokio::spawn(serve(listener, config));
        Ok(MockServer {
            addr,
            mock: self.mock,
            task,
        })
    }
}

impl MockServer {
    /// Starts a server that accepts only `api_key`.
    ///
    /// # Errors
    /// If the port cannot be bound.
    pub async fn with_api_key(api_key: impl Into<String>) -> std::io::Result<Self> {
        Self::builder().api_key(api_key).start().await
    }
}

async fn serve(listener: TcpListener, config: Config) {
    // Connection tasks live in the set: aborting the accept task drops the set, which aborts
    // every connection, so the server stops completely when the `MockServer` is dropped.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let config = config.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let config = config.clone();
                        async move { Ok::<_, Infallible>(handle(config, request).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn json_error(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    let body =
        serde_json::json!({"type": "error", "error": {"type": error_type, "message": message}});
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn authorized(headers: &HeaderMap, expected: Option<&str>) -> Result<(), &'static str> {
    let presented = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .filter(|key| !key.is_empty());
    match (presented, expected) {
        (None, _) => Err("x-api-key header is required"),
        (Some(key), Some(expected)) if key != expected => Err("invalid x-api-key"),
        _ => Ok(()),
    }
}

async fn handle(config: Config, request: http::Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if path.starts_with("/v1/messages/batches") {
        if let Err(message) = authorized(&parts.headers, config.api_key.as_deref()) {
            return json_error(StatusCode::UNAUTHORIZED, "authentication_error", message);
        }
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let answer = crate::server_batches::answer(
            &config.mock,
            &parts.method,
            &path,
            parts.uri.query(),
            &parts.headers,
            &bytes,
        )
        .await;
        let Some((status, content_type, body)) = answer else {
            return json_error(StatusCode::NOT_FOUND, "not_found_error", "Not found");
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        return response;
    }
    let is_count = path.ends_with("/v1/messages/count_tokens");
    if parts.method != http::Method::POST || !(is_count || path.ends_with("/v1/messages")) {
        return json_error(StatusCode::NOT_FOUND, "not_found_error", "Not found");
    }
    if let Err(message) = authorized(&parts.headers, config.api_key.as_deref()) {
        return json_error(StatusCode::UNAUTHORIZED, "authentication_error", message);
    }
    if !parts.headers.contains_key("anthropic-version") {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    let Ok(collected) = body.collect().await else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "could not read the body",
        );
    };
    let mut json: serde_json::Value = match serde_json::from_slice(&collected.to_bytes()) {
        Ok(json) => json,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("invalid JSON body: {e}"),
            );
        }
    };
    if is_count && let Some(map) = json.as_object_mut() {
        // count_tokens takes no `max_tokens`.
        map.entry("max_tokens").or_insert(serde_json::json!(1));
    }
    let parsed: MessagesRequest = match serde_json::from_value(json) {
        Ok(parsed) => parsed,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("invalid JSON body: {e}"),
            );
        }
    };
    if is_count {
        let tokens = config.mock.count_tokens(&parsed);
        let mut response = Response::new(full(
            serde_json::json!({"input_tokens": tokens}).to_string(),
        ));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return response;
    }
    let plan = config.mock.plan(&path, &parts.headers, &parsed);
    if !plan.first_byte_delay.is_zero() {
        tokio::time::sleep(plan.first_byte_delay).await;
    }
    let (status, headers, body) = match plan.kind {
        PlanKind::Error {
            status,
            headers,
            body,
        } => (status, headers, full(body)),
        PlanKind::Message {
            mut headers,
            message,
        } => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let json = serde_json::to_vec(&message).unwrap_or_default();
            (StatusCode::OK, headers, full(json))
        }
        PlanKind::Stream {
            mut headers,
            events,
            fault,
        } => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            let frames = timed_events(events, plan.event_delay, fault).then(|item| async move {
                match item {
                    Ok(event) => Ok(Frame::data(Bytes::from(sse_frame(&event)))),
                    Err(error) => {
                        // Let hyper flush what was sent before cutting the connection.
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Err(BoxError::from(error))
                    }
                }
            });
            (
                StatusCode::OK,
                headers,
                BodyExt::boxed(StreamBody::new(frames)),
            )
        }
        PlanKind::Drop => {
            // An error body makes hyper close the connection without a response.
            let dropped = futures_util::stream::once(async {
                Err::<Frame<Bytes>, BoxError>("connection dropped by the mock".into())
            });
            (
                StatusCode::OK,
                HeaderMap::new(),
                BodyExt::boxed(StreamBody::new(dropped)),
            )
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn sse_frame(event: &StreamEvent) -> String {
    event.to_sse()
}
