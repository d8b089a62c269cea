//! `texts` and `put-texts`: a project's texts in each of its languages, and its own
//! replacements for them (as CommCare HQ's SMS translations; docs/languages.md).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::{Value, json};

use super::context::{Admin, Failure, check_domain, failed, no_project, usage};
use crate::domain::encoding::{as_sent, measure};
use crate::domain::language::{Language, fill, text_ids};
use crate::domain::project::Project;
use crate::ports::Directory;

/// The placeholders of a text (`{title}`, `{}`, ...), sorted.
fn placeholders(text: &str) -> Vec<&str> {
    let mut found: Vec<&str> = text
        .match_indices('{')
        .filter_map(|(at, _)| text[at..].find('}').map(|end| &text[at..at + end + 1]))
        .collect();
    found.sort_unstable();
    found
}

/// `text` as one worker of `project` would get it: filled with the project's title and
/// name, a 20-character username and reason, the limits, and a short registration link of
/// the deployment (`PUBLIC_BASE_URL`), through smart encoding as the project sets it.
fn as_a_worker_gets_it(project: &Project, text: &str) -> String {
    let base = crate::config::Config::from_env()
        .map(|c| c.public_base_url)
        .unwrap_or_else(|_| crate::config::Config::default().public_base_url);
    let link = format!("{base}/r/{}", "x".repeat(22));
    let (user, reason) = ("u".repeat(20), "r".repeat(20));
    let filled = fill(
        text,
        &[
            ("title", project.title()),
            ("project", &project.name),
            ("username", &user),
            ("reason", &reason),
            ("min", "3"),
            ("max", "80"),
            ("app", "App"),
        ],
    )
    .replacen("{}", &link, 1);
    as_sent(&filled, project.sms.smart_encoding).into_owned()
}

impl Admin {
    async fn project_of(&self, domain: &str) -> Result<Project, Failure> {
        check_domain(domain)?;
        self.store
            .project(domain)
            .await
            .map_err(failed)?
            .ok_or_else(|| no_project(domain))
    }

    /// `smsreg-admin texts DOMAIN`: every text, in each of the project's languages, as a
    /// worker reads it (its own, else the built-in one), and each SMS's parts.
    pub(super) async fn texts(&self, domain: String) -> Result<(), Failure> {
        let project = self.project_of(&domain).await?;
        let mut out = serde_json::Map::new();
        for language in &project.languages {
            let texts = project.texts(Some(*language));
            let own = project.texts.get(language);
            let mut by_id = serde_json::Map::new();
            for id in text_ids() {
                let text = texts.get(id);
                let mut entry = json!({
                    "text": text,
                    "own": own.is_some_and(|o| o.contains_key(id)),
                });
                if id.starts_with("sms.") {
                    let size = measure(&as_a_worker_gets_it(&project, text));
                    entry["parts"] = json!(size.parts);
                    entry["encoding"] = json!(size.encoding.as_str());
                }
                by_id.insert(id.to_owned(), entry);
            }
            out.insert(language.code().to_owned(), Value::Object(by_id));
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("texts serialise")
        );
        Ok(())
    }

    /// `smsreg-admin put-texts DOMAIN --language L FILE`: the project's own texts in one
    /// of its languages, from a JSON object of text ids; each checked (a known id, the
    /// English text's placeholders, no control character) before any is stored.
    pub(super) async fn put_texts(
        &self,
        domain: String,
        language: String,
        file: PathBuf,
    ) -> Result<(), Failure> {
        let mut project = self.project_of(&domain).await?;
        let language = Language::parse_or_explain(&language).map_err(usage)?;
        if !project.languages.contains(&language) {
            return Err(usage(format!(
                "{domain}'s languages are {}: add {} with put-domain --languages first",
                crate::adapters::dynamodb::language_list(&project.languages),
                language.code()
            )));
        }
        let source = std::fs::read_to_string(&file)
            .map_err(|e| usage(format!("{}: {e}", file.display())))?;
        let given: BTreeMap<String, Value> = serde_json::from_str(&source).map_err(|e| {
            usage(format!(
                "{}: not a JSON object of text ids: {e}",
                file.display()
            ))
        })?;
        let known = text_ids();
        let mut problems = Vec::new();
        let mut accepted: HashMap<String, String> = HashMap::new();
        for (id, value) in &given {
            let Some(english) = known
                .contains(&id.as_str())
                .then(|| Language::En.builtin(id))
                .flatten()
            else {
                problems.push(format!("{id}: no such text (see `smsreg-admin texts`)"));
                continue;
            };
            let Some(text) = value.as_str().map(str::trim).filter(|t| !t.is_empty()) else {
                problems.push(format!("{id}: expected a non-empty string"));
                continue;
            };
            if text.chars().any(|c| c.is_control() && c != '\n') {
                problems.push(format!("{id}: control characters are not allowed"));
                continue;
            }
            if placeholders(text) != placeholders(english) {
                problems.push(format!(
                    "{id}: must keep the placeholders {} exactly (the English text: {english:?})",
                    placeholders(english).join(" ")
                ));
                continue;
            }
            accepted.insert(id.clone(), text.to_owned());
        }
        if !problems.is_empty() {
            return Err(usage(format!("nothing stored: {}", problems.join("; "))));
        }
        for (id, text) in &accepted {
            if id.starts_with("sms.") {
                let size = measure(&as_a_worker_gets_it(&project, text));
                println!("{id}: {} part(s), {}", size.parts, size.encoding.as_str());
            }
        }
        let count = accepted.len();
        project.texts.entry(language).or_default().extend(accepted);
        self.store
            .put_project_texts(&domain, &project.texts)
            .await
            .map_err(failed)?;
        println!("{count} text(s) of {domain} in {} stored", language.code());
        Ok(())
    }
}
