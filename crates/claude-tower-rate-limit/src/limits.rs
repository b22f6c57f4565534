//! [`Limits`] of a pool or key, the [`OutputReservation`] and the rate-limit [`Dimension`]s.

/// Per-minute limits of a pool (or of each key). `None` = not limited on that dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Input tokens per minute (uncached input + cache writes; reads only for models that
    /// count them).
    pub input_tokens_per_minute: Option<u64>,
    /// Output tokens per minute.
    pub output_tokens_per_minute: Option<u64>,
    /// Requests in flight at once (a response counts until it is read, a stream until it
    /// ends). Per process: a concurrency limit is not shared through the store.
    pub max_concurrent: Option<usize>,
}

impl Limits {
    /// RPM, ITPM and OTPM, e.g. a tier's row for a model class.
    #[must_use]
    pub fn new(
        requests_per_minute: u64,
        input_tokens_per_minute: u64,
        output_tokens_per_minute: u64,
    ) -> Self {
        Self {
            requests_per_minute: Some(requests_per_minute),
            input_tokens_per_minute: Some(input_tokens_per_minute),
            output_tokens_per_minute: Some(output_tokens_per_minute),
            max_concurrent: None,
        }
    }

    /// No limits yet: learn them from the first response's `anthropic-ratelimit-*-limit`
    /// headers (with adaptive mode on, the default).
    #[must_use]
    pub fn learn() -> Self {
        Self::default()
    }

    claude_tower_core::setters! {
        /// Sets requests per minute.
        pub fn with_requests_per_minute(n: u64) => requests_per_minute = Some(n);
        /// Sets input tokens per minute.
        pub fn with_input_tokens_per_minute(n: u64) => input_tokens_per_minute = Some(n);
        /// Sets output tokens per minute.
        pub fn with_output_tokens_per_minute(n: u64) => output_tokens_per_minute = Some(n);
        /// Sets the most requests in flight at once (waits for a slot count toward `max_wait`).
        pub fn with_max_concurrent(n: usize) => max_concurrent = Some(n);
    }

    pub(crate) fn min(self, other: Self) -> Self {
        let pick = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            requests_per_minute: pick(self.requests_per_minute, other.requests_per_minute),
            input_tokens_per_minute: pick(
                self.input_tokens_per_minute,
                other.input_tokens_per_minute,
            ),
            output_tokens_per_minute: pick(
                self.output_tokens_per_minute,
                other.output_tokens_per_minute,
            ),
            max_concurrent: match (self.max_concurrent, other.max_concurrent) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// How many output tokens to reserve before sending (reconciled with the real output after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputReservation {
    /// The request's `max_tokens` (the default; never under-reserves).
    MaxTokens,
    /// A percentage of `max_tokens` (1–100).
    Percent(u8),
    /// A fixed number, capped at `max_tokens`.
    Fixed(u64),
}

/// A rate-limit dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dimension {
    /// Requests per minute.
    Requests,
    /// Input tokens per minute.
    InputTokens,
    /// Output tokens per minute.
    OutputTokens,
}

impl Dimension {
    pub(crate) const ALL: [Self; 3] = [Self::Requests, Self::InputTokens, Self::OutputTokens];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::InputTokens => "input tokens",
            Self::OutputTokens => "output tokens",
        }
    }

    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::InputTokens => "input",
            Self::OutputTokens => "output",
        }
    }

    pub(crate) fn of(self, limits: &Limits) -> Option<u64> {
        match self {
            Self::Requests => limits.requests_per_minute,
            Self::InputTokens => limits.input_tokens_per_minute,
            Self::OutputTokens => limits.output_tokens_per_minute,
        }
    }
}
