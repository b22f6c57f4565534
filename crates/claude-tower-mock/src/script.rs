//! Per-attempt fault scripts: what the mock does for the next requests.

use std::time::Duration;

use bytes::Bytes;
use claude_tower_core::{Message, SPEND_CAP_ERROR_CODE};
use http::StatusCode;
use serde_json::json;

/// Marker key of [`Attempt::compacted`] in `Attempt::usage`: the mock builds
/// `usage.iterations` from the reply's own totals when it sees it.
pub(crate) const ITERATIONS_COMPACTION: &str = "\u{0}compaction";

/// A request header that picks the mock's answer for that request (see [`Attempt::named`]);
/// it takes precedence over the script.
pub const MOCK_ATTEMPT_HEADER: &str = "x-mock-attempt";

/// What one attempt (one received request) does. Attempts are consumed in order; when the
/// script is empty the mock answers normally.
///
/// ```
/// use std::time::Duration;
/// use claude_tower::mock::Attempt;
///
/// let script = [
///     Attempt::rate_limited(Some(Duration::from_secs(2))),
///     Attempt::overloaded(),
///     Attempt::mid_stream_error(3, "overloaded_error").with_event_delay(Duration::from_millis(5)),
///     Attempt::ok(),
/// ];
/// # let _ = script;
/// ```
#[derive(Debug, Clone)]
pub struct Attempt {
    pub(crate) outcome: Outcome,
    /// Fields merged into the reply's `usage` (see [`Attempt::with_usage`]).
    pub(crate) usage: serde_json::Map<String, serde_json::Value>,
    pub(crate) first_byte_delay: Duration,
    pub(crate) event_delay: Duration,
}

#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Reply,
    /// The normal reply, stopped by a refusal with these `stop_details`.
    Refusal(serde_json::Value),
    Message(Box<Message>),
    Status {
        status: StatusCode,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    StreamError {
        after_events: usize,
        error_type: String,
        message: String,
    },
    Drop {
        after_events: usize,
    },
}

impl Attempt {
    fn new(outcome: Outcome) -> Self {
        Self {
            outcome,
            usage: serde_json::Map::new(),
            first_byte_delay: Duration::ZERO,
            event_delay: Duration::ZERO,
        }
    }

    /// Answer normally (the deterministic reply).
    #[must_use]
    pub fn ok() -> Self {
        Self::new(Outcome::Reply)
    }

    /// A refusal (`stop_reason: "refusal"`) with `stop_details` of `category` and, when given,
    /// a `fallback_credit_token` (Dec-2026 API, SDK 2.16.0: valid 5 minutes, it refunds the cache-miss
    /// cost of a retry on a fallback model).
    #[must_use]
    pub fn refusal(category: Option<&str>, fallback_credit_token: Option<&str>) -> Self {
        let mut details = json!({
            "type": "refusal",
            "category": category,
            "explanation": "This request was refused by the mock.",
        });
        if let Some(token) = fallback_credit_token {
            details["fallback_credit_token"] = json!(token);
        }
        Self::new(Outcome::Refusal(details))
    }

    /// Answer with this message (streamed as events when the request streams).
    #[must_use]
    pub fn message(message: Message) -> Self {
        Self::new(Outcome::Message(Box::new(message)))
    }

    /// Answer with `status` and the API's error envelope of `error_type` and `message`.
    #[must_use]
    pub fn error(status: u16, error_type: &str, message: &str) -> Self {
        let body = json!({
            "type": "error",
            "error": {"type": error_type, "message": message},
        });
        Self::raw(status, body.to_string())
    }

    /// Answer with `status` and exactly this body.
    ///
    /// # Panics
    /// If `status` is not a valid HTTP status code (100–999).
    #[must_use]
    pub fn raw(status: u16, body: impl Into<Bytes>) -> Self {
        Self::new(Outcome::Status {
            status: StatusCode::from_u16(status).expect("a valid HTTP status code"),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.into(),
        })
    }

    /// 429 `rate_limit_error`, with `retry-after` in whole seconds (rounded up) when given.
    #[must_use]
    pub fn rate_limited(retry_after: Option<Duration>) -> Self {
        let attempt = Self::error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        );
        match retry_after {
            Some(after) => {
                let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
                attempt.with_header("retry-after", secs.to_string())
            }
            None => attempt,
        }
    }

    /// 429 `rate_limit_error` with `retry-after-ms`.
    #[must_use]
    pub fn rate_limited_ms(millis: u64) -> Self {
        Self::error(429, "rate_limit_error", "rate limited")
            .with_header("retry-after-ms", millis.to_string())
    }

    /// The spend-cap 429: no `retry-after`, `error.details.error_code` =
    /// `enforced_spend_limit_reached`.
    #[must_use]
    pub fn spend_cap() -> Self {
        let body = json!({
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "You have reached your specified workspace API usage limits.",
                "details": {"error_code": SPEND_CAP_ERROR_CODE},
            },
        });
        Self::raw(429, body.to_string())
    }

    /// 529 `overloaded_error`.
    #[must_use]
    pub fn overloaded() -> Self {
        Self::error(529, "overloaded_error", "Overloaded")
    }

    /// 500 `api_error`.
    #[must_use]
    pub fn server_error() -> Self {
        Self::error(500, "api_error", "Internal server error")
    }

    /// A streamed answer that sends `after_events` events, then an `error` event of
    /// `error_type` (e.g. `overloaded_error`) and ends. A non-streaming request gets the HTTP
    /// error of that type instead (529 for `overloaded_error`, else 500).
    #[must_use]
    pub fn mid_stream_error(after_events: usize, error_type: &str) -> Self {
        Self::new(Outcome::StreamError {
            after_events,
            error_type: error_type.to_owned(),
            message: if error_type == "overloaded_error" {
                "Overloaded".to_owned()
            } else {
                "Internal server error".to_owned()
            },
        })
    }

    /// Drops the connection after `after_events` events (for a non-streaming request: before
    /// any response).
    #[must_use]
    pub fn drop_connection(after_events: usize) -> Self {
        Self::new(Outcome::Drop { after_events })
    }

    /// The attempt a request asks for in its [`MOCK_ATTEMPT_HEADER`] (`ok`, `rate_limited`,
    /// `overloaded`, `server_error`, `spend_cap`), for clients that cannot script the mock
    /// (an official SDK driving the mock binary).
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "ok" => Self::ok(),
            "rate_limited" => Self::rate_limited(Some(Duration::from_secs(1))),
            "overloaded" => Self::overloaded(),
            "server_error" => Self::server_error(),
            "spend_cap" => Self::spend_cap(),
            _ => return None,
        })
    }

    /// Adds a response header (e.g. `x-should-retry`, `retry-after`).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Outcome::Status { headers, .. } = &mut self.outcome {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// Merges `fields` (a JSON object) into the reply's `usage`, streamed in the final
    /// `message_delta` as the API does: e.g. `usage.iterations` or `usage.fallback_credit`.
    /// Fields that are not an object are ignored. See also [`Attempt::compacted`].
    #[must_use]
    pub fn with_usage(mut self, fields: serde_json::Value) -> Self {
        if let serde_json::Value::Object(fields) = fields {
            self.usage.extend(fields);
        }
        self
    }

    /// The normal reply after a server-side compaction that cost `input_tokens` in and
    /// `output_tokens` out: `usage.iterations` holds a `compaction` entry and the `message`
    /// entry (whose tokens are the top-level totals; compaction tokens are **not** in them,
    /// Dec-2026 API, SDK 2.16.0).
    #[must_use]
    pub fn compacted(input_tokens: u64, output_tokens: u64) -> Self {
        let mut attempt = Self::ok();
        attempt.usage.insert(
            ITERATIONS_COMPACTION.to_owned(),
            json!({"input_tokens": input_tokens, "output_tokens": output_tokens}),
        );
        attempt
    }

    claude_tower_core::setters! {
        /// Waits this long before the response head (time to first byte).
        pub fn with_first_byte_delay(delay: Duration) => first_byte_delay = delay;
        /// Waits this long before each streamed event.
        pub fn with_event_delay(delay: Duration) => event_delay = delay;
    }
}
