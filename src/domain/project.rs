//! Projects (CommCare "domains"), their apps and the API keys of their users.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Subscription plans, lowest first; the registration API needs [`Plan::Pro`] or higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Plan {
    Community,
    Standard,
    Pro,
    Advanced,
    Enterprise,
}

impl Plan {
    pub const ALL: [Plan; 5] = [
        Plan::Community,
        Plan::Standard,
        Plan::Pro,
        Plan::Advanced,
        Plan::Enterprise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Community => "COMMUNITY",
            Plan::Standard => "STANDARD",
            Plan::Pro => "PRO",
            Plan::Advanced => "ADVANCED",
            Plan::Enterprise => "ENTERPRISE",
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown plan {0:?}: expected one of COMMUNITY, STANDARD, PRO, ADVANCED, ENTERPRISE")]
pub struct UnknownPlan(pub String);

impl FromStr for Plan {
    type Err = UnknownPlan;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Plan::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownPlan(s.to_owned()))
    }
}

/// An app of a project: what an Android worker installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub name: String,
    pub install_url: Option<String>,
}

/// Invitations a project may send per UTC day unless configured otherwise.
pub const DEFAULT_DAILY_INVITATION_LIMIT: u32 = 1000;

/// A project with everything the registration API checks about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub name: String,
    pub display_name: Option<String>,
    pub plan: Plan,
    pub registration_enabled: bool,
    pub apps: Vec<App>,
    /// ISO 3166 codes of the countries it may text; `None` allows every country.
    pub allowed_countries: Option<Vec<String>>,
    pub daily_invitation_limit: u32,
    /// How its SMS are encoded and how long they may be.
    pub sms: SmsSettings,
    /// Where its workers' accounts are made (docs/accounts.md).
    pub accounts: super::account::Accounts,
    /// The languages its workers may read, the first its default (English alone unless
    /// `put-domain --languages` says otherwise); never empty.
    pub languages: Vec<super::language::Language>,
    /// Its own texts, by language and text id: each replaces the built-in one
    /// (`smsreg-admin put-texts`).
    pub texts: ProjectTexts,
}

/// A project's own texts, by language and text id.
pub type ProjectTexts =
    std::collections::HashMap<super::language::Language, std::collections::HashMap<String, String>>;

/// A project's SMS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSettings {
    /// Characters with a GSM-7 look-alike are replaced (`domain::encoding::smart`), unless
    /// a request says `"smart_encoding": false`.
    pub smart_encoding: bool,
    /// Most parts one SMS of a custom message may take: a longer one is refused.
    pub max_parts_per_sms: u32,
    /// The hours of the worker's local day in which invitations go. A project stored
    /// before windows existed has none (`Any`); `put-domain` gives a new project
    /// `SendWindow::default()` (08:00-21:00).
    pub send_window: super::window::SendWindow,
    /// The most one part of an SMS may cost, in USD, for providers that take a cap (End
    /// User Messaging's `MaxPrice`): a dearer SMS (a premium-rate destination) is refused,
    /// not billed. `None`: no cap (the default).
    pub max_price_per_part: Option<String>,
}

/// Checks a price cap per part as End User Messaging takes it: USD, up to two digits,
/// a point and one to five decimals (`0.05`, `.00581`, `12.5`).
pub fn check_max_price(price: &str) -> Result<(), String> {
    let ok = price.split_once('.').is_some_and(|(whole, cents)| {
        whole.len() <= 2
            && (1..=5).contains(&cents.len())
            && whole
                .bytes()
                .chain(cents.bytes())
                .all(|b| b.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a price per part in USD is up to two digits, a point and one to five decimals \
             (0.05), not {price:?}"
        ))
    }
}

/// Parts an SMS may take unless the project says otherwise.
pub const DEFAULT_MAX_PARTS_PER_SMS: u32 = 3;
/// The most a project may allow: SNS takes 1600 characters, 11 GSM-7 parts.
pub const MAX_PARTS_PER_SMS: u32 = 11;

impl Default for SmsSettings {
    fn default() -> Self {
        SmsSettings {
            smart_encoding: true,
            max_parts_per_sms: DEFAULT_MAX_PARTS_PER_SMS,
            send_window: super::window::SendWindow::Any,
            max_price_per_part: None,
        }
    }
}

impl Project {
    /// Its default language: the first of its languages.
    pub fn default_language(&self) -> super::language::Language {
        self.languages
            .first()
            .copied()
            .unwrap_or(super::language::Language::En)
    }

    /// The texts a worker of the project reads in `language` (the project's default when
    /// none is known).
    pub fn texts(&self, language: Option<super::language::Language>) -> super::language::Texts<'_> {
        let default = self.default_language();
        super::language::Texts {
            language: language.unwrap_or(default),
            default,
            own: (!self.texts.is_empty()).then_some(&self.texts),
        }
    }

    /// The name workers see in SMS texts.
    pub fn title(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    pub fn app(&self, id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.id == id)
    }

    /// Whether the project may text numbers of `region` (guards against SMS pumping).
    pub fn may_text(&self, region: Option<&str>) -> bool {
        match &self.allowed_countries {
            None => true,
            Some(allowed) => region.is_some_and(|r| allowed.iter().any(|a| a == r)),
        }
    }
}

/// Reads a comma-separated list of ISO 3166 country codes (`US,ca, KE`), upper-cased.
pub fn parse_country_list(list: &str) -> Result<Vec<String>, String> {
    let mut codes = Vec::new();
    for code in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let upper = code.to_ascii_uppercase();
        if upper.len() != 2 || upper.parse::<phonenumber::country::Id>().is_err() {
            return Err(format!(
                "{code:?} is not an ISO 3166 country code such as US or KE"
            ));
        }
        if !codes.contains(&upper) {
            codes.push(upper);
        }
    }
    Ok(codes)
}

/// The longest display name, in GSM-7 septets (or UTF-16 units for other text): with it,
/// every default SMS stays in one part with a deployed host of up to 60 characters.
pub const MAX_DISPLAY_NAME_UNITS: usize = 30;

/// Checks a display name (the name workers see in SMS) for the admin CLI.
pub fn check_display_name(name: &str) -> Result<(), String> {
    let size = super::encoding::measure(name);
    if name.trim().is_empty() || size.units > MAX_DISPLAY_NAME_UNITS {
        return Err(format!(
            "the display name must be 1 to {MAX_DISPLAY_NAME_UNITS} characters (each of \
             ^ {{ }} \\ [ ~ ] | and the euro sign counts as two), so that the default SMS \
             stay in one part"
        ));
    }
    Ok(())
}

/// Project names are what CommCare allows: lowercase letters, digits and hyphens.
pub fn is_valid_project_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

/// A stored API key: only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub username: String,
    pub domain: String,
    pub key_hash: [u8; 32],
    pub can_edit_data: bool,
}

impl ApiKey {
    /// Compares a presented key with the stored hash in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        #[cfg(test)]
        tests::KEY_COMPARISONS.with(|n| n.set(n.get() + 1));
        hash_key(presented).ct_eq(&self.key_hash).into()
    }
}

/// The stored key among `stored` (one user's keys) that `presented` matches.
///
/// Every candidate is compared, so timing does not tell which one matched; a username with
/// no key is compared against a stand-in no key hashes to, so that it costs the same hash
/// and comparison as a known username with a wrong key, and timing does not tell which
/// usernames exist either.
pub fn find_key(stored: Vec<ApiKey>, presented: &str) -> Option<ApiKey> {
    if stored.is_empty() {
        let stand_in = ApiKey {
            username: String::new(),
            domain: String::new(),
            key_hash: UNKNOWN_USER_KEY_HASH,
            can_edit_data: false,
        };
        // Its answer is ignored: even a preimage of the stand-in's hash authenticates nobody.
        std::hint::black_box(stand_in.matches(presented));
        return None;
    }
    let mut found = None;
    for key in stored {
        if key.matches(presented) && found.is_none() {
            found = Some(key);
        }
    }
    found
}

/// Not the SHA-256 of any known key (finding one would be a preimage of all zeros).
const UNKNOWN_USER_KEY_HASH: [u8; 32] = [0; 32];

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random key: 256 bits from the OS CSPRNG, URL-safe base64.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Stored keys compared on this thread: the work an authentication does, counted.
        pub(super) static KEY_COMPARISONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// How many stored keys `find_key` compared a wrong key against.
    fn comparisons_for_a_wrong_key(stored: Vec<ApiKey>) -> usize {
        KEY_COMPARISONS.with(|n| n.set(0));
        assert_eq!(find_key(stored, "wrong"), None);
        KEY_COMPARISONS.with(std::cell::Cell::get)
    }

    #[test]
    fn an_unknown_username_costs_the_same_comparison_as_a_known_one_with_a_wrong_key() {
        let known = ApiKey {
            username: "admin@example.com".into(),
            domain: "demo".into(),
            key_hash: hash_key(&generate_key()),
            can_edit_data: true,
        };
        let for_unknown = comparisons_for_a_wrong_key(vec![]);
        assert_eq!(for_unknown, comparisons_for_a_wrong_key(vec![known]));
        assert_eq!(for_unknown, 1);
    }

    #[test]
    fn display_names_are_limited_in_septets() {
        assert!(check_display_name("Kisumu County Health").is_ok());
        assert!(check_display_name(&"a".repeat(MAX_DISPLAY_NAME_UNITS)).is_ok());
        assert!(check_display_name(&"a".repeat(MAX_DISPLAY_NAME_UNITS + 1)).is_err());
        // `[` is two septets: 16 of them are 32.
        assert!(check_display_name(&"[".repeat(16)).is_err());
        assert!(check_display_name("  ").is_err());
    }

    #[test]
    fn country_lists_are_checked_and_normalised() {
        assert_eq!(
            parse_country_list("US, ca,KE,us"),
            Ok(vec!["US".into(), "CA".into(), "KE".into()])
        );
        assert_eq!(parse_country_list(""), Ok(vec![]));
        assert!(parse_country_list("USA").is_err());
        assert!(parse_country_list("XX").is_err());
    }

    #[test]
    fn an_allow_list_limits_the_countries_texted() {
        let mut p = Project {
            name: "demo".into(),
            display_name: None,
            plan: Plan::Pro,
            registration_enabled: true,
            apps: vec![],
            allowed_countries: None,
            daily_invitation_limit: 10,
            accounts: Default::default(),
            languages: vec![crate::domain::language::Language::En],
            texts: Default::default(),
            sms: SmsSettings::default(),
        };
        assert!(p.may_text(Some("GB")) && p.may_text(None));
        p.allowed_countries = Some(vec!["US".into(), "KE".into()]);
        assert!(p.may_text(Some("KE")));
        assert!(!p.may_text(Some("GB")) && !p.may_text(None));
    }

    #[test]
    fn plans_are_ordered_and_parse_case_insensitively() {
        assert!(Plan::Standard < Plan::Pro && Plan::Pro < Plan::Enterprise);
        assert_eq!("pro".parse::<Plan>(), Ok(Plan::Pro));
        assert_eq!("ENTERPRISE".parse::<Plan>(), Ok(Plan::Enterprise));
        assert!("GOLD".parse::<Plan>().is_err());
    }

    #[test]
    fn a_key_matches_only_its_own_hash() {
        let key = generate_key();
        let stored = ApiKey {
            username: "admin@example.com".into(),
            domain: "demo".into(),
            key_hash: hash_key(&key),
            can_edit_data: true,
        };
        assert!(stored.matches(&key));
        assert!(!stored.matches(&generate_key()));
        assert!(!stored.matches(""));
    }

    #[test]
    fn generated_keys_are_long_random_and_url_safe() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn project_names_follow_commcare_rules() {
        assert!(is_valid_project_name("demo-project-2"));
        for bad in ["", "Demo", "a b", "a/b", "-x", &"x".repeat(64)] {
            assert!(!is_valid_project_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_title_falls_back_to_the_project_name() {
        let mut p = Project {
            name: "demo".into(),
            display_name: None,
            plan: Plan::Pro,
            registration_enabled: true,
            apps: vec![],
            allowed_countries: None,
            daily_invitation_limit: DEFAULT_DAILY_INVITATION_LIMIT,
            accounts: Default::default(),
            languages: vec![crate::domain::language::Language::En],
            texts: Default::default(),
            sms: SmsSettings::default(),
        };
        assert_eq!(p.title(), "demo");
        p.display_name = Some("Demo Health".into());
        assert_eq!(p.title(), "Demo Health");
    }
}
