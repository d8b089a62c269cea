//! Timestamps as RFC 3339 text, for listings (stored times are Unix seconds), and
//! invocation deadlines.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

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

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z); later times are shown as it.
const LAST_RFC3339: u64 = 253_402_300_799;

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let secs = secs.min(LAST_RFC3339) as i64;
    let time = OffsetDateTime::from_unix_timestamp(secs).expect("in range");
    time.format(&Rfc3339).expect("years 1970 to 9999 format")
}

/// The UTC day of a time, as `YYYY-MM-DD`.
pub fn utc_day(secs: u64) -> String {
    rfc3339(secs)[..10].to_owned()
}

/// Seconds from `secs` to the next UTC midnight (at least 1).
pub fn seconds_to_midnight(secs: u64) -> u64 {
    86_400 - secs % 86_400
}

/// The start of a UTC day given as exactly `YYYY-MM-DD`, in seconds since the epoch;
/// `None` for other text, days that do not exist and days before 1970.
pub fn day_start(day: &str) -> Option<u64> {
    if day.len() != 10 {
        return None; // `[year]` also takes a sign: `+2026-01-01`
    }
    let date = Date::parse(day, format_description!("[year]-[month]-[day]")).ok()?;
    u64::try_from(date.midnight().assume_utc().unix_timestamp()).ok()
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
        assert_eq!(day_start("1970-01-01"), Some(0));
        assert_eq!(day_start("nonsense"), None);
        // Exactly `YYYY-MM-DD`, of days that exist, from 1970.
        for bad in [
            "2026-02-30",
            "2026-02-29",
            "2026-04-31",
            "2026-13-01",
            "2026-1-1",
            "+2026-01-01",
            "2026-01-01T00:00:00Z",
            "1969-12-31",
        ] {
            assert_eq!(day_start(bad), None, "{bad}");
        }
    }

    #[test]
    fn known_instants_format_correctly() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_478_399), "2026-11-23T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }
}
