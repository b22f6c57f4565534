//! Typed extensions: what layers tell each other and the caller, carried in
//! `http::Response::extensions()` (and request extensions for inputs such as a tenant key).
//!
//! Layer crates never depend on each other; the types they exchange live here.

use std::time::Duration;

use crate::error::ErrorKind;

/// How a response was obtained by the retry layer: put in the response extensions by
/// `claude-tower-retry`.
///
/// ```
/// use claude_tower_core::ext::Attempts;
/// let attempts = Attempts::default();
/// assert_eq!(attempts.count, 0);
/// assert_eq!(attempts.retries(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempts {
    /// Attempts made, the successful one included.
    pub count: u32,
    /// The delay slept before each retry, in order.
    pub delays: Vec<Duration>,
    /// The kind of each failed attempt, in order.
    pub errors: Vec<ErrorKind>,
}

impl Attempts {
    /// Retries made (`count - 1`, or 0).
    #[must_use]
    pub fn retries(&self) -> u32 {
        self.count.saturating_sub(1)
    }

    /// Total time slept between attempts.
    #[must_use]
    pub fn total_delay(&self) -> Duration {
        self.delays.iter().sum()
    }
}
