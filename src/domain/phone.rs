//! Phone numbers: the API's leniency rules, then libphonenumber validity, held as E.164.

use std::fmt;

use std::sync::OnceLock;

use phonenumber::country::Id;
use phonenumber::metadata::{Database, Descriptor, Metadata, loader};

/// libphonenumber's metadata split by calling code at build time (`build.rs`).
mod split {
    include!(concat!(env!("OUT_DIR"), "/phone_metadata.rs"));
}

/// E.164 allows at most 15 digits; anything longer is rejected before libphonenumber sees it.
const MAX_E164_DIGITS: usize = 15;

/// A number that passed the leniency rules and is valid by libphonenumber's metadata.
/// It can only be made by [`PhoneNumber::parse`], so holding one proves validity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
    region: Option<phonenumber::country::Id>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the number has characters other than digits")]
    NotDigits,
    #[error("the number has more than 15 digits")]
    TooLong,
    #[error("the number cannot be parsed")]
    Unparseable,
    #[error("the number is not a valid number for its country")]
    NotValid,
}

/// The index of a calling code's part in `split::CODES`, if the code exists.
fn part_of(code: u16) -> Option<usize> {
    split::CODES
        .binary_search_by_key(&code, |&(c, _, _)| c)
        .ok()
}

/// The database of the calling code of part `i`, built the first time a number of that
/// code is read.
///
/// `phonenumber`'s own database holds every country, and building it checks the syntax of
/// all their patterns: about 80 ms of CPU, paid by the first number a process reads. A
/// database of one code costs that code's share (a few milliseconds for +1, under one for
/// most), and a process only pays for the codes it meets. The answers are the crate's: the
/// metadata is its own (see `build.rs`) and parsing is its `parse_with`.
fn database_of_part(i: usize) -> &'static Database {
    static LOADED: [OnceLock<Database>; split::CODES.len()] =
        [const { OnceLock::new() }; split::CODES.len()];
    LOADED[i].get_or_init(|| {
        let (_, start, end) = split::CODES[i];
        let part: Vec<loader::Metadata> =
            postcard::from_bytes(&split::PARTS[start..end]).expect("build.rs wrote this part");
        Database::from(part).expect("libphonenumber's own patterns are valid")
    })
}

/// +1's regions, decoded once (a few kilobytes; decoding is cheap, building a database of
/// them is not).
fn nanp_regions() -> &'static [loader::Metadata] {
    static REGIONS: OnceLock<Vec<loader::Metadata>> = OnceLock::new();
    REGIONS.get_or_init(|| {
        let (_, start, end) = split::CODES[part_of(1).expect("+1 is a calling code")];
        postcard::from_bytes(&split::PARTS[start..end]).expect("build.rs wrote this part")
    })
}

/// The database of the +1 regions a number of `area` (the 3 digits after +1) may belong
/// to (`split::NANP_SUBSETS`): a US number builds the US and Canada, not the 25 regions of
/// +1 (14.5 ms of CPU, the largest part of the API's cold start). The main country (the US)
/// is in every set, first, as parsing needs; a region left out is one libphonenumber
/// would skip for that area code. One database per distinct set, built on first use.
fn nanp_database(area: u16) -> &'static Database {
    static LOADED: [OnceLock<Database>; split::NANP_SUBSETS.len()] =
        [const { OnceLock::new() }; split::NANP_SUBSETS.len()];
    let set = usize::from(split::NANP_AREAS[usize::from(area)]);
    LOADED[set].get_or_init(|| {
        let regions = nanp_regions();
        let part: Vec<loader::Metadata> = split::NANP_SUBSETS[set]
            .iter()
            .map(|&i| regions[usize::from(i)].clone())
            .collect();
        Database::from(part).expect("libphonenumber's own patterns are valid")
    })
}

/// The 3 digits after +1 of `digits` (a number without its plus), if it is a +1 number
/// with that many.
fn nanp_area(digits: &str) -> Option<u16> {
    digits.strip_prefix('1')?.get(..3)?.parse().ok()
}

/// The database of the calling code `digits` (a number without its plus) starts with,
/// and the code's length: the code found as libphonenumber finds it, one to three digits,
/// none the start of another, never a leading 0.
fn database_for(digits: &str) -> Option<(&'static Database, usize)> {
    if digits.starts_with('0') {
        return None;
    }
    (1..=3)
        .find_map(|len| Some((part_of(digits.get(..len)?.parse().ok()?)?, len)))
        .map(|(part, len)| (database_of_part(part), len))
}

/// The text handed to libphonenumber's parser for `digits`, a number without its plus
/// whose calling code is `code_len` digits long: the RFC 3966 form `tel:+1-6175551234`.
///
/// libphonenumber reads a `+` number as free text otherwise: it looks for where a number
/// starts and ends and for an extension (`ext. 12`, `#`) with four patterns over Unicode
/// classes, and compiling them is about 1.5 ms of the first number of every process.
/// The API's leniency has already reduced the number to digits, so there is nothing for
/// them to find: in the RFC 3966 form the parser reads the same code and national number
/// and compiles none of them. With two digits or fewer after the code the free-text form
/// stays (the two forms check a number's shortness at different points), as such a number
/// is never valid and its cost does not matter.
fn parser_text(digits: &str, code_len: usize) -> String {
    match (digits.get(..code_len), digits.get(code_len..)) {
        (Some(code), Some(national)) if national.len() > 2 => format!("tel:+{code}-{national}"),
        _ => format!("+{digits}"),
    }
}

/// Builds the database of a US number (`nanp_database`) and compiles its most used patterns. The
/// function calls it on a thread of its own as it starts, so that cost overlaps its
/// start-up and the first request's lookups instead of landing on its first number. A
/// parse that comes before it is done waits only for the rest.
pub fn warm_up() {
    let _ = PhoneNumber::parse("+16175551234");
}

/// Applies the API's leniency: drops whitespace and `(`, `)`, `-`, `.`.
pub fn lenient(raw: &str) -> String {
    raw.chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '(' | ')' | '-' | '.')))
        .collect()
}

impl PhoneNumber {
    /// Reads a number as a client sent it. A number without a leading `+` is read as
    /// E.164 without its plus (`16175551234` is `+16175551234`).
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let cleaned = lenient(raw);
        let digits = cleaned.strip_prefix('+').unwrap_or(&cleaned);
        // libphonenumber maps letters to keypad digits (`JKL` -> `555`); the API does not.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneError::NotDigits);
        }
        if digits.len() > MAX_E164_DIGITS {
            return Err(PhoneError::TooLong);
        }
        let guess = nanp_area(digits);
        let (mut db, code_len) = match guess {
            Some(area) => (nanp_database(area), 1),
            None => database_for(digits).ok_or(PhoneError::Unparseable)?,
        };
        let parsed = phonenumber::parse_with(db, None, parser_text(digits, code_len))
            .map_err(|_| PhoneError::Unparseable)?;
        // Parsing uses the main country's rules alone (the US, in every +1 set); the set
        // is right when the national number starts with the digits it was picked by (not
        // when a national prefix was stripped): otherwise the one for the national number,
        // or all of +1's regions for one too short to have an area code.
        if guess.is_some() {
            let national = parsed.national().to_string();
            let area: Option<u16> = national.get(..3).and_then(|a| a.parse().ok());
            if area != guess {
                db = match area {
                    Some(area) => nanp_database(area),
                    None => database_for(digits).ok_or(PhoneError::Unparseable)?.0,
                };
            }
        }
        // What `parsed.is_valid()`, `parsed.country().id()` and the E.164 formatter each
        // work out again (the metadata of the number, then its type), worked out once:
        // the same answers for a fraction of the regular expression matches.
        let code = parsed.code().value();
        let national = parsed.national().to_string();
        let (meta, valid) = match metadata_for(db, code, &national) {
            Some((meta, Some(valid))) => (meta, valid),
            Some((meta, None)) => (meta, has_a_type(meta, &national)),
            None => return Err(PhoneError::NotValid),
        };
        if !valid {
            return Err(PhoneError::NotValid);
        }
        // `parsed.country().id()` looks the metadata up by the national number without its
        // leading zeros (Italian numbers keep theirs), which may find no region.
        let region = if parsed.national().zeros() == 0 {
            meta.id().parse().ok()
        } else {
            let value = parsed.national().value().to_string();
            metadata_for(db, code, &value).and_then(|(meta, _)| meta.id().parse().ok())
        };
        Ok(Self {
            // The E.164 form, as `parsed.format().mode(Mode::E164)` writes it.
            e164: format!("+{code}{national}"),
            region,
        })
    }

    /// The number in E.164 with its plus, e.g. `+16175551234`.
    pub fn as_str(&self) -> &str {
        &self.e164
    }

    /// The ISO 3166 code of the number's country (`US`), if it has one (`+800` has none).
    pub fn region(&self) -> Option<&str> {
        self.region.as_ref().map(|id| id.as_ref())
    }

    /// The form that may appear in logs: `+1617***1234`.
    pub fn masked(&self) -> Masked<'_> {
        Masked(&self.e164)
    }
}

/// The metadata libphonenumber validates a number against, as its `source_for` finds it
/// (`PhoneNumber::metadata`): the only region of the country code, or the first of its
/// regions whose leading digits or number types match. When a region was chosen because
/// the number has one of its types, that validity comes along (`Some(true)`).
fn metadata_for(
    db: &'static Database,
    code: u16,
    national: &str,
) -> Option<(&'static Metadata, Option<bool>)> {
    let regions = db.region(&code)?;
    if regions.len() == 1 {
        if regions[0] == "001" {
            return db.by_code(&code)?.into_iter().next().map(|m| (m, None));
        }
        let id: Id = regions[0].parse().ok()?;
        return db.by_id(id.as_ref()).map(|m| (m, None));
    }
    for region in regions {
        let meta = db.by_id(region)?;
        if let Some(pattern) = meta.leading_digits() {
            if pattern.find(national).is_some_and(|m| m.start() == 0) {
                let id: Id = region.parse().ok()?;
                return db.by_id(id.as_ref()).map(|m| (m, None));
            }
        } else if has_a_type(meta, national) {
            let id: Id = region.parse().ok()?;
            return db.by_id(id.as_ref()).map(|m| (m, Some(true)));
        }
    }
    None
}

/// `number_type(meta, national) != Type::Unknown`: the general pattern matches and so does
/// the pattern of one of the types libphonenumber's `number_type` tries. The answer does
/// not depend on the order they are tried in, only the cost does: each match hashes the
/// pattern's text (thousands of characters for some fixed-line patterns) to find it in
/// libphonenumber's regex cache. Numbers texted are mostly mobile, so mobile goes first.
fn has_a_type(meta: &Metadata, national: &str) -> bool {
    let d = meta.descriptors();
    let matches = |desc: Option<&Descriptor>| desc.is_some_and(|d| d.is_match(national));
    d.general().is_match(national)
        && (matches(d.mobile())
            || matches(d.fixed_line())
            || matches(d.premium_rate())
            || matches(d.toll_free())
            || matches(d.shared_cost())
            || matches(d.voip())
            || matches(d.personal_number())
            || matches(d.pager())
            || matches(d.uan())
            || matches(d.voicemail()))
}

/// In E.164, as it is kept and queued.
impl serde::Serialize for PhoneNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.e164)
    }
}

/// Read (a send job's number, say) with the same rules as a client's: what is not a
/// valid number is not one, whoever wrote it.
impl<'de> serde::Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        PhoneNumber::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

/// A phone number shown with its middle digits hidden.
#[derive(Debug, Clone, Copy)]
pub struct Masked<'a>(&'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let (head, tail) = if s.len() >= 10 { (5, 4) } else { (3, 2) };
        match (s.get(..head), s.get(s.len().saturating_sub(tail)..)) {
            (Some(h), Some(t)) if s.len() > head + tail => write!(f, "{h}***{t}"),
            _ => f.write_str("***"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_numbers_are_normalised_to_e164_with_plus() {
        let cases = [
            ("+16175551234", "+16175551234"),
            ("+16175555512", "+16175555512"),
            ("16175551234", "+16175551234"),
            ("+1 (617) 555-1234", "+16175551234"),
            ("+1.617.555.1234", "+16175551234"),
            (" +1 617 555 1234 ", "+16175551234"),
            ("1-617-555-1234", "+16175551234"),
            ("+1\t617\u{a0}555 1234", "+16175551234"),
            ("+254712345678", "+254712345678"),
            ("254 712 345 678", "+254712345678"),
            ("+442079460958", "+442079460958"),
            ("+919876543210", "+919876543210"),
        ];
        for (raw, expected) in cases {
            let parsed = PhoneNumber::parse(raw);
            assert_eq!(
                parsed.as_ref().map(PhoneNumber::as_str),
                Ok(expected),
                "input {raw:?}"
            );
        }
    }

    #[test]
    fn invalid_numbers_are_rejected_with_the_reason() {
        let cases = [
            ("+1617JKL1234", PhoneError::NotDigits),
            ("", PhoneError::NotDigits),
            ("+", PhoneError::NotDigits),
            ("   ", PhoneError::NotDigits),
            ("++16175551234", PhoneError::NotDigits),
            ("+1617555123x", PhoneError::NotDigits),
            ("tel:+16175551234", PhoneError::NotDigits),
            ("+1 617 555 1234 ext 5", PhoneError::NotDigits),
            ("+1234567890123456", PhoneError::TooLong),
            // parses, but is not a valid number
            ("+1234", PhoneError::NotValid),
            ("+16175551", PhoneError::NotValid),
            ("+161755512345", PhoneError::NotValid),
            ("+10005551234", PhoneError::NotValid),
            ("+2547123", PhoneError::NotValid),
        ];
        for (raw, expected) in cases {
            let result = PhoneNumber::parse(raw);
            assert!(
                matches!(result, Err(e) if e == expected || (expected == PhoneError::NotValid && e == PhoneError::Unparseable)),
                "input {raw:?}: got {result:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn unassigned_country_codes_are_invalid() {
        for raw in ["+8091234567", "+9991234567890", "+2801234567"] {
            assert!(PhoneNumber::parse(raw).is_err(), "input {raw:?}");
        }
    }

    #[test]
    fn a_ten_thousand_digit_number_is_rejected_quickly() {
        let raw = "1".repeat(10_000);
        assert_eq!(PhoneNumber::parse(&raw), Err(PhoneError::TooLong));
    }

    #[test]
    fn the_country_of_a_number_is_known() {
        let region = |raw| PhoneNumber::parse(raw).unwrap().region().map(str::to_owned);
        assert_eq!(region("+16175551234").as_deref(), Some("US"));
        assert_eq!(region("+16135550123").as_deref(), Some("CA"));
        assert_eq!(region("+254712345678").as_deref(), Some("KE"));
        assert_eq!(region("+442079460958").as_deref(), Some("GB"));
    }

    /// The parse before it was made faster: libphonenumber's own `is_valid`, country and
    /// E.164 formatter.
    fn reference(raw: &str) -> Option<(String, Option<String>)> {
        let parsed = phonenumber::parse(None, raw).ok()?;
        parsed.is_valid().then(|| {
            (
                parsed.format().mode(phonenumber::Mode::E164).to_string(),
                parsed.country().id().map(|id| id.as_ref().to_owned()),
            )
        })
    }

    #[test]
    fn the_fast_path_agrees_with_libphonenumber() {
        // Every example number of the metadata, and numbers around them, in every country.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random_digit = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'0' + (state % 10) as u8)
        };
        let mut checked = 0;
        for code in 1..1000u16 {
            let Some(metas) = phonenumber::metadata::DATABASE.by_code(&code) else {
                continue;
            };
            for meta in metas {
                let d = meta.descriptors();
                let examples = [
                    d.general(),
                    d.fixed_line().unwrap_or(d.general()),
                    d.mobile().unwrap_or(d.general()),
                    d.toll_free().unwrap_or(d.general()),
                    d.voip().unwrap_or(d.general()),
                ]
                .map(|d| d.example().unwrap_or("2345678").to_owned());
                for example in examples {
                    let mut candidates = vec![
                        example.clone(),
                        format!("0{example}"),
                        format!("{}{example}", meta.national_prefix().unwrap_or("")),
                    ];
                    for _ in 0..4 {
                        let mut varied: String = example.clone();
                        let keep = varied.len().saturating_sub(4);
                        varied.truncate(keep);
                        varied.extend((0..4).map(|_| random_digit()));
                        candidates.push(varied.clone());
                        varied.push(random_digit());
                        candidates.push(varied);
                    }
                    for national in candidates {
                        let raw = format!("+{code}{national}");
                        if raw.len() > 16 {
                            continue;
                        }
                        let fast = PhoneNumber::parse(&raw)
                            .ok()
                            .map(|p| (p.e164.clone(), p.region().map(str::to_owned)));
                        assert_eq!(fast, reference(&raw), "input {raw:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn each_calling_code_gets_the_regions_of_libphonenumber_in_its_order() {
        let whole = &*phonenumber::metadata::DATABASE;
        let mut codes = 0;
        for code in 0..1000u16 {
            let database = part_of(code).map(database_of_part);
            let Some(regions) = whole.region(&code) else {
                assert!(database.is_none(), "+{code}");
                continue;
            };
            let part = database.expect("a part for every code");
            assert_eq!(part.region(&code), Some(regions), "+{code}");
            let ids = |db: &'static Database| {
                db.by_code(&code)
                    .unwrap()
                    .iter()
                    .map(|m| m.id())
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(part), ids(whole), "+{code}");
            // The patterns are the crate's with ASCII digit classes and no layout (build.rs),
            // and a type that repeats an earlier one is left out; that they give the same
            // answers is what the tests on numbers check.
            for meta in part.by_code(&code).unwrap() {
                let general = meta.descriptors().general().national_number().as_str();
                assert!(!general.contains(r"\d"), "+{code}: {general}");
                assert!(!general.contains(char::is_whitespace), "+{code}: {general}");
            }
            codes += 1;
        }
        assert!(codes > 200, "{codes}");
        // The US gives mobile numbers its fixed-line pattern: kept once.
        let us = database_of_part(part_of(1).unwrap()).by_id("US").unwrap();
        let crate_us = whole.by_id("US").unwrap();
        assert_eq!(
            crate_us
                .descriptors()
                .mobile()
                .map(|d| d.national_number().as_str()),
            crate_us
                .descriptors()
                .fixed_line()
                .map(|d| d.national_number().as_str())
        );
        assert!(us.descriptors().fixed_line().is_some());
        assert!(us.descriptors().mobile().is_none());
    }

    /// Every area code after +1, with numbers of each +1 region's examples' shape and
    /// others: the region set picked by area code gives libphonenumber's answers, so the
    /// regions it leaves out are never the number's.
    #[test]
    fn every_nanp_area_code_agrees_with_libphonenumber() {
        let mut checked = 0;
        for area in 0..1000u16 {
            for rest in ["5550123", "2345678", "9999999", "0000000", "1212121"] {
                for raw in [
                    format!("+1{area:03}{rest}"),
                    format!("+11{area:03}{rest}"),
                    format!("+1{area:03}{}", &rest[..5]),
                ] {
                    let fast = PhoneNumber::parse(&raw)
                        .ok()
                        .map(|p| (p.e164.clone(), p.region().map(str::to_owned)));
                    assert_eq!(fast, reference(&raw), "input {raw:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 15_000);
        // A US or Canadian number builds the US and Canada (neither has leading digits:
        // libphonenumber tells them apart by their number types), a Jamaican one Jamaica
        // too: 2 or 3 of +1's 25 regions.
        let ids = |area: u16| {
            nanp_database(area)
                .by_code(&1)
                .unwrap()
                .iter()
                .map(|m| m.id().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(617), ["US", "CA"]);
        assert_eq!(ids(416), ["US", "CA"]);
        assert_eq!(ids(876), ["US", "CA", "JM"]);
    }

    #[test]
    fn numbers_without_a_known_calling_code_agree_with_libphonenumber() {
        for raw in [
            "+0161755512",
            "+016175551234",
            "+2",
            "+21",
            "+999123456789",
            "+80012345678",
            "+88234567890",
            "+979123456789",
            "+1",
            "+12",
            "+123",
            "+1234",
            "+3906698",
            "+390669812345",
            "+8081234567",
        ] {
            let fast = PhoneNumber::parse(raw)
                .ok()
                .map(|p| (p.e164.clone(), p.region().map(str::to_owned)));
            assert_eq!(fast, reference(raw), "input {raw:?}");
        }
    }

    #[test]
    fn masking_hides_the_middle_digits() {
        let n = PhoneNumber::parse("+16175551234").unwrap();
        assert_eq!(n.masked().to_string(), "+1617***1234");
        assert_eq!(Masked("+1234567").to_string(), "+12***67");
        assert_eq!(Masked("+123").to_string(), "***");
    }
}
