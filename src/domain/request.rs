//! The create-invitations request: parsed from JSON, checked against every field rule.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};

use super::encoding;
use super::language::Language;
use super::phone::{PhoneNumber, lenient};
use super::project::Project;

/// The most characters SNS sends in one SMS.
pub const MAX_SMS_CHARS: usize = 1600;
/// The most bytes a user's `custom_user_data` may take as JSON.
pub const MAX_CUSTOM_USER_DATA_BYTES: usize = 4096;

const REQUIRED: &str = "This field is required";

/// Every field error of a request, by field name (`users[3].phone_number`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_insert_with(|| message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// A number of the request: valid and normalised, or kept exactly as the client sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestedNumber {
    Valid(PhoneNumber),
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserEntry {
    pub number: RequestedNumber,
    pub custom_user_data: Option<Map<String, Value>>,
    /// The worker's own language (`users[].language`), one of the project's.
    pub language: Option<Language>,
}

/// A request that passed every field rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationRequest {
    pub app_id: String,
    pub android_only: bool,
    pub require_email: bool,
    /// Trimmed and non-empty; `None` means the default message.
    pub custom_registration_message: Option<String>,
    /// Whether GSM-7 look-alikes are replaced in its SMS: the request's
    /// `smart_encoding`, else the project's setting.
    pub smart_encoding: bool,
    /// No SMS of the request before it (seconds since the epoch): the request's `send_at`.
    pub send_at: Option<u64>,
    /// The language of every user who names none (`language`), one of the project's;
    /// `None`: the project's default.
    pub language: Option<Language>,
    pub users: Vec<UserEntry>,
}

/// The furthest ahead `send_at` may be.
pub const MAX_SEND_AT_AHEAD_SECONDS: u64 = 7 * 24 * 3600;
/// How far in the past `send_at` may be and still mean "now" (clocks differ).
const SEND_AT_LEEWAY_SECONDS: u64 = 60;

/// `send_at`: an RFC 3339 instant, not in the past, at most 7 days ahead.
fn send_at(body: &Map<String, Value>, now: u64, errors: &mut FieldErrors) -> Option<u64> {
    let text = match body.get("send_at") {
        None | Some(Value::Null) => return None,
        Some(Value::String(text)) => text,
        Some(_) => {
            errors.add("send_at", type_name("str"));
            return None;
        }
    };
    let Ok(at) = text.parse::<jiff::Timestamp>() else {
        errors.add(
            "send_at",
            "Enter a date and time in RFC 3339 form, such as 2026-12-03T08:00:00+03:00",
        );
        return None;
    };
    let at = at.as_second();
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    if at < now_i - SEND_AT_LEEWAY_SECONDS as i64 {
        errors.add("send_at", "send_at is in the past");
        return None;
    }
    if at > now_i + MAX_SEND_AT_AHEAD_SECONDS as i64 {
        errors.add("send_at", "send_at is at most 7 days ahead");
        return None;
    }
    u64::try_from(at).ok().filter(|at| *at > now)
}

/// What the field rules depend on besides the body itself.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext<'a> {
    pub project: &'a Project,
    pub max_users: usize,
    /// Characters of a registration URL of this project, for the SMS length rule.
    pub registration_url_chars: usize,
    /// Seconds since the epoch, for `send_at`.
    pub now: u64,
}

/// A `language` field (`field` names it in errors): a code of the service's, and one of
/// the project's languages.
fn language(
    value: Option<&Value>,
    field: &str,
    project: &Project,
    errors: &mut FieldErrors,
) -> Option<Language> {
    let code = match value {
        None | Some(Value::Null) => return None,
        Some(Value::String(code)) => code,
        Some(_) => {
            errors.add(field, type_name("str"));
            return None;
        }
    };
    match Language::parse(code) {
        None => {
            errors.add(
                field,
                format!(
                    "Unknown language {code:?}: the service has {}",
                    Language::codes(&Language::ALL)
                ),
            );
            None
        }
        Some(l) if !project.languages.contains(&l) => {
            errors.add(
                field,
                format!(
                    "This project's languages are {}: {} is not one of them",
                    Language::codes(&project.languages),
                    l.code()
                ),
            );
            None
        }
        Some(l) => Some(l),
    }
}

fn type_name(expected: &str) -> String {
    format!("Expected type: {expected}")
}

impl RegistrationRequest {
    /// Applies every field rule and reports all errors at once. Unknown fields are ignored.
    pub fn validate(
        body: &Map<String, Value>,
        ctx: ValidationContext<'_>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();

        let app_id = validate_app_id(body, ctx.project, &mut errors);

        let mut optional_bool = |field: &str| match body.get(field) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                errors.add(field, type_name("bool"));
                false
            }
        };
        let android_only = optional_bool("android_only");
        let require_email = optional_bool("require_email");
        let smart_encoding = smart_encoding(body, ctx, &mut errors);
        let send_at = send_at(body, ctx.now, &mut errors);

        let custom_registration_message = match body.get("custom_registration_message") {
            None => None,
            Some(Value::String(s)) => {
                let trimmed = s.trim();
                if trimmed.is_empty() {
                    None
                } else {
                    if let Err(message) = check_characters(s).and_then(|()| {
                        check_custom_message(trimmed, android_only, smart_encoding, ctx)
                    }) {
                        errors.add("custom_registration_message", message);
                    }
                    Some(trimmed.to_owned())
                }
            }
            Some(_) => {
                errors.add("custom_registration_message", type_name("str"));
                None
            }
        };

        let language = language(body.get("language"), "language", ctx.project, &mut errors);
        let users = validate_user_list(body, ctx, &mut errors);

        match app_id {
            Some(app_id) if errors.is_empty() => Ok(RegistrationRequest {
                app_id,
                android_only,
                require_email,
                custom_registration_message,
                smart_encoding,
                send_at,
                language,
                users,
            }),
            _ => Err(errors),
        }
    }
}

/// The request's `smart_encoding` (a bool), else the project's setting.
fn smart_encoding(
    body: &Map<String, Value>,
    ctx: ValidationContext<'_>,
    errors: &mut FieldErrors,
) -> bool {
    match body.get("smart_encoding") {
        None => ctx.project.sms.smart_encoding,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.add("smart_encoding", type_name("bool"));
            ctx.project.sms.smart_encoding
        }
    }
}

/// Refuses a text (the message as it will be sent) of more parts than the project allows,
/// naming its encoding and parts.
fn check_parts(text: &str, smart: bool, ctx: ValidationContext<'_>) -> Result<(), String> {
    let size = encoding::measure(&encoding::as_sent(text, smart));
    let max = ctx.project.sms.max_parts_per_sms as usize;
    if size.parts <= max {
        return Ok(());
    }
    let (units, why) = match size.encoding {
        encoding::Encoding::Gsm7 => ("characters", String::new()),
        encoding::Encoding::Ucs2 => (
            "UTF-16 units",
            " (a character outside the GSM-7 alphabet makes the whole SMS UCS-2, at most 70 \
             characters a part alone and 67 once split)"
                .to_owned(),
        ),
    };
    Err(format!(
        "The message would be sent as {} parts in {}, {} {units}{why}: the project allows \
         at most {max} parts per SMS",
        size.parts,
        size.encoding.as_str(),
        size.units,
    ))
}

/// Refuses characters a client never means to text: C0 and C1 controls (NUL, ESC, ...)
/// other than the line breaks (LF, CR) a textarea sends, and the Unicode bidirectional
/// controls (Bidi_Control), which reorder what the worker reads (a link shown reversed,
/// say). Only the trimmed message is texted, so only it is checked; the first character
/// refused is named by code point and position in `raw`, the message as the client sent
/// it, counted in characters from 1.
fn check_characters(raw: &str) -> Result<(), String> {
    let leading = raw[..raw.len() - raw.trim_start().len()].chars().count();
    let found = raw
        .trim()
        .chars()
        .enumerate()
        .find(|(_, c)| (c.is_control() && !matches!(c, '\n' | '\r')) || is_bidi_control(*c));
    match found {
        None => Ok(()),
        Some((index, c)) => {
            let what = if c.is_control() {
                "control characters other than line breaks"
            } else {
                "bidirectional text controls"
            };
            Err(format!(
                "The message must not contain {what} (U+{:04X} at position {})",
                u32::from(c),
                leading + index + 1
            ))
        }
    }
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn check_custom_message(
    message: &str,
    android_only: bool,
    smart: bool,
    ctx: ValidationContext<'_>,
) -> Result<(), String> {
    let placeholders = message.matches("{}").count();
    let chars = message.chars().count();
    if android_only {
        if placeholders != 1 {
            return Err(
                "With android_only true, the message must contain {} exactly once: \
                 the registration URL goes there"
                    .into(),
            );
        }
        if chars - 2 + ctx.registration_url_chars > MAX_SMS_CHARS {
            return Err(format!(
                "The message must be at most {MAX_SMS_CHARS} characters once the \
                 registration URL ({} characters) replaces {{}}",
                ctx.registration_url_chars
            ));
        }
        // A registration URL is URL-safe ASCII: one GSM-7 septet a character, as `x` is.
        let url = "x".repeat(ctx.registration_url_chars);
        check_parts(&message.replacen("{}", &url, 1), smart, ctx)?;
    } else {
        if placeholders != 0 {
            return Err("With android_only false, the message must not contain {}: \
                 the registration URL is sent after the worker replies 1"
                .into());
        }
        if chars > MAX_SMS_CHARS {
            return Err(format!(
                "The message must be at most {MAX_SMS_CHARS} characters"
            ));
        }
        check_parts(message, smart, ctx)?;
    }
    Ok(())
}

/// Every valid number outside the project's allowed countries, in one error on `users`.
fn check_countries(users: &[UserEntry], project: &Project, errors: &mut FieldErrors) {
    let outside: Vec<&str> = users
        .iter()
        .filter_map(|u| match &u.number {
            RequestedNumber::Valid(phone) if !project.may_text(phone.region()) => {
                Some(phone.as_str())
            }
            _ => None,
        })
        .collect();
    if !outside.is_empty() {
        let allowed = project.allowed_countries.as_deref().unwrap_or_default();
        errors.add(
            "users",
            format!(
                "These numbers are outside the countries this project may text ({}): {}",
                allowed.join(", "),
                outside.join(", ")
            ),
        );
    }
}

/// `app_id`: required, a string, an app of the project.
fn validate_app_id(
    body: &Map<String, Value>,
    project: &Project,
    errors: &mut FieldErrors,
) -> Option<String> {
    match body.get("app_id") {
        None => {
            errors.add("app_id", REQUIRED);
            None
        }
        Some(Value::String(id)) if project.app(id).is_some() => Some(id.clone()),
        Some(Value::String(_)) => {
            errors.add("app_id", "Invalid app_id specified");
            None
        }
        Some(_) => {
            errors.add("app_id", type_name("str"));
            None
        }
    }
}

/// `users`: required, a list of objects, within the limits, each number once.
fn validate_user_list(
    body: &Map<String, Value>,
    ctx: ValidationContext<'_>,
    errors: &mut FieldErrors,
) -> Vec<UserEntry> {
    let users = match body.get("users") {
        None => {
            errors.add("users", REQUIRED);
            Vec::new()
        }
        Some(Value::Array(items)) => validate_users(items, ctx, errors),
        Some(_) => {
            errors.add("users", type_name("list"));
            Vec::new()
        }
    };
    check_countries(&users, ctx.project, errors);
    users
}

/// The reinstall request: send the app's install link again to workers' phones.
#[derive(Debug, Clone, PartialEq)]
pub struct ReinstallRequest {
    pub app_id: String,
    /// Trimmed and non-empty; `{}` stands for the Google Play link. `None`: the default.
    pub reinstall_message: Option<String>,
    /// As [`RegistrationRequest::smart_encoding`].
    pub smart_encoding: bool,
    /// As [`RegistrationRequest::send_at`].
    pub send_at: Option<u64>,
    pub users: Vec<UserEntry>,
}

impl ReinstallRequest {
    pub fn validate(
        body: &Map<String, Value>,
        ctx: ValidationContext<'_>,
        play_store_url: &str,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let app_id = validate_app_id(body, ctx.project, &mut errors);
        let smart_encoding = smart_encoding(body, ctx, &mut errors);
        let send_at = send_at(body, ctx.now, &mut errors);
        let reinstall_message = match body.get("reinstall_message") {
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => {
                let message = s.trim().to_owned();
                let sent = message.replace("{}", play_store_url);
                if let Err(error) = check_characters(s) {
                    errors.add("reinstall_message", error);
                } else if sent.chars().count() > MAX_SMS_CHARS {
                    errors.add(
                        "reinstall_message",
                        format!(
                            "The message must be at most {MAX_SMS_CHARS} characters once the \
                             Google Play link replaces {{}}"
                        ),
                    );
                } else if let Err(message) = check_parts(&sent, smart_encoding, ctx) {
                    errors.add("reinstall_message", message);
                }
                Some(message)
            }
            Some(_) => {
                errors.add("reinstall_message", type_name("str"));
                None
            }
        };
        let users = validate_user_list(body, ctx, &mut errors);
        match app_id {
            Some(app_id) if errors.is_empty() => Ok(ReinstallRequest {
                app_id,
                reinstall_message,
                smart_encoding,
                send_at,
                users,
            }),
            _ => Err(errors),
        }
    }
}

fn validate_users(
    items: &[Value],
    ctx: ValidationContext<'_>,
    errors: &mut FieldErrors,
) -> Vec<UserEntry> {
    if items.len() > ctx.max_users {
        errors.add(
            "users",
            format!("At most {} users per request", ctx.max_users),
        );
        return Vec::new();
    }
    if !items.iter().all(Value::is_object) {
        errors.add("users", "Expected a list of dictionaries");
        return Vec::new();
    }

    let mut users = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for (i, user) in items.iter().filter_map(Value::as_object).enumerate() {
        let number = match user.get("phone_number") {
            None => {
                errors.add(format!("users[{i}].phone_number"), REQUIRED);
                None
            }
            Some(Value::String(raw)) => Some(match PhoneNumber::parse(raw) {
                Ok(phone) => RequestedNumber::Valid(phone),
                Err(_) => RequestedNumber::Invalid(raw.clone()),
            }),
            Some(_) => {
                errors.add(format!("users[{i}].phone_number"), type_name("str"));
                None
            }
        };
        let custom_user_data = match user.get("custom_user_data") {
            None => None,
            Some(Value::Object(data)) => {
                let size = serde_json::to_vec(data).map_or(usize::MAX, |v| v.len());
                if size > MAX_CUSTOM_USER_DATA_BYTES {
                    errors.add(
                        format!("users[{i}].custom_user_data"),
                        format!("Must be at most {MAX_CUSTOM_USER_DATA_BYTES} bytes as JSON"),
                    );
                }
                Some(data.clone())
            }
            Some(_) => {
                errors.add(format!("users[{i}].custom_user_data"), type_name("dict"));
                None
            }
        };
        let language = language(
            user.get("language"),
            &format!("users[{i}].language"),
            ctx.project,
            errors,
        );
        let Some(number) = number else { continue };
        let (key, shown) = match &number {
            RequestedNumber::Valid(phone) => (phone.as_str().to_owned(), phone.as_str()),
            RequestedNumber::Invalid(raw) => (lenient(raw), raw.as_str()),
        };
        if !seen.insert(key) {
            errors.add(
                "users",
                format!("phone_number cannot be reused within a request: {shown}"),
            );
        }
        users.push(UserEntry {
            number,
            custom_user_data,
            language,
        });
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::project::{App, Plan};
    use serde_json::json;

    fn project() -> Project {
        Project {
            accounts: Default::default(),
            languages: vec![crate::domain::language::Language::En],
            texts: Default::default(),
            name: "demo".into(),
            display_name: None,
            plan: Plan::Pro,
            registration_enabled: true,
            apps: vec![App {
                id: "abcd1234abcd1234".into(),
                name: "Demo".into(),
                install_url: None,
            }],
            allowed_countries: None,
            daily_invitation_limit: 1000,
            sms: Default::default(),
        }
    }

    fn validate(body: Value) -> Result<RegistrationRequest, FieldErrors> {
        validate_in(&project(), body)
    }

    fn validate_in(project: &Project, body: Value) -> Result<RegistrationRequest, FieldErrors> {
        let ctx = ValidationContext {
            project,
            max_users: 500,
            registration_url_chars: 60,
            now: 1_780_000_000,
        };
        RegistrationRequest::validate(body.as_object().unwrap(), ctx)
    }

    /// A project that allows the longest SMS SNS takes (11 parts).
    fn allowing_11_parts() -> Project {
        let mut project = project();
        project.sms.max_parts_per_sms = crate::domain::project::MAX_PARTS_PER_SMS;
        project
    }

    #[test]
    fn a_custom_message_past_the_projects_parts_is_refused_naming_encoding_and_parts() {
        // 3 parts of GSM-7 fit the default; 4 do not.
        let three = "x".repeat(153 * 3);
        assert!(validate(json!({"app_id": "abcd1234abcd1234", "users": [], "custom_registration_message": three})).is_ok());
        let four = "x".repeat(153 * 3 + 1);
        let errors = errors_of(
            json!({"app_id": "abcd1234abcd1234", "users": [], "custom_registration_message": four}),
        );
        let message = errors.get("custom_registration_message").unwrap();
        assert!(message.contains("4 parts in GSM-7"), "{message}");
        assert!(message.contains("at most 3 parts"), "{message}");
        // One curly apostrophe, smart encoding off: UCS-2, 459 units, 7 parts.
        let curly = format!("Don’t {}", "x".repeat(453));
        let body = json!({"app_id": "abcd1234abcd1234", "users": [], "smart_encoding": false, "custom_registration_message": curly});
        let errors = errors_of(body);
        let message = errors.get("custom_registration_message").unwrap();
        assert!(message.contains("7 parts in UCS-2"), "{message}");
        // Smart encoding on (the default): the apostrophe is replaced, 3 parts of GSM-7.
        let body = json!({"app_id": "abcd1234abcd1234", "users": [], "custom_registration_message": curly});
        assert!(validate(body).unwrap().smart_encoding);
        // The registration URL counts: its 60 characters replace {}.
        let fits = format!("{} {{}}", "x".repeat(153 * 3 - 60 - 1));
        assert!(validate(json!({"app_id": "abcd1234abcd1234", "users": [], "android_only": true, "custom_registration_message": fits})).is_ok());
        let over = format!("{} {{}}", "x".repeat(153 * 3 - 60));
        assert!(validate(json!({"app_id": "abcd1234abcd1234", "users": [], "android_only": true, "custom_registration_message": over})).is_err());
    }

    #[test]
    fn smart_encoding_is_the_projects_unless_the_request_says() {
        let body = json!({"app_id": "abcd1234abcd1234", "users": []});
        assert!(validate(body.clone()).unwrap().smart_encoding);
        let mut off = project();
        off.sms.smart_encoding = false;
        assert!(!validate_in(&off, body).unwrap().smart_encoding);
        let on = json!({"app_id": "abcd1234abcd1234", "users": [], "smart_encoding": true});
        assert!(validate_in(&off, on).unwrap().smart_encoding);
        for bad in [json!("no"), Value::Null] {
            let body = json!({"app_id": "abcd1234abcd1234", "users": [], "smart_encoding": bad});
            assert_eq!(
                errors_of(body).get("smart_encoding").unwrap(),
                "Expected type: bool"
            );
        }
    }

    fn errors_of(body: Value) -> FieldErrors {
        validate(body).expect_err("the body should be rejected")
    }

    fn users(n: usize) -> Value {
        (0..n)
            .map(|i| json!({"phone_number": format!("+1617555{:04}", i)}))
            .collect()
    }

    #[test]
    fn the_seeds_simple_input_is_valid() {
        let req = validate(json!({
            "app_id": "abcd1234abcd1234",
            "users": [{"phone_number": "+16175551234"}]
        }))
        .unwrap();
        assert_eq!(req.app_id, "abcd1234abcd1234");
        assert!(!req.android_only && !req.require_email);
        assert_eq!(req.custom_registration_message, None);
        assert_eq!(
            req.users[0].number,
            RequestedNumber::Valid(PhoneNumber::parse("+16175551234").unwrap())
        );
    }

    #[test]
    fn the_seeds_complex_input_is_valid() {
        let req = validate(json!({
            "app_id": "abcd1234abcd1234",
            "android_only": true,
            "require_email": true,
            "custom_registration_message": "Please register a new user here: {}",
            "users": [
                {"phone_number": "+16175551234", "custom_user_data": {"customdata1": "foo", "customdata2": "X"}},
                {"phone_number": "+16175555512", "custom_user_data": {"customdata1": "bar", "customdata2": "Y"}}
            ]
        }))
        .unwrap();
        assert!(req.android_only && req.require_email);
        assert_eq!(
            req.custom_registration_message.as_deref(),
            Some("Please register a new user here: {}")
        );
        assert_eq!(req.users.len(), 2);
        assert_eq!(
            req.users[1].custom_user_data.as_ref().unwrap()["customdata1"],
            "bar"
        );
    }

    #[test]
    fn each_field_rule_gives_its_message() {
        let app = "abcd1234abcd1234";
        let one = json!([{"phone_number": "+16175551234"}]);
        let long = "x".repeat(1601);
        let long_with_url = format!("{} {{}}", "x".repeat(1600 - 60));
        let big_data: Value = json!({"k": "v".repeat(4100)});
        let cases: Vec<(Value, &str, String)> = vec![
            (json!({"users": one}), "app_id", REQUIRED.into()),
            (json!({"app_id": null, "users": one}), "app_id", "Expected type: str".into()),
            (json!({"app_id": 7, "users": one}), "app_id", "Expected type: str".into()),
            (json!({"app_id": "nope", "users": one}), "app_id", "Invalid app_id specified".into()),
            (json!({"app_id": app}), "users", REQUIRED.into()),
            (json!({"app_id": app, "users": null}), "users", "Expected type: list".into()),
            (json!({"app_id": app, "users": {"phone_number": "+16175551234"}}), "users", "Expected type: list".into()),
            (json!({"app_id": app, "users": ["+16175551234"]}), "users", "Expected a list of dictionaries".into()),
            (json!({"app_id": app, "users": [{"phone_number": "+16175551234"}, []]}), "users", "Expected a list of dictionaries".into()),
            (json!({"app_id": app, "users": users(501)}), "users", "At most 500 users per request".into()),
            (json!({"app_id": app, "users": [{}]}), "users[0].phone_number", REQUIRED.into()),
            (json!({"app_id": app, "users": [{"phone_number": "+16175551234"}, {"phone_number": 16175551235_u64}]}), "users[1].phone_number", "Expected type: str".into()),
            (json!({"app_id": app, "users": [{"phone_number": null}]}), "users[0].phone_number", "Expected type: str".into()),
            (json!({"app_id": app, "users": [{"phone_number": "+16175551234", "custom_user_data": []}]}), "users[0].custom_user_data", "Expected type: dict".into()),
            (json!({"app_id": app, "users": [{"phone_number": "+16175551234", "custom_user_data": null}]}), "users[0].custom_user_data", "Expected type: dict".into()),
            (json!({"app_id": app, "users": [{"phone_number": "+16175551234", "custom_user_data": big_data}]}), "users[0].custom_user_data", "Must be at most 4096 bytes as JSON".into()),
            (json!({"app_id": app, "users": [{"phone_number": "+16175551234"}, {"phone_number": "1 (617) 555-1234"}]}), "users", "phone_number cannot be reused within a request: +16175551234".into()),
            (json!({"app_id": app, "users": [{"phone_number": "bad"}, {"phone_number": "b-a-d"}]}), "users", "phone_number cannot be reused within a request: b-a-d".into()),
            (json!({"app_id": app, "users": one, "android_only": "yes"}), "android_only", "Expected type: bool".into()),
            (json!({"app_id": app, "users": one, "android_only": null}), "android_only", "Expected type: bool".into()),
            (json!({"app_id": app, "users": one, "require_email": 1}), "require_email", "Expected type: bool".into()),
            (json!({"app_id": app, "users": one, "custom_registration_message": ["x"]}), "custom_registration_message", "Expected type: str".into()),
            (json!({"app_id": app, "users": one, "android_only": true, "custom_registration_message": "no url"}), "custom_registration_message", "With android_only true, the message must contain {} exactly once: the registration URL goes there".into()),
            (json!({"app_id": app, "users": one, "android_only": true, "custom_registration_message": "{} and {}"}), "custom_registration_message", "With android_only true, the message must contain {} exactly once: the registration URL goes there".into()),
            (json!({"app_id": app, "users": one, "custom_registration_message": "go to {}"}), "custom_registration_message", "With android_only false, the message must not contain {}: the registration URL is sent after the worker replies 1".into()),
            (json!({"app_id": app, "users": one, "custom_registration_message": long}), "custom_registration_message", "The message must be at most 1600 characters".into()),
            (json!({"app_id": app, "users": one, "android_only": true, "custom_registration_message": long_with_url}), "custom_registration_message", "The message must be at most 1600 characters once the registration URL (60 characters) replaces {}".into()),
        ];
        for (body, field, message) in cases {
            let errors = errors_of(body.clone());
            assert_eq!(
                errors.get(field),
                Some(message.as_str()),
                "body {body}: {errors:?}"
            );
            assert_eq!(errors.len(), 1, "body {body}: {errors:?}");
        }
    }

    #[test]
    fn control_and_bidi_characters_in_a_custom_message_are_refused_naming_the_first() {
        const CONTROL: &str =
            "The message must not contain control characters other than line breaks";
        const BIDI: &str = "The message must not contain bidirectional text controls";
        let cases = [
            ("Join\u{0}us", format!("{CONTROL} (U+0000 at position 5)")),
            (
                "Hi \u{1b}[31m team",
                format!("{CONTROL} (U+001B at position 4)"),
            ),
            ("Tab\there", format!("{CONTROL} (U+0009 at position 4)")),
            ("Bell\u{7}", format!("{CONTROL} (U+0007 at position 5)")),
            ("Del\u{7f}", format!("{CONTROL} (U+007F at position 4)")),
            (
                "Next\u{85}line",
                format!("{CONTROL} (U+0085 at position 5)"),
            ),
            // Positions count characters of the message as sent, spaces before it included.
            ("  é\u{0}", format!("{CONTROL} (U+0000 at position 4)")),
            ("\u{202e}olleh", format!("{BIDI} (U+202E at position 1)")),
            ("ab\u{200e}", format!("{BIDI} (U+200E at position 3)")),
            ("ab\u{200f}", format!("{BIDI} (U+200F at position 3)")),
            ("a\u{202a}b", format!("{BIDI} (U+202A at position 2)")),
            ("a\u{202d}b", format!("{BIDI} (U+202D at position 2)")),
            ("a\u{2066}b", format!("{BIDI} (U+2066 at position 2)")),
            ("a\u{2069}b", format!("{BIDI} (U+2069 at position 2)")),
            ("a\u{61c}b", format!("{BIDI} (U+061C at position 2)")),
            // The first one found is named.
            ("x\u{202e}\u{0}", format!("{BIDI} (U+202E at position 2)")),
        ];
        for (message, expected) in &cases {
            let body = json!({"app_id": "abcd1234abcd1234", "users": [], "custom_registration_message": message});
            let errors = validate(body).unwrap_err();
            assert_eq!(
                errors.get("custom_registration_message"),
                Some(expected.as_str()),
                "{message:?}"
            );
            let body =
                json!({"app_id": "abcd1234abcd1234", "users": [], "reinstall_message": message});
            let ctx = ValidationContext {
                project: &project(),
                max_users: 500,
                registration_url_chars: 60,
                now: 1_780_000_000,
            };
            let errors =
                ReinstallRequest::validate(body.as_object().unwrap(), ctx, "https://play.example")
                    .unwrap_err();
            assert_eq!(
                errors.get("reinstall_message"),
                Some(expected.as_str()),
                "{message:?}"
            );
        }
        // Line breaks, as a textarea sends them, are kept; white space trimmed off is not
        // texted, so not refused.
        for message in [
            "Line one\nline two",
            "Line one\r\nline two",
            "Zero\u{200b}width",
        ] {
            let body = json!({"app_id": "abcd1234abcd1234", "users": [], "custom_registration_message": message});
            assert_eq!(
                validate(body)
                    .unwrap()
                    .custom_registration_message
                    .as_deref(),
                Some(message)
            );
        }
        let body = json!({"app_id": "abcd1234abcd1234", "users": [], "custom_registration_message": "\tReply 1\u{85}"});
        assert_eq!(
            validate(body)
                .unwrap()
                .custom_registration_message
                .as_deref(),
            Some("Reply 1")
        );
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let errors = errors_of(json!({
            "app_id": 1,
            "android_only": "no",
            "users": [{"phone_number": 5}, {"custom_user_data": 1}]
        }));
        assert_eq!(errors.len(), 5, "{errors:?}");
        for field in [
            "app_id",
            "android_only",
            "users[0].phone_number",
            "users[1].phone_number",
            "users[1].custom_user_data",
        ] {
            assert!(
                errors.get(field).is_some(),
                "{field} missing from {errors:?}"
            );
        }
    }

    #[test]
    fn limits_are_inclusive() {
        assert!(validate(json!({"app_id": "abcd1234abcd1234", "users": users(500)})).is_ok());
        let fits = format!("{} {{}}", "x".repeat(1600 - 60 - 1));
        assert!(validate_in(&allowing_11_parts(), json!({"app_id": "abcd1234abcd1234", "users": [], "android_only": true, "custom_registration_message": fits})).is_ok());
        let data = json!({"k": "v".repeat(4096 - 8)});
        assert_eq!(serde_json::to_vec(&data).unwrap().len(), 4096);
        assert!(validate(json!({"app_id": "abcd1234abcd1234", "users": [{"phone_number": "+16175551234", "custom_user_data": data}]})).is_ok());
    }

    #[test]
    fn numbers_outside_the_allowed_countries_are_all_listed() {
        let mut project = project();
        project.allowed_countries = Some(vec!["US".into(), "CA".into()]);
        let ctx = ValidationContext {
            project: &project,
            max_users: 500,
            registration_url_chars: 60,
            now: 1_780_000_000,
        };
        let body = json!({"app_id": "abcd1234abcd1234", "users": [
            {"phone_number": "+16175551234"}, {"phone_number": "+442079460958"},
            {"phone_number": "not a number"}, {"phone_number": "+254712345678"}]});
        let errors = RegistrationRequest::validate(body.as_object().unwrap(), ctx).unwrap_err();
        assert_eq!(
            errors.get("users"),
            Some(
                "These numbers are outside the countries this project may text (US, CA): +442079460958, +254712345678"
            )
        );
        let ok = json!({"app_id": "abcd1234abcd1234", "users": [{"phone_number": "+16135550123"}]});
        assert!(RegistrationRequest::validate(ok.as_object().unwrap(), ctx).is_ok());
    }

    #[test]
    fn an_empty_user_list_is_valid() {
        let req = validate(json!({"app_id": "abcd1234abcd1234", "users": []})).unwrap();
        assert!(req.users.is_empty());
    }

    #[test]
    fn the_custom_message_is_trimmed_and_blank_means_default() {
        let base = json!({"app_id": "abcd1234abcd1234", "users": []});
        let mut body = base.clone();
        body["custom_registration_message"] = json!("  Reply to join  ");
        assert_eq!(
            validate(body)
                .unwrap()
                .custom_registration_message
                .as_deref(),
            Some("Reply to join")
        );
        let mut body = base;
        body["custom_registration_message"] = json!("   ");
        assert_eq!(validate(body).unwrap().custom_registration_message, None);
    }

    #[test]
    fn invalid_numbers_are_kept_as_sent_and_unknown_fields_ignored() {
        let req = validate(json!({
            "app_id": "abcd1234abcd1234",
            "users": [{"phone_number": "+1617JKL1234", "extra": 1}],
            "something_else": true
        }))
        .unwrap();
        assert_eq!(
            req.users[0].number,
            RequestedNumber::Invalid("+1617JKL1234".into())
        );
    }
}
