//! How an SMS travels: its encoding, its length in the encoding's units and its parts, as
//! carriers bill and pace it (3GPP TS 23.038 and 23.040).
//!
//! A text whose every character is in the GSM 7-bit default alphabet (or its extension
//! table) goes as GSM-7: 160 septets in one part, 153 per part once split (the rest of each
//! part holds the concatenation header); an extension character (`^ { } \ [ ~ ] |` and `€`)
//! takes two septets, an escape and the character, and is never split across two parts.
//! Any other character makes the whole text UCS-2: 70 UTF-16 code units in one part, 67 per
//! part once split, a surrogate pair (an emoji, say) never split across two parts.
//!
//! [`smart`] replaces the characters that have a GSM-7 look-alike (curly quotes, dashes,
//! the ellipsis, Unicode spaces, zero-width characters, full-width ASCII), as Twilio's
//! Messaging Services do, so that a pasted apostrophe does not triple the parts.

use std::borrow::Cow;

/// Septets in a single-part GSM-7 SMS.
pub const GSM7_SINGLE: usize = 160;
/// Septets per part of a multi-part GSM-7 SMS.
pub const GSM7_PART: usize = 153;
/// UTF-16 code units in a single-part UCS-2 SMS.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 code units per part of a multi-part UCS-2 SMS.
pub const UCS2_PART: usize = 67;

/// The GSM 7-bit default alphabet, by code (3GPP TS 23.038, 6.2.1). Code 0x1B is the
/// escape to the extension table, not a character.
const GSM7_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table's characters (3GPP TS 23.038, 6.2.1.1), each sent as the escape
/// and its code: form feed, `^ { } \ [ ~ ] |` and `€`.
const GSM7_EXTENSION: [(char, u8); 10] = [
    ('\u{0C}', 0x0A),
    ('^', 0x14),
    ('{', 0x28),
    ('}', 0x29),
    ('\\', 0x2F),
    ('[', 0x3C),
    ('~', 0x3D),
    (']', 0x3E),
    ('|', 0x40),
    ('€', 0x65),
];

/// How an SMS is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

/// What one SMS text costs on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsSize {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// Parts (segments) it is sent, billed and paced as; 0 for an empty text.
    pub parts: usize,
}

/// The septets a character takes in GSM-7 (1, or 2 from the extension table); `None`
/// when GSM-7 has no such character.
pub fn gsm7_septets(c: char) -> Option<usize> {
    if c != '\u{1B}' && GSM7_BASIC.contains(&c) {
        Some(1)
    } else if GSM7_EXTENSION.iter().any(|&(e, _)| e == c) {
        Some(2)
    } else {
        None
    }
}

/// The encoding, length and parts of `text`.
pub fn measure(text: &str) -> SmsSize {
    let septets: Option<Vec<usize>> = text.chars().map(gsm7_septets).collect();
    match septets {
        Some(widths) => SmsSize {
            encoding: Encoding::Gsm7,
            units: widths.iter().sum(),
            parts: parts_of(&widths, GSM7_SINGLE, GSM7_PART),
        },
        None => {
            let widths: Vec<usize> = text.chars().map(char::len_utf16).collect();
            SmsSize {
                encoding: Encoding::Ucs2,
                units: widths.iter().sum(),
                parts: parts_of(&widths, UCS2_SINGLE, UCS2_PART),
            }
        }
    }
}

/// Parts of a text of characters `widths` units wide: one when it fits `single`, else
/// filled `per_part` at a time, a character never split across two parts.
fn parts_of(widths: &[usize], single: usize, per_part: usize) -> usize {
    let total: usize = widths.iter().sum();
    if total == 0 {
        return 0;
    }
    if total <= single {
        return 1;
    }
    let (mut parts, mut used) = (1, 0);
    for &w in widths {
        if used + w > per_part {
            parts += 1;
            used = 0;
        }
        used += w;
    }
    parts
}

/// The GSM-7 look-alike of a character that GSM-7 lacks, if it has one: `Some("")` for the
/// characters that are dropped (zero-width ones, the soft hyphen).
fn look_alike(c: char) -> Option<&'static str> {
    Some(match c {
        // Double quotes.
        '\u{00AB}' | '\u{00BB}' | '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}'
        | '\u{02BA}' | '\u{02EE}' | '\u{275D}' | '\u{275E}' | '\u{301D}' | '\u{301E}'
        | '\u{2033}' => "\"",
        // Single quotes, apostrophes, primes and accents used as such.
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{02B9}' | '\u{02BB}'
        | '\u{02BC}' | '\u{02BD}' | '\u{02C8}' | '\u{02CA}' | '\u{2032}' | '\u{2035}'
        | '\u{00B4}' | '`' => "'",
        '\u{2039}' => "<",
        '\u{203A}' => ">",
        // Dashes and minus signs.
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
        | '\u{2043}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' => "-",
        '\u{2026}' => "...",
        '\u{2044}' | '\u{2215}' => "/",
        '\u{02C6}' => "^",
        '\u{02DC}' => "~",
        '\u{2022}' | '\u{00B7}' | '\u{2027}' => "-",
        // Spaces: no-break, the typographic ones, the ideographic one; tab.
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\t' => " ",
        // Line and paragraph separators.
        '\u{2028}' | '\u{2029}' => "\n",
        // Zero-width characters and the soft hyphen: nothing to show.
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => "",
        // Latin letters whose accent GSM-7 lacks (Portuguese, Spanish, French, ...): the
        // letter without it (é, è, à, ñ, ü, ... are GSM-7 and stay).
        'á' | 'â' | 'ã' | 'ā' | 'ă' | 'ą' => "a",
        'Á' | 'Â' | 'Ã' | 'À' | 'Ā' | 'Ă' | 'Ą' => "A",
        'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'È' | 'Ê' | 'Ë' | 'Ē' | 'Ė' | 'Ę' | 'Ě' => "E",
        'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'Í' | 'Î' | 'Ï' | 'Ì' | 'Ī' | 'Į' | 'İ' => "I",
        'ó' | 'ô' | 'õ' | 'ō' | 'ő' => "o",
        'Ó' | 'Ô' | 'Õ' | 'Ò' | 'Ō' | 'Ő' => "O",
        'ú' | 'û' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'Ú' | 'Û' | 'Ù' | 'Ū' | 'Ů' | 'Ű' | 'Ų' => "U",
        'ç' | 'ć' | 'č' => "c",
        'Ć' | 'Č' => "C",
        'ń' | 'ň' => "n",
        'Ń' | 'Ň' => "N",
        'ś' | 'š' | 'ş' => "s",
        'Ś' | 'Š' | 'Ş' => "S",
        'ź' | 'ż' | 'ž' => "z",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ý' | 'ÿ' => "y",
        'Ý' | 'Ÿ' => "Y",
        'ğ' => "g",
        'Ğ' => "G",
        'ł' => "l",
        'Ł' => "L",
        'đ' => "d",
        'œ' => "oe",
        'Œ' => "OE",
        _ => return None,
    })
}

/// `text` as it is sent: through `smart` when smart encoding is `on`, as it is otherwise.
pub fn as_sent(text: &str, on: bool) -> Cow<'_, str> {
    if on { smart(text) } else { Cow::Borrowed(text) }
}

/// `text` with every character that has a GSM-7 look-alike replaced by it (full-width
/// ASCII by its ASCII form too). Characters without one (Hindi, Amharic, emoji) stay: such
/// a text remains UCS-2, and is counted as such. Borrowed when nothing changed.
pub fn smart(text: &str) -> Cow<'_, str> {
    let replaced = |c: char| -> Option<Cow<'static, str>> {
        if gsm7_septets(c).is_some() {
            return None;
        }
        if let Some(s) = look_alike(c) {
            return Some(Cow::Borrowed(s));
        }
        // Full-width ASCII (U+FF01 to U+FF5E) is ASCII shifted by 0xFEE0.
        if ('\u{FF01}'..='\u{FF5E}').contains(&c) {
            let ascii = char::from_u32(c as u32 - 0xFEE0)?;
            if gsm7_septets(ascii).is_some() {
                return Some(Cow::Owned(ascii.to_string()));
            }
            return look_alike(ascii).map(Cow::Borrowed);
        }
        None
    };
    if !text.chars().any(|c| replaced(c).is_some()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match replaced(c) {
            Some(s) => out.push_str(&s),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default alphabet as 3GPP TS 23.038 lists it, row by row (code = row * 16 +
    /// column), by code point: an independent transcription checked against the table.
    const SPEC_BASIC: [u32; 128] = [
        0x40, 0xA3, 0x24, 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, 0x0A, 0xD8, 0xF8, 0x0D, 0xC5,
        0xE5, 0x394, 0x5F, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, 0x1B,
        0xC6, 0xE6, 0xDF, 0xC9, 0x20, 0x21, 0x22, 0x23, 0xA4, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
        0x2B, 0x2C, 0x2D, 0x2E, 0x2F, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
        0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0xA1, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
        0x49, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x4F, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57,
        0x58, 0x59, 0x5A, 0xC4, 0xD6, 0xD1, 0xDC, 0xA7, 0xBF, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66,
        0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75,
        0x76, 0x77, 0x78, 0x79, 0x7A, 0xE4, 0xF6, 0xF1, 0xFC, 0xE0,
    ];

    #[test]
    fn the_default_alphabet_is_3gpp_23_038s() {
        for (code, (&ours, &spec)) in GSM7_BASIC.iter().zip(SPEC_BASIC.iter()).enumerate() {
            assert_eq!(ours as u32, spec, "code {code:#04x}");
        }
        // Every character but the escape is one septet.
        for (code, &c) in GSM7_BASIC.iter().enumerate() {
            let expected = if code == 0x1B { None } else { Some(1) };
            assert_eq!(gsm7_septets(c), expected, "{c:?}");
        }
    }

    #[test]
    fn the_extension_table_takes_two_septets_each() {
        let spec: [(u32, u8); 10] = [
            (0x0C, 0x0A),
            (0x5E, 0x14),
            (0x7B, 0x28),
            (0x7D, 0x29),
            (0x5C, 0x2F),
            (0x5B, 0x3C),
            (0x7E, 0x3D),
            (0x5D, 0x3E),
            (0x7C, 0x40),
            (0x20AC, 0x65),
        ];
        for ((c, code), (cp, spec_code)) in GSM7_EXTENSION.iter().zip(spec) {
            assert_eq!((*c as u32, *code), (cp, spec_code));
            assert_eq!(gsm7_septets(*c), Some(2), "{c:?}");
        }
        let size = measure("{[€]}");
        assert_eq!(
            (size.encoding, size.units, size.parts),
            (Encoding::Gsm7, 10, 1)
        );
    }

    #[test]
    fn gsm7_fits_160_alone_and_153_a_part() {
        let size = |n: usize| measure(&"a".repeat(n));
        assert_eq!(size(0).parts, 0);
        assert_eq!(size(1).parts, 1);
        assert_eq!(
            size(160),
            SmsSize {
                encoding: Encoding::Gsm7,
                units: 160,
                parts: 1
            }
        );
        assert_eq!(size(161).parts, 2);
        assert_eq!(size(306).parts, 2);
        assert_eq!(size(307).parts, 3);
        assert_eq!(size(153 * 11).parts, 11);
    }

    #[test]
    fn an_escape_and_its_character_stay_in_one_part() {
        // 152 septets, then `€` (2): it does not fit the first part's 153.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        let size = measure(&text);
        assert_eq!((size.units, size.parts), (164, 2));
        // 152 + 2 + 151 = 305 septets would be two parts of 153 if split anywhere; kept
        // whole, the first part holds 152, so the rest (153) is the second part exactly.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(151));
        assert_eq!(measure(&text).parts, 2);
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(measure(&text).parts, 3);
    }

    #[test]
    fn one_character_outside_gsm7_makes_the_whole_text_ucs2() {
        let size = measure("Don’t forget");
        assert_eq!(
            (size.encoding, size.units, size.parts),
            (Encoding::Ucs2, 12, 1)
        );
        let size = |n: usize| measure(&format!("’{}", "a".repeat(n - 1)));
        assert_eq!(size(70).parts, 1);
        assert_eq!(size(71).parts, 2);
        assert_eq!(size(134).parts, 2);
        assert_eq!(size(135).parts, 3);
        // The same 135 characters in GSM-7 are one part.
        assert_eq!(measure(&"a".repeat(135)).parts, 1);
    }

    #[test]
    fn a_surrogate_pair_counts_two_and_is_never_split() {
        let size = measure("😀");
        assert_eq!(
            (size.encoding, size.units, size.parts),
            (Encoding::Ucs2, 2, 1)
        );
        // 66 units, then an emoji (2): past the first part's 67, it starts the second.
        let text = format!("{}😀{}", "a".repeat(66), "a".repeat(10));
        let size = measure(&text);
        assert_eq!((size.units, size.parts), (78, 2));
        let text = format!("{}😀{}", "a".repeat(66), "a".repeat(65));
        assert_eq!(measure(&text).parts, 2);
        let text = format!("{}😀{}", "a".repeat(66), "a".repeat(66));
        assert_eq!(measure(&text).parts, 3);
    }

    #[test]
    fn look_alikes_are_replaced_and_the_rest_kept() {
        let pasted = "“Don’t” – wait…\u{00A0}now\u{200B}! ＡＢＣ１２３";
        let plain = smart(pasted);
        assert_eq!(plain, "\"Don't\" - wait... now! ABC123");
        assert_eq!(measure(&plain).encoding, Encoding::Gsm7);
        // GSM-7 text is borrowed untouched.
        assert!(matches!(smart("Hello {name} €5"), Cow::Borrowed(_)));
        // No look-alike: Hindi, Amharic and emoji stay, and stay UCS-2.
        for text in ["नमस्ते", "ሰላም", "Hi 😀"] {
            assert_eq!(smart(text), text);
            assert_eq!(measure(&smart(text)).encoding, Encoding::Ucs2);
        }
        // Mixed: the look-alikes go, the rest stays.
        assert_eq!(smart("नमस्ते – hi"), "नमस्ते - hi");
    }

    #[test]
    fn every_replacement_is_gsm7() {
        for cp in 0..=0x10FFFF_u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let s = c.to_string();
            let replaced = smart(&s);
            if replaced != s {
                assert!(
                    replaced.chars().all(|r| gsm7_septets(r).is_some()),
                    "{c:?} -> {replaced:?}"
                );
            }
        }
    }
}
