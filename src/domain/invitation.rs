//! Invitations: the record kept for each invited phone number, and who may claim it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::phone::PhoneNumber;

/// Random bytes in a token: 192 bits, well above the 128 the contract asks for.
const TOKEN_BYTES: usize = 24;
/// Length of a token as text (URL-safe base64 without padding).
pub const TOKEN_LEN: usize = TOKEN_BYTES * 4 / 3;

/// The secret part of a registration URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).expect("the OS random source failed");
        Token(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token read back from the store.
    pub fn from_stored(s: String) -> Self {
        Token(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Tokens never reach logs, not even through `{:?}`.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationStatus {
    Pending,
    Registered,
}

impl RegistrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationStatus::Pending => "pending",
            RegistrationStatus::Registered => "registered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(RegistrationStatus::Pending),
            "registered" => Some(RegistrationStatus::Registered),
            _ => None,
        }
    }
}

/// The status a client sees: `expired` is derived from `expires_at`, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShownStatus {
    Pending,
    Registered,
    Expired,
}

impl ShownStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShownStatus::Pending => "pending",
            ShownStatus::Registered => "registered",
            ShownStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ShownStatus::Pending),
            "registered" => Some(ShownStatus::Registered),
            "expired" => Some(ShownStatus::Expired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneType {
    Android,
    Other,
}

impl PhoneType {
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneType::Android => "android",
            PhoneType::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "android" => Some(PhoneType::Android),
            "other" => Some(PhoneType::Other),
            _ => None,
        }
    }
}

/// What is kept for one phone number: a pending invitation or a registered worker.
/// Times are seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationRecord {
    pub domain: String,
    pub phone: PhoneNumber,
    pub token: Token,
    pub app_id: Option<String>,
    pub android_only: bool,
    pub require_email: bool,
    pub custom_user_data: Option<Map<String, Value>>,
    pub phone_type: Option<PhoneType>,
    pub status: RegistrationStatus,
    pub created_at: u64,
    pub expires_at: u64,
    pub sent_at: Option<u64>,
    pub registered_at: Option<u64>,
}

/// A new pending invitation, before any SMS went out.
pub type Invitation = RegistrationRecord;

/// When a claim may replace what is stored for a number.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules<'a> {
    /// The project claiming the number.
    pub domain: &'a str,
    pub now: u64,
    /// Claims never marked sent and created at or before this are left-overs of a crash.
    pub stale_before: u64,
}

impl RegistrationRecord {
    /// The contract's claim rule: a pending invitation may be replaced when it is of
    /// the same project (a re-invite), expired, or a never-sent claim gone stale.
    /// Registered numbers are never claimable.
    pub fn can_be_claimed(&self, rules: ClaimRules<'_>) -> bool {
        self.status == RegistrationStatus::Pending
            && (self.domain == rules.domain
                || self.expires_at <= rules.now
                || (self.sent_at.is_none() && self.created_at <= rules.stale_before))
    }

    /// The invitation as listings show it (the API and the admin CLI).
    pub fn listed(&self, now: u64) -> Value {
        use super::time::rfc3339;
        serde_json::json!({
            "phone_number": self.phone.as_str(),
            "status": self.shown_status(now).as_str(),
            "phone_type": self.phone_type.map(PhoneType::as_str),
            "app_id": self.app_id,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "registered_at": self.registered_at.map(rfc3339),
        })
    }

    pub fn shown_status(&self, now: u64) -> ShownStatus {
        match self.status {
            RegistrationStatus::Registered => ShownStatus::Registered,
            RegistrationStatus::Pending if self.expires_at <= now => ShownStatus::Expired,
            RegistrationStatus::Pending => ShownStatus::Pending,
        }
    }
}

/// The link a worker opens to register: `{base}/a/{domain}/register/{token}`.
pub fn registration_url(public_base_url: &str, domain: &str, token: &Token) -> String {
    format!(
        "{}/a/{}/register/{}",
        public_base_url.trim_end_matches('/'),
        domain,
        token.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(domain: &str) -> RegistrationRecord {
        RegistrationRecord {
            domain: domain.into(),
            phone: PhoneNumber::parse("+16175551234").unwrap(),
            token: Token::generate(),
            app_id: Some("app".into()),
            android_only: false,
            require_email: false,
            custom_user_data: None,
            phone_type: None,
            status: RegistrationStatus::Pending,
            created_at: 1_000,
            expires_at: 10_000,
            sent_at: Some(1_001),
            registered_at: None,
        }
    }

    const RULES: ClaimRules<'static> = ClaimRules {
        domain: "alpha",
        now: 5_000,
        stale_before: 4_700,
    };

    #[test]
    fn a_live_sent_invitation_of_the_same_project_can_be_reinvited() {
        assert!(pending("alpha").can_be_claimed(RULES));
    }

    #[test]
    fn a_live_sent_invitation_of_another_project_is_in_use() {
        assert!(!pending("beta").can_be_claimed(RULES));
    }

    #[test]
    fn an_expired_invitation_of_another_project_can_be_claimed() {
        let mut r = pending("beta");
        r.expires_at = 5_000;
        assert!(r.can_be_claimed(RULES));
    }

    #[test]
    fn a_stale_never_sent_claim_can_be_taken_but_a_fresh_one_cannot() {
        let mut r = pending("beta");
        r.sent_at = None;
        r.created_at = 4_700;
        assert!(r.can_be_claimed(RULES));
        r.created_at = 4_701;
        assert!(!r.can_be_claimed(RULES));
    }

    #[test]
    fn a_registered_number_is_never_claimable() {
        for domain in ["alpha", "beta"] {
            let mut r = pending(domain);
            r.status = RegistrationStatus::Registered;
            r.expires_at = 0;
            r.sent_at = None;
            assert!(!r.can_be_claimed(RULES), "{domain}");
        }
    }

    #[test]
    fn expired_is_derived_from_the_expiry_time() {
        let r = pending("alpha");
        assert_eq!(r.shown_status(9_999), ShownStatus::Pending);
        assert_eq!(r.shown_status(10_000), ShownStatus::Expired);
    }

    #[test]
    fn tokens_are_url_safe_random_and_hidden_from_debug() {
        let (a, b) = (Token::generate(), Token::generate());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), TOKEN_LEN);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(format!("{a:?}"), "Token(***)");
    }

    #[test]
    fn the_registration_url_joins_base_domain_and_token() {
        let t = Token::from_stored("tok".into());
        assert_eq!(
            registration_url("https://sms.example.org/", "demo", &t),
            "https://sms.example.org/a/demo/register/tok"
        );
    }
}
