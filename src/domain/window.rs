//! Send windows: the hours of the worker's own day in which an SMS may go, and the worker's
//! time zones, read from the number.
//!
//! The zones come from libphonenumber's prefix to time zone map
//! (`data/timezones/map_data.txt`, Apache License 2.0): by area code (or finer) in the
//! US, Canada, Australia, Brazil, Mexico, Russia, Indonesia and a few more, by country
//! elsewhere. The rules of each zone (offsets, daylight saving) are the IANA database's,
//! bundled with `jiff`.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

use super::phone::PhoneNumber;

/// The hours of the worker's local day in which SMS may go: `[start, end)` in minutes
/// after midnight (a window past midnight, `21:00-08:00`, wraps), or any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendWindow {
    Any,
    Hours { start: u16, end: u16 },
}

impl Default for SendWindow {
    /// 08:00 to 21:00: the hours people expect texts in (and those US rules name for
    /// marketing texts).
    fn default() -> Self {
        SendWindow::Hours {
            start: 8 * 60,
            end: 21 * 60,
        }
    }
}

fn parse_time(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl std::str::FromStr for SendWindow {
    type Err = String;

    /// `HH:MM-HH:MM` (24-hour clock) or `any`.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("any") {
            return Ok(SendWindow::Any);
        }
        let bad = || {
            format!(
                "{text:?} is not a send window: use HH:MM-HH:MM in the worker's local time \
                 (08:00-21:00), or any"
            )
        };
        let (start, end) = text.split_once('-').ok_or_else(bad)?;
        let (start, end) = (
            parse_time(start.trim()).ok_or_else(bad)?,
            parse_time(end.trim()).ok_or_else(bad)?,
        );
        if start == end {
            return Err(format!(
                "{text:?} is an empty send window; use any for no window"
            ));
        }
        Ok(SendWindow::Hours { start, end })
    }
}

impl fmt::Display for SendWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendWindow::Any => f.write_str("any"),
            SendWindow::Hours { start, end } => write!(
                f,
                "{:02}:{:02}-{:02}:{:02}",
                start / 60,
                start % 60,
                end / 60,
                end % 60
            ),
        }
    }
}

/// As its text (`08:00-21:00`, `any`), in send jobs.
impl serde::Serialize for SendWindow {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SendWindow {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How many days ahead the openings are looked for: a window opens every day, and
/// `send_at` is at most 7 days ahead.
const DAYS_AHEAD: i32 = 9;

impl SendWindow {
    fn open_at_minute(self, minute: u16) -> bool {
        match self {
            SendWindow::Any => true,
            SendWindow::Hours { start, end } if start < end => (start..end).contains(&minute),
            SendWindow::Hours { start, end } => minute >= start || minute < end,
        }
    }

    fn open_in(self, zone: &TimeZone, at: Timestamp) -> bool {
        let local = zone.to_datetime(at);
        self.open_at_minute(local.hour() as u16 * 60 + local.minute() as u16)
    }

    /// Whether the window is open at `at` (seconds since the epoch) in every zone.
    pub fn is_open(self, zones: &[TimeZone], at: i64) -> bool {
        let at = timestamp(at);
        zones.iter().all(|zone| self.open_in(zone, at))
    }

    /// The window's openings in `zone` from the day before `at`'s to `DAYS_AHEAD` after.
    fn openings(self, zone: &TimeZone, at: Timestamp) -> Vec<Timestamp> {
        let SendWindow::Hours { start, .. } = self else {
            return Vec::new();
        };
        let first: Date = zone.to_datetime(at).date();
        (-1..=DAYS_AHEAD)
            .filter_map(|days| first.checked_add(jiff::Span::new().days(days)).ok())
            .filter_map(|date| {
                let local = DateTime::from_parts(
                    date,
                    jiff::civil::time((start / 60) as i8, (start % 60) as i8, 0, 0),
                );
                // A start inside a skipped hour (clocks going forward) is read as RFC 5545
                // and Temporal read it: as far past the skip as it was into it (02:30 on
                // a day that skips 02:00-03:00 opens at 03:30).
                zone.to_ambiguous_timestamp(local).compatible().ok()
            })
            .collect()
    }

    /// When an SMS to `phone` may go, asked at `now`, given a `not_before` (the request's
    /// `send_at`): `None` when it may go now, else the moment (seconds since the epoch).
    pub fn hold_until(self, phone: &PhoneNumber, not_before: Option<u64>, now: u64) -> Option<u64> {
        let from = not_before.map_or(now, |t| t.max(now));
        let at = if self == SendWindow::Any {
            from
        } else {
            let from = i64::try_from(from).unwrap_or(i64::MAX);
            u64::try_from(self.next_open(&zones_of(phone), from)).unwrap_or(0)
        };
        (at > now).then_some(at)
    }

    /// The first moment at or after `at` (seconds since the epoch) when the window is open
    /// in every one of `zones`. No zone (a number the map does not place): `at`.
    ///
    /// When no moment is open in all of them (a prefix spanning zones too far apart, such
    /// as North America's `+1` alone), the SMS goes when the window has opened in every
    /// zone: at the latest of the zones' next openings, so nobody gets it before their
    /// window's start.
    pub fn next_open(self, zones: &[TimeZone], at: i64) -> i64 {
        if self == SendWindow::Any || zones.is_empty() || self.is_open(zones, at) {
            return at;
        }
        let ts = timestamp(at);
        // Each zone's openings after `at`, in time order.
        let openings: Vec<Vec<Timestamp>> = zones
            .iter()
            .map(|zone| {
                let mut later = self.openings(zone, ts);
                later.retain(|c| *c > ts);
                later
            })
            .collect();
        let mut candidates: Vec<Timestamp> = openings.concat();
        candidates.sort();
        candidates.dedup();
        if let Some(open) = candidates
            .iter()
            .find(|c| zones.iter().all(|zone| self.open_in(zone, **c)))
        {
            return open.as_second();
        }
        openings
            .iter()
            .filter_map(|later| later.first())
            .max()
            .map_or(at, |c| c.as_second())
    }
}

/// Why a queued invitation of `phone` has not gone yet, asked at `now`: its project's
/// `window` is closed for the worker, the request's `send_at` (or the window) holds it
/// until `scheduled_for`, or it waits its turn on the queue.
pub fn why_waiting(
    window: SendWindow,
    phone: &PhoneNumber,
    scheduled_for: Option<u64>,
    now: u64,
) -> String {
    let zones = zones_of(phone);
    let at = i64::try_from(now).unwrap_or(i64::MAX);
    if !window.is_open(&zones, at) {
        let names: Vec<&str> = zones.iter().filter_map(TimeZone::iana_name).collect();
        let opens = u64::try_from(window.next_open(&zones, at)).unwrap_or(now);
        return format!(
            "send window {window} closed in {}: opens {}",
            names.join(", "),
            super::time::rfc3339(opens)
        );
    }
    match scheduled_for {
        Some(at) if at > now => format!("send_at: held until {}", super::time::rfc3339(at)),
        _ => "on the send queue: waiting for the rate, or for a retry".to_owned(),
    }
}

fn timestamp(at: i64) -> Timestamp {
    Timestamp::from_second(at).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The map, prefix (digits, without `+`) to its zones' names joined by `&`.
fn zone_map() -> &'static HashMap<&'static str, &'static str> {
    static MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| {
        include_str!("../../data/timezones/map_data.txt")
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('|'))
            .collect()
    })
}

/// The time zones a number may be in: those of its longest prefix in the map. Empty when
/// the map does not know the number's country.
pub fn zones_of(phone: &PhoneNumber) -> Vec<TimeZone> {
    let digits = phone.as_str().trim_start_matches('+');
    let map = zone_map();
    let Some(names) = (1..=digits.len())
        .rev()
        .find_map(|len| map.get(&digits[..len]))
    else {
        return Vec::new();
    };
    names
        .split('&')
        .filter_map(|name| TimeZone::get(name).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(text: &str) -> PhoneNumber {
        PhoneNumber::parse(text).unwrap()
    }

    /// Seconds since the epoch of an RFC 3339 instant.
    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_second()
    }

    fn names(zones: &[TimeZone]) -> Vec<&str> {
        zones.iter().filter_map(TimeZone::iana_name).collect()
    }

    #[test]
    fn windows_are_read_and_written_back() {
        for text in ["08:00-21:00", "21:30-07:15", "any"] {
            assert_eq!(text.parse::<SendWindow>().unwrap().to_string(), text);
        }
        assert_eq!("ANY".parse(), Ok(SendWindow::Any));
        assert_eq!("08:00-21:00".parse(), Ok(SendWindow::default()));
        for bad in [
            "",
            "8:00-21:00",
            "08:00",
            "08:00-24:00",
            "08:60-21:00",
            "09:00-09:00",
        ] {
            assert!(bad.parse::<SendWindow>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn zones_come_from_the_area_code_or_the_country() {
        let cases = [
            ("+16175551234", vec!["America/New_York"]),
            ("+14155551234", vec!["America/Los_Angeles"]),
            ("+254711123456", vec!["Africa/Nairobi"]),
            ("+919812345678", vec!["Asia/Calcutta"]),
            ("+9779812345678", vec!["Asia/Katmandu"]),
        ];
        for (number, expected) in cases {
            assert_eq!(names(&zones_of(&phone(number))), expected, "{number}");
        }
        // Idaho's 208 spans Mountain and Pacific time.
        let idaho = zones_of(&phone("+12083555555"));
        assert!(idaho.len() >= 2, "{:?}", names(&idaho));
    }

    #[test]
    fn the_window_is_the_workers_local_day() {
        let w = SendWindow::default();
        let boston = zones_of(&phone("+16175551234"));
        let nairobi = zones_of(&phone("+254711123456"));
        // 17:00 in Boston (EST, -5) is 01:00 in Nairobi (+3).
        let t = at("2026-12-03T22:00:00Z");
        assert_eq!(w.next_open(&boston, t), t);
        assert_eq!(w.next_open(&nairobi, t), at("2026-12-04T05:00:00Z"));
        // 20:59 is still open, 21:00 closed until 08:00 the next day.
        assert_eq!(
            w.next_open(&boston, at("2026-12-04T01:59:00Z")),
            at("2026-12-04T01:59:00Z")
        );
        assert_eq!(
            w.next_open(&boston, at("2026-12-04T02:01:00Z")),
            at("2026-12-04T13:00:00Z")
        );
        assert_eq!(SendWindow::Any.next_open(&nairobi, t), t);
        assert_eq!(w.next_open(&[], t), t, "a number the map does not place");
    }

    #[test]
    fn half_and_three_quarter_hour_offsets() {
        let w = SendWindow::default();
        // India is +05:30: 08:00 there is 02:30 UTC; Nepal is +05:45: 02:15 UTC.
        let t = at("2026-12-03T20:00:00Z");
        assert_eq!(
            w.next_open(&zones_of(&phone("+919812345678")), t),
            at("2026-12-04T02:30:00Z")
        );
        assert_eq!(
            w.next_open(&zones_of(&phone("+9779812345678")), t),
            at("2026-12-04T02:15:00Z")
        );
    }

    #[test]
    fn daylight_saving_changes_in_both_directions() {
        let w = SendWindow::default();
        let boston = zones_of(&phone("+16175551234"));
        // 2026-03-08: clocks go forward at 02:00; 08:00 is EDT (-4), 12:00 UTC.
        assert_eq!(
            w.next_open(&boston, at("2026-03-08T05:00:00Z")),
            at("2026-03-08T12:00:00Z")
        );
        // 2026-11-01: clocks go back at 02:00; 08:00 is EST (-5), 13:00 UTC.
        assert_eq!(
            w.next_open(&boston, at("2026-11-01T05:00:00Z")),
            at("2026-11-01T13:00:00Z")
        );
        // A window starting in the skipped hour: 02:30 is read as 03:30 EDT, 07:30 UTC.
        let early = SendWindow::Hours {
            start: 2 * 60 + 30,
            end: 4 * 60,
        };
        assert_eq!(
            early.next_open(&boston, at("2026-03-08T05:00:00Z")),
            at("2026-03-08T07:30:00Z")
        );
    }

    #[test]
    fn a_prefix_over_several_zones_waits_for_all_of_them() {
        let w = SendWindow::default();
        let idaho = zones_of(&phone("+12083555555"));
        // 08:00 Mountain (15:00 UTC) is 07:00 Pacific: it goes at 08:00 Pacific.
        assert_eq!(
            w.next_open(&idaho, at("2026-12-03T14:30:00Z")),
            at("2026-12-03T16:00:00Z")
        );
        // 20:30 Pacific is 21:30 Mountain: closed in Mountain, so the next morning.
        assert_eq!(
            w.next_open(&idaho, at("2026-12-04T04:30:00Z")),
            at("2026-12-04T16:00:00Z")
        );
    }

    #[test]
    fn zones_without_a_common_hour_get_it_when_every_window_has_opened() {
        // Honolulu (-10) and Boston (-5): an 08:00-10:00 window has no common hour.
        let zones = vec![
            TimeZone::get("Pacific/Honolulu").unwrap(),
            TimeZone::get("America/New_York").unwrap(),
        ];
        let w = "08:00-10:00".parse::<SendWindow>().unwrap();
        // At 12:00 UTC (07:00 Boston): the latest next opening is Honolulu's 08:00.
        assert_eq!(
            w.next_open(&zones, at("2026-12-03T12:00:00Z")),
            at("2026-12-03T18:00:00Z")
        );
    }

    #[test]
    fn why_a_queued_invitation_waits() {
        let boston = phone("+16175551234");
        let night = at("2027-01-15T08:00:00Z") as u64;
        assert_eq!(
            why_waiting(
                SendWindow::default(),
                &boston,
                Some(night + 5 * 3600),
                night
            ),
            "send window 08:00-21:00 closed in America/New_York: opens 2027-01-15T13:00:00Z"
        );
        let day = at("2027-01-15T15:00:00Z") as u64;
        assert_eq!(
            why_waiting(SendWindow::default(), &boston, Some(day + 60), day),
            "send_at: held until 2027-01-15T15:01:00Z"
        );
        assert_eq!(
            why_waiting(SendWindow::Any, &boston, None, night),
            "on the send queue: waiting for the rate, or for a retry"
        );
    }

    #[test]
    fn a_window_past_midnight_wraps() {
        let w = "22:00-06:00".parse::<SendWindow>().unwrap();
        let nairobi = zones_of(&phone("+254711123456"));
        assert!(w.is_open(&nairobi, at("2026-12-03T20:00:00Z")), "23:00");
        assert!(w.is_open(&nairobi, at("2026-12-04T02:00:00Z")), "05:00");
        assert_eq!(
            w.next_open(&nairobi, at("2026-12-04T04:00:00Z")),
            at("2026-12-04T19:00:00Z")
        );
    }
}
