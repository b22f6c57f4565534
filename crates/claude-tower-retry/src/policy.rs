//! Retry policies: which failures are retried, and after how long.

use std::fmt;
use std::time::Duration;

use claude_tower_core::Error;

use crate::error::InvalidConfig;

/// Decides, for a failed attempt, whether to retry and after what delay.
///
/// `retries` is the number of retries already taken (0 when deciding the first retry).
/// Return `None` to give up; the error then goes to the caller unchanged.
///
/// The retry budget, the overall deadline (`max_elapsed`) and the "no retry after content"
/// rule for streams are applied by [`Retry`](crate::Retry) on top of any policy.
pub trait Policy: fmt::Debug + Send + Sync + 'static {
    /// The delay before the next attempt, or `None` to give up.
    fn retry(&self, error: &Error, retries: u32) -> Option<Duration>;
}

/// The official SDKs' retry contract, with one deliberate difference:
/// a server hint longer than `max_server_delay` gives up at once (the error carries
/// `retry_after`) instead of sleeping through it or ignoring it.
///
/// - up to `max_retries` retries (default 2, so 3 attempts);
/// - retried: `x-should-retry: true`, else 408, 409, 429, every status ≥ 500 (529 included),
///   connection errors, timeouts, broken streams and mid-stream `overloaded_error` /
///   `api_error`; never when `x-should-retry: false`, never the spend-cap 429, never other
///   4xx, never a request refused before sending;
/// - delay: the server's `retry-after-ms`, else `retry-after` (seconds or HTTP date), when
///   positive; else `min(initial · 2ⁿ, max) · (1 − jitter · U)` with `U` uniform in [0, 1):
///   0.375–0.5 s, then 0.75–1 s, 1.5–2 s, … up to 6–8 s with the defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SdkPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    jitter: f64,
    max_server_delay: Duration,
}

impl Default for SdkPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            jitter: 0.25,
            max_server_delay: claude_tower_core::DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

impl SdkPolicy {
    /// The SDK defaults: 2 retries, 0.5 s doubling to 8 s, −25 % jitter, hints up to 60 s.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    claude_tower_core::setters! {
        /// Maximum number of retries.
        pub fn max_retries(max_retries: u32) => max_retries = max_retries;
        /// First computed backoff (before jitter).
        pub fn initial_backoff(backoff: Duration) => initial_backoff = backoff;
        /// Cap of the computed backoff.
        pub fn max_backoff(backoff: Duration) => max_backoff = backoff;
    }

    /// Fraction removed at random from each computed backoff.
    ///
    /// # Errors
    /// When `jitter` is not within 0.0–1.0.
    pub fn jitter(mut self, jitter: f64) -> Result<Self, InvalidConfig> {
        if !(0.0..=1.0).contains(&jitter) {
            return Err(InvalidConfig::new(format!(
                "jitter must be within 0.0–1.0, got {jitter}"
            )));
        }
        self.jitter = jitter;
        Ok(self)
    }

    claude_tower_core::setters! {
        /// Longest server hint (`retry-after`) honoured; a longer one gives up at once.
        pub fn max_server_delay(delay: Duration) => max_server_delay = delay;
    }

    /// The configured maximum number of retries.
    #[must_use]
    pub fn retries_allowed(&self) -> u32 {
        self.max_retries
    }

    /// The computed backoff before retry number `retries + 1`, for a given `u` in [0, 1).
    #[must_use]
    pub fn backoff(&self, retries: u32, u: f64) -> Duration {
        let exp = 2f64.powi(i32::try_from(retries.min(1000)).unwrap_or(1000));
        let base = (self.initial_backoff.as_secs_f64() * exp).min(self.max_backoff.as_secs_f64());
        claude_tower_core::saturating_secs(
            base * (1.0 - self.jitter * u.clamp(0.0, 1.0)),
            self.max_backoff,
        )
    }
}

impl Policy for SdkPolicy {
    fn retry(&self, error: &Error, retries: u32) -> Option<Duration> {
        if retries >= self.max_retries || !error.is_retryable() {
            return None;
        }
        match error.retry_after() {
            Some(hint) if hint > self.max_server_delay => {
                tracing::debug!(
                    target: "claude_tower::retry",
                    retry_after = ?hint,
                    max = ?self.max_server_delay,
                    "server asked to wait longer than max_server_delay; giving up"
                );
                None
            }
            Some(hint) if !hint.is_zero() => Some(hint),
            _ => Some(self.backoff(retries, fastrand::f64())),
        }
    }
}

/// Never retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoRetry;

impl Policy for NoRetry {
    fn retry(&self, _error: &Error, _retries: u32) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_object_safe() {
        fn _assert(_: &dyn Policy) {}
    }

    #[test]
    fn backoff_matches_the_sdk_ranges() {
        let p = SdkPolicy::default();
        let ranges = [
            (0.375, 0.5),
            (0.75, 1.0),
            (1.5, 2.0),
            (3.0, 4.0),
            (6.0, 8.0),
            (6.0, 8.0),
        ];
        for (n, (lo, hi)) in ranges.iter().enumerate() {
            let n = u32::try_from(n).unwrap();
            assert!((p.backoff(n, 0.0).as_secs_f64() - hi).abs() < 1e-9);
            let low = p.backoff(n, 0.999_999).as_secs_f64();
            assert!(low > *lo && low < lo + 1e-5, "{n}: {low}");
        }
        assert_eq!(p.backoff(5000, 0.0), Duration::from_secs(8));
    }

    #[test]
    fn jitter_is_validated() {
        assert!(SdkPolicy::default().jitter(1.5).is_err());
        assert!(SdkPolicy::default().jitter(0.0).is_ok());
    }
}
