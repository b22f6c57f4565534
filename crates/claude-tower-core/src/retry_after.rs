//! Server retry hints (`retry-after-ms`, `retry-after`): parsed and sanitised once, here, for
//! every consumer (the retry layer, the rate limiter's pool pauses, fallbacks), so no header
//! can panic a parser or pause anything for years.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::headers::header_str;

/// Server hints (`retry-after`, `retry-after-ms`) above this are absurd and ignored as if
/// absent: no real API hint is a day long, and a header like `retry-after: 99999999` must never
/// pause anything for years. (The official SDKs ignore hints past about 4.29e6 s.)
pub const RETRY_AFTER_IGNORED_ABOVE: Duration = Duration::from_secs(86_400);

/// The default cap on how long a server hint may pause anything (a retry's wait, a rate-limit
/// pool pause, a fallback's cool-down): 60 s, the official SDKs' long-standing
/// limit. Every consumer lets the caller configure its own cap.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Turns a hint in seconds into a [`Duration`], or `None` for a non-finite, negative or absurd
/// (above [`RETRY_AFTER_IGNORED_ABOVE`]) value. Never panics.
#[must_use]
pub fn sanitize_retry_after(seconds: f64) -> Option<Duration> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| *d <= RETRY_AFTER_IGNORED_ABOVE)
}

/// A duration from a float number of seconds that saturates instead of panicking:
/// non-finite or negative values give zero (NaN) or the bound, values past `max` give `max`.
#[must_use]
pub fn saturating_secs(seconds: f64, max: Duration) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds).map_or(max, |d| d.min(max))
}

/// Parses the server's retry hint: `retry-after-ms` (float milliseconds), then `retry-after`
/// as float seconds, then as an HTTP date relative to `now`. Negative, non-finite,
/// unparseable or absurd values (see [`sanitize_retry_after`]) are ignored; a date in the past
/// gives zero. Never panics, whatever the header bytes.
#[must_use]
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(hint) = header_str(headers, "retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|ms| sanitize_retry_after(ms / 1000.0))
    {
        return Some(hint);
    }
    let value = header_str(headers, "retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return sanitize_retry_after(seconds);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let wait = date.duration_since(now).unwrap_or(Duration::ZERO);
    (wait <= RETRY_AFTER_IGNORED_ABOVE).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn absurd_retry_after_is_ignored_without_panicking() {
        let now = SystemTime::now();
        for (name, value) in [
            ("retry-after", "1e20"),
            ("retry-after", "99999999"),
            ("retry-after", "inf"),
            ("retry-after", "NaN"),
            ("retry-after", "-1"),
            ("retry-after", "18446744073709551616"),
            ("retry-after-ms", "1e300"),
            ("retry-after-ms", "-0.5"),
            ("retry-after-ms", "nan"),
            ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            assert_eq!(
                parse_retry_after(&headers(&[(name, value)]), now),
                None,
                "{name}: {value}"
            );
        }
        // An absurd `retry-after-ms` falls back to a sane `retry-after`.
        let h = headers(&[("retry-after-ms", "1e300"), ("retry-after", "2")]);
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(2)));
        assert_eq!(
            saturating_secs(1e300, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(
            saturating_secs(f64::NAN, Duration::from_secs(5)),
            Duration::ZERO
        );
        assert_eq!(
            saturating_secs(-3.0, Duration::from_secs(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn retry_after_ms_wins_over_seconds() {
        let h = headers(&[("retry-after-ms", "300"), ("retry-after", "5")]);
        assert_eq!(
            parse_retry_after(&h, SystemTime::now()),
            Some(Duration::from_millis(300))
        );
    }

    #[test]
    fn retry_after_seconds_float_and_date() {
        let h = headers(&[("retry-after", "1.5")]);
        assert_eq!(
            parse_retry_after(&h, SystemTime::now()),
            Some(Duration::from_millis(1500))
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        let h = headers(&[("retry-after", &date)]);
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        let h = headers(&[("retry-after", &past)]);
        assert_eq!(parse_retry_after(&h, now), Some(Duration::ZERO));
        let h = headers(&[("retry-after", "soon")]);
        assert_eq!(parse_retry_after(&h, now), None);
        let h = headers(&[("retry-after", "-3")]);
        assert_eq!(parse_retry_after(&h, now), None);
    }
}
