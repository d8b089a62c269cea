//! Worker accounts: what an invited worker submits on the registration page, and the
//! account created from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::phone::PhoneNumber;

/// Usernames no worker may take.
pub const RESERVED_USERNAMES: [&str; 2] = ["admin", "demo_user"];
pub const MIN_USERNAME_CHARS: usize = 3;
pub const MAX_USERNAME_CHARS: usize = 80;
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Long enough for any passphrase; argon2 over a megabyte of password would be a cheap way
/// to make the function burn CPU.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The registration form as submitted (field names kept from CommCare HQ's form).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RegistrationForm {
    pub username: String,
    pub password: String,
    pub password2: String,
    pub email: String,
}

/// Errors of the form, by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FormErrors(pub BTreeMap<String, String>);

impl FormErrors {
    pub fn single(field: &str, message: &str) -> Self {
        FormErrors(BTreeMap::from([(field.to_owned(), message.to_owned())]))
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }
}

/// A form that passed every rule: the username normalised, the email optional.
#[derive(Clone, PartialEq, Eq)]
pub struct ValidForm {
    pub username: String,
    pub password: String,
    pub email: Option<String>,
}

/// Passwords never reach logs, not even through `{:?}`.
impl std::fmt::Debug for RegistrationForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationForm")
            .field("username", &self.username)
            .field("password", &"***")
            .field("password2", &"***")
            .field("email", &self.email)
            .finish()
    }
}

impl std::fmt::Debug for ValidForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidForm")
            .field("username", &self.username)
            .field("password", &"***")
            .field("email", &self.email)
            .finish()
    }
}

/// Trimmed and lower-cased, as usernames are stored.
pub fn normalise_username(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// Longest address, local part and domain name, in octets (RFC 5321, 4.5.3.1, with the
/// path's 256 less its angle brackets for the address).
pub const MAX_EMAIL_OCTETS: usize = 254;
const MAX_LOCAL_PART_OCTETS: usize = 64;
const MAX_DOMAIN_OCTETS: usize = 255;
const MAX_LABEL_OCTETS: usize = 63;

/// An address as RFC 5322's dot-atom `local@domain`: the local part of ASCII letters, digits
/// and ``!#$%&'*+/=?^_`{|}~-`` in dot-separated runs; the domain a host name of at least two
/// labels. Quoted local parts, comments, address literals and non-ASCII (give an
/// internationalised domain in its `xn--` form) are refused: no mail service needs them
/// for a worker's address, and every one of them is a way to carry markup or spaces.
fn is_valid_email(email: &str) -> bool {
    if email.len() > MAX_EMAIL_OCTETS {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    is_dot_atom(local) && is_host_name(domain)
}

fn is_dot_atom(local: &str) -> bool {
    local.len() <= MAX_LOCAL_PART_OCTETS
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b))
        })
}

fn is_host_name(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= MAX_DOMAIN_OCTETS
        && labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=MAX_LABEL_OCTETS).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        // An all-digit last label is an IP address, not a host name.
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

impl RegistrationForm {
    /// Applies every rule; the username's uniqueness is checked when it is stored.
    pub fn validate(&self, require_email: bool) -> Result<ValidForm, FormErrors> {
        let mut errors = BTreeMap::new();
        // Lengths are checked on the value as typed, with bounded counts, before anything
        // that costs in proportion to it (lower-casing, hashing): a field may be a megabyte.
        let username = self.username.trim();
        let username_chars = username.chars().take(MAX_USERNAME_CHARS + 1).count();
        let username_error = if username.is_empty() {
            Some("This field is required")
        } else if !(MIN_USERNAME_CHARS..=MAX_USERNAME_CHARS).contains(&username_chars) {
            Some("Usernames are 3 to 80 characters long")
        } else if !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            Some("Use only letters, digits, '.', '_' and '-'")
        } else if RESERVED_USERNAMES.contains(&normalise_username(username).as_str()) {
            Some("This username is reserved; choose another")
        } else {
            None
        };
        if let Some(message) = username_error {
            errors.insert("username".to_owned(), message.to_owned());
        }
        let password_chars = self.password.chars().take(MAX_PASSWORD_CHARS + 1).count();
        if self.password.is_empty() {
            errors.insert("password".into(), "This field is required".into());
        } else if password_chars > MAX_PASSWORD_CHARS {
            errors.insert(
                "password".into(),
                format!("Passwords have at most {MAX_PASSWORD_CHARS} characters"),
            );
        } else if self.password.trim().is_empty() {
            errors.insert("password".into(), "A password cannot be only spaces".into());
        } else if password_chars < MIN_PASSWORD_CHARS {
            errors.insert(
                "password".into(),
                format!("Passwords have at least {MIN_PASSWORD_CHARS} characters"),
            );
        }
        if self.password2 != self.password {
            errors.insert("password2".into(), "The two passwords do not match".into());
        }
        let email = self.email.trim();
        if email.is_empty() {
            if require_email {
                errors.insert("email".into(), "This field is required".into());
            }
        } else if !is_valid_email(email) {
            errors.insert("email".into(), "Enter a valid email address".into());
        }
        if !errors.is_empty() {
            return Err(FormErrors(errors));
        }
        Ok(ValidForm {
            username: normalise_username(username),
            password: self.password.clone(),
            email: (!email.is_empty()).then(|| email.to_owned()),
        })
    }
}

/// A worker's account, created when the invitation is completed.
#[derive(Clone, PartialEq)]
pub struct Worker {
    pub domain: String,
    pub username: String,
    /// argon2id, in PHC string form; `None` when the project's directory (Cognito,
    /// CommCare HQ) holds the password (docs/accounts.md).
    pub password_hash: Option<String>,
    pub phone: PhoneNumber,
    pub email: Option<String>,
    pub custom_user_data: Option<Map<String, Value>>,
    pub app_id: Option<String>,
    pub registered_at: u64,
}

/// Never prints the password hash.
impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("domain", &self.domain)
            .field("username", &self.username)
            .field("phone", &self.phone.masked().to_string())
            .finish_non_exhaustive()
    }
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> String {
    use argon2::PasswordHasher;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random source failed");
    argon2::Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .expect("argon2 accepts any password with a 16-byte salt")
        .to_string()
}

/// Checks a password against a stored argon2id hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::password_hash::phc::PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(username: &str, password: &str, password2: &str, email: &str) -> RegistrationForm {
        RegistrationForm {
            username: username.into(),
            password: password.into(),
            password2: password2.into(),
            email: email.into(),
        }
    }

    #[test]
    fn passwords_never_show_in_debug() {
        let raw = form("jane", "correct horse", "correct horse", "");
        let valid = raw.validate(false).unwrap();
        for text in [format!("{raw:?}"), format!("{valid:?}")] {
            assert!(!text.contains("correct horse"), "{text}");
            assert!(text.contains("jane") && text.contains("***"), "{text}");
        }
    }

    #[test]
    fn a_good_form_is_normalised() {
        let valid = form(
            "  Jane.Doe-1 ",
            "correct horse",
            "correct horse",
            " jane@example.org ",
        )
        .validate(true)
        .unwrap();
        assert_eq!(valid.username, "jane.doe-1");
        assert_eq!(valid.email.as_deref(), Some("jane@example.org"));
        assert_eq!(
            form("jane", "12345678", "12345678", "")
                .validate(false)
                .unwrap()
                .email,
            None
        );
    }

    #[test]
    fn each_rule_gives_its_message_on_its_field() {
        let cases = [
            (
                form("", "12345678", "12345678", ""),
                "username",
                "This field is required",
            ),
            (
                form("ab", "12345678", "12345678", ""),
                "username",
                "Usernames are 3 to 80 characters long",
            ),
            (
                form(&"a".repeat(81), "12345678", "12345678", ""),
                "username",
                "Usernames are 3 to 80 characters long",
            ),
            (
                form("jane doe", "12345678", "12345678", ""),
                "username",
                "Use only letters, digits, '.', '_' and '-'",
            ),
            (
                form("jané", "12345678", "12345678", ""),
                "username",
                "Use only letters, digits, '.', '_' and '-'",
            ),
            (
                form("Admin", "12345678", "12345678", ""),
                "username",
                "This username is reserved; choose another",
            ),
            (
                form("demo_user", "12345678", "12345678", ""),
                "username",
                "This username is reserved; choose another",
            ),
            (
                form("jane", "", "", ""),
                "password",
                "This field is required",
            ),
            (
                form("jane", "1234567", "1234567", ""),
                "password",
                "Passwords have at least 8 characters",
            ),
            (
                form("jane", "12345678", "12345679", ""),
                "password2",
                "The two passwords do not match",
            ),
            (
                form("jane", "12345678", "12345678", "not-an-email"),
                "email",
                "Enter a valid email address",
            ),
            (
                form("jane", "12345678", "12345678", "a@b"),
                "email",
                "Enter a valid email address",
            ),
            (
                form("jane", "12345678", "12345678", "a b@c.org"),
                "email",
                "Enter a valid email address",
            ),
        ];
        for (f, field, message) in cases {
            let errors = f.validate(false).unwrap_err();
            assert_eq!(errors.get(field), Some(message), "{f:?}");
            assert_eq!(errors.0.len(), 1, "{f:?}: {errors:?}");
        }
        let errors = form("jane", "12345678", "12345678", "")
            .validate(true)
            .unwrap_err();
        assert_eq!(errors.get("email"), Some("This field is required"));
    }

    #[test]
    fn emails_are_checked_as_addresses() {
        let local_64 = "l".repeat(64);
        let label_63 = "d".repeat(63);
        // 64 + 1 + 189 = 254 octets: the longest address.
        let longest = format!("{local_64}@{label_63}.{label_63}.{}", "d".repeat(61));
        let too_long = format!("{local_64}@{label_63}.{label_63}.{}", "d".repeat(62));
        let valid = [
            "jane@example.org".to_owned(),
            "Jane.Doe+tag@Sub.Example.co.uk".to_owned(),
            "o'brien@example.ie".to_owned(),
            "!#$%&'*+/=?^_`{|}~-@example.org".to_owned(),
            "a@b.co".to_owned(),
            "jane@xn--bcher-kva.example".to_owned(),
            "jane@my-host.example".to_owned(),
            "jane@1-2.example".to_owned(),
            format!("{local_64}@example.org"),
            format!("jane@{label_63}.org"),
            longest.clone(),
        ];
        for email in &valid {
            assert!(is_valid_email(email), "{email:?} is valid");
        }
        assert_eq!(longest.len(), 254);
        let invalid = [
            "<img/src=x/onerror=alert(1)>@-b.co".to_owned(),
            "<jane@example.org>".to_owned(),
            "jane(work)@example.org".to_owned(),
            "\"jane doe\"@example.org".to_owned(),
            "\"jane\"@example.org".to_owned(),
            "jane doe@example.org".to_owned(),
            "jane@exa mple.org".to_owned(),
            "jané@example.org".to_owned(),
            "jane@exämple.org".to_owned(),
            "jane\u{0}@example.org".to_owned(),
            "jane,doe@example.org".to_owned(),
            "jane;doe@example.org".to_owned(),
            "jane:doe@example.org".to_owned(),
            "jane\\doe@example.org".to_owned(),
            "not-an-email".to_owned(),
            "@example.org".to_owned(),
            "jane@".to_owned(),
            "jane@@example.org".to_owned(),
            "ja@ne@example.org".to_owned(),
            ".jane@example.org".to_owned(),
            "jane.@example.org".to_owned(),
            "ja..ne@example.org".to_owned(),
            "jane@localhost".to_owned(),
            "a@b".to_owned(),
            "jane@-example.org".to_owned(),
            "jane@example-.org".to_owned(),
            "jane@example.-org".to_owned(),
            "jane@exa_mple.org".to_owned(),
            "jane@.example.org".to_owned(),
            "jane@example.org.".to_owned(),
            "jane@example..org".to_owned(),
            "jane@127.0.0.1".to_owned(),
            "jane@[127.0.0.1]".to_owned(),
            format!("l{local_64}@example.org"),
            format!("jane@d{label_63}.org"),
            too_long,
        ];
        for email in &invalid {
            assert!(!is_valid_email(email), "{email:?} is refused");
            let errors = form("jane", "12345678", "12345678", email)
                .validate(false)
                .unwrap_err();
            assert_eq!(errors.get("email"), Some("Enter a valid email address"));
        }
    }

    #[test]
    fn a_password_of_only_whitespace_is_refused() {
        for blank in ["        ", "\t\t\t\t\t\t\t\t", " \u{a0}\u{3000} \n\r   "] {
            let errors = form("jane", blank, blank, "").validate(false).unwrap_err();
            assert_eq!(
                errors.get("password"),
                Some("A password cannot be only spaces"),
                "{blank:?}"
            );
        }
        // Spaces inside or around other characters are kept, as typed.
        let valid = form("jane", " correct horse ", " correct horse ", "")
            .validate(false)
            .unwrap();
        assert_eq!(valid.password, " correct horse ");
    }

    #[test]
    fn a_password_longer_than_the_maximum_is_refused_before_it_is_hashed() {
        let longest = "p".repeat(MAX_PASSWORD_CHARS);
        assert!(form("jane", &longest, &longest, "").validate(false).is_ok());
        // Counted in characters, not bytes.
        let longest = "é".repeat(MAX_PASSWORD_CHARS);
        assert!(form("jane", &longest, &longest, "").validate(false).is_ok());
        for too_long in ["p".repeat(MAX_PASSWORD_CHARS + 1), "p".repeat(1 << 20)] {
            let errors = form("jane", &too_long, &too_long, "")
                .validate(false)
                .unwrap_err();
            assert_eq!(
                errors.get("password"),
                Some(format!("Passwords have at most {MAX_PASSWORD_CHARS} characters").as_str())
            );
        }
    }

    #[test]
    fn over_long_usernames_and_emails_are_refused_on_their_length() {
        let megabyte = "a".repeat(1 << 20);
        let errors = form(
            &megabyte,
            "12345678",
            "12345678",
            &format!("{megabyte}@example.org"),
        )
        .validate(false)
        .unwrap_err();
        assert_eq!(
            errors.get("username"),
            Some("Usernames are 3 to 80 characters long")
        );
        assert_eq!(errors.get("email"), Some("Enter a valid email address"));
        // Whitespace around the username is not counted.
        let padded = format!("  {}  ", "a".repeat(80));
        assert!(
            form(&padded, "12345678", "12345678", "")
                .validate(false)
                .is_ok()
        );
    }

    #[test]
    fn passwords_are_hashed_with_argon2id_and_verified() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert_ne!(hash, hash_password("correct horse"), "salted");
    }
}
