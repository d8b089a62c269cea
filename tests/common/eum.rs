//! A stand-in for AWS End User Messaging SMS (`pinpoint-sms-voice-v2`), which moto does not
//! implement, answered by the fault proxy: the JSON 1.0 protocol of the operations the
//! service uses (`SendTextMessage`, `DescribeOptedOutNumbers`, `PutOptedOutNumber`,
//! `DeleteOptedOutNumber`), each field checked as AWS documents it, and AWS's refusals:
//! throttling (the proxy's rate), opted-out numbers, a blocked country, a price over
//! `MaxPrice` and the monthly spend limit.
//!
//! As moto's SNS does, it has numbers ending in `99` opted out.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::fault_proxy::Fault;
use super::http1::Request;

/// What it charges a part, in USD, unless a prefix says otherwise (a US long code's rate).
const PRICE_PER_PART: f64 = 0.00581;

/// One `SendTextMessage` accepted (not a dry run).
#[derive(Debug, Clone)]
pub struct TextMessage {
    pub message_id: String,
    pub phone: String,
    pub message: String,
    pub origination_identity: Option<String>,
    pub configuration_set: Option<String>,
    pub message_type: Option<String>,
    pub max_price: Option<String>,
    pub time_to_live: Option<u64>,
    pub context: BTreeMap<String, String>,
    pub protect_configuration_id: Option<String>,
    pub parts: usize,
    pub price: f64,
}

#[derive(Debug, Default)]
pub struct Account {
    pub sent: Vec<TextMessage>,
    /// Opt-out lists by name: numbers added and numbers taken off.
    opted_out: BTreeMap<String, HashSet<String>>,
    opted_in: HashSet<String>,
    /// Destinations refused by the protect configuration, by prefix.
    blocked_prefixes: Vec<String>,
    /// Prices per part by destination prefix (premium-rate numbers).
    prices: Vec<(String, f64)>,
    spend_limit_reached: bool,
    /// Numbers `DeleteOptedOutNumber` refuses to take off (AWS: once in 30 days).
    kept_on_list: HashSet<String>,
    pub dry_runs: usize,
    /// Calls by operation.
    pub calls: BTreeMap<String, usize>,
}

impl Account {
    fn is_opted_out(&self, list: &str, phone: &str) -> bool {
        self.opted_out.get(list).is_some_and(|l| l.contains(phone))
            || (phone.ends_with("99") && !self.opted_in.contains(phone))
    }

    fn price(&self, phone: &str) -> f64 {
        self.prices
            .iter()
            .find(|(prefix, _)| phone.starts_with(prefix.as_str()))
            .map_or(PRICE_PER_PART, |(_, p)| *p)
    }
}

/// The stand-in's account, from the tests' side.
pub struct Eum<'a>(pub(crate) &'a Arc<Mutex<super::fault_proxy::State>>);

impl Eum<'_> {
    fn with<T>(&self, f: impl FnOnce(&mut Account) -> T) -> T {
        f(&mut self.0.lock().unwrap().eum)
    }

    /// Every SMS it accepted, oldest first.
    pub fn sent(&self) -> Vec<TextMessage> {
        self.with(|a| a.sent.clone())
    }

    /// Destinations starting with `prefix` are blocked by the protect configuration.
    pub fn block_prefix(&self, prefix: &str) {
        self.with(|a| a.blocked_prefixes.push(prefix.to_owned()));
    }

    /// Destinations starting with `prefix` cost `price` USD a part.
    pub fn price_prefix(&self, prefix: &str, price: f64) {
        self.with(|a| a.prices.push((prefix.to_owned(), price)));
    }

    /// The account's monthly spend limit is reached (`true`) or raised again.
    pub fn spend_limit_reached(&self, reached: bool) {
        self.with(|a| a.spend_limit_reached = reached);
    }

    /// `DeleteOptedOutNumber` refuses to take `phone` off a list, as AWS does within 30
    /// days of the last time.
    pub fn keep_on_list(&self, phone: &str) {
        self.with(|a| a.kept_on_list.insert(phone.to_owned()));
    }

    /// Numbers on the opt-out list `list`.
    pub fn opted_out(&self, list: &str) -> Vec<String> {
        self.with(|a| {
            let mut numbers: Vec<String> = a
                .opted_out
                .get(list)
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_default();
            numbers.sort();
            numbers
        })
    }

    /// Puts `phone` on the opt-out list `list`, as a worker's STOP to AWS would.
    pub fn opt_out(&self, list: &str, phone: &str) {
        self.with(|a| {
            a.opted_out
                .entry(list.to_owned())
                .or_default()
                .insert(phone.to_owned())
        });
    }

    /// Calls of `operation` so far.
    pub fn calls(&self, operation: &str) -> usize {
        self.with(|a| a.calls.get(operation).copied().unwrap_or(0))
    }

    pub fn dry_runs(&self) -> usize {
        self.with(|a| a.dry_runs)
    }
}

/// Whether a request is for End User Messaging.
pub fn is_eum(request: &Request) -> bool {
    request
        .header("x-amz-target")
        .is_some_and(|t| t.starts_with("PinpointSMSVoiceV2."))
}

/// The destination and the body of an SMS a `SendTextMessage` sends (none for a dry run).
pub fn sms_of(body: &str) -> Option<(String, String)> {
    let request: Value = serde_json::from_str(body).ok()?;
    if request["DryRun"].as_bool() == Some(true) {
        return None;
    }
    Some((
        request["DestinationPhoneNumber"].as_str()?.to_owned(),
        request["MessageBody"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

fn response(status: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn error(kind: &str, message: &str, extra: Value) -> Vec<u8> {
    let mut body = json!({ "__type": kind, "Message": message });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let status = match kind {
        "InternalServerException" => "500 Internal Server Error",
        _ => "400 Bad Request",
    };
    response(status, &body)
}

fn validation(reason: &str, message: &str) -> Vec<u8> {
    error(
        "ValidationException",
        message,
        json!({ "Reason": reason, "Fields": [] }),
    )
}

/// An injected fault, as End User Messaging answers it.
pub fn fault_answer(fault: Fault) -> Vec<u8> {
    match fault {
        Fault::Throttle => error("ThrottlingException", "Rate exceeded", json!({})),
        Fault::Invalid => validation("INVALID_PARAMETER", "injected fault"),
        _ => error("InternalServerException", "injected fault", json!({})),
    }
}

fn e164(phone: &str) -> bool {
    phone.len() > 2
        && phone.len() <= 16
        && phone.starts_with('+')
        && phone[1..].bytes().all(|b| b.is_ascii_digit())
}

/// `MaxPrice` as AWS takes it: `[0-9]{0,2}\.[0-9]{1,5}`.
fn max_price(text: &str) -> Option<f64> {
    let (whole, decimals) = text.split_once('.')?;
    (whole.len() <= 2
        && (1..=5).contains(&decimals.len())
        && whole
            .bytes()
            .chain(decimals.bytes())
            .all(|b| b.is_ascii_digit()))
    .then(|| text.parse().ok())
    .flatten()
}

/// The answer to one call.
pub fn answer(
    state: &Arc<Mutex<super::fault_proxy::State>>,
    operation: &str,
    body: &[u8],
) -> Vec<u8> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error("SerializationException", "not JSON", json!({}));
    };
    let mut guard = state.lock().unwrap();
    let account = &mut guard.eum;
    *account.calls.entry(operation.to_owned()).or_default() += 1;
    match operation {
        "SendTextMessage" => send_text_message(account, &request),
        "DescribeOptedOutNumbers" => {
            let list = request["OptOutListName"].as_str().unwrap_or_default();
            let numbers: Vec<&str> = request["OptedOutNumbers"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if list.is_empty() || numbers.len() > 5 {
                return validation("INVALID_PARAMETER", "1 to 5 numbers of one list");
            }
            let found: Vec<Value> = numbers
                .iter()
                .filter(|n| account.is_opted_out(list, n))
                .map(|n| json!({ "OptedOutNumber": n, "OptedOutTimestamp": 1.7e9, "EndUserOptedOut": true }))
                .collect();
            response(
                "200 OK",
                &json!({ "OptOutListArn": format!("arn:aws:sms-voice:us-east-1:123456789012:opt-out-list/{list}"),
                         "OptOutListName": list, "OptedOutNumbers": found }),
            )
        }
        "PutOptedOutNumber" | "DeleteOptedOutNumber" => {
            let list = request["OptOutListName"].as_str().unwrap_or_default();
            let number = request["OptedOutNumber"].as_str().unwrap_or_default();
            if list.is_empty() || !e164(number) {
                return validation("INVALID_PARAMETER", "an opt-out list and an E.164 number");
            }
            if operation == "PutOptedOutNumber" {
                account.opted_in.remove(number);
                account
                    .opted_out
                    .entry(list.to_owned())
                    .or_default()
                    .insert(number.to_owned());
            } else if account.kept_on_list.contains(number) {
                return validation(
                    "PHONE_NUMBER_CANNOT_BE_OPTED_IN",
                    "a number can be opted in once in 30 days",
                );
            } else {
                let on_list = account
                    .opted_out
                    .get_mut(list)
                    .is_some_and(|l| l.remove(number));
                if !on_list && !number.ends_with("99") {
                    return error(
                        "ResourceNotFoundException",
                        "not on the list",
                        json!({ "ResourceType": "opted-out-number", "ResourceId": number }),
                    );
                }
                account.opted_in.insert(number.to_owned());
            }
            response(
                "200 OK",
                &json!({ "OptOutListArn": format!("arn:aws:sms-voice:us-east-1:123456789012:opt-out-list/{list}"),
                         "OptOutListName": list, "OptedOutNumber": number,
                         "OptedOutTimestamp": 1.7e9, "EndUserOptedOut": false }),
            )
        }
        _ => error(
            "UnknownOperationException",
            "not implemented by the stand-in",
            json!({}),
        ),
    }
}

fn send_text_message(account: &mut Account, request: &Value) -> Vec<u8> {
    let text = |name: &str| request[name].as_str().map(str::to_owned);
    let Some(phone) = text("DestinationPhoneNumber").filter(|p| e164(p)) else {
        return validation("INVALID_PARAMETER", "DestinationPhoneNumber is E.164");
    };
    let message = text("MessageBody").unwrap_or_default();
    if message.is_empty() || message.chars().count() > 1600 {
        return validation(
            "MAXIMUM_SIZE_EXCEEDED",
            "MessageBody is 1 to 1600 characters",
        );
    }
    let ttl = request["TimeToLive"].as_u64();
    if ttl.is_some_and(|t| !(5..=259_200).contains(&t)) {
        return validation("INVALID_PARAMETER", "TimeToLive is 5 to 259200 seconds");
    }
    let context: BTreeMap<String, String> = request["Context"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    if context.len() > 5 {
        return validation("MAXIMUM_SIZE_EXCEEDED", "Context has at most 5 keys");
    }
    let cap = match text("MaxPrice") {
        Some(cap) => match max_price(&cap) {
            Some(p) => Some(p),
            None => return validation("INVALID_PARAMETER", "MaxPrice"),
        },
        None => None,
    };
    if let Some(t) = text("MessageType")
        && t != "TRANSACTIONAL"
        && t != "PROMOTIONAL"
    {
        return validation("INVALID_PARAMETER", "MessageType");
    }
    let list = "Default";
    if account.is_opted_out(list, &phone) {
        return error(
            "ConflictException",
            "The destination phone number is opted out",
            json!({ "Reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT",
                    "ResourceType": "opted-out-number", "ResourceId": phone }),
        );
    }
    if account
        .blocked_prefixes
        .iter()
        .any(|p| phone.starts_with(p.as_str()))
    {
        return error(
            "ConflictException",
            "The destination country is blocked",
            json!({ "Reason": "DESTINATION_COUNTRY_BLOCKED_BY_PROTECT_CONFIGURATION",
                    "ResourceType": "protect-configuration", "ResourceId": "protect" }),
        );
    }
    let price = account.price(&phone);
    if cap.is_some_and(|cap| price > cap + 1e-12) {
        return validation(
            "PRICE_OVER_THRESHOLD",
            "The price of the message is over MaxPrice",
        );
    }
    if account.spend_limit_reached {
        return error(
            "ServiceQuotaExceededException",
            "The monthly spend limit is reached",
            json!({ "Reason": "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT" }),
        );
    }
    if request["DryRun"].as_bool() == Some(true) {
        account.dry_runs += 1;
        return response(
            "200 OK",
            &json!({ "MessageId": format!("dry-run-{}", account.dry_runs) }),
        );
    }
    let parts = smsreg::domain::encoding::measure(&message).parts;
    let message_id = format!(
        "{:08x}-eum0-4000-8000-{:012x}",
        account.sent.len() + 1,
        account.sent.len() + 1
    );
    account.sent.push(TextMessage {
        message_id: message_id.clone(),
        phone,
        message,
        origination_identity: text("OriginationIdentity"),
        configuration_set: text("ConfigurationSetName"),
        message_type: text("MessageType"),
        max_price: text("MaxPrice"),
        time_to_live: ttl,
        context,
        protect_configuration_id: text("ProtectConfigurationId"),
        parts,
        price: price * parts as f64,
    });
    response("200 OK", &json!({ "MessageId": message_id }))
}

/// The delivery event End User Messaging would write for `sms` (its configuration set's
/// event destination), as AWS documents the format.
pub fn delivery_event(sms: &TextMessage, event_type: &str, is_final: bool) -> Value {
    json!({
        "eventType": event_type,
        "eventVersion": "1.0",
        "eventTimestamp": 1_764_000_001_000u64,
        "isFinal": is_final,
        "originationPhoneNumber": "+12065550152",
        "destinationPhoneNumber": sms.phone,
        "isInternationalSend": false,
        "isoCountryCode": "US",
        "messageId": sms.message_id,
        "messageRequestTimestamp": 1_764_000_000_700u64,
        "messageEncoding": "GSM",
        "messageType": "TRANSACTIONAL",
        "messageStatus": event_type.trim_start_matches("TEXT_"),
        "messageStatusDescription": "as the carrier reported it",
        "context": sms.context,
        "totalMessageParts": sms.parts,
        "totalMessagePrice": sms.price,
        "totalCarrierFee": 0.0,
    })
}
