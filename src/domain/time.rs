//! Timestamps as RFC 3339 text, for listings (stored times are Unix seconds), and
//! invocation deadlines.

/// Deadlines before this (September 2001, in ms) are not Unix times: `cargo lambda watch`
/// sends a relative `600000`. Such a deadline is treated as unknown.
const PLAUSIBLE_DEADLINE_MS: u64 = 1_000_000_000_000;

/// A Lambda invocation's deadline (ms since the Unix epoch) as an `Instant`; `None` where
/// there is no real one (replayed events, local emulators).
pub fn invocation_deadline(deadline_ms: u64) -> Option<std::time::Instant> {
    if deadline_ms < PLAUSIBLE_DEADLINE_MS {
        return None;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    Some(
        std::time::Instant::now()
            + std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms)),
    )
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// The UTC day of a time, as `YYYY-MM-DD`.
pub fn utc_day(secs: u64) -> String {
    rfc3339(secs)[..10].to_owned()
}

/// Seconds from `secs` to the next UTC midnight (at least 1).
pub fn seconds_to_midnight(secs: u64) -> u64 {
    86_400 - secs % 86_400
}

/// The start of a UTC day given as `YYYY-MM-DD`, in seconds since the epoch.
pub fn day_start(day: &str) -> Option<u64> {
    let mut parts = day.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_midnights() {
        assert_eq!(utc_day(1_795_478_399), "2026-11-23");
        assert_eq!(seconds_to_midnight(1_795_478_399), 1);
        assert_eq!(seconds_to_midnight(1_795_478_400), 86_400);
        assert_eq!(day_start("2026-11-24"), Some(1_795_478_400));
        assert_eq!(day_start("2000-02-29"), Some(951_782_400));
        assert_eq!(day_start("nonsense"), None);
    }

    #[test]
    fn known_instants_format_correctly() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_478_399), "2026-11-23T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    }
}
