//! Phone normalisation: never panics, and a valid number's E.164 form reads back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsreg::domain::PhoneNumber;

fuzz_target!(|raw: &str| {
    if let Ok(phone) = PhoneNumber::parse(raw) {
        let e164 = phone.as_str();
        assert!(e164.starts_with('+') && e164.len() <= 16, "{e164}");
        assert!(e164[1..].bytes().all(|b| b.is_ascii_digit()), "{e164}");
        assert_eq!(PhoneNumber::parse(e164).as_ref(), Ok(&phone));
        let masked = phone.masked().to_string();
        assert!(!masked.contains(&e164[1..]), "masking hides the number");
    }
});
