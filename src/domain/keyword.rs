//! The reply keywords every SMS service must honour (carrier rules and AWS's): opting out,
//! opting back in, and asking for help. They come before any other reply rule.

use super::language::Texts;

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
    let first = body.split_whitespace().next()?;
    let word = first
        .trim_end_matches(|c: char| c.is_ascii_punctuation())
        .to_ascii_uppercase();
    if OPT_OUT.contains(&word.as_str()) {
        Some(Keyword::OptOut)
    } else if OPT_IN.contains(&word.as_str()) {
        Some(Keyword::OptIn)
    } else if HELP.contains(&word.as_str()) {
        Some(Keyword::Help)
    } else {
        None
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
