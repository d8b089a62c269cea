//! The languages a worker may read the service in, and the built-in texts in each
//! (`data/texts/*.json`; docs/languages.md): every SMS, reply answer and page a worker reads
//! is one of them, filled in.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// A language the service has built-in texts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Fr,
    Es,
    Pt,
    Sw,
    Hi,
    Ar,
}

impl Language {
    pub const ALL: [Language; 7] = [
        Language::En,
        Language::Fr,
        Language::Es,
        Language::Pt,
        Language::Sw,
        Language::Hi,
        Language::Ar,
    ];

    /// Its ISO 639-1 code, as the API and the CLI name it.
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Fr => "fr",
            Language::Es => "es",
            Language::Pt => "pt",
            Language::Sw => "sw",
            Language::Hi => "hi",
            Language::Ar => "ar",
        }
    }

    /// `languages`' codes, as a message lists them (`en, fr`).
    pub fn codes(languages: &[Language]) -> String {
        languages
            .iter()
            .map(|l| l.code())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The language of `code`, or why there is none: the message names the service's
    /// languages.
    pub fn parse_or_explain(code: &str) -> Result<Language, String> {
        Language::parse(code).ok_or_else(|| {
            format!(
                "unknown language {code:?}: the service has {}",
                Language::codes(&Language::ALL)
            )
        })
    }

    /// The language of an ISO 639-1 code (any case); `None` for any other text.
    pub fn parse(code: &str) -> Option<Language> {
        Language::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(code.trim()))
    }

    /// Its name in itself, for the page's links to the other languages.
    pub fn name(self) -> &'static str {
        match self {
            Language::En => "English",
            Language::Fr => "Français",
            Language::Es => "Español",
            Language::Pt => "Português",
            Language::Sw => "Kiswahili",
            Language::Hi => "हिन्दी",
            Language::Ar => "العربية",
        }
    }

    /// The page's writing direction (`dir`).
    pub fn direction(self) -> &'static str {
        if self == Language::Ar { "rtl" } else { "ltr" }
    }

    fn source(self) -> &'static str {
        match self {
            Language::En => include_str!("../../data/texts/en.json"),
            Language::Fr => include_str!("../../data/texts/fr.json"),
            Language::Es => include_str!("../../data/texts/es.json"),
            Language::Pt => include_str!("../../data/texts/pt.json"),
            Language::Sw => include_str!("../../data/texts/sw.json"),
            Language::Hi => include_str!("../../data/texts/hi.json"),
            Language::Ar => include_str!("../../data/texts/ar.json"),
        }
    }

    /// The built-in text `id` in this language, if it has one.
    pub fn builtin(self, id: &str) -> Option<&'static str> {
        static TEXTS: OnceLock<HashMap<Language, HashMap<String, String>>> = OnceLock::new();
        TEXTS
            .get_or_init(|| {
                Language::ALL
                    .into_iter()
                    .map(|l| {
                        let texts = serde_json::from_str(l.source())
                            .expect("data/texts holds a JSON object of texts per language");
                        (l, texts)
                    })
                    .collect()
            })
            .get(&self)?
            .get(id)
            .map(String::as_str)
    }

    /// The language a browser asks for first (`Accept-Language`) among `offered`, if any:
    /// by quality, then order; a region (`fr-SN`) matches its language.
    pub fn from_accept_language(header: &str, offered: &[Language]) -> Option<Language> {
        let mut asked: Vec<(f32, usize, Language)> = header
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut pieces = part.split(';');
                let tag = pieces.next()?.trim();
                let primary = tag.split('-').next()?;
                let quality = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                let language = Language::parse(primary)?;
                (quality > 0.0 && offered.contains(&language)).then_some((quality, i, language))
            })
            .collect();
        asked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        asked.first().map(|(_, _, language)| *language)
    }
}

/// The ids of every built-in text: English has them all.
pub fn text_ids() -> Vec<&'static str> {
    static IDS: OnceLock<Vec<String>> = OnceLock::new();
    IDS.get_or_init(|| {
        let texts: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(Language::En.source()).expect("en.json is an object");
        texts.keys().cloned().collect()
    })
    .iter()
    .map(String::as_str)
    .collect()
}

/// `template` with each `{name}` of `values` replaced (not `{}`, the link, which
/// [`super::sms`] places).
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = template.to_owned();
    for (name, value) in values {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

/// The texts one worker reads: in `language`, then the project's default language, then
/// English, each the project's own text first, then the built-in one (CommCare HQ's
/// order: `../shared/COMMCARE-HQ.md`, "Languages").
#[derive(Debug, Clone, Copy)]
pub struct Texts<'a> {
    pub language: Language,
    pub default: Language,
    pub own: Option<&'a HashMap<Language, HashMap<String, String>>>,
}

impl<'a> Texts<'a> {
    /// English only, nothing of a project's own.
    pub fn english() -> Texts<'static> {
        Texts {
            language: Language::En,
            default: Language::En,
            own: None,
        }
    }

    /// The text `id`, as the order finds it.
    pub fn get(&self, id: &str) -> &'a str {
        let own = |l: Language| {
            self.own
                .and_then(|own| own.get(&l))
                .and_then(|texts| texts.get(id))
                .map(String::as_str)
        };
        own(self.language)
            .or_else(|| own(self.default))
            .or_else(|| self.language.builtin(id))
            .or_else(|| self.default.builtin(id))
            .or_else(|| Language::En.builtin(id))
            .unwrap_or_else(|| panic!("no built-in text {id}"))
    }

    /// The text `id` with `values` filled in.
    pub fn fill(&self, id: &str, values: &[(&str, &str)]) -> String {
        fill(self.get(id), values)
    }

    /// A form error, made in English by the rules (`form.*`, filled), in these texts'
    /// language; a message of no built-in text (a directory's own words) as it is.
    pub fn localise(&self, english: &str) -> String {
        for id in text_ids().into_iter().filter(|id| id.starts_with("form.")) {
            let template = Language::En.builtin(id).expect("English has every text");
            if let Some(values) = matches(template, english) {
                let values: Vec<(&str, &str)> = values
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                return self.fill(id, &values);
            }
        }
        english.to_owned()
    }
}

/// The values of `template`'s `{name}` placeholders that make it `text`, if it does.
fn matches(template: &str, text: &str) -> Option<Vec<(String, String)>> {
    let mut values = Vec::new();
    let mut rest_template = template;
    let mut rest = text;
    loop {
        let Some(open) = rest_template.find('{') else {
            return (rest == rest_template).then_some(values);
        };
        let literal = &rest_template[..open];
        rest = rest.strip_prefix(literal)?;
        let close = rest_template[open..].find('}')? + open;
        let name = &rest_template[open + 1..close];
        rest_template = &rest_template[close + 1..];
        // The value runs to the next literal (to the end when none follows).
        let next = rest_template
            .find('{')
            .map_or(rest_template, |at| &rest_template[..at]);
        let end = if next.is_empty() {
            rest.len()
        } else {
            rest.find(next)?
        };
        if end == 0 {
            return None;
        }
        values.push((name.to_owned(), rest[..end].to_owned()));
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_none() {
        for language in Language::ALL {
            assert_eq!(Language::parse(language.code()), Some(language));
            assert_eq!(
                Language::parse(&language.code().to_uppercase()),
                Some(language)
            );
        }
        for bad in ["", "xx", "english", "fr-FR", "e"] {
            assert_eq!(Language::parse(bad), None, "{bad}");
        }
        assert_eq!(Language::Ar.direction(), "rtl");
        assert_eq!(Language::Sw.direction(), "ltr");
    }

    #[test]
    fn every_language_has_every_text_with_the_same_placeholders() {
        let placeholders = |text: &str| {
            let mut found: Vec<String> = text
                .match_indices('{')
                .map(|(at, _)| {
                    let end = text[at..].find('}').map_or(at, |e| at + e + 1);
                    text[at..end].to_owned()
                })
                .collect();
            found.sort();
            found
        };
        for id in text_ids() {
            let english = Language::En.builtin(id).unwrap();
            for language in Language::ALL {
                let text = language
                    .builtin(id)
                    .unwrap_or_else(|| panic!("{} lacks {id}", language.code()));
                assert_eq!(
                    placeholders(text),
                    placeholders(english),
                    "{} {id}: {text}",
                    language.code()
                );
            }
        }
    }

    #[test]
    fn a_form_error_is_localised_with_its_values_and_other_words_stay() {
        let french = Texts {
            language: Language::Fr,
            default: Language::En,
            own: None,
        };
        let english = Texts::english();
        let message = "Usernames are 3 to 80 characters long";
        assert_eq!(english.localise(message), message);
        let localised = french.localise(message);
        assert!(
            localised.contains('3') && localised.contains("80"),
            "{localised}"
        );
        assert_ne!(localised, message);
        assert_eq!(
            french.localise("The two passwords do not match"),
            Language::Fr.builtin("form.passwords_differ").unwrap()
        );
        assert_eq!(french.localise("Cognito refused it"), "Cognito refused it");
    }

    #[test]
    fn accept_language_picks_the_best_offered() {
        let offered = [Language::En, Language::Sw, Language::Fr];
        let pick = |h| Language::from_accept_language(h, &offered);
        assert_eq!(pick("sw-KE,sw;q=0.9,en;q=0.8"), Some(Language::Sw));
        assert_eq!(pick("de-DE,fr;q=0.5,en;q=0.7"), Some(Language::En));
        assert_eq!(pick("ar,hi"), None);
        assert_eq!(pick("fr;q=0, sw;q=0.1"), Some(Language::Sw));
        assert_eq!(pick(""), None);
        assert_eq!(pick("*"), None);
    }

    #[test]
    fn the_order_is_own_then_default_own_then_builtin_then_default_builtin_then_english() {
        let mut own: HashMap<Language, HashMap<String, String>> = HashMap::new();
        own.entry(Language::Sw)
            .or_default()
            .insert("page.submit".into(), "SW OWN".into());
        own.entry(Language::Fr)
            .or_default()
            .insert("page.username".into(), "FR OWN".into());
        let texts = Texts {
            language: Language::Sw,
            default: Language::Fr,
            own: Some(&own),
        };
        assert_eq!(texts.get("page.submit"), "SW OWN");
        assert_eq!(texts.get("page.username"), "FR OWN");
        assert_eq!(
            texts.get("page.email"),
            Language::Sw.builtin("page.email").unwrap()
        );
        assert_eq!(Texts::english().get("page.submit"), "Register");
    }
}
