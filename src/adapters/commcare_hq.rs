//! Worker accounts in a project of a CommCare HQ server, through HQ's User API, with the
//! API key read from AWS Secrets Manager.
//!
//! An account is made by one `POST .../api/v0.5/user/`, not idempotent. A retry whose
//! username HQ says is "already taken or reserved" reads that user: one whose `user_data`
//! carries this attempt's reference is the service's own (the first answer was lost), and
//! is finished by setting its password again; any other is someone else's.
//!
//! HQ is HTTPS on AWS (plain HTTP for the tests' stand-in), reached through the SDK's own
//! connectors (`http_client::send`), every call within [`TIMEOUT`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::http_client::{Answer, send};
use super::secrets::Secrets;
use crate::domain::account::{HqProject, NewAccount};
use crate::ports::AccountError;

/// How long one call to HQ may take, connection and whole answer included.
pub const TIMEOUT: Duration = Duration::from_secs(8);
/// How long a key read from Secrets Manager is used before it is read again: a key an
/// operator rotates is taken up within this, without a read per account.
pub const KEY_CACHE: Duration = Duration::from_secs(300);

/// The fields the service writes into a user's `user_data` (docs/accounts.md), besides the
/// invitation's own custom user data: the attempt's reference (how a retry recognises an
/// account it made itself), the service's project, and the app when the invitation named one.
pub const REFERENCE_FIELD: &str = "smsreg_ref";
pub const PROJECT_FIELD: &str = "smsreg_project";
pub const APP_FIELD: &str = "smsreg_app_id";

/// The longest message of HQ's that an error carries.
const MAX_MESSAGE_CHARS: usize = 200;
/// HQ's 400 for a username that exists (or existed, or is reserved).
const TAKEN: &str = "already taken or reserved";
/// Pages of `domain_usernames` read at most when looking for one user (1000 users a page).
const MAX_PAGES: usize = 50;

/// A project's API key and the web user it belongs to, from its secret
/// (`web-user-email:api-key`). Its Debug prints nothing of it.
#[derive(Clone)]
struct HqKey {
    email: String,
    key: String,
}

impl HqKey {
    /// From a secret's text: `email:key`, split at the first `:`.
    fn parse(text: &str) -> Option<HqKey> {
        let (email, key) = text.trim().split_once(':')?;
        (!email.is_empty() && !key.is_empty()).then(|| HqKey {
            email: email.to_owned(),
            key: key.to_owned(),
        })
    }

    fn authorization(&self) -> String {
        format!("ApiKey {}:{}", self.email, self.key)
    }
}

impl fmt::Debug for HqKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HqKey(..)")
    }
}

/// The HQ client: every project's key read once per [`KEY_CACHE`], shared by its clones.
#[derive(Clone)]
pub struct CommCareHq {
    secrets: Secrets,
    keys: Arc<Mutex<HashMap<String, (Instant, HqKey)>>>,
    timeout: Duration,
}

/// The cache holds keys: only how many it holds is shown.
impl fmt::Debug for CommCareHq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.keys.lock().map(|k| k.len()).unwrap_or_default();
        f.debug_struct("CommCareHq")
            .field("secrets", &self.secrets)
            .field("keys_cached", &cached)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The local part of an HQ username (`jane` of `jane@project.commcarehq.org`): what the
/// service sends, as HQ completes it itself.
fn local_part(username: &str) -> &str {
    username
        .split_once('@')
        .map_or(username, |(local, _)| local)
}

fn truncated(text: &str) -> String {
    text.chars().take(MAX_MESSAGE_CHARS).collect()
}

/// HQ's message in an error answer: its `error` field (tastypie's BadRequest), else the
/// body's text.
fn message_of(answer: &Answer) -> String {
    let text = String::from_utf8_lossy(&answer.body);
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.trim().to_owned())
}

/// The wait a 429 asks for, when it gives one in seconds.
fn retry_after(answer: &Answer) -> Option<Duration> {
    answer
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// What an answer other than success means, for any call of the User API.
fn classify(answer: &Answer) -> AccountError {
    match answer.status {
        400 => AccountError::Invalid(truncated(&message_of(answer))),
        401 if message_of(answer).contains("subscription") => {
            AccountError::Denied("the project's plan has no API access".into())
        }
        401 => AccountError::Denied("the API key is not accepted".into()),
        403 => AccountError::Denied(
            "the key's web user lacks Edit Mobile Workers or Edit Access APIs".into(),
        ),
        404 => AccountError::Denied("no such HQ project".into()),
        429 => AccountError::Throttled(retry_after(answer)),
        status => AccountError::Unavailable(format!("HQ answered {status}")),
    }
}

/// The body of a new user: HQ completes the username, takes the phone number without its
/// `+`, and keeps `user_data` as given.
fn new_user(account: &NewAccount) -> Value {
    let mut user_data: Map<String, Value> = account.custom_user_data.clone().unwrap_or_default();
    user_data.insert(REFERENCE_FIELD.into(), account.reference.clone().into());
    user_data.insert(PROJECT_FIELD.into(), account.project.clone().into());
    if let Some(app) = &account.app_id {
        user_data.insert(APP_FIELD.into(), app.clone().into());
    }
    let mut user = json!({
        "username": local_part(&account.username),
        "password": account.password.expose(),
        "phone_numbers": [account.phone.as_str().trim_start_matches('+')],
        "user_data": user_data,
    });
    if let Some(email) = &account.email {
        user["email"] = email.clone().into();
    }
    if let Some(language) = account.language {
        user["language"] = language.code().into();
    }
    user
}

/// The users of a page of `domain_usernames`, and the next page's address: HQ answers
/// tastypie's list (`objects`, `meta.next`); a bare array is taken too.
fn usernames_page(body: &Value) -> (Vec<(String, String)>, Option<String>) {
    let list = body
        .as_array()
        .or_else(|| body["objects"].as_array())
        .cloned()
        .unwrap_or_default();
    let users = list
        .iter()
        .filter_map(|u| {
            let id = match &u["user_id"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((id, u["user_name"].as_str()?.to_owned()))
        })
        .collect();
    let next = body["meta"]["next"].as_str().map(str::to_owned);
    (users, next)
}

impl CommCareHq {
    pub fn new(secrets: aws_sdk_secretsmanager::Client) -> Self {
        CommCareHq {
            secrets: Secrets::new(secrets),
            keys: Arc::default(),
            timeout: TIMEOUT,
        }
    }

    /// The same client with another time limit per call (tests of a server that hangs).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The project's key, from the cache or its secret. The ARN may be shown, never the value.
    async fn key(&self, hq: &HqProject) -> Result<HqKey, AccountError> {
        let arn = &hq.key_secret_arn;
        if let Some((at, key)) = self
            .keys
            .lock()
            .ok()
            .and_then(|keys| keys.get(arn).cloned())
            && at.elapsed() < KEY_CACHE
        {
            return Ok(key);
        }
        let text = self.secrets.read(arn).await.map_err(|code| {
            AccountError::Denied(format!("the secret {arn} cannot be read ({code})"))
        })?;
        let key = HqKey::parse(text.expose())
            .ok_or_else(|| AccountError::Denied("the secret is not email:key".into()))?;
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(arn.clone(), (Instant::now(), key.clone()));
        }
        Ok(key)
    }

    /// One call to the project's User API at `path` (after `/a/{domain}/api/v0.5/`, or a
    /// path from the server's root when it starts with `/`). No answer is `Unavailable`.
    async fn call(
        &self,
        hq: &HqProject,
        key: &HqKey,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, AccountError> {
        let base = hq.base_url.trim_end_matches('/');
        let url = if path.starts_with('/') {
            format!("{base}{path}")
        } else {
            format!("{base}/a/{}/api/v0.5/{path}", hq.domain)
        };
        let authorization = key.authorization();
        let mut headers = vec![
            ("authorization", authorization.as_str()),
            ("accept", "application/json"),
        ];
        let body = match body {
            Some(body) => {
                headers.push(("content-type", "application/json"));
                body.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        send(method, &url, &headers, body, self.timeout)
            .await
            .map_err(AccountError::Unavailable)
    }

    /// Makes the worker's user in the project, or finds the one an earlier try of the same
    /// attempt made (`Ok`: it exists and signs in with `account.password`).
    pub async fn create(&self, hq: &HqProject, account: &NewAccount) -> Result<(), AccountError> {
        let key = self.key(hq).await?;
        let answer = self
            .call(hq, &key, "POST", "user/", Some(&new_user(account)))
            .await?;
        match answer.status {
            200 | 201 => Ok(()),
            400 if message_of(&answer).contains(TAKEN) => self.recognise(hq, &key, account).await,
            _ => Err(classify(&answer)),
        }
    }

    /// `Ok` when the user named `account.username` is this attempt's own, its password then
    /// set again (the lost try may have been made with it, but HQ drops a field's error
    /// silently); `Taken` when it is anyone else's, or reserved.
    async fn recognise(
        &self,
        hq: &HqProject,
        key: &HqKey,
        account: &NewAccount,
    ) -> Result<(), AccountError> {
        let Some(id) = self.find_user(hq, key, &account.username).await? else {
            return Err(AccountError::Taken);
        };
        let answer = self
            .call(hq, key, "GET", &format!("user/{id}/"), None)
            .await?;
        match answer.status {
            200 => {}
            404 => return Err(AccountError::Unavailable("the user vanished".into())),
            _ => return Err(classify(&answer)),
        }
        let user: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if user["user_data"][REFERENCE_FIELD].as_str() != Some(account.reference.as_str()) {
            return Err(AccountError::Taken);
        }
        let password = json!({ "password": account.password.expose() });
        let answer = self
            .call(hq, key, "PUT", &format!("user/{id}/"), Some(&password))
            .await?;
        match answer.status {
            200..=204 => Ok(()),
            404 => Err(AccountError::Unavailable("the user vanished".into())),
            _ => Err(classify(&answer)),
        }
    }

    /// The id of the project's user `username` (full or its local part, as HQ lists it).
    async fn find_user(
        &self,
        hq: &HqProject,
        key: &HqKey,
        username: &str,
    ) -> Result<Option<String>, AccountError> {
        let local = local_part(username);
        let mut path = "domain_usernames/?limit=1000".to_owned();
        for _ in 0..MAX_PAGES {
            let answer = self.call(hq, key, "GET", &path, None).await?;
            if answer.status != 200 {
                return Err(classify(&answer));
            }
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            let (users, next) = usernames_page(&body);
            if let Some((id, _)) = users.into_iter().find(|(_, name)| {
                name.eq_ignore_ascii_case(username) || name.eq_ignore_ascii_case(local)
            }) {
                return Ok(Some(id));
            }
            // tastypie's next page: a path from the server's root, or the whole URL.
            let base = hq.base_url.trim_end_matches('/');
            match next.map(|n| n.strip_prefix(base).map_or(n.clone(), str::to_owned)) {
                Some(next) if next.starts_with('/') => path = next,
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Whether the project can take the service's accounts: `Ok`, or one line naming what
    /// is missing (the secret, the key, a permission, the plan's API access, the project).
    pub async fn check(&self, hq: &HqProject) -> Result<(), String> {
        let described = |error: AccountError| match error {
            AccountError::Denied(why) | AccountError::Invalid(why) => {
                format!("HQ project {} at {}: {why}", hq.domain, hq.base_url)
            }
            AccountError::Throttled(_) => format!(
                "HQ project {} at {}: HQ is throttling the project's calls",
                hq.domain, hq.base_url
            ),
            AccountError::Unavailable(why) => {
                format!("HQ at {} cannot be reached ({why})", hq.base_url)
            }
            AccountError::Taken => format!("HQ at {} answered unexpectedly", hq.base_url),
        };
        let key = self.key(hq).await.map_err(described)?;
        let answer = self
            .call(hq, &key, "GET", "user/?limit=1", None)
            .await
            .map_err(described)?;
        match answer.status {
            200 => Ok(()),
            _ => Err(described(classify(&answer))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PhoneNumber;
    use crate::domain::account::Password;

    fn account() -> NewAccount {
        NewAccount {
            project: "demo".into(),
            username: "jane.doe@demo-hq.commcarehq.org".into(),
            password: Password::new("correct horse".into()),
            phone: PhoneNumber::parse("+16175551234").unwrap(),
            email: Some("jane@example.org".into()),
            app_id: Some("abcd1234".into()),
            custom_user_data: Some(
                json!({"district": "north", "smsreg_ref": "theirs"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            language: Some(crate::domain::language::Language::Sw),
            reference: "attempt-1".into(),
        }
    }

    #[test]
    fn a_new_user_carries_the_local_part_and_the_service_fields() {
        let user = new_user(&account());
        assert_eq!(user["username"], "jane.doe");
        assert_eq!(user["password"], "correct horse");
        assert_eq!(user["phone_numbers"], json!(["16175551234"]));
        assert_eq!(user["email"], "jane@example.org");
        assert_eq!(user["language"], "sw");
        assert_eq!(
            user["user_data"],
            json!({"district": "north", "smsreg_ref": "attempt-1",
                   "smsreg_project": "demo", "smsreg_app_id": "abcd1234"})
        );
        let mut bare = account();
        (bare.email, bare.app_id, bare.custom_user_data) = (None, None, None);
        bare.language = None;
        let user = new_user(&bare);
        assert!(user.get("email").is_none());
        assert!(user.get("language").is_none());
        assert!(user["user_data"].get(APP_FIELD).is_none());
    }

    #[test]
    fn the_key_splits_at_the_first_colon_and_never_prints() {
        let key = HqKey::parse("ops@example.org:abc:def\n").unwrap();
        assert_eq!(key.email, "ops@example.org");
        assert_eq!(key.key, "abc:def");
        assert_eq!(key.authorization(), "ApiKey ops@example.org:abc:def");
        assert!(!format!("{key:?}").contains("abc"));
        for bad in ["", "no-colon", ":key", "email:"] {
            assert!(HqKey::parse(bad).is_none(), "{bad}");
        }
    }

    fn answer(status: u16, body: &str, headers: &[(&str, &str)]) -> Answer {
        Answer {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn each_answer_maps_to_its_reason() {
        let plan = r#"{"error": "Your current subscription does not have access to this feature"}"#;
        assert_eq!(
            classify(&answer(401, plan, &[])),
            AccountError::Denied("the project's plan has no API access".into())
        );
        assert_eq!(
            classify(&answer(401, "", &[])),
            AccountError::Denied("the API key is not accepted".into())
        );
        assert!(
            matches!(classify(&answer(403, "", &[])), AccountError::Denied(m) if m.contains("Edit Mobile Workers"))
        );
        assert_eq!(
            classify(&answer(404, "", &[])),
            AccountError::Denied("no such HQ project".into())
        );
        assert_eq!(
            classify(&answer(429, "", &[("retry-after", "7")])),
            AccountError::Throttled(Some(Duration::from_secs(7)))
        );
        assert_eq!(
            classify(&answer(429, "", &[])),
            AccountError::Throttled(None)
        );
        assert!(matches!(
            classify(&answer(502, "", &[])),
            AccountError::Unavailable(_)
        ));
        let long = format!(r#"{{"error": "{}"}}"#, "x".repeat(500));
        assert_eq!(
            classify(&answer(400, &long, &[])),
            AccountError::Invalid("x".repeat(200))
        );
    }

    #[test]
    fn both_list_formats_of_domain_usernames_are_read() {
        let tastypie = json!({"meta": {"next": "/a/p/api/v0.5/domain_usernames/?offset=2"},
            "objects": [{"user_id": "a1", "user_name": "jane"}, {"user_id": "b2", "user_name": "joe"}]});
        let (users, next) = usernames_page(&tastypie);
        assert_eq!(users.len(), 2);
        assert_eq!(
            next.as_deref(),
            Some("/a/p/api/v0.5/domain_usernames/?offset=2")
        );
        let bare = json!([{"user_id": "a1", "user_name": "jane@p.commcarehq.org"}]);
        let (users, next) = usernames_page(&bare);
        assert_eq!(users, vec![("a1".into(), "jane@p.commcarehq.org".into())]);
        assert_eq!(next, None);
    }
}
