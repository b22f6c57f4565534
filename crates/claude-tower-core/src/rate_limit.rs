//! Rate-limit primitives shared by the rate limiter and the mock: a continuously refilling
//! [`TokenBucket`] (the API's model, the rate-limits docs) and the `anthropic-ratelimit-*` headers
//! ([`RateLimitHeaders`], §4.2).
// Bytes and numbers from the network: no indexing, unchecked arithmetic or unwrapping here
// (the hardening issue); exceptions carry an `expect` with the reason.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// A token bucket that refills continuously at `capacity` per minute, as the API's limits do
/// ("capacity is continuously replenished up to your maximum limit").
///
/// Reservations may put the bucket into **debt**: a reservation that does not fit now is
/// granted a wait ([`TokenBucket::reserve`]) and later reservations queue behind it, which makes
/// admission first-come first-served without a queue. Time is passed in, so the same code
/// runs on tokio's (pausable) clock or on a shared store's clock.
///
/// ```
/// use std::time::Duration;
/// use claude_tower::core::rate_limit::TokenBucket;
///
/// let mut bucket = TokenBucket::full(60, Duration::ZERO); // 60 per minute = 1 per second
/// assert_eq!(bucket.reserve(60, Duration::ZERO, Duration::MAX), Ok(Duration::ZERO));
/// // Empty now: the next one waits one second.
/// assert_eq!(bucket.reserve(1, Duration::ZERO, Duration::MAX), Ok(Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    /// The time `tokens` was computed at (an offset on the caller's clock).
    at: Duration,
}

/// The longest wait a bucket ever computes (a year): waits saturate here instead of
/// overflowing a [`Duration`].
const MAX_WAIT: Duration = Duration::from_secs(365 * 86_400);

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The amount is larger than the bucket: it can never fit.
    TooLarge,
    /// It would fit only after `wait`, which is longer than allowed.
    WouldWait(Duration),
}

impl TokenBucket {
    /// A full bucket of `per_minute` tokens at time `now`.
    #[must_use]
    pub fn full(per_minute: u64, now: Duration) -> Self {
        let capacity = per_minute as f64;
        Self {
            capacity,
            tokens: capacity,
            at: now,
        }
    }

    /// The capacity (the per-minute limit).
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.capacity as u64
    }

    fn rate_per_sec(&self) -> f64 {
        self.capacity / 60.0
    }

    fn refill(&mut self, now: Duration) {
        if now > self.at {
            let elapsed = now.saturating_sub(self.at).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate_per_sec()).min(self.capacity);
            self.at = now;
        }
    }

    /// Tokens available at `now` (negative while in debt).
    #[must_use]
    pub fn available(&self, now: Duration) -> f64 {
        let mut copy = *self;
        copy.refill(now);
        copy.tokens
    }

    /// How long until `amount` tokens are available, without reserving.
    ///
    /// # Errors
    /// [`Refusal::TooLarge`] when `amount` exceeds the capacity.
    pub fn wait_for(&self, amount: u64, now: Duration) -> Result<Duration, Refusal> {
        if amount as f64 > self.capacity {
            return Err(Refusal::TooLarge);
        }
        let missing = amount as f64 - self.available(now);
        if missing <= 0.0 {
            return Ok(Duration::ZERO);
        }
        let rate = self.rate_per_sec();
        if rate <= 0.0 {
            return Err(Refusal::TooLarge);
        }
        Ok(crate::retry_after::saturating_secs(
            missing / rate,
            MAX_WAIT,
        ))
    }

    /// Reserves `amount` tokens: returns how long the caller must wait before using them
    /// (zero when available now), or refuses without reserving when the amount can never fit
    /// or the wait would exceed `max_wait`.
    ///
    /// # Errors
    /// [`Refusal`] as above.
    pub fn reserve(
        &mut self,
        amount: u64,
        now: Duration,
        max_wait: Duration,
    ) -> Result<Duration, Refusal> {
        let wait = self.wait_for(amount, now)?;
        if wait > max_wait {
            return Err(Refusal::WouldWait(wait));
        }
        self.take(amount as f64, now);
        Ok(wait)
    }

    /// Removes tokens unconditionally (may go into debt); a negative amount gives tokens back
    /// (never above capacity).
    ///
    /// Amounts come from untrusted usage reports, so one call moves at most one full bucket
    /// either way (a NaN moves nothing): a reply claiming `u64::MAX` output tokens costs the
    /// pool at most a minute of refill, never years.
    pub fn take(&mut self, amount: f64, now: Duration) {
        self.refill(now);
        let amount = if amount.is_nan() {
            0.0
        } else {
            amount.clamp(-self.capacity, self.capacity)
        };
        self.tokens = (self.tokens - amount).min(self.capacity);
    }

    /// Lowers the tokens to at most `remaining` (a server's view, which also counts other
    /// clients); never raises them.
    pub fn correct(&mut self, remaining: u64, now: Duration) {
        self.refill(now);
        self.tokens = self.tokens.min(remaining as f64);
    }

    /// Changes the capacity (e.g. to a server's `*-limit`), keeping the tokens within it (a
    /// no-op when it is unchanged).
    pub fn set_capacity(&mut self, per_minute: u64, now: Duration) {
        let capacity = per_minute as f64;
        if capacity.to_bits() == self.capacity.to_bits() {
            return;
        }
        self.refill(now);
        self.capacity = capacity;
        self.tokens = self.tokens.min(self.capacity);
    }

    /// Time until the bucket is full again.
    #[must_use]
    pub fn until_full(&self, now: Duration) -> Duration {
        let missing = self.capacity - self.available(now);
        let rate = self.rate_per_sec();
        if missing <= 0.0 || rate <= 0.0 {
            Duration::ZERO
        } else {
            crate::retry_after::saturating_secs(missing / rate, MAX_WAIT)
        }
    }
}

/// One family of rate-limit headers (`requests`, `input-tokens`, `output-tokens`, `tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitState {
    /// `*-limit`
    pub limit: Option<u64>,
    /// `*-remaining`
    pub remaining: Option<u64>,
    /// `*-reset`, as time from the response until the bucket is full again.
    pub reset_in: Option<Duration>,
}

/// The `anthropic-ratelimit-*` headers of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RateLimitHeaders {
    /// `anthropic-ratelimit-requests-*`
    pub requests: LimitState,
    /// `anthropic-ratelimit-input-tokens-*`
    pub input_tokens: LimitState,
    /// `anthropic-ratelimit-output-tokens-*`
    pub output_tokens: LimitState,
    /// `anthropic-ratelimit-tokens-*` (the most restrictive token limit in effect)
    pub tokens: LimitState,
}

impl RateLimitHeaders {
    /// Parses the headers; resets (RFC 3339) are made relative to `now`.
    #[must_use]
    pub fn parse(headers: &HeaderMap, now: SystemTime) -> Self {
        /// `[limit, remaining, reset]` header names of each family (no formatting per call).
        const NAMES: [[&str; 3]; 4] = [
            [
                "anthropic-ratelimit-requests-limit",
                "anthropic-ratelimit-requests-remaining",
                "anthropic-ratelimit-requests-reset",
            ],
            [
                "anthropic-ratelimit-input-tokens-limit",
                "anthropic-ratelimit-input-tokens-remaining",
                "anthropic-ratelimit-input-tokens-reset",
            ],
            [
                "anthropic-ratelimit-output-tokens-limit",
                "anthropic-ratelimit-output-tokens-remaining",
                "anthropic-ratelimit-output-tokens-reset",
            ],
            [
                "anthropic-ratelimit-tokens-limit",
                "anthropic-ratelimit-tokens-remaining",
                "anthropic-ratelimit-tokens-reset",
            ],
        ];
        if headers.is_empty() {
            return Self::default();
        }
        let family = |[limit, remaining, reset]: [&str; 3]| {
            let get = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
            };
            LimitState {
                limit: get(limit).and_then(|v| v.parse().ok()),
                remaining: get(remaining).and_then(|v| v.parse().ok()),
                reset_in: get(reset)
                    .and_then(parse_rfc3339)
                    .map(|t| t.duration_since(now).unwrap_or(Duration::ZERO)),
            }
        };
        let [requests, input_tokens, output_tokens, tokens] = NAMES;
        Self {
            requests: family(requests),
            input_tokens: family(input_tokens),
            output_tokens: family(output_tokens),
            tokens: family(tokens),
        }
    }

    /// Whether any family was present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; `None` for anything else (never panics).
#[must_use]
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes.get(4) != Some(&b'-')
        || bytes.get(7) != Some(&b'-')
        || !matches!(bytes.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let num = |range| num_at(text, range);
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = text.get(19..)?;
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        rest = frac.get(digits.len()..)?;
        let padded = format!("{digits:0<9}");
        nanos = padded.get(..9)?.parse().ok()?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours = num_at(rest, 1..3)?;
            let minutes = num_at(rest, 4..6)?;
            hours
                .checked_mul(3600)?
                .checked_add(minutes.checked_mul(60)?)?
                .checked_mul(sign)?
        }
    };
    let days = days_from_civil(year, month, day)?;
    let secs = days
        .checked_mul(86_400)?
        .checked_add(hour.checked_mul(3600)?)?
        .checked_add(minute.checked_mul(60)?)?
        .checked_add(second)?
        .checked_sub(offset)?;
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// The decimal number at `range` of `text`: digits only (no sign), so every field is small.
fn num_at(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let field = text.get(range)?;
    field
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| field.parse::<i64>().ok())?
}

/// Howard Hinnant's civil-to-days algorithm (checked: `None` instead of an overflow).
fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = month.checked_add(9)?.checked_rem(12)?;
    let doy = mp
        .checked_mul(153)?
        .checked_add(2)?
        .checked_div(5)?
        .checked_add(day)?
        .checked_sub(1)?;
    let doe = yoe
        .checked_mul(365)?
        .checked_add(yoe / 4)?
        .checked_sub(yoe / 100)?
        .checked_add(doy)?;
    era.checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_debt_and_refusals() {
        let mut bucket = TokenBucket::full(600, Duration::ZERO); // 10/s
        assert_eq!(
            bucket.reserve(600, Duration::ZERO, Duration::MAX),
            Ok(Duration::ZERO)
        );
        assert_eq!(
            bucket.reserve(10, Duration::ZERO, Duration::MAX),
            Ok(Duration::from_secs(1))
        );
        // Queued behind the first waiter.
        assert_eq!(
            bucket.reserve(10, Duration::ZERO, Duration::MAX),
            Ok(Duration::from_secs(2))
        );
        assert_eq!(
            bucket.reserve(10, Duration::ZERO, Duration::from_secs(2)),
            Err(Refusal::WouldWait(Duration::from_secs(3)))
        );
        assert_eq!(
            bucket.reserve(601, Duration::ZERO, Duration::MAX),
            Err(Refusal::TooLarge)
        );
        // After 2 s the debt is paid.
        assert!((bucket.available(Duration::from_secs(2))).abs() < 1e-9);
        bucket.take(-1000.0, Duration::from_secs(2));
        assert!(
            (bucket.available(Duration::from_secs(2)) - 600.0).abs() < 1e-9,
            "refunds stop at capacity"
        );
    }

    #[test]
    fn absurd_amounts_never_panic_and_cost_at_most_a_bucket() {
        let mut bucket = TokenBucket::full(600, Duration::ZERO);
        bucket.take(u64::MAX as f64, Duration::ZERO);
        assert!(bucket.available(Duration::ZERO).abs() < 1e-9);
        assert_eq!(bucket.until_full(Duration::ZERO), Duration::from_secs(60));
        bucket.take(f64::NAN, Duration::ZERO);
        bucket.take(f64::INFINITY, Duration::ZERO);
        assert!(bucket.wait_for(600, Duration::ZERO).unwrap() <= Duration::from_secs(180));
        assert_eq!(
            bucket.wait_for(u64::MAX, Duration::ZERO),
            Err(Refusal::TooLarge)
        );
        let tiny = TokenBucket::full(1, Duration::ZERO);
        assert!(tiny.wait_for(1, Duration::ZERO).is_ok());
    }

    #[test]
    fn correction_only_lowers() {
        let mut bucket = TokenBucket::full(1000, Duration::ZERO);
        bucket.correct(400, Duration::ZERO);
        assert!((bucket.available(Duration::ZERO) - 400.0).abs() < 1e-9);
        bucket.correct(900, Duration::ZERO);
        assert!((bucket.available(Duration::ZERO) - 400.0).abs() < 1e-9);
    }

    #[test]
    fn headers_parse_with_rfc3339_resets() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "anthropic-ratelimit-input-tokens-limit",
            "30000".parse().unwrap(),
        );
        headers.insert(
            "anthropic-ratelimit-input-tokens-remaining",
            "29000".parse().unwrap(),
        );
        headers.insert(
            "anthropic-ratelimit-input-tokens-reset",
            "2025-08-01T12:00:05Z".parse().unwrap(),
        );
        let now = parse_rfc3339("2025-08-01T12:00:00Z").unwrap();
        let parsed = RateLimitHeaders::parse(&headers, now);
        assert_eq!(parsed.input_tokens.limit, Some(30_000));
        assert_eq!(parsed.input_tokens.remaining, Some(29_000));
        assert_eq!(parsed.input_tokens.reset_in, Some(Duration::from_secs(5)));
        assert!(parsed.requests.limit.is_none());
        assert_eq!(
            parse_rfc3339("2025-08-01T14:00:00.5+02:00"),
            Some(SystemTime::UNIX_EPOCH + Duration::new(1_754_049_600, 500_000_000))
        );
        assert_eq!(
            crate::clock::rfc3339(parse_rfc3339("2024-02-29T23:59:59Z").unwrap()),
            "2024-02-29T23:59:59Z"
        );
    }
}
