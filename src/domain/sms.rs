//! The texts of the invitation SMS.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::encoding;
use super::invitation::RegistrationLinks;
use super::language::Texts;

/// The prefix by which the CommCare app recognises an install-link SMS.
pub const INSTALL_LINK_PREFIX: &str = "[commcare app - do not delete] ";

/// What one invitation's SMS depend on.
#[derive(Debug, Clone, Copy)]
pub struct InvitationSms<'a> {
    /// The worker's texts (their language, the project's own).
    pub texts: Texts<'a>,
    pub project_title: &'a str,
    pub android_only: bool,
    pub custom_message: Option<&'a str>,
    pub links: &'a RegistrationLinks,
    pub install_url: Option<&'a str>,
    /// GSM-7 look-alikes replaced (see `encoding::smart`).
    pub smart_encoding: bool,
}

impl InvitationSms<'_> {
    /// The SMS to send, in order, as they are sent.
    pub fn compose(&self) -> Vec<String> {
        if !self.android_only {
            // The URL goes out only once the worker replies that the phone is an Android.
            let first = match self.custom_message {
                Some(message) => message.to_owned(),
                None => ask_phone_type(&self.texts, self.project_title),
            };
            return vec![sent(first, self.smart_encoding)];
        }
        let first = with_link(self.links, self.smart_encoding, |url| {
            match self.custom_message {
                Some(message) => message.replacen("{}", url, 1),
                None => android_link(&self.texts, self.project_title, url),
            }
        });
        // The install-link SMS is base64: nothing in it for smart encoding to replace.
        let mut texts = vec![first];
        texts.extend(self.install_url.map(install_link_sms));
        texts
    }
}

/// The text made with the full link, unless the short link makes it fewer parts; as it is
/// sent (after smart encoding when `smart`).
fn with_link(links: &RegistrationLinks, smart: bool, text: impl Fn(&str) -> String) -> String {
    let full = sent(text(&links.full), smart);
    let short = sent(text(&links.short), smart);
    if encoding::measure(&short).parts < encoding::measure(&full).parts {
        short
    } else {
        full
    }
}

/// One text as it is sent: with every GSM-7 look-alike replaced when `smart` (see
/// `encoding::smart`), as it is otherwise.
pub fn sent(text: String, smart: bool) -> String {
    match encoding::as_sent(&text, smart) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(replaced) => replaced,
    }
}

/// The default first SMS when the phone type is not known: it asks for it.
pub fn ask_phone_type(texts: &Texts, project_title: &str) -> String {
    texts.fill("sms.ask_phone_type", &[("title", project_title)])
}

/// A text whose `{}` is a link, with `url` there.
fn linked(texts: &Texts, id: &str, project_title: &str, url: &str) -> String {
    texts
        .fill(id, &[("title", project_title)])
        .replacen("{}", url, 1)
}

/// The default SMS with the registration link.
pub fn android_link(texts: &Texts, project_title: &str, url: &str) -> String {
    linked(texts, "sms.android_link", project_title, url)
}

/// How a worker without an Android phone registers by SMS.
pub fn join_instructions(texts: &Texts, project_title: &str, project_name: &str) -> String {
    texts.fill(
        "sms.join_instructions",
        &[("title", project_title), ("project", project_name)],
    )
}

/// The answer to a JOIN that registered the worker.
pub fn welcome(texts: &Texts, project_title: &str, username: &str) -> String {
    texts.fill(
        "sms.welcome",
        &[("title", project_title), ("username", username)],
    )
}

/// The answer to a JOIN whose username cannot be used (`reason`), or is taken. The
/// username is the sender's text: it is echoed only as far as the answer stays one part
/// (cut, with `...`, or left out), so that a 2000-character name costs no more than any
/// other refusal, and never makes an SMS over the providers' 1600 characters.
pub fn username_refused(texts: &Texts, project_name: &str, username: &str, reason: &str) -> String {
    let with = |shown: &str| {
        texts.fill(
            "sms.username_refused",
            &[
                ("username", shown),
                ("reason", reason),
                ("project", project_name),
            ],
        )
    };
    let whole = with(username);
    if encoding::measure(&whole).parts <= 1 {
        return whole;
    }
    let chars: Vec<char> = username.chars().collect();
    let cut = |n: usize| with(&format!("{}...", chars[..n].iter().collect::<String>()));
    // Parts only grow with the prefix (a longer one has more units, and can only move the
    // text from GSM-7 to UCS-2), so the longest prefix that fits is found by halving.
    let (mut fits, mut over) = (0, chars.len());
    while over - fits > 1 {
        let mid = (fits + over) / 2;
        if encoding::measure(&cut(mid)).parts <= 1 {
            fits = mid;
        } else {
            over = mid;
        }
    }
    if fits > 0 {
        cut(fits)
    } else {
        texts.fill(
            "sms.username_refused_unnamed",
            &[("reason", reason), ("project", project_name)],
        )
    }
}

/// Why a `JOIN` is answered with the registration page's link instead of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageNeeded {
    /// The invitation requires an email address, which an account made by SMS lacks.
    Email,
    /// The project's accounts live in a directory (Cognito, CommCare HQ): an account made
    /// by SMS would have a password nobody knows.
    Password,
}

/// The answer to a `JOIN` that the page must finish (`why`): its link, the worker
/// registering there.
pub fn page_needed(
    texts: &Texts,
    why: PageNeeded,
    project_title: &str,
    links: &RegistrationLinks,
    smart: bool,
) -> String {
    let id = match why {
        PageNeeded::Email => "sms.email_needed",
        PageNeeded::Password => "sms.password_needed",
    };
    with_link(links, smart, |url| linked(texts, id, project_title, url))
}

/// The texts as they are sent (see `sent`).
pub fn as_sent(texts: Vec<String>, smart: bool) -> Vec<String> {
    texts.into_iter().map(|text| sent(text, smart)).collect()
}

/// Where Android workers get the CommCare app.
pub const PLAY_STORE_URL: &str =
    "https://play.google.com/store/apps/details?id=org.commcare.dalvik";

/// The SMS of a reinstall: the Google Play message (the custom one with `{}` replaced by
/// the link, or the default), then the app's install-link SMS when it has one.
pub fn reinstall_texts(
    texts: &Texts,
    project_title: &str,
    custom: Option<&str>,
    install_url: Option<&str>,
) -> Vec<String> {
    let first = match custom {
        Some(message) => message.replace("{}", PLAY_STORE_URL),
        None => linked(texts, "sms.reinstall", project_title, PLAY_STORE_URL),
    };
    let mut texts = vec![first];
    texts.extend(install_url.map(install_link_sms));
    texts
}

/// The SMS the CommCare app reads to install an app: the prefix, then the link in base64.
pub fn install_link_sms(install_url: &str) -> String {
    format!("{INSTALL_LINK_PREFIX}{}", STANDARD.encode(install_url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::encoding::{Encoding, measure};
    use crate::domain::invitation::Token;
    use crate::domain::keyword::help_text;
    use crate::domain::project::MAX_DISPLAY_NAME_UNITS;

    const FULL: &str = "https://sms.example.org/a/demo/register/TOKEN";
    const SHORT: &str = "https://sms.example.org/r/TOKEN";
    const INSTALL: &str = "https://www.commcarehq.org/a/demo/app/install/1";

    fn links() -> RegistrationLinks {
        RegistrationLinks {
            full: FULL.into(),
            short: SHORT.into(),
        }
    }

    fn sms(
        android_only: bool,
        custom: Option<&'static str>,
        install: Option<&'static str>,
    ) -> Vec<String> {
        InvitationSms {
            texts: Texts::english(),
            project_title: "Demo Health",
            android_only,
            custom_message: custom,
            links: &links(),
            install_url: install,
            smart_encoding: true,
        }
        .compose()
    }

    #[test]
    fn default_ask_for_phone_type_names_the_project_and_hides_the_url() {
        for install in [None, Some(INSTALL)] {
            let texts = sms(false, None, install);
            assert_eq!(texts.len(), 1);
            assert!(texts[0].starts_with("Demo Health invites you"));
            assert!(texts[0].contains("Reply 1") && texts[0].contains("or 2"));
            assert!(!texts[0].contains("/register/") && !texts[0].contains("/r/"));
        }
    }

    #[test]
    fn custom_ask_for_phone_type_is_sent_verbatim() {
        assert_eq!(
            sms(false, Some("Reply 1 or 2"), Some(INSTALL)),
            vec!["Reply 1 or 2"]
        );
    }

    #[test]
    fn android_only_default_names_the_project_and_gives_the_full_url_when_it_fits() {
        let texts = sms(true, None, None);
        assert_eq!(
            texts,
            vec![format!(
                "Demo Health: register on your Android phone: {FULL}"
            )]
        );
    }

    #[test]
    fn android_only_custom_puts_the_url_in_the_placeholder() {
        assert_eq!(
            sms(true, Some("Please register a new user here: {}"), None),
            vec![format!("Please register a new user here: {FULL}")]
        );
    }

    #[test]
    fn the_short_link_goes_only_where_the_full_one_would_cost_a_part() {
        // 160 - 45 (the full link) = 115 characters of message fit one part with the full
        // link; 116 need the short one (31 characters) to stay in one part.
        // Past one part with either link (200), both take two: the full one is kept.
        for (len, expected, parts) in [(115, FULL, 1), (116, SHORT, 1), (200, FULL, 2)] {
            let message = format!("{}{{}}", "a".repeat(len));
            let text = InvitationSms {
                texts: Texts::english(),
                project_title: "Demo",
                android_only: true,
                custom_message: Some(&message),
                links: &links(),
                install_url: None,
                smart_encoding: false,
            }
            .compose()
            .remove(0);
            assert!(text.ends_with(expected), "{len}: {text}");
            assert_eq!(measure(&text).parts, parts);
        }
    }

    #[test]
    fn smart_encoding_applies_to_the_composed_text_and_not_to_the_install_link() {
        let texts = InvitationSms {
            texts: Texts::english(),
            project_title: "Don\u{2019}s Clinic",
            android_only: true,
            custom_message: None,
            links: &links(),
            install_url: Some(INSTALL),
            smart_encoding: true,
        }
        .compose();
        assert!(texts[0].starts_with("Don's Clinic: "));
        assert_eq!(texts[1], install_link_sms(INSTALL));
        let kept = InvitationSms {
            texts: Texts::english(),
            smart_encoding: false,
            ..InvitationSms {
                texts: Texts::english(),
                project_title: "Don\u{2019}s Clinic",
                android_only: false,
                custom_message: None,
                links: &links(),
                install_url: None,
                smart_encoding: true,
            }
        }
        .compose();
        assert!(kept[0].starts_with("Don\u{2019}s"));
    }

    #[test]
    fn a_reinstall_sends_the_play_store_link_then_the_install_link() {
        let texts = reinstall_texts(&Texts::english(), "Demo", Some("Get it: {}"), Some(INSTALL));
        assert_eq!(
            texts,
            vec![
                format!("Get it: {PLAY_STORE_URL}"),
                install_link_sms(INSTALL)
            ]
        );
        let texts = reinstall_texts(&Texts::english(), "Demo", None, None);
        assert_eq!(texts.len(), 1);
        assert!(texts[0].starts_with("Demo: ") && texts[0].ends_with(PLAY_STORE_URL));
    }

    #[test]
    fn android_only_with_an_install_link_sends_a_second_sms() {
        let texts = sms(true, Some("Register: {}"), Some(INSTALL));
        assert_eq!(texts.len(), 2);
        assert_eq!(texts[0], format!("Register: {FULL}"));
        assert_eq!(
            texts[1],
            "[commcare app - do not delete] aHR0cHM6Ly93d3cuY29tbWNhcmVocS5vcmcvYS9kZW1vL2FwcC9pbnN0YWxsLzE="
        );
        assert_eq!(sms(true, None, Some(INSTALL)).len(), 2);
    }

    /// A deployed base URL with a 60-character host (the longest the contract plans for).
    fn base_with_60_character_host() -> String {
        let host = format!(
            "{}.execute-api.ap-southeast-2.amazonaws.com",
            "a".repeat(19)
        );
        assert_eq!(host.len(), 60);
        format!("https://{host}")
    }

    /// Every text the service writes itself, for a project of `title` and `name`.
    fn default_texts(title: &str, name: &str, base: &str) -> Vec<(&'static str, String)> {
        let token = Token::generate();
        let links = RegistrationLinks::new(base, name, &token);
        let compose = |android_only| {
            InvitationSms {
                texts: Texts::english(),
                project_title: title,
                android_only,
                custom_message: None,
                links: &links,
                install_url: None,
                smart_encoding: true,
            }
            .compose()
            .remove(0)
        };
        vec![
            ("ask phone type", compose(false)),
            ("android link", compose(true)),
            (
                "reinstall",
                reinstall_texts(&Texts::english(), title, None, None).remove(0),
            ),
            ("help", help_text(&Texts::english(), Some(title))),
            (
                "join instructions",
                join_instructions(&Texts::english(), title, name),
            ),
            (
                "welcome",
                welcome(&Texts::english(), title, &"u".repeat(80)),
            ),
        ]
    }

    #[test]
    fn every_default_text_is_one_part_with_a_60_character_host_and_the_longest_title() {
        let base = base_with_60_character_host();
        let name = "n".repeat(63);
        // The longest display name the admin CLI accepts, in its widest GSM-7 form too
        // (an extension character such as `{` takes two septets).
        let plain = "T".repeat(MAX_DISPLAY_NAME_UNITS);
        let extended = "{".repeat(MAX_DISPLAY_NAME_UNITS / 2);
        for title in [plain.as_str(), extended.as_str()] {
            for (what, text) in default_texts(title, &name, &base) {
                let size = measure(&text);
                assert_eq!(size.encoding, Encoding::Gsm7, "{what}: {text}");
                assert_eq!(size.parts, 1, "{what} is {} septets: {text}", size.units);
            }
        }
        // The Android link text (the tightest) holds a title of up to 33 septets in one
        // part with such a host; a 34-septet title (from a project name with no display
        // name) makes it two.
        for (units, parts) in [(33, 1), (34, 2)] {
            let texts = default_texts(&"T".repeat(units), &name, &base);
            assert_eq!(measure(&texts[1].1).parts, parts, "{}", texts[1].1);
        }
    }

    #[test]
    fn the_android_link_text_uses_the_short_link_only_when_the_full_one_does_not_fit() {
        let base = base_with_60_character_host();
        let title = "T".repeat(MAX_DISPLAY_NAME_UNITS);
        let texts = default_texts(&title, &"n".repeat(63), &base);
        assert!(texts[1].1.contains("/r/"), "{}", texts[1].1);
        let texts = default_texts("Demo", "demo", "https://sms.example.org");
        assert!(texts[1].1.contains("/a/demo/register/"), "{}", texts[1].1);
    }

    #[test]
    fn an_install_link_sms_is_one_part_up_to_a_93_byte_link() {
        // The prefix is 33 septets (`[` and `]` take two each), the base64 four characters
        // for every three bytes of the link.
        let url = |n: usize| format!("https://{}", "x".repeat(n - 8));
        assert_eq!(measure(&install_link_sms(&url(93))).units, 33 + 124);
        assert_eq!(measure(&install_link_sms(&url(93))).parts, 1);
        assert_eq!(measure(&install_link_sms(&url(94))).parts, 2);
    }

    #[test]
    fn a_refused_username_is_echoed_only_as_far_as_one_part() {
        let reason = "Usernames are 3 to 80 characters long";
        let short = username_refused(&Texts::english(), "demo", "jo", reason);
        assert!(short.contains("username jo cannot"), "{short}");
        for (name, shown) in [
            ("x".repeat(2000), Some("xxx...")),
            (format!("ab{}", "\u{416}".repeat(2000)), Some("ab...")),
            ("\u{416}".repeat(2000), None),
        ] {
            let text = username_refused(&Texts::english(), "demo", &name, reason);
            assert_eq!(measure(&text).parts, 1, "{text}");
            assert_eq!(measure(&text).encoding, Encoding::Gsm7, "{text}");
            match shown {
                Some(prefix) => assert!(text.contains(prefix), "{text}"),
                None => assert!(text.starts_with("That username cannot be used"), "{text}"),
            }
            assert!(text.contains("Reply JOIN demo WORKER"), "{text}");
        }
    }

    #[test]
    fn the_password_needed_answer_gives_the_link_in_one_part() {
        let text = page_needed(
            &Texts::english(),
            PageNeeded::Password,
            "Demo Health",
            &links(),
            true,
        );
        assert!(text.contains(FULL) && text.contains("password"), "{text}");
        assert_eq!(measure(&text).parts, 1);
    }

    #[test]
    fn the_email_needed_answer_gives_the_link_in_one_part() {
        let text = page_needed(
            &Texts::english(),
            PageNeeded::Email,
            "Demo Health",
            &links(),
            true,
        );
        assert!(text.contains(FULL) && text.contains("email"), "{text}");
        assert_eq!(measure(&text).parts, 1);
    }

    #[test]
    fn every_language_sends_each_default_text_in_its_budget() {
        use crate::domain::encoding::Encoding;
        use crate::domain::language::Language;
        // A 60-character host, the longest display name, a 20-character project name.
        let host = format!("https://{}", "h".repeat(52));
        let long_links = RegistrationLinks {
            full: format!("{host}/a/{}/register/{}", "p".repeat(20), "k".repeat(22)),
            short: format!("{host}/r/{}", "k".repeat(22)),
        };
        let title = "T".repeat(MAX_DISPLAY_NAME_UNITS);
        let name = "p".repeat(20);
        for language in Language::ALL {
            let texts = Texts {
                language,
                default: Language::En,
                own: None,
            };
            let latin = !matches!(language, Language::Hi | Language::Ar);
            let taken = texts.get("sms.username_taken_reason");
            let invitation = InvitationSms {
                texts,
                project_title: &title,
                android_only: true,
                custom_message: None,
                links: &long_links,
                install_url: None,
                smart_encoding: true,
            }
            .compose()
            .remove(0);
            for (what, text) in [
                ("android link", invitation),
                ("ask", ask_phone_type(&texts, &title)),
                ("join", join_instructions(&texts, &title, &name)),
                ("welcome", welcome(&texts, &title, &"u".repeat(80))),
                (
                    "refused",
                    username_refused(&texts, &name, &"u".repeat(20), taken),
                ),
                (
                    "email",
                    page_needed(&texts, PageNeeded::Email, &title, &long_links, true),
                ),
                (
                    "password",
                    page_needed(&texts, PageNeeded::Password, &title, &long_links, true),
                ),
                (
                    "reinstall",
                    reinstall_texts(&texts, &title, None, None).remove(0),
                ),
                ("help", help_text(&texts, Some(&title))),
            ] {
                let size = measure(&sent(text.clone(), true));
                let code = language.code();
                if latin {
                    assert_eq!(size.parts, 1, "{code} {what}: {text}");
                    assert_eq!(size.encoding, Encoding::Gsm7, "{code} {what}: {text}");
                } else {
                    assert!(
                        size.parts <= 3,
                        "{code} {what}: {} parts: {text}",
                        size.parts
                    );
                }
            }
        }
    }
}
