//! The single-table layout: keys of each kind of item, and conversions to and from items.

use crate::domain::account::{AccountState, AccountStatus, Accounts, HqProject};
use crate::domain::language::Language;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::invitation::{Delivery, PhoneType, RegistrationStatus};
use crate::domain::worker::Worker;
use crate::domain::{ApiKey, App, PhoneNumber, RegistrationRecord, Token};
use crate::ports::StoreError;

pub type Item = HashMap<String, AttributeValue>;

/// Partition and sort key attributes of the table.
pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// The index listing a project's invitations, newest first.
pub const INVITES_INDEX: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
/// The index finding an invitation by its registration token.
pub const TOKEN_INDEX: &str = "gsi2";
/// A project's invitations in one status, latest expiry first: a listing by status reads
/// only what it returns (`gsi3pk` = `<domain>#<status>`, `gsi3sk` = `<expires_at>#<phone>`).
pub const STATUS_INDEX: &str = "gsi3";
pub const GSI3_PK: &str = "gsi3pk";
pub const GSI3_SK: &str = "gsi3sk";

/// The status index's partition of a project's invitations in `status`.
pub fn status_pk(domain: &str, status: RegistrationStatus) -> String {
    format!("{domain}#{}", status.as_str())
}

/// The status index's sort key: by expiry, then number.
pub fn status_sk(expires_at: u64, phone: &str) -> String {
    format!("{expires_at:012}#{phone}")
}
pub const TOKEN: &str = "token";
/// DynamoDB TTL attribute: set on pending invitations only.
pub const TTL: &str = "ttl";

pub const PROJECT_SK: &str = "PROJECT";
pub const REGISTRATION_SK: &str = "REGISTRATION";

pub fn project_pk(domain: &str) -> String {
    format!("DOMAIN#{domain}")
}

pub fn app_sk(app_id: &str) -> String {
    format!("APP#{app_id}")
}

pub fn user_pk(username: &str) -> String {
    format!("USER#{username}")
}

pub fn key_sk(domain: &str) -> String {
    format!("KEY#{domain}")
}

pub fn phone_pk(phone: &str) -> String {
    format!("PHONE#{phone}")
}

pub const BATCH_SK: &str = "BATCH";

pub fn batch_pk(batch_id: &str) -> String {
    format!("BATCH#{batch_id}")
}

pub fn invites_pk(domain: &str) -> String {
    format!("INVITES#{domain}")
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn malformed(what: &str) -> StoreError {
    StoreError::Malformed(what.to_owned())
}

pub fn opt_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub fn get_s(item: &Item, name: &str) -> Result<String, StoreError> {
    opt_s(item, name).ok_or_else(|| malformed(name))
}

/// Dollars as a DynamoDB number (exact decimal text, so that `ADD` sums exactly enough).
pub fn usd(v: f64) -> AttributeValue {
    AttributeValue::N(format!("{v:.6}"))
}

/// Dollars, 0 when absent or unreadable.
pub fn opt_usd(item: &Item, name: &str) -> f64 {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

pub fn opt_n(item: &Item, name: &str) -> Result<Option<u64>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|_| malformed(name)),
        Some(_) => Err(malformed(name)),
    }
}

pub fn get_n(item: &Item, name: &str) -> Result<u64, StoreError> {
    opt_n(item, name)?.ok_or_else(|| malformed(name))
}

pub fn get_bool(item: &Item, name: &str) -> bool {
    matches!(item.get(name), Some(AttributeValue::Bool(true)))
}

/// A boolean attribute, if present.
pub fn opt_bool(item: &Item, name: &str) -> Option<bool> {
    match item.get(name) {
        Some(AttributeValue::Bool(b)) => Some(*b),
        _ => None,
    }
}

pub fn worker_pk(domain: &str) -> String {
    format!("WORKER#{domain}")
}

pub fn worker_sk(username: &str) -> String {
    format!("USER#{username}")
}

pub fn worker_item(w: &Worker) -> Item {
    let mut item = Item::from([
        (PK.into(), s(worker_pk(&w.domain))),
        (SK.into(), s(worker_sk(&w.username))),
        ("kind".into(), s("worker")),
        ("domain".into(), s(&w.domain)),
        ("username".into(), s(&w.username)),
        ("phone_number".into(), s(w.phone.as_str())),
        ("registered_at".into(), n(w.registered_at)),
    ]);
    if let Some(hash) = &w.password_hash {
        item.insert("password_hash".into(), s(hash));
    }
    if let Some(email) = &w.email {
        item.insert("email".into(), s(email));
    }
    if let Some(data) = &w.custom_user_data {
        let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
        item.insert("custom_user_data".into(), s(json));
    }
    if let Some(app_id) = &w.app_id {
        item.insert("app_id".into(), s(app_id));
    }
    item
}

pub fn worker_from_item(item: &Item) -> Result<Worker, StoreError> {
    let phone = get_s(item, "phone_number")?;
    Ok(Worker {
        domain: get_s(item, "domain")?,
        username: get_s(item, "username")?,
        password_hash: opt_s(item, "password_hash"),
        phone: PhoneNumber::parse(&phone).map_err(|_| malformed("phone_number"))?,
        email: opt_s(item, "email"),
        custom_user_data: match opt_s(item, "custom_user_data") {
            None => None,
            Some(json) => {
                Some(serde_json::from_str(&json).map_err(|_| malformed("custom_user_data"))?)
            }
        },
        app_id: opt_s(item, "app_id"),
        registered_at: get_n(item, "registered_at")?,
    })
}

pub fn usage_pk(domain: &str) -> String {
    format!("USAGE#{domain}")
}

pub fn day_sk(day: &str) -> String {
    format!("DAY#{day}")
}

/// The answers given to a number's replies on `day`, under its `PHONE#<number>` partition.
pub fn answers_sk(day: &str) -> String {
    format!("ANSWERS#{day}")
}

pub fn idempotency_pk(domain: &str) -> String {
    format!("IDEMPOTENCY#{domain}")
}

pub fn idempotency_sk(key: &str) -> String {
    format!("KEY#{key}")
}

pub fn app_item(domain: &str, app: &App) -> Item {
    let mut item = Item::from([
        (PK.into(), s(project_pk(domain))),
        (SK.into(), s(app_sk(&app.id))),
        ("kind".into(), s("app")),
        ("app_id".into(), s(&app.id)),
        ("name".into(), s(&app.name)),
    ]);
    if let Some(url) = &app.install_url {
        item.insert("install_url".into(), s(url));
    }
    item
}

pub fn app_from_item(item: &Item) -> Result<App, StoreError> {
    Ok(App {
        id: get_s(item, "app_id")?,
        name: get_s(item, "name")?,
        install_url: opt_s(item, "install_url"),
    })
}

fn from_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

pub fn key_item(key: &ApiKey, created_at: u64) -> Item {
    Item::from([
        (PK.into(), s(user_pk(&key.username))),
        (SK.into(), s(key_sk(&key.domain))),
        ("kind".into(), s("api_key")),
        ("username".into(), s(&key.username)),
        ("domain".into(), s(&key.domain)),
        ("key_sha256".into(), s(hex::encode(key.key_hash))),
        ("edit_data".into(), AttributeValue::Bool(key.can_edit_data)),
        ("created_at".into(), n(created_at)),
    ])
}

pub fn key_from_item(item: &Item) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        username: get_s(item, "username")?,
        domain: get_s(item, "domain")?,
        key_hash: from_hex(&get_s(item, "key_sha256")?).ok_or_else(|| malformed("key_sha256"))?,
        can_edit_data: get_bool(item, "edit_data"),
    })
}

pub fn registration_item(r: &RegistrationRecord) -> Item {
    let phone = r.phone.as_str();
    let mut item = Item::from([
        (PK.into(), s(phone_pk(phone))),
        (SK.into(), s(REGISTRATION_SK)),
        ("kind".into(), s("registration")),
        ("domain".into(), s(&r.domain)),
        ("phone_number".into(), s(phone)),
        ("token".into(), s(r.token.as_str())),
        ("android_only".into(), AttributeValue::Bool(r.android_only)),
        (
            "require_email".into(),
            AttributeValue::Bool(r.require_email),
        ),
        ("status".into(), s(r.status.as_str())),
        ("created_at".into(), n(r.created_at)),
        ("expires_at".into(), n(r.expires_at)),
        (GSI1_PK.into(), s(invites_pk(&r.domain))),
        (GSI1_SK.into(), s(format!("{:012}#{phone}", r.created_at))),
        (GSI3_PK.into(), s(status_pk(&r.domain, r.status))),
        (GSI3_SK.into(), s(status_sk(r.expires_at, phone))),
    ]);
    if let Some(app_id) = &r.app_id {
        item.insert("app_id".into(), s(app_id));
    }
    if let Some(data) = &r.custom_user_data {
        let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
        item.insert("custom_user_data".into(), s(json));
    }
    if let Some(t) = r.phone_type {
        item.insert("phone_type".into(), s(t.as_str()));
    }
    if let Some(t) = r.sent_at {
        item.insert("sent_at".into(), n(t));
    }
    if let Some(t) = r.registered_at {
        item.insert("registered_at".into(), n(t));
    }
    if let Some(t) = r.enqueued_at {
        item.insert("enqueued_at".into(), n(t));
    }
    if let Some(reason) = &r.failure_reason {
        item.insert("failure_reason".into(), s(reason));
    }
    if let Some(d) = &r.delivery {
        let state = if d.delivered { "delivered" } else { "failed" };
        item.insert("delivery".into(), s(state));
        item.insert("delivery_detail".into(), s(&d.detail));
        item.insert("delivery_price_usd".into(), usd(d.price_usd));
        item.insert("delivery_at".into(), n(d.at));
    }
    if let Some(language) = r.language {
        item.insert("language".into(), s(language.code()));
    }
    if let Some(t) = r.scheduled_for {
        item.insert("scheduled_for".into(), n(t));
    }
    if r.parts_sent > 0 {
        item.insert("parts_sent".into(), n(r.parts_sent));
    }
    if r.parts_delivered > 0 {
        item.insert("parts_delivered".into(), n(r.parts_delivered));
    }
    if let Some(t) = r.opened_at {
        item.insert("opened_at".into(), n(t));
    }
    if let Some(batch) = &r.batch_id {
        item.insert("batch_id".into(), s(batch));
    }
    // TTL may clean up invitations once expired; never registered workers.
    if r.status != RegistrationStatus::Registered {
        item.insert(TTL.into(), n(r.expires_at));
    }
    item
}

/// An item as JSON in DynamoDB's own typed notation (`{"S": "..."}`), to carry it in a
/// send job and put it back exactly.
pub fn item_to_json(item: &Item) -> serde_json::Value {
    serde_json::Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: &AttributeValue) -> serde_json::Value {
    use serde_json::json;
    match v {
        AttributeValue::S(x) => json!({ "S": x }),
        AttributeValue::N(x) => json!({ "N": x }),
        AttributeValue::Bool(x) => json!({ "BOOL": x }),
        AttributeValue::Ss(x) => json!({ "SS": x }),
        AttributeValue::Ns(x) => json!({ "NS": x }),
        AttributeValue::L(x) => json!({ "L": x.iter().map(value_to_json).collect::<Vec<_>>() }),
        AttributeValue::M(x) => json!({ "M": item_to_json(x) }),
        _ => json!({ "NULL": true }),
    }
}

/// The reverse of [`item_to_json`]; `None` for anything it would not have written.
pub fn item_from_json(value: &serde_json::Value) -> Option<Item> {
    value
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), value_from_json(v)?)))
        .collect()
}

fn value_from_json(v: &serde_json::Value) -> Option<AttributeValue> {
    let (tag, inner) = v.as_object()?.iter().next()?;
    let strings = |x: &serde_json::Value| -> Option<Vec<String>> {
        x.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    Some(match tag.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_owned()),
        "N" => AttributeValue::N(inner.as_str()?.to_owned()),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(strings(inner)?),
        "L" => AttributeValue::L(
            inner
                .as_array()?
                .iter()
                .map(value_from_json)
                .collect::<Option<_>>()?,
        ),
        "M" => AttributeValue::M(item_from_json(inner)?),
        "NULL" => AttributeValue::Null(true),
        _ => return None,
    })
}

pub fn registration_from_item(item: &Item) -> Result<RegistrationRecord, StoreError> {
    let phone = get_s(item, "phone_number")?;
    Ok(RegistrationRecord {
        domain: get_s(item, "domain")?,
        phone: PhoneNumber::parse(&phone).map_err(|_| malformed("phone_number"))?,
        token: Token::from_stored(get_s(item, "token")?),
        app_id: opt_s(item, "app_id"),
        android_only: get_bool(item, "android_only"),
        require_email: get_bool(item, "require_email"),
        custom_user_data: match opt_s(item, "custom_user_data") {
            None => None,
            Some(json) => {
                Some(serde_json::from_str(&json).map_err(|_| malformed("custom_user_data"))?)
            }
        },
        phone_type: opt_s(item, "phone_type").and_then(|t| PhoneType::parse(&t)),
        status: RegistrationStatus::parse(&get_s(item, "status")?)
            .ok_or_else(|| malformed("status"))?,
        created_at: get_n(item, "created_at")?,
        expires_at: get_n(item, "expires_at")?,
        sent_at: opt_n(item, "sent_at")?,
        registered_at: opt_n(item, "registered_at")?,
        enqueued_at: opt_n(item, "enqueued_at")?,
        failure_reason: opt_s(item, "failure_reason"),
        batch_id: opt_s(item, "batch_id"),
        delivery: match opt_s(item, "delivery") {
            None => None,
            Some(state) => Some(Delivery {
                delivered: state == "delivered",
                detail: opt_s(item, "delivery_detail").unwrap_or_default(),
                price_usd: opt_usd(item, "delivery_price_usd"),
                at: opt_n(item, "delivery_at")?.unwrap_or(0),
            }),
        },
        opened_at: opt_n(item, "opened_at")?,
        parts_sent: opt_n(item, "parts_sent")?.unwrap_or(0),
        scheduled_for: opt_n(item, "scheduled_for")?,
        parts_delivered: opt_n(item, "parts_delivered")?.unwrap_or(0),
        account: account_from_item(item)?,
        username: opt_s(item, "username"),
        language: match opt_s(item, "language") {
            None => None,
            Some(code) => Some(Language::parse(&code).ok_or_else(|| malformed("language"))?),
        },
    })
}

/// An invitation's account (`account_*` attributes), when it has one.
pub fn account_from_item(item: &Item) -> Result<Option<AccountState>, StoreError> {
    let Some(status) = opt_s(item, "account_status") else {
        return Ok(None);
    };
    Ok(Some(AccountState {
        status: AccountStatus::parse(&status).ok_or_else(|| malformed("account_status"))?,
        directory: get_s(item, "account_directory")?,
        username: get_s(item, "account_username")?,
        attempt: get_s(item, "account_attempt")?,
        reason: opt_s(item, "account_reason"),
        since: get_n(item, "account_since")?,
        notified: opt_bool(item, "account_notified").unwrap_or(false),
        email: opt_s(item, "account_email"),
    }))
}

/// Where a project's accounts are made (`accounts`, `hq_*` attributes); a project stored
/// before accounts existed keeps them in the table.
pub fn accounts_from_item(item: &Item) -> Result<Accounts, StoreError> {
    Ok(match opt_s(item, "accounts").as_deref() {
        None | Some("service") => Accounts::Service,
        Some("cognito") => Accounts::Cognito,
        Some("commcare-hq") => Accounts::CommCareHq(HqProject {
            base_url: get_s(item, "hq_base_url")?,
            domain: get_s(item, "hq_domain")?,
            key_secret_arn: get_s(item, "hq_key_secret_arn")?,
        }),
        Some(_) => return Err(malformed("accounts")),
    })
}

/// A project's languages (`languages`: codes, the default first); English alone for a
/// project stored before languages existed.
pub fn languages_from_item(item: &Item) -> Result<Vec<Language>, StoreError> {
    let Some(list) = opt_s(item, "languages") else {
        return Ok(vec![Language::En]);
    };
    let languages = list
        .split(',')
        .map(|code| Language::parse(code).ok_or_else(|| malformed("languages")))
        .collect::<Result<Vec<_>, _>>()?;
    if languages.is_empty() {
        return Err(malformed("languages"));
    }
    Ok(languages)
}

/// A project's own texts (`texts`: JSON, by language code and text id).
pub fn texts_from_item(item: &Item) -> Result<crate::domain::project::ProjectTexts, StoreError> {
    match opt_s(item, "texts") {
        None => Ok(Default::default()),
        Some(json) => serde_json::from_str(&json).map_err(|_| malformed("texts")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_registration_survives_the_round_trip_through_an_item() {
        let record = RegistrationRecord {
            username: None,
            language: Some(Language::Sw),
            account: None,
            domain: "demo".into(),
            phone: PhoneNumber::parse("+16175551234").unwrap(),
            token: Token::generate(),
            app_id: Some("app1".into()),
            android_only: true,
            require_email: true,
            custom_user_data: json!({"a": 1, "b": [true, null, 1.5]}).as_object().cloned(),
            phone_type: Some(PhoneType::Android),
            status: RegistrationStatus::Pending,
            created_at: 100,
            expires_at: 200,
            sent_at: Some(101),
            registered_at: None,
            enqueued_at: Some(100),
            failure_reason: None,
            delivery: None,
            opened_at: Some(102),
            parts_sent: 3,
            parts_delivered: 2,
            scheduled_for: Some(100),
            batch_id: Some("b1".into()),
        };
        let item = registration_item(&record);
        assert_eq!(item[TTL], n(200));
        assert_eq!(item[GSI1_SK], s("000000000100#+16175551234"));
        assert_eq!(registration_from_item(&item).unwrap(), record);
        // Carried in a send job and back, exactly.
        assert_eq!(item_from_json(&item_to_json(&item)).unwrap(), item);
    }

    #[test]
    fn every_kind_of_attribute_survives_the_json_of_a_send_job() {
        let item = Item::from([
            ("s".into(), s("x")),
            ("n".into(), n(5)),
            ("b".into(), AttributeValue::Bool(false)),
            ("ss".into(), AttributeValue::Ss(vec!["a".into()])),
            ("l".into(), AttributeValue::L(vec![n(1), s("y")])),
            (
                "m".into(),
                AttributeValue::M(Item::from([("k".into(), s("v"))])),
            ),
            ("null".into(), AttributeValue::Null(true)),
        ]);
        assert_eq!(item_from_json(&item_to_json(&item)).unwrap(), item);
        assert!(item_from_json(&serde_json::json!({"a": {"X": 1}})).is_none());
    }

    #[test]
    fn a_registered_worker_has_no_ttl() {
        let mut record = registration_from_item(&registration_item(&RegistrationRecord::new(
            "demo",
            PhoneNumber::parse("+16175551234").unwrap(),
            RegistrationStatus::Pending,
            1,
            2,
        )))
        .unwrap();
        record.status = RegistrationStatus::Registered;
        assert!(!registration_item(&record).contains_key(TTL));
    }

    #[test]
    fn a_key_keeps_only_its_hash() {
        let key = ApiKey {
            username: "u".into(),
            domain: "d".into(),
            key_hash: crate::domain::project::hash_key("secret"),
            can_edit_data: true,
        };
        let item = key_item(&key, 5);
        assert!(!format!("{item:?}").contains("secret"));
        assert_eq!(key_from_item(&item).unwrap(), key);
    }
}
