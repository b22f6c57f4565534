//! Calendar helpers on the wall clock (UTC), for budget windows and `*-reset` headers.

use std::time::{Duration, SystemTime};

/// The UTC calendar date (year, month 1–12, day 1–31) of a wall-clock time.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use claude_tower::core::clock::utc_date;
/// assert_eq!(utc_date(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)), (2000, 2, 29));
/// ```
#[must_use]
pub fn utc_date(time: SystemTime) -> (i64, u32, u32) {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0))
}

/// Formats a wall-clock time as RFC 3339 in UTC with second precision
/// (`2026-11-23T06:45:02Z`), as the API's `anthropic-ratelimit-*-reset` headers are.
#[must_use]
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (year, month, day) = utc_date(time);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_880_302);
        assert_eq!(rfc3339(t), "2025-11-23T06:45:02Z");
        assert_eq!(
            utc_date(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)),
            (2000, 2, 29)
        );
    }
}
