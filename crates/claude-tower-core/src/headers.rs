//! Header names and defaults of the Messages API (the Messages API reference; the rate-limits docs).

/// `x-api-key`: the API key.
pub const X_API_KEY: &str = "x-api-key";
/// `anthropic-version`: the API version.
pub const ANTHROPIC_VERSION: &str = "anthropic-version";
/// `anthropic-beta`: comma-separated beta names (or the header repeated).
pub const ANTHROPIC_BETA: &str = "anthropic-beta";
/// `request-id` response header (`req_…`).
pub const REQUEST_ID: &str = "request-id";
/// `retry-after` response header (seconds or an HTTP date).
pub const RETRY_AFTER: &str = "retry-after";
/// `retry-after-ms` response header (milliseconds, takes precedence).
pub const RETRY_AFTER_MS: &str = "retry-after-ms";
/// `x-should-retry` response header (`true`/`false`, overrides the status rule).
pub const X_SHOULD_RETRY: &str = "x-should-retry";
/// Prefix of the rate-limit response headers.
pub const RATELIMIT_PREFIX: &str = "anthropic-ratelimit-";
/// `anthropic-workspace-id` request header (Dec-2026 API, SDK 2.16.0): forwarded; the default tenant of
/// [`Attribution`](crate::ext::Attribution).
pub const ANTHROPIC_WORKSPACE_ID: &str = "anthropic-workspace-id";
/// `anthropic-user-profile-id` request header (Dec-2026 API, SDK 2.16.0): forwarded; the default user of
/// [`Attribution`](crate::ext::Attribution).
pub const ANTHROPIC_USER_PROFILE_ID: &str = "anthropic-user-profile-id";
/// The API version sent unless configured otherwise. `2026-10-21` (SDK 2.x) also exists: with
/// it API keys go as `Authorization: Bearer`, and `{"role": "system"}` items in `messages`
/// are first-class; claude-tower accepts and passes through both versions and both auth
/// headers (a request's own `anthropic-version` header wins).
pub const DEFAULT_API_VERSION: &str = "2023-06-01";
/// The API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// A header's value as trimmed text (`None` when absent or not visible ASCII).
pub(crate) fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}
