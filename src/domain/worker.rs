//! Worker accounts: what an invited worker submits on the registration page, and the
//! account created from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::phone::PhoneNumber;

/// Usernames no worker may take.
pub const RESERVED_USERNAMES: [&str; 2] = ["admin", "demo_user"];
pub const MIN_PASSWORD_CHARS: usize = 8;

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

fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

impl RegistrationForm {
    /// Applies every rule; the username's uniqueness is checked when it is stored.
    pub fn validate(&self, require_email: bool) -> Result<ValidForm, FormErrors> {
        let mut errors = BTreeMap::new();
        let username = normalise_username(&self.username);
        let username_error = if username.is_empty() {
            Some("This field is required")
        } else if !(3..=80).contains(&username.chars().count()) {
            Some("Usernames are 3 to 80 characters long")
        } else if !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            Some("Use only letters, digits, '.', '_' and '-'")
        } else if RESERVED_USERNAMES.contains(&username.as_str()) {
            Some("This username is reserved; choose another")
        } else {
            None
        };
        if let Some(message) = username_error {
            errors.insert("username".to_owned(), message.to_owned());
        }
        if self.password.is_empty() {
            errors.insert("password".into(), "This field is required".into());
        } else if self.password.chars().count() < MIN_PASSWORD_CHARS {
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
            username,
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
    /// argon2id, in PHC string form.
    pub password_hash: String,
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

impl Worker {
    /// The `worker_registered` event for the organisation's systems (never the password).
    pub fn registered_event(&self) -> Value {
        serde_json::json!({
            "event": "worker_registered",
            "domain": self.domain,
            "username": self.username,
            "phone_number": self.phone.as_str(),
            "email": self.email,
            "custom_user_data": self.custom_user_data,
            "app_id": self.app_id,
            "registered_at": super::time::rfc3339(self.registered_at),
        })
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
    fn passwords_are_hashed_with_argon2id_and_verified() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert_ne!(hash, hash_password("correct horse"), "salted");
    }
}
