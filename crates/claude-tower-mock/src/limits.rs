//! The mock's rate limits: the limits per model class and their token buckets.

use claude_tower_core::rate_limit::TokenBucket;

/// Limits of the mock, per model class (`opus`, `sonnet`, `haiku`, … by the model id): always
/// reported in the `anthropic-ratelimit-*` headers, and enforced (429 with `retry-after`)
/// when set with [`MockClaude::with_rate_limits`](crate::MockClaude::with_rate_limits). Buckets refill continuously on tokio's
/// clock, like the API's; ITPM counts `input_tokens + cache_creation_input_tokens` (cache
/// reads are exempt); OTPM is charged the real output after each reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MockLimits {
    /// Requests per minute.
    pub requests_per_minute: u64,
    /// Input tokens per minute.
    pub input_tokens_per_minute: u64,
    /// Output tokens per minute.
    pub output_tokens_per_minute: u64,
}

impl Default for MockLimits {
    fn default() -> Self {
        Self {
            requests_per_minute: 4_000,
            input_tokens_per_minute: 2_000_000,
            output_tokens_per_minute: 400_000,
        }
    }
}

impl MockLimits {
    /// Limits per minute.
    #[must_use]
    pub fn new(
        requests_per_minute: u64,
        input_tokens_per_minute: u64,
        output_tokens_per_minute: u64,
    ) -> Self {
        Self {
            requests_per_minute,
            input_tokens_per_minute,
            output_tokens_per_minute,
        }
    }
}

/// The buckets of one model class.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Buckets {
    pub(crate) requests: TokenBucket,
    pub(crate) input: TokenBucket,
    pub(crate) output: TokenBucket,
}

/// The mock's model classes: the family name in the id, else the id.
pub(crate) fn model_class(model: &str) -> &str {
    ["opus", "sonnet", "haiku", "fable", "mythos"]
        .into_iter()
        .find(|c| model.contains(c))
        .unwrap_or(model)
}
