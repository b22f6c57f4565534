//! [`TransportBuilder`]: credentials, base URL, API version and timeouts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use claude_tower_core::Error;
use claude_tower_core::headers::{DEFAULT_API_VERSION, DEFAULT_BASE_URL};
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use crate::Transport;

/// How the transport authenticates.
#[derive(Clone)]
pub(crate) enum Auth {
    /// `x-api-key: <key>`
    ApiKey(SecretString),
    /// `Authorization: Bearer <token>`
    Bearer(SecretString),
}

impl Auth {
    pub(crate) fn header(&self) -> Result<(http::HeaderName, HeaderValue), Error> {
        let (name, value) = match self {
            Self::ApiKey(key) => (
                http::HeaderName::from_static("x-api-key"),
                key.expose_secret().to_owned(),
            ),
            Self::Bearer(token) => (
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.expose_secret()),
            ),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            Error::config("the credential contains characters not allowed in a header")
        })?;
        value.set_sensitive(true);
        Ok((name, value))
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey(_) => f.write_str("ApiKey([redacted])"),
            Self::Bearer(_) => f.write_str("Bearer([redacted])"),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) base_url: String,
    /// Host and port of `base_url`, put in every response's extensions.
    pub(crate) server: claude_tower_core::ext::ServerAddress,
    pub(crate) auth: Auth,
    pub(crate) api_version: HeaderValue,
    pub(crate) timeout: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_error_body_bytes: usize,
    pub(crate) max_event_bytes: usize,
}

/// Builds a [`Transport`]. Anything not set falls back to the environment
/// (`ANTHROPIC_API_KEY`, then `ANTHROPIC_AUTH_TOKEN`; `ANTHROPIC_BASE_URL`), then to the
/// defaults: base URL `https://api.anthropic.com`, `anthropic-version: 2023-06-01`, connect
/// timeout 5 s, total timeout 600 s (streams: until the response head, and the whole error
/// body of a failed stream), idle read timeout 600 s (between body chunks, so a stalled stream
/// fails), body caps [`DEFAULT_MAX_BODY_BYTES`], [`DEFAULT_MAX_ERROR_BODY_BYTES`] and
/// [`DEFAULT_MAX_EVENT_BYTES`], and no redirect following.
///
/// Credentials are held as [`SecretString`] and never printed.
#[derive(Default)]
pub struct TransportBuilder {
    api_key: Option<SecretString>,
    auth_token: Option<SecretString>,
    base_url: Option<String>,
    api_version: Option<String>,
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    max_body_bytes: Option<usize>,
    max_error_body_bytes: Option<usize>,
    max_event_bytes: Option<usize>,
    use_env: bool,
    client: Option<reqwest::Client>,
}

impl fmt::Debug for TransportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "[redacted]"),
            )
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_error_body_bytes", &self.max_error_body_bytes)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("use_env", &self.use_env)
            .finish_non_exhaustive()
    }
}

/// Default connect timeout (as the official SDKs).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default total timeout (as the official SDKs).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default cap of a JSON (non-streaming) response body: 64 MiB. A 128k-token reply is well
/// under 1 MiB; server-tool results (fetched pages, code output) make the rest of the room.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;
/// Default cap of an error body: 1 MiB (the API's error envelopes are under 1 KiB). A longer
/// one is cut there and the error keeps its status and kind.
pub const DEFAULT_MAX_ERROR_BODY_BYTES: usize = 1 << 20;
/// Default cap of one SSE line or event (its `data`): 16 MiB. Deltas are small; the largest
/// events are server-tool result blocks sent whole in `content_block_start`.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 << 20;

impl TransportBuilder {
    pub(crate) fn new() -> Self {
        Self {
            use_env: true,
            ..Self::default()
        }
    }

    claude_tower_core::setters! {
        /// Authenticate with an API key (`x-api-key`).
        pub fn api_key(key: impl Into<String>) => api_key = Some(SecretString::from(key.into()));
        /// Authenticate with a bearer token (`Authorization: Bearer`), e.g. OAuth.
        pub fn auth_token(token: impl Into<String>) => auth_token = Some(SecretString::from(token.into()));
        /// The API's base URL; a path prefix (`https://proxy.example/anthropic`) is kept.
        pub fn base_url(url: impl Into<String>) => base_url = Some(url.into());
        /// The `anthropic-version` header (default `2023-06-01`; `2026-10-21` exists). A request
        /// that carries its own `anthropic-version` header keeps it.
        pub fn api_version(version: impl Into<String>) => api_version = Some(version.into());
        /// Connect timeout (default 5 s).
        pub fn connect_timeout(timeout: Duration) => connect_timeout = Some(timeout);
        /// Total timeout of a non-streaming request, and time to the response head of a streaming
        /// one (default 600 s).
        pub fn timeout(timeout: Duration) => timeout = Some(timeout);
        /// Longest silence between two body chunks (default 600 s).
        pub fn read_timeout(timeout: Duration) => read_timeout = Some(timeout);
        /// Largest JSON response body read (default [`DEFAULT_MAX_BODY_BYTES`]); a longer one
        /// fails with [`ErrorKind::TooLarge`](claude_tower_core::ErrorKind::TooLarge) and drops the
        /// connection.
        pub fn max_body_bytes(bytes: usize) => max_body_bytes = Some(bytes);
        /// Largest error body read (default [`DEFAULT_MAX_ERROR_BODY_BYTES`]); the rest is not
        /// read, the connection is dropped, and the error keeps its status, kind and headers
        /// (its message says the body was cut).
        pub fn max_error_body_bytes(bytes: usize) => max_error_body_bytes = Some(bytes);
        /// Largest SSE line or event `data` (default [`DEFAULT_MAX_EVENT_BYTES`]); a longer one
        /// ends the stream with [`ErrorKind::TooLarge`](claude_tower_core::ErrorKind::TooLarge).
        pub fn max_event_bytes(bytes: usize) => max_event_bytes = Some(bytes);
    }

    /// Do not read `ANTHROPIC_*` environment variables.
    #[must_use]
    pub fn ignore_env(mut self) -> Self {
        self.use_env = false;
        self
    }

    claude_tower_core::setters! {
        /// Use this reqwest client (its own timeouts then apply instead of the connect and read
        /// timeouts set here).
        ///
        /// Build it with `redirect(reqwest::redirect::Policy::none())`: the API never redirects,
        /// and reqwest strips only `Authorization` on a cross-origin hop, not `x-api-key`. The
        /// transport's own client never follows redirects (a 3xx is an
        /// [`ErrorKind::Api`](claude_tower_core::ErrorKind::Api) error).
        pub fn client(client: reqwest::Client) => client = Some(client);
    }

    /// Builds the transport.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](claude_tower_core::ErrorKind::Config) when there are no
    /// credentials (so a missing key fails at start-up, not at the first call), when the base
    /// URL is not an `http(s)` URL, or when the HTTP client cannot be built.
    pub fn build(self) -> Result<Transport, Error> {
        let env = |name: &str| {
            if self.use_env {
                std::env::var(name).ok().filter(|v| !v.trim().is_empty())
            } else {
                None
            }
        };
        let auth = match (self.api_key, self.auth_token) {
            (Some(key), _) => Auth::ApiKey(key),
            (None, Some(token)) => Auth::Bearer(token),
            (None, None) => match (env("ANTHROPIC_API_KEY"), env("ANTHROPIC_AUTH_TOKEN")) {
                (Some(key), _) => Auth::ApiKey(SecretString::from(key)),
                (None, Some(token)) => Auth::Bearer(SecretString::from(token)),
                (None, None) => {
                    return Err(Error::config(
                        "no credentials: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) or call \
                         TransportBuilder::api_key",
                    ));
                }
            },
        };
        auth.header()?;
        let base_url = self
            .base_url
            .or_else(|| env("ANTHROPIC_BASE_URL"))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let base_url = base_url.trim().trim_end_matches('/').to_owned();
        let uri: http::Uri = base_url
            .parse()
            .map_err(|e| Error::config(format!("invalid base URL {base_url:?}: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(Error::config(format!(
                "base URL {base_url:?} must be an http(s) URL with a host"
            )));
        }
        let server = claude_tower_core::ext::ServerAddress::new(
            uri.host().unwrap_or_default(),
            uri.port_u16()
                .unwrap_or(if uri.scheme_str() == Some("http") {
                    80
                } else {
                    443
                }),
        );
        let version = self
            .api_version
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
        let api_version = HeaderValue::from_str(&version)
            .map_err(|_| Error::config(format!("invalid anthropic-version {version:?}")))?;
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
                .read_timeout(self.read_timeout.unwrap_or(DEFAULT_TIMEOUT))
                // The API does not redirect; following one could carry `x-api-key` (which
                // reqwest does not strip across origins) to another host.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?,
        };
        let config = Config {
            base_url,
            server,
            auth,
            api_version,
            timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
            max_body_bytes: self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            max_error_body_bytes: self
                .max_error_body_bytes
                .unwrap_or(DEFAULT_MAX_ERROR_BODY_BYTES),
            max_event_bytes: self.max_event_bytes.unwrap_or(DEFAULT_MAX_EVENT_BYTES),
        };
        Ok(Transport {
            client,
            config: Arc::new(config),
        })
    }
}
