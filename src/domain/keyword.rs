//! The reply keywords every SMS service must honour (carrier rules and AWS's): opting out,
//! opting back in, and asking for help. They come before any other reply rule.

use super::language::{Language, Texts};

/// What a reply asks for, when it is one of the reserved keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// Never answered; the number is texted no more.
    OptOut,
    /// The number may be texted again.
    OptIn,
    /// Answered with one SMS naming the project and how to stop.
    Help,
}

const OPT_OUT: [&str; 9] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "OPT-OUT",
    "REVOKE",
];
const OPT_IN: [&str; 2] = ["START", "UNSTOP"];
const HELP: [&str; 2] = ["HELP", "INFO"];

/// The keyword of a reply: its first word, in any case, with trailing punctuation
/// ("Stop.", "STOP!") ignored; `None` for any other reply.
pub fn keyword(body: &str) -> Option<Keyword> {
    keyword_in(body).map(|(keyword, _)| keyword)
}

/// The keyword of a reply and, for a word of one of the built-in languages (French
/// ARRET, Spanish AYUDA, ...: `data/texts/keywords.json`), that language; English's words
/// name none. Accents are ignored (ARRÊT is ARRET), and so is trailing punctuation of any
/// script (`إلغاء؟`, `रोकें।`).
pub fn keyword_in(body: &str) -> Option<(Keyword, Option<Language>)> {
    let first = body.split_whitespace().next()?;
    let word: String = first
        .trim_end_matches(|c: char| !c.is_alphanumeric() && c != '-')
        .chars()
        .flat_map(char::to_uppercase)
        .map(without_accent)
        .collect();
    let english = if OPT_OUT.contains(&word.as_str()) {
        Some(Keyword::OptOut)
    } else if OPT_IN.contains(&word.as_str()) {
        Some(Keyword::OptIn)
    } else if HELP.contains(&word.as_str()) {
        Some(Keyword::Help)
    } else {
        None
    };
    if let Some(keyword) = english {
        return Some((keyword, None));
    }
    languages_words().iter().find_map(|(language, words)| {
        if words.opt_out.contains(&word) {
            Some((Keyword::OptOut, Some(*language)))
        } else if words.help.contains(&word) {
            Some((Keyword::Help, Some(*language)))
        } else {
            None
        }
    })
}

/// The opt-out and help words of one built-in language.
#[derive(Debug, serde::Deserialize)]
struct Words {
    opt_out: Vec<String>,
    help: Vec<String>,
}

fn languages_words() -> &'static Vec<(Language, Words)> {
    static WORDS: std::sync::OnceLock<Vec<(Language, Words)>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        let by_code: std::collections::BTreeMap<String, Words> =
            serde_json::from_str(include_str!("../../data/texts/keywords.json"))
                .expect("data/texts/keywords.json holds each language's words");
        by_code
            .into_iter()
            .map(|(code, words)| {
                let language = Language::parse(&code).expect("a built-in language's code");
                let fold = |list: Vec<String>| {
                    list.iter()
                        .map(|w| {
                            w.chars()
                                .flat_map(char::to_uppercase)
                                .map(without_accent)
                                .collect()
                        })
                        .collect()
                };
                let words = Words {
                    opt_out: fold(words.opt_out),
                    help: fold(words.help),
                };
                (language, words)
            })
            .collect()
    })
}

/// An upper-case Latin letter without its accent (`Ê` is `E`); any other character as it is.
fn without_accent(c: char) -> char {
    match c {
        'À'..='Å' | 'Ā' | 'Ă' | 'Ą' => 'A',
        'Ç' | 'Ć' | 'Č' => 'C',
        'È'..='Ë' | 'Ē' | 'Ė' | 'Ę' | 'Ě' => 'E',
        'Ì'..='Ï' | 'Ī' | 'Į' | 'İ' => 'I',
        'Ñ' | 'Ń' | 'Ň' => 'N',
        'Ò'..='Ö' | 'Ø' | 'Ō' | 'Ő' => 'O',
        'Ù'..='Ü' | 'Ū' | 'Ů' | 'Ű' | 'Ų' => 'U',
        'Ý' | 'Ÿ' => 'Y',
        _ => c,
    }
}

/// The answer to HELP or INFO: who texts, why, and how to stop.
pub fn help_text(texts: &Texts, project_title: Option<&str>) -> String {
    match project_title {
        Some(title) => texts.fill("sms.help", &[("title", title)]),
        None => texts.get("sms.help_unknown_project").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_opt_out_word_in_any_case_alone_or_first() {
        for word in OPT_OUT {
            for body in [
                word.to_owned(),
                word.to_lowercase(),
                format!("  {word} please"),
                format!("{word}."),
            ] {
                assert_eq!(keyword(&body), Some(Keyword::OptOut), "{body:?}");
            }
        }
        assert_eq!(keyword("Stop!"), Some(Keyword::OptOut));
        assert_eq!(keyword("opt-out"), Some(Keyword::OptOut));
    }

    #[test]
    fn opt_in_and_help_words() {
        for body in ["START", "unstop", "Start now"] {
            assert_eq!(keyword(body), Some(Keyword::OptIn), "{body}");
        }
        for body in ["HELP", "info", "Help?"] {
            assert_eq!(keyword(body), Some(Keyword::Help), "{body}");
        }
    }

    #[test]
    fn each_languages_words_with_or_without_accents_and_any_punctuation() {
        for (body, expected) in [
            ("ARRET", (Keyword::OptOut, Some(Language::Fr))),
            ("Arrêt !", (Keyword::OptOut, Some(Language::Fr))),
            ("désabonner", (Keyword::OptOut, Some(Language::Fr))),
            ("aide", (Keyword::Help, Some(Language::Fr))),
            ("BAJA", (Keyword::OptOut, Some(Language::Es))),
            ("ayuda por favor", (Keyword::Help, Some(Language::Es))),
            ("Sair.", (Keyword::OptOut, Some(Language::Pt))),
            ("SITISHA", (Keyword::OptOut, Some(Language::Sw))),
            ("msaada", (Keyword::Help, Some(Language::Sw))),
            ("रोकें।", (Keyword::OptOut, Some(Language::Hi))),
            ("إلغاء؟", (Keyword::OptOut, Some(Language::Ar))),
            ("STOP", (Keyword::OptOut, None)),
        ] {
            assert_eq!(keyword_in(body), Some(expected), "{body}");
        }
        // Common words a worker sends for other reasons are not keywords.
        for body in ["ACHA", "non", "oui", "Hapana", "no", "ok", "1", "بند"] {
            assert_eq!(keyword_in(body), None, "{body}");
        }
    }

    #[test]
    fn other_replies_are_not_keywords() {
        for body in [
            "1",
            "2",
            "JOIN demo WORKER jane",
            "",
            "   ",
            "please stop",
            "STOPPED",
            "OPT OUT",
        ] {
            assert_eq!(keyword(body), None, "{body:?}");
        }
    }

    #[test]
    fn the_help_answer_names_the_project_and_how_to_stop() {
        let text = help_text(&Texts::english(), Some("Demo Health"));
        assert!(text.starts_with("Demo Health") && text.contains("Reply STOP"));
        assert!(help_text(&Texts::english(), None).contains("Reply STOP"));
        assert!(text.chars().count() <= 160, "one SMS segment");
    }
}
