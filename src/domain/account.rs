//! Where a project's worker accounts live (the service's own table, a Cognito user pool or
//! a CommCare HQ project), the rules each adds to a username, and the state of a worker's
//! account in it (docs/accounts.md).

use std::fmt;

use serde_json::{Map, Value};

use super::PhoneNumber;

/// Where a project's workers get their accounts (`smsreg-admin put-domain --accounts`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Accounts {
    /// The service's own table (a username and an argon2 hash): no app signs in with it.
    #[default]
    Service,
    /// The deployment's Cognito user pool (`USER_POOL_ID`).
    Cognito,
    /// A project of a CommCare HQ server, through HQ's User API.
    CommCareHq(HqProject),
}

/// A project of a CommCare HQ server, and where the key of its User API is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct HqProject {
    /// `https://www.commcarehq.org`, without a trailing slash.
    pub base_url: String,
    /// The HQ project's name (its "domain").
    pub domain: String,
    /// The Secrets Manager secret holding `web-user-email:api-key`.
    pub key_secret_arn: String,
}

/// The secret's ARN names where the key is, not the key: it may be shown.
impl fmt::Debug for HqProject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HqProject")
            .field("base_url", &self.base_url)
            .field("domain", &self.domain)
            .field("key_secret_arn", &self.key_secret_arn)
            .finish()
    }
}

/// The longest username Cognito takes.
pub const COGNITO_MAX_USERNAME: usize = 128;
/// The longest local part of an email address (RFC 5321), which HQ's usernames are.
pub const HQ_MAX_LOCAL_PART: usize = 64;
/// Names CommCare HQ keeps for itself ("already taken or reserved").
pub const HQ_RESERVED_USERNAMES: [&str; 2] = ["admin", "demo_user"];

/// The kinds as `put-domain --accounts` names them.
pub const KINDS: [&str; 3] = ["service", "cognito", "commcare-hq"];

impl Accounts {
    pub fn kind(&self) -> &'static str {
        match self {
            Accounts::Service => KINDS[0],
            Accounts::Cognito => KINDS[1],
            Accounts::CommCareHq(_) => KINDS[2],
        }
    }

    /// An account outside the service's table: made by a call that may be slow or fail.
    pub fn is_external(&self) -> bool {
        !matches!(self, Accounts::Service)
    }

    /// The account's username in its directory, from the form's (normalised) username:
    /// `jane@demo` in Cognito (the project named, as HQ does),
    /// `jane@hq-project.commcarehq.org` at HQ (HQ's own completion, on every server).
    pub fn account_username(&self, project: &str, username: &str) -> String {
        match self {
            Accounts::Service => username.to_owned(),
            Accounts::Cognito => format!("{username}@{project}"),
            Accounts::CommCareHq(hq) => format!("{username}@{}.commcarehq.org", hq.domain),
        }
    }

    /// What the worker types to sign in, from the account's username in the directory:
    /// the CommCare app adds HQ's suffix itself.
    pub fn sign_in_name<'a>(&self, account_username: &'a str) -> &'a str {
        match self {
            Accounts::CommCareHq(_) => account_username
                .split_once('@')
                .map_or(account_username, |(name, _)| name),
            _ => account_username,
        }
    }

    /// The directory's own rules for a username the form's rules already passed (letters,
    /// digits, `.`, `_`, `-`, 3 to 80 characters, lower-cased): `None` when it passes.
    pub fn username_error(&self, project: &str, username: &str) -> Option<String> {
        match self {
            Accounts::Service => None,
            Accounts::Cognito => {
                let full = self.account_username(project, username);
                (full.chars().count() > COGNITO_MAX_USERNAME).then(|| {
                    format!(
                        "Usernames here are at most {} characters",
                        COGNITO_MAX_USERNAME.saturating_sub(project.chars().count() + 1)
                    )
                })
            }
            // HQ completes the name to an email address and refuses one that is not valid:
            // the name is its local part.
            Accounts::CommCareHq(_) => {
                if username.len() > HQ_MAX_LOCAL_PART {
                    Some(format!(
                        "Usernames are at most {HQ_MAX_LOCAL_PART} characters long"
                    ))
                } else if username.starts_with('.')
                    || username.ends_with('.')
                    || username.contains("..")
                {
                    Some("A username cannot begin or end with '.' or have two in a row".into())
                } else if HQ_RESERVED_USERNAMES
                    .iter()
                    .any(|reserved| username.eq_ignore_ascii_case(reserved))
                {
                    Some("This username is reserved by CommCare HQ".into())
                } else {
                    None
                }
            }
        }
    }
}

/// Where a worker's account stands (an invitation's `account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// The registration page is making it: the invitation is not registered yet. If the
    /// page ended before it knew, the accounts function finishes (docs/accounts.md).
    Claimed,
    /// Registered; the account is being made (the directory was slow, throttled or down).
    Pending,
    Created,
    /// It could not be made: `reason` says why.
    Failed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Claimed => "claimed",
            AccountStatus::Pending => "pending",
            AccountStatus::Created => "created",
            AccountStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            AccountStatus::Claimed,
            AccountStatus::Pending,
            AccountStatus::Created,
            AccountStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Created or failed: nothing more will happen to it.
    pub fn is_settled(self) -> bool {
        matches!(self, AccountStatus::Created | AccountStatus::Failed)
    }
}

/// A worker's account in an outside directory, as its invitation records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub status: AccountStatus,
    /// The directory's kind ([`Accounts::kind`]).
    pub directory: String,
    /// The account's username in its directory.
    pub username: String,
    /// Names this attempt to make it, and is written into the account: how the service
    /// recognises an account it made itself when the directory's answer was lost.
    pub attempt: String,
    /// Why it failed (failed), or what it waits for (pending).
    pub reason: Option<String>,
    /// When the attempt began.
    pub since: u64,
    /// The worker was texted that it is ready (made after the page had answered).
    pub notified: bool,
    /// The email the worker gave on the form, for the account (kept with the claim, so that
    /// an account the accounts function finishes has it too).
    pub email: Option<String>,
}

impl AccountState {
    /// As the page's JSON answer and the listings give it.
    pub fn listed(&self) -> serde_json::Value {
        serde_json::json!({
            "status": match self.status {
                // Shown as pending: the registration is being saved with it.
                AccountStatus::Claimed => "pending",
                other => other.as_str(),
            },
            "username": self.username,
            "reason": self.reason,
        })
    }
}

/// A password on its way to a directory. Never printed, never stored as is.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(text: String) -> Self {
        Password(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Everything a directory is given to make one worker's account.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAccount {
    /// The project (of this service) the worker registered in.
    pub project: String,
    /// The account's username in the directory ([`Accounts::account_username`]).
    pub username: String,
    pub password: Password,
    pub phone: PhoneNumber,
    pub email: Option<String>,
    pub app_id: Option<String>,
    pub custom_user_data: Option<Map<String, Value>>,
    /// The worker's language, when the invitation has one (CommCare HQ's `language`).
    pub language: Option<super::language::Language>,
    /// The attempt ([`AccountState::attempt`]), written into the account.
    pub reference: String,
}

/// The one-part SMS that tells a worker, whose page had answered before the account
/// existed, the name to sign in with (at most 128 characters: one GSM-7 part).
pub fn account_ready_text(texts: &super::language::Texts, sign_in_name: &str) -> String {
    texts.fill("sms.account_ready", &[("username", sign_in_name)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hq() -> Accounts {
        Accounts::CommCareHq(HqProject {
            base_url: "https://www.commcarehq.org".into(),
            domain: "demo-hq".into(),
            key_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:hq".into(),
        })
    }

    #[test]
    fn usernames_name_their_project_in_each_directory() {
        assert_eq!(Accounts::Service.account_username("demo", "jane"), "jane");
        assert_eq!(
            Accounts::Cognito.account_username("demo", "jane"),
            "jane@demo"
        );
        assert_eq!(
            hq().account_username("demo", "jane"),
            "jane@demo-hq.commcarehq.org"
        );
        assert_eq!(hq().sign_in_name("jane@demo-hq.commcarehq.org"), "jane");
        assert_eq!(Accounts::Cognito.sign_in_name("jane@demo"), "jane@demo");
    }

    #[test]
    fn each_directory_adds_its_own_username_rules() {
        assert_eq!(hq().username_error("demo", "jane.doe"), None);
        assert!(hq().username_error("demo", &"a".repeat(65)).is_some());
        assert_eq!(hq().username_error("demo", &"a".repeat(64)), None);
        for reserved in ["admin", "Demo_User"] {
            assert_eq!(
                hq().username_error("demo", reserved).as_deref(),
                Some("This username is reserved by CommCare HQ")
            );
        }
        assert_eq!(Accounts::Cognito.username_error("demo", "admin"), None);
        for bad in [".jane", "jane.", "ja..ne"] {
            assert!(hq().username_error("demo", bad).is_some(), "{bad}");
        }
        let project = "p".repeat(50);
        assert_eq!(
            Accounts::Cognito.username_error(&project, &"a".repeat(77)),
            None
        );
        assert!(
            Accounts::Cognito
                .username_error(&project, &"a".repeat(78))
                .is_some()
        );
        assert_eq!(Accounts::Service.username_error("demo", ".x."), None);
    }

    #[test]
    fn the_ready_sms_is_one_part_for_the_longest_username_in_the_latin_languages() {
        use super::super::language::{Language, Texts};
        for language in [
            Language::En,
            Language::Fr,
            Language::Es,
            Language::Pt,
            Language::Sw,
        ] {
            let texts = Texts {
                language,
                default: Language::En,
                own: None,
            };
            let text = account_ready_text(&texts, &"a".repeat(COGNITO_MAX_USERNAME));
            let size = super::super::encoding::measure(&super::super::encoding::smart(&text));
            assert_eq!(size.parts, 1, "{text}");
            assert_eq!(size.encoding, super::super::encoding::Encoding::Gsm7);
        }
    }

    #[test]
    fn passwords_never_print() {
        let secret = Password::new("hunter2hunter2".into());
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
