//! The texts of the invitation SMS.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The prefix by which the CommCare app recognises an install-link SMS.
pub const INSTALL_LINK_PREFIX: &str = "[commcare app - do not delete] ";

/// What one invitation's SMS depend on.
#[derive(Debug, Clone, Copy)]
pub struct InvitationSms<'a> {
    pub project_title: &'a str,
    pub android_only: bool,
    pub custom_message: Option<&'a str>,
    pub registration_url: &'a str,
    pub install_url: Option<&'a str>,
}

impl InvitationSms<'_> {
    /// The SMS to send, in order.
    pub fn compose(&self) -> Vec<String> {
        if !self.android_only {
            // The URL goes out only once the worker replies that the phone is an Android.
            let first = match self.custom_message {
                Some(message) => message.to_owned(),
                None => format!(
                    "{} invites you to register as a mobile worker. Reply 1 if you have \
                     an Android phone, or 2 if you have another kind of phone.",
                    self.project_title
                ),
            };
            return vec![first];
        }
        let first = match self.custom_message {
            Some(message) => message.replacen("{}", self.registration_url, 1),
            None => format!(
                "{} invites you to register as a mobile worker. Open this link on your \
                 Android phone to register: {}",
                self.project_title, self.registration_url
            ),
        };
        let mut texts = vec![first];
        if let Some(url) = self.install_url {
            texts.push(install_link_sms(url));
        }
        texts
    }
}

/// The texts as they are sent: with every GSM-7 look-alike replaced when `smart` (see
/// `encoding::smart`), as they are otherwise.
pub fn as_sent(texts: Vec<String>, smart: bool) -> Vec<String> {
    if !smart {
        return texts;
    }
    texts
        .into_iter()
        .map(|text| match super::encoding::smart(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(replaced) => replaced,
        })
        .collect()
}

/// Where Android workers get the CommCare app.
pub const PLAY_STORE_URL: &str =
    "https://play.google.com/store/apps/details?id=org.commcare.dalvik";

/// The SMS of a reinstall: the Google Play message (the custom one with `{}` replaced by
/// the link, or the default), then the app's install-link SMS when it has one.
pub fn reinstall_texts(
    project_title: &str,
    custom: Option<&str>,
    install_url: Option<&str>,
) -> Vec<String> {
    let first = match custom {
        Some(message) => message.replace("{}", PLAY_STORE_URL),
        None => format!(
            "{project_title}: to reinstall your app, first install CommCare from the Google \
             Play store: {PLAY_STORE_URL}"
        ),
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

    const URL: &str = "https://sms.example.org/a/demo/register/TOKEN";
    const INSTALL: &str = "https://www.commcarehq.org/a/demo/app/install/1";

    fn sms(
        android_only: bool,
        custom: Option<&'static str>,
        install: Option<&'static str>,
    ) -> Vec<String> {
        InvitationSms {
            project_title: "Demo Health",
            android_only,
            custom_message: custom,
            registration_url: URL,
            install_url: install,
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
            assert!(!texts[0].contains(URL));
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
    fn android_only_default_gives_the_url() {
        let texts = sms(true, None, None);
        assert_eq!(texts.len(), 1);
        assert!(texts[0].starts_with("Demo Health invites you"));
        assert!(texts[0].ends_with(URL));
    }

    #[test]
    fn android_only_custom_puts_the_url_in_the_placeholder() {
        assert_eq!(
            sms(true, Some("Please register a new user here: {}"), None),
            vec![format!("Please register a new user here: {URL}")]
        );
    }

    #[test]
    fn a_reinstall_sends_the_play_store_link_then_the_install_link() {
        let texts = reinstall_texts("Demo", Some("Get it: {}"), Some(INSTALL));
        assert_eq!(
            texts,
            vec![
                format!("Get it: {PLAY_STORE_URL}"),
                install_link_sms(INSTALL)
            ]
        );
        let texts = reinstall_texts("Demo", None, None);
        assert_eq!(texts.len(), 1);
        assert!(texts[0].starts_with("Demo: ") && texts[0].ends_with(PLAY_STORE_URL));
    }

    #[test]
    fn android_only_with_an_install_link_sends_a_second_sms() {
        let texts = sms(true, Some("Register: {}"), Some(INSTALL));
        assert_eq!(texts.len(), 2);
        assert_eq!(texts[0], format!("Register: {URL}"));
        assert_eq!(
            texts[1],
            "[commcare app - do not delete] aHR0cHM6Ly93d3cuY29tbWNhcmVocS5vcmcvYS9kZW1vL2FwcC9pbnN0YWxsLzE="
        );
        assert_eq!(sms(true, None, Some(INSTALL)).len(), 2);
    }
}
