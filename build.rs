//! Splits libphonenumber's metadata (the `phonenumber` crate's own) by country calling code.
//!
//! The crate builds one database of every country, and building it checks the syntax of
//! its ~10 000 patterns: about 80 ms of CPU on the first phone number a process meets. The
//! function instead builds, on first use, a database of the one calling code it needs
//! (`src/domain/phone.rs`), from the part written here. The parts are the crate's database,
//! read back through its public accessors at build time, so the data is exactly the
//! crate's: a unit test compares the answers with the crate's own on every country code.

use std::fmt::Write as _;
use std::path::Path;

use phonenumber::metadata::{DATABASE, Descriptor, Metadata, loader};

/// A pattern of the metadata as the function compiles it: each `\d` written `[0-9]` (`0-9`
/// inside a class), and without the layout's whitespace.
///
/// In the `regex` crate `\d` is Unicode's decimal digits, some 70 ranges, so every `\d`
/// of a pattern compiles to a UTF-8 automaton of its own; the patterns of a country hold
/// hundreds. The function only ever gives libphonenumber ASCII digits (`PhoneNumber::parse`
/// refuses anything else first), on which the two match alike; the ASCII class compiles
/// to a single byte range.
///
/// libphonenumber lays its patterns out over many indented lines (two thirds of the US
/// fixed-line pattern's 2,020 characters are spaces and line ends), and the crate reads
/// them in verbose mode (`ignore_whitespace`), where whitespace outside an escape means
/// nothing, in a class too; every character of it is still read by the syntax check each
/// pattern gets when a database is built. A `#` would start a comment that a line end
/// closes: there is none in the metadata, and the build stops if one appears.
///
/// Checked by the unit tests that compare every answer with the crate's own database,
/// whose patterns are left as they are.
fn compact(pattern: &str) -> String {
    assert!(
        !pattern.contains('#'),
        "a metadata pattern has a verbose-mode comment: {pattern}"
    );
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('d') if class_depth > 0 => out.push_str("0-9"),
                Some('d') => out.push_str("[0-9]"),
                Some(escaped) => {
                    out.push('\\');
                    out.push(escaped);
                }
                None => out.push('\\'),
            },
            '[' => {
                class_depth += 1;
                out.push(c);
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(c);
            }
            c if c.is_whitespace() => {}
            _ => out.push(c),
        }
    }
    out
}

fn descriptor(d: &Descriptor) -> loader::Descriptor {
    loader::Descriptor {
        national_number: Some(compact(d.national_number().as_str())),
        possible_length: d.possible_length().to_vec(),
        possible_local_length: d.possible_local_length().to_vec(),
        example: None,
    }
}

/// A region's metadata, as much of it as parsing a number and telling its validity and
/// region read (`phonenumber::parse_with`, `src/domain/phone.rs`): the general pattern,
/// the patterns of the number types libphonenumber's `number_type` tries, and the
/// national and international prefixes. Left out are what only formatting and short
/// numbers use (the formats, and the emergency, short-code, standard-rate, carrier and
/// no-international patterns) and the examples: building a database checks the syntax of
/// every pattern it holds, and these would be checked for nothing.
///
/// A number type whose pattern and lengths are those of a type before it (the US and
/// Canada give mobile numbers their fixed-line pattern, 2,020 and 1,006 characters) is
/// left out too: a number is valid when it has any of the types (`has_a_type` in
/// `src/domain/phone.rs`), so the copy changes no answer, and its syntax would be checked
/// again for nothing. Parsing reads the general pattern alone.
fn metadata(m: &Metadata) -> loader::Metadata {
    let d = m.descriptors();
    let text = |s: Option<&str>| s.map(str::to_owned);
    let mut kept: Vec<loader::Descriptor> = Vec::new();
    let mut number_type = |desc: Option<&Descriptor>| {
        let desc = descriptor(desc?);
        let same = |k: &loader::Descriptor| {
            k.national_number == desc.national_number
                && k.possible_length == desc.possible_length
                && k.possible_local_length == desc.possible_local_length
        };
        if kept.iter().any(same) {
            return None;
        }
        kept.push(desc.clone());
        Some(desc)
    };
    loader::Metadata {
        general: Some(descriptor(d.general())),
        fixed_line: number_type(d.fixed_line()),
        mobile: number_type(d.mobile()),
        toll_free: number_type(d.toll_free()),
        premium_rate: number_type(d.premium_rate()),
        shared_cost: number_type(d.shared_cost()),
        personal_number: number_type(d.personal_number()),
        voip: number_type(d.voip()),
        pager: number_type(d.pager()),
        uan: number_type(d.uan()),
        emergency: None,
        voicemail: number_type(d.voicemail()),
        short_code: None,
        standard_rate: None,
        carrier: None,
        no_international: None,
        id: Some(m.id().to_owned()),
        country_code: Some(m.country_code()),
        international_prefix: m.international_prefix().map(|r| compact(r.as_str())),
        preferred_international_prefix: text(m.preferred_international_prefix()),
        national_prefix: text(m.national_prefix()),
        preferred_extension_prefix: text(m.preferred_extension_prefix()),
        national_prefix_for_parsing: m.national_prefix_for_parsing().map(|r| compact(r.as_str())),
        national_prefix_transform_rule: text(m.national_prefix_transform_rule()),
        formats: Vec::new(),
        international_formats: Vec::new(),
        main_country_for_code: m.is_main_country_for_code(),
        leading_digits: m.leading_digits().map(|r| compact(r.as_str())),
        mobile_number_portable: m.is_mobile_number_portable(),
        defaults: Default::default(),
    }
}

/// For +1, the regions a number of each area code (the 3 digits after +1) may belong to,
/// as libphonenumber picks a +1 number's region: the first region whose leading digits
/// match the national number, or, for a region without leading digits (the US and Canada), whose
/// number types do. A region whose leading digits match no number of the area code is
/// never picked for it, so leaving it out changes no answer. Leading digits are tried on
/// the area code followed by each digit (NANP's are three digits long; a pattern reading
/// further only adds regions). Returns the distinct sets (region indices in crate order,
/// the main country first) and each area code's set.
fn nanp_subsets() -> (Vec<Vec<u8>>, Vec<u8>) {
    let regions = DATABASE.by_code(&1).expect("+1 has regions");
    let mut subsets: Vec<Vec<u8>> = Vec::new();
    let mut areas = Vec::with_capacity(1000);
    for area in 0..1000u16 {
        let tries: Vec<String> = std::iter::once(format!("{area:03}"))
            .chain((0..10).map(|d| format!("{area:03}{d}000000")))
            .collect();
        let subset: Vec<u8> = regions
            .iter()
            .enumerate()
            .filter(|(_, m)| match m.leading_digits() {
                None => true,
                Some(pattern) => tries
                    .iter()
                    .any(|t| pattern.find(t).is_some_and(|found| found.start() == 0)),
            })
            .map(|(i, _)| u8::try_from(i).expect("+1 has fewer than 256 regions"))
            .collect();
        let index = match subsets.iter().position(|s| *s == subset) {
            Some(i) => i,
            None => {
                subsets.push(subset);
                subsets.len() - 1
            }
        };
        areas.push(u8::try_from(index).expect("fewer than 256 distinct sets"));
    }
    (subsets, areas)
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let mut blob = Vec::new();
    let mut index = String::new();
    let mut count = 0;
    // Calling codes have one to three digits. `by_code` lists a code's regions with its
    // main country first, the order `Database::from` rebuilds from them.
    for code in 1..=999u16 {
        let Some(regions) = DATABASE.by_code(&code) else {
            continue;
        };
        let part: Vec<loader::Metadata> = regions.into_iter().map(metadata).collect();
        let bytes = postcard::to_allocvec(&part).expect("the metadata serialises");
        writeln!(
            index,
            "    ({code}, {}, {}),",
            blob.len(),
            blob.len() + bytes.len()
        )
        .unwrap();
        blob.extend_from_slice(&bytes);
        count += 1;
    }
    let (subsets, areas) = nanp_subsets();
    let subsets_src: Vec<String> = subsets.iter().map(|s| format!("&{s:?}")).collect();
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    std::fs::write(out.join("phone_metadata.bin"), &blob).expect("OUT_DIR is writable");
    let source = format!(
        "/// Calling codes with the byte range of their part of `PARTS`, by code.\n\
         pub static CODES: [(u16, usize, usize); {count}] = [\n{index}];\n\
         /// Each code's regions, as postcard-serialised `phonenumber` loader metadata.\n\
         pub static PARTS: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/phone_metadata.bin\"));\n\
         /// +1's regions a number needs, by the 3 digits after +1 (`NANP_AREAS`): the\n\
         /// indices, in +1's part, of the regions without leading digits (the US and Canada) and of\n\
         /// those whose leading digits can match.\n\
         pub static NANP_SUBSETS: [&[u8]; {}] = [{}];\n\
         /// For each area code 000 to 999, its index in `NANP_SUBSETS`.\n\
         pub static NANP_AREAS: [u8; 1000] = {areas:?};\n",
        subsets_src.len(),
        subsets_src.join(", ")
    );
    std::fs::write(out.join("phone_metadata.rs"), source).expect("OUT_DIR is writable");
}
