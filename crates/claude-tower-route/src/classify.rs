//! What a fallback chain does with each outcome: move on, or answer.

use claude_tower_core::{Error, ErrorKind, Message, StopReason};

/// Why a fallback chain moved past a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Not sent: its context window is smaller than the request's estimated input.
    ContextWindow {
        /// The estimated input tokens.
        estimate: u64,
        /// The candidate's window.
        window: u64,
    },
    /// Not sent: a larger window is needed (an earlier candidate answered "prompt is too
    /// long") and this one's is not larger.
    WindowNotLarger {
        /// The candidate's window.
        window: u64,
    },
    /// Not sent: its circuit is open (or its one half-open probe is in flight).
    CircuitOpen,
    /// Sent and failed in a way another model may not (overload, 5xx, connection, timeout;
    /// after the retry layer below gave up).
    Failed {
        /// The error's kind.
        kind: ErrorKind,
        /// The HTTP status, when there was one.
        status: Option<u16>,
    },
    /// Sent; the API answered 400 "prompt is too long".
    PromptTooLong,
    /// Sent; the model refused (`stop_reason: "refusal"`).
    Refused {
        /// `stop_details.category`, when given.
        category: Option<String>,
        /// Whether its `fallback_credit_token` was carried to the next candidate.
        credit_carried: bool,
    },
}

/// Whether `error` says the model (or the path to it) is unhealthy: 529 /
/// `overloaded_error` (also mid-stream before content, as the retry layer reports it), 5xx,
/// connection errors and timeouts. Never 400, 401, 403, 404, 413, 429 (rate limits and spend
/// caps are about the caller's quota, not the model's health), refusals, or a request this
/// library refused to send.
///
/// ```
/// use claude_tower::core::{Error, ErrorKind};
/// use claude_tower::route::is_breaker_failure;
///
/// assert!(is_breaker_failure(&Error::new(ErrorKind::Overloaded, "overloaded")));
/// assert!(is_breaker_failure(&Error::new(ErrorKind::Timeout, "slow")));
/// assert!(!is_breaker_failure(&Error::new(ErrorKind::InvalidRequest, "bad")));
/// assert!(!is_breaker_failure(&Error::new(ErrorKind::RateLimited, "429")));
/// ```
#[must_use]
pub fn is_breaker_failure(error: &Error) -> bool {
    match error.kind() {
        ErrorKind::Overloaded
        | ErrorKind::Connect
        | ErrorKind::Timeout
        | ErrorKind::StreamInterrupted => true,
        ErrorKind::Api => match error.status() {
            Some(status) => status.is_server_error(),
            None => matches!(error.error_type(), Some("api_error" | "overloaded_error")),
        },
        _ => false,
    }
}

/// Whether `error` is the API's 400 "prompt is too long: N tokens > M maximum" (or a
/// `model_context_window_exceeded` error): a candidate with a larger window may answer.
#[must_use]
pub fn is_prompt_too_long(error: &Error) -> bool {
    if error.status().map(|s| s.as_u16()) != Some(400) && error.kind() != ErrorKind::Api {
        return false;
    }
    let message = error.message();
    message.contains("prompt is too long")
        || message.contains("model_context_window_exceeded")
        || error.error_code() == Some("model_context_window_exceeded")
}

/// A refusal's category and credit token, when `message` is a refusal.
pub(crate) fn refusal(message: &Message) -> Option<(Option<String>, Option<String>)> {
    if message.stop_reason != Some(StopReason::Refusal) {
        return None;
    }
    let details = message.stop_details.as_ref();
    let category = details
        .and_then(|d| d.get("category"))
        .and_then(|c| c.as_str())
        .map(str::to_owned);
    Some((category, message.fallback_credit_token().map(str::to_owned)))
}
