//! Reads the `Authorization` header: `ApiKey user:key` or `Basic base64(user:key)`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::service::Credentials;

/// Longest username accepted (an email address is at most 254 bytes): a longer one names
/// no key, and is never looked up (DynamoDB refuses keys over 2048 bytes).
pub const MAX_USERNAME_BYTES: usize = 254;
/// Longest key accepted; the service's keys are 43 characters.
pub const MAX_KEY_BYTES: usize = 256;

/// The credentials of a header value, or `None` when missing, malformed or too long.
pub fn parse_authorization(value: Option<&[u8]>) -> Option<Credentials> {
    let value = value?;
    // base64 of the longest pair, with the scheme and some spaces.
    if value.len() > (MAX_USERNAME_BYTES + MAX_KEY_BYTES + 1) * 4 / 3 + 32 {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace)?;
    let rest = rest.trim();
    let pair = if scheme.eq_ignore_ascii_case("apikey") {
        rest.to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        String::from_utf8(STANDARD.decode(rest).ok()?).ok()?
    } else {
        return None;
    };
    let (username, key) = pair.split_once(':')?;
    if username.is_empty()
        || key.is_empty()
        || username.len() > MAX_USERNAME_BYTES
        || key.len() > MAX_KEY_BYTES
    {
        return None;
    }
    Some(Credentials {
        username: username.to_owned(),
        key: key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Option<(String, String)> {
        parse_authorization(Some(v.as_bytes())).map(|c| (c.username, c.key))
    }

    fn pair(u: &str, k: &str) -> Option<(String, String)> {
        Some((u.into(), k.into()))
    }

    #[test]
    fn api_key_scheme_is_case_insensitive_and_splits_on_the_first_colon() {
        assert_eq!(
            parse("ApiKey admin@example.com:abc"),
            pair("admin@example.com", "abc")
        );
        assert_eq!(parse("apikey u:k:with:colons"), pair("u", "k:with:colons"));
        assert_eq!(parse("APIKEY   u:k  "), pair("u", "k"));
    }

    #[test]
    fn basic_scheme_decodes_base64() {
        let header = format!("Basic {}", STANDARD.encode("admin@example.com:s3cret:x"));
        assert_eq!(parse(&header), pair("admin@example.com", "s3cret:x"));
        let header = format!("basic {}", STANDARD.encode("u:k"));
        assert_eq!(parse(&header), pair("u", "k"));
    }

    #[test]
    fn malformed_headers_give_no_credentials() {
        for bad in [
            "",
            "ApiKey",
            "ApiKey ",
            "ApiKey nocolon",
            "ApiKey :key",
            "ApiKey user:",
            "Bearer u:k",
            "Basic !!!notbase64",
            "Basic dTpr=====",
            "ApiKeyu:k",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert!(parse_authorization(None).is_none());
        let longest = "u".repeat(MAX_USERNAME_BYTES);
        assert_eq!(parse(&format!("ApiKey {longest}:k")), pair(&longest, "k"));
        let header = format!(
            "Basic {}",
            STANDARD.encode(format!("{longest}:{}", "k".repeat(MAX_KEY_BYTES)))
        );
        assert!(
            parse(&header).is_some(),
            "the longest pair fits, base64-encoded"
        );
        for too_long in [
            format!("ApiKey {longest}u:k"),
            format!("ApiKey u:{}", "k".repeat(MAX_KEY_BYTES + 1)),
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:k", "u".repeat(3000)))
            ),
        ] {
            assert_eq!(parse(&too_long), None);
        }
        assert!(parse_authorization(Some(&[0xff, 0xfe])).is_none());
        let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, b':', 0xfe]));
        assert_eq!(parse(&not_utf8), None);
    }
}
