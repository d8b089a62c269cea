//! Invitations: the record kept for each invited phone number, and who may claim it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::phone::PhoneNumber;

/// Random bytes in a token: the 128 bits the contract asks for, and no more, since every
/// character of the link is paid for in the SMS.
const TOKEN_BYTES: usize = 16;
/// Length of a token as text (URL-safe base64 without padding): 22 characters.
pub const TOKEN_LEN: usize = (TOKEN_BYTES * 4).div_ceil(3);
/// Length of the 192-bit tokens made before: their links stay valid until they expire.
pub const LEGACY_TOKEN_LEN: usize = 32;

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

    /// Whether text could be a token this service made: exactly `TOKEN_LEN` (or, made
    /// before, `LEGACY_TOKEN_LEN`) URL-safe base64 characters. Anything else names no
    /// invitation, and is never looked up.
    pub fn is_well_formed(text: &str) -> bool {
        (text.len() == TOKEN_LEN || text.len() == LEGACY_TOKEN_LEN)
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

/// Tokens never reach logs, not even through `{:?}`.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// The stored state of a number's record: `queued` (recorded, SMS waiting in the send
/// queue) -> `pending` (the first SMS went out: the worker has the link) -> `registered`;
/// or `failed` (every attempt to send was spent; the number is free again); or
/// `opted_out` (the worker replied STOP, or SNS has the number opted out: it is texted no
/// more until it opts back in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationStatus {
    Queued,
    Pending,
    Registered,
    Failed,
    OptedOut,
}

impl RegistrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationStatus::Queued => "queued",
            RegistrationStatus::Pending => "pending",
            RegistrationStatus::Registered => "registered",
            RegistrationStatus::Failed => "failed",
            RegistrationStatus::OptedOut => "opted_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(RegistrationStatus::Queued),
            "pending" => Some(RegistrationStatus::Pending),
            "registered" => Some(RegistrationStatus::Registered),
            "failed" => Some(RegistrationStatus::Failed),
            "opted_out" => Some(RegistrationStatus::OptedOut),
            _ => None,
        }
    }

    /// Queued or pending: an invitation that holds its number until it expires.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            RegistrationStatus::Queued | RegistrationStatus::Pending
        )
    }
}

/// Whether the invitation a failed one replaced is put back (by every store): when the
/// worker holds a link from it, sent (`pending`) and unexpired at `now`. Otherwise the
/// failed one stays, `failed`, which frees the number.
pub fn restorable(status: Option<RegistrationStatus>, expires_at: u64, now: u64) -> bool {
    status == Some(RegistrationStatus::Pending) && expires_at > now
}

/// The status a client sees: `expired` is derived from `expires_at`, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShownStatus {
    Queued,
    Pending,
    Registered,
    Failed,
    Expired,
    OptedOut,
}

impl ShownStatus {
    pub const NAMES: [&'static str; 6] = [
        "queued",
        "pending",
        "registered",
        "failed",
        "expired",
        "opted_out",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ShownStatus::Queued => "queued",
            ShownStatus::Pending => "pending",
            ShownStatus::Registered => "registered",
            ShownStatus::Failed => "failed",
            ShownStatus::Expired => "expired",
            ShownStatus::OptedOut => "opted_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(ShownStatus::Queued),
            "pending" => Some(ShownStatus::Pending),
            "registered" => Some(ShownStatus::Registered),
            "failed" => Some(ShownStatus::Failed),
            "expired" => Some(ShownStatus::Expired),
            "opted_out" => Some(ShownStatus::OptedOut),
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
    /// When the first SMS went out.
    pub sent_at: Option<u64>,
    pub registered_at: Option<u64>,
    /// When the sender first took its send job off the queue.
    pub enqueued_at: Option<u64>,
    /// The request (batch) that made it: its record tells whether the batch's jobs
    /// reached the queue.
    pub batch_id: Option<String>,
    /// Why sending failed, for a `failed` invitation.
    pub failure_reason: Option<String>,
    /// What the delivery receipt of its first SMS said, once it came.
    pub delivery: Option<Delivery>,
    /// The first time its link was opened.
    pub opened_at: Option<u64>,
    /// Carrier parts of its SMS sent so far (each SMS counted once, when sent).
    pub parts_sent: u64,
    /// Carrier parts of its SMS that delivery receipts say reached the phone.
    pub parts_delivered: u64,
    /// When its first SMS may go, if it was held when made (for the project's send
    /// window, or the request's `send_at`).
    pub scheduled_for: Option<u64>,
    /// The worker's account in the project's directory (Cognito, CommCare HQ), once the
    /// registration page began to make it; `None` for the service's own accounts.
    pub account: Option<crate::domain::account::AccountState>,
    /// The username it registered (the service's own accounts), once registered.
    pub username: Option<String>,
    /// The language its worker reads (the request's or the user's own); `None`: the
    /// project's default for SMS, the browser's choice among the project's on the page.
    pub language: Option<crate::domain::language::Language>,
}

/// An invitation's delivery: the provider's delivery report of its first SMS.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub delivered: bool,
    /// The provider's response (`Message has been accepted by phone carrier`, ...).
    pub detail: String,
    pub price_usd: f64,
    /// When the receipt was recorded.
    pub at: u64,
}

/// What the listing shows of a delivery: `unknown` until a receipt came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFilter {
    Unknown,
    Delivered,
    Failed,
}

impl DeliveryFilter {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unknown" => Some(DeliveryFilter::Unknown),
            "delivered" => Some(DeliveryFilter::Delivered),
            "failed" => Some(DeliveryFilter::Failed),
            _ => None,
        }
    }

    pub fn of(delivery: Option<&Delivery>) -> Self {
        match delivery {
            None => DeliveryFilter::Unknown,
            Some(d) if d.delivered => DeliveryFilter::Delivered,
            Some(_) => DeliveryFilter::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryFilter::Unknown => "unknown",
            DeliveryFilter::Delivered => "delivered",
            DeliveryFilter::Failed => "failed",
        }
    }
}

/// A new invitation, before its SMS went out.
pub type Invitation = RegistrationRecord;

impl RegistrationRecord {
    /// A record of `phone` in `domain` with a fresh token, `status`, made at `created_at`
    /// and kept until `expires_at`; nothing else known yet (no app, no SMS sent, no
    /// batch): set what is, with `..RegistrationRecord::new(..)`.
    pub fn new(
        domain: &str,
        phone: PhoneNumber,
        status: RegistrationStatus,
        created_at: u64,
        expires_at: u64,
    ) -> Self {
        RegistrationRecord {
            username: None,
            language: None,
            account: None,
            domain: domain.to_owned(),
            phone,
            token: Token::generate(),
            app_id: None,
            android_only: false,
            require_email: false,
            custom_user_data: None,
            phone_type: None,
            status,
            created_at,
            expires_at,
            sent_at: None,
            registered_at: None,
            enqueued_at: None,
            batch_id: None,
            failure_reason: None,
            delivery: None,
            opened_at: None,
            parts_sent: 0,
            parts_delivered: 0,
            scheduled_for: None,
        }
    }
}

/// When a claim may replace what is stored for a number.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules<'a> {
    /// The project claiming the number.
    pub domain: &'a str,
    pub now: u64,
    /// Queued claims whose job never reached the queue, created at or before this, are
    /// left-overs of a crash.
    pub stale_before: u64,
}

/// Whether a claim may replace a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimCheck {
    Claimable,
    InUse,
    /// A queued claim gone stale that the sender never took: claimable unless its batch's
    /// record says its job reached the queue (else a crash left it behind).
    UnlessQueued,
}

impl RegistrationRecord {
    /// The contract's claim rule: a failed or opted-out invitation may always be replaced
    /// (a number still opted out is turned away before any claim); a queued or
    /// pending one when it is of the same project (a re-invite) or expired; a queued claim
    /// gone stale when its job never reached the queue. Registered numbers never are.
    pub fn claim_check(&self, rules: ClaimRules<'_>) -> ClaimCheck {
        match self.status {
            RegistrationStatus::Registered => ClaimCheck::InUse,
            RegistrationStatus::Failed | RegistrationStatus::OptedOut => ClaimCheck::Claimable,
            // Its account is being made: replaced now, the account would have no
            // registration to belong to.
            _ if self.account.is_some() => ClaimCheck::InUse,
            _ if self.domain == rules.domain || self.expires_at <= rules.now => {
                ClaimCheck::Claimable
            }
            RegistrationStatus::Queued
                if self.enqueued_at.is_none() && self.created_at <= rules.stale_before =>
            {
                // Made before batches were recorded: only the age can tell.
                if self.batch_id.is_none() {
                    ClaimCheck::Claimable
                } else {
                    ClaimCheck::UnlessQueued
                }
            }
            _ => ClaimCheck::InUse,
        }
    }

    /// Why a send job of the invitation with `token` is not wanted now (replaced by a
    /// re-invite, registered, failed or expired), or `None` when it is.
    pub fn refuses_job(&self, token: &str, now: u64) -> Option<&'static str> {
        if self.token.as_str() != token {
            return Some("replaced");
        }
        match self.status {
            RegistrationStatus::Registered => Some("registered"),
            RegistrationStatus::Failed => Some("failed"),
            RegistrationStatus::OptedOut => Some("opted out"),
            _ if self.expires_at <= now => Some("expired"),
            _ => None,
        }
    }

    /// Queued or pending, and not expired: the link may be used.
    pub fn is_live(&self, now: u64) -> bool {
        self.status.is_open() && self.expires_at > now
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
            "sent_at": self.sent_at.map(rfc3339),
            "failure_reason": self.failure_reason,
            "delivery": DeliveryFilter::of(self.delivery.as_ref()).as_str(),
            "delivery_detail": self.delivery.as_ref().map(|d| d.detail.as_str()),
            "delivered_at": self.delivery.as_ref().filter(|d| d.delivered).map(|d| rfc3339(d.at)),
            "opened_at": self.opened_at.map(rfc3339),
            "batch_id": self.batch_id,
            "scheduled_for": self.scheduled_for.map(rfc3339),
            "parts_sent": self.parts_sent,
            "parts_delivered": self.parts_delivered,
            "account": self.listed_account(),
            "language": self.language.map(|l| l.code()),
        })
    }

    /// A registered invitation's account: in the project's directory, or the service's
    /// own; `None` before registration.
    fn listed_account(&self) -> Option<Value> {
        if self.status != RegistrationStatus::Registered {
            return None;
        }
        Some(match &self.account {
            Some(account) => account.listed(),
            None => serde_json::json!({
                "status": "created",
                "username": self.username,
                "reason": null,
            }),
        })
    }

    pub fn shown_status(&self, now: u64) -> ShownStatus {
        match self.status {
            RegistrationStatus::Registered => ShownStatus::Registered,
            RegistrationStatus::Failed => ShownStatus::Failed,
            RegistrationStatus::OptedOut => ShownStatus::OptedOut,
            _ if self.expires_at <= now => ShownStatus::Expired,
            RegistrationStatus::Queued => ShownStatus::Queued,
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

/// The same page's short link, `{base}/r/{token}`: the token alone names the invitation.
pub fn short_registration_url(public_base_url: &str, token: &Token) -> String {
    format!(
        "{}/r/{}",
        public_base_url.trim_end_matches('/'),
        token.as_str()
    )
}

/// Both links to an invitation's page. An SMS carries the full one, unless the short one
/// makes it fewer parts (see `sms::InvitationSms::compose`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationLinks {
    pub full: String,
    pub short: String,
}

impl RegistrationLinks {
    pub fn new(public_base_url: &str, domain: &str, token: &Token) -> Self {
        RegistrationLinks {
            full: registration_url(public_base_url, domain, token),
            short: short_registration_url(public_base_url, token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(domain: &str) -> RegistrationRecord {
        RegistrationRecord {
            app_id: Some("app".into()),
            sent_at: Some(1_001),
            enqueued_at: Some(1_000),
            batch_id: Some("b1".into()),
            ..RegistrationRecord::new(
                domain,
                PhoneNumber::parse("+16175551234").unwrap(),
                RegistrationStatus::Pending,
                1_000,
                10_000,
            )
        }
    }

    const RULES: ClaimRules<'static> = ClaimRules {
        domain: "alpha",
        now: 5_000,
        stale_before: 4_700,
    };

    #[test]
    fn a_live_sent_invitation_of_the_same_project_can_be_reinvited() {
        assert_eq!(pending("alpha").claim_check(RULES), ClaimCheck::Claimable);
    }

    #[test]
    fn a_live_sent_invitation_of_another_project_is_in_use() {
        assert_eq!(pending("beta").claim_check(RULES), ClaimCheck::InUse);
    }

    #[test]
    fn an_expired_invitation_of_another_project_can_be_claimed() {
        let mut r = pending("beta");
        r.expires_at = 5_000;
        assert_eq!(r.claim_check(RULES), ClaimCheck::Claimable);
    }

    #[test]
    fn a_stale_claim_the_sender_never_took_depends_on_its_batch_but_a_fresh_one_is_in_use() {
        let mut r = pending("beta");
        r.status = RegistrationStatus::Queued;
        r.sent_at = None;
        r.enqueued_at = None;
        r.created_at = 4_700;
        assert_eq!(r.claim_check(RULES), ClaimCheck::UnlessQueued);
        r.batch_id = None;
        assert_eq!(r.claim_check(RULES), ClaimCheck::Claimable);
        r.created_at = 4_701;
        assert_eq!(r.claim_check(RULES), ClaimCheck::InUse);
    }

    #[test]
    fn a_queued_invitation_the_sender_took_holds_its_number_however_old() {
        let mut r = pending("beta");
        r.status = RegistrationStatus::Queued;
        r.sent_at = None;
        r.created_at = 0;
        assert_eq!(r.claim_check(RULES), ClaimCheck::InUse);
    }

    #[test]
    fn a_failed_invitation_is_claimable_by_any_project() {
        let mut r = pending("beta");
        r.status = RegistrationStatus::Failed;
        assert_eq!(r.claim_check(RULES), ClaimCheck::Claimable);
        assert_eq!(r.shown_status(0), ShownStatus::Failed);
    }

    #[test]
    fn a_registered_number_is_never_claimable() {
        for domain in ["alpha", "beta"] {
            let mut r = pending(domain);
            r.status = RegistrationStatus::Registered;
            r.expires_at = 0;
            r.sent_at = None;
            assert_eq!(r.claim_check(RULES), ClaimCheck::InUse, "{domain}");
        }
    }

    #[test]
    fn a_job_is_wanted_only_by_its_own_open_unexpired_invitation() {
        let r = pending("alpha");
        let token = r.token.as_str().to_owned();
        assert_eq!(r.refuses_job(&token, 9_999), None);
        assert_eq!(r.refuses_job("other", 9_999), Some("replaced"));
        assert_eq!(r.refuses_job(&token, 10_000), Some("expired"));
        for (status, why) in [
            (RegistrationStatus::Registered, "registered"),
            (RegistrationStatus::Failed, "failed"),
        ] {
            let mut r = r.clone();
            r.status = status;
            assert_eq!(r.refuses_job(&token, 0), Some(why));
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
        assert_eq!(TOKEN_LEN, 22, "128 bits in URL-safe base64");
        assert!(
            Token::is_well_formed(&"A".repeat(LEGACY_TOKEN_LEN)),
            "links sent before keep working"
        );
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(format!("{a:?}"), "Token(***)");
        assert!(Token::is_well_formed(a.as_str()));
        let short = &a.as_str()[1..];
        for bad in [
            short,
            &format!("{short}="),
            &format!("{short}/"),
            &"A".repeat(3000),
            "",
        ] {
            assert!(!Token::is_well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn the_registration_url_joins_base_domain_and_token() {
        let t = Token::from_stored("tok".into());
        assert_eq!(
            registration_url("https://sms.example.org/", "demo", &t),
            "https://sms.example.org/a/demo/register/tok"
        );
        assert_eq!(
            RegistrationLinks::new("https://sms.example.org/", "demo", &t),
            RegistrationLinks {
                full: "https://sms.example.org/a/demo/register/tok".into(),
                short: "https://sms.example.org/r/tok".into(),
            }
        );
    }
}
