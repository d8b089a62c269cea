//! A proxy between the SDK clients and moto that fails chosen calls: throttling, server
//! errors, timeouts or transaction conflicts, for given DynamoDB operations or SNS
//! publishes. It also answers as AWS does where moto is kinder: DynamoDB key values over
//! their size limit are refused, and SNS's SMS rate can be set.
//!
//! moto has no End User Messaging SMS (`pinpoint-sms-voice-v2`): the proxy answers it
//! itself (see `eum`), with the same rate, faults and chaos as SNS's `Publish`.
//!
//! moto has no CommCare HQ either: the proxy answers HQ's User API itself (see `hq`), on
//! the paths under `/a/`; rules name its calls `HQ POST user`, `HQ GET domain_usernames`...
//!
//! It hands moto one request at a time. DynamoDB isolates each write and each transaction
//! from the others; moto does not (a transaction checks its conditions, writes, and on
//! failure puts back a copy of the whole table taken when it began, on whatever thread
//! Flask gave it), so two concurrent registrations for one link could both succeed there.
//! One at a time, moto gives the isolation the function relies on from DynamoDB. Every
//! test server is behind such a proxy (`Moto::start`).
#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http1::{Request, read_request};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 400 ThrottlingException (DynamoDB) / Throttling (SNS).
    Throttle,
    /// 500 InternalServerError / InternalError.
    ServerError,
    /// No answer for this long, then the connection closes.
    Hang(Duration),
    /// DynamoDB cancels a transaction that met another one on the same item: 400
    /// `TransactionCanceledException`, the last item's reason `TransactionConflict`.
    TransactionConflict,
    /// A plain write met a transaction in flight on its item: 400
    /// `TransactionConflictException`, nothing applied.
    UpdateConflict,
    /// The request refused as invalid, nothing applied: 400 `ValidationException`
    /// (DynamoDB), `InvalidParameter` (SNS), `ValidationException` with reason
    /// `INVALID_PARAMETER` (End User Messaging).
    Invalid,
    /// HQ only: the call is applied, and its answer lost on the way (a 500 instead).
    Lost,
}

/// Faults drawn at random from a seed, as AWS makes them on an ordinary day, on every call
/// that no rule fails.
#[derive(Debug, Clone, Default)]
pub struct Chaos {
    pub seed: u64,
    /// Share of DynamoDB writes (`PutItem`, `UpdateItem`, `DeleteItem`,
    /// `TransactWriteItems`) that moto applies and whose answer is lost: a 500 instead,
    /// which the SDK retries.
    pub lost_answers: f64,
    /// Share of `UpdateItem` calls answered `TransactionConflictException` (not applied), as
    /// DynamoDB does when a transaction in flight holds the item.
    pub update_conflicts: f64,
    /// This many `Publish` calls are answered `publish_delay` late (moto took them).
    pub slow_publishes: usize,
    pub publish_delay: Duration,
    /// Share of EventBridge `PutEvents` calls that moto applies and whose answer is lost:
    /// a 500 instead (the events were put).
    pub put_events_lost: f64,
    /// Share of `PutEvents` calls answered as EventBridge does under throttling: each
    /// entry, at even odds, refused (`ThrottlingException` in its result, not put), the
    /// others put, `FailedEntryCount` > 0, the call itself a 200.
    pub put_events_partial: f64,
    /// Share of the directories' account creations (`HQ POST user`, Cognito's
    /// `AdminCreateUser` and `AdminSetUserPassword`) applied whose answer is lost: a 500.
    pub directory_lost: f64,
    /// Share of those calls refused, nothing applied: at even odds throttled (HQ's 429 with
    /// no body, Cognito's `TooManyRequestsException`) or a 500.
    pub directory_refused: f64,
    /// Share of those calls applied and answered `directory_delay` late.
    pub directory_slow: f64,
    pub directory_delay: Duration,
}

/// What [`Chaos`] injected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChaosReport {
    pub lost_answers: usize,
    pub update_conflicts: usize,
    pub slow_publishes: usize,
    pub put_events_lost: usize,
    /// `PutEvents` calls with entries refused, and the entries refused.
    pub put_events_partial: usize,
    pub entries_refused: usize,
    /// Transactions sent again with a `ClientRequestToken` already applied: answered as
    /// DynamoDB does, with the first answer, nothing applied twice.
    pub replayed_transactions: usize,
    pub directory_lost: usize,
    pub directory_refused: usize,
    pub directory_slow: usize,
}

/// splitmix64: a small, seedable source of the chaos (and of a test's own choices).
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Which calls a rule fails, and how many times (`None`: every time).
#[derive(Debug, Clone)]
pub struct Rule {
    /// `PutItem`, `Query`, ... (DynamoDB `X-Amz-Target`) or `Publish` (SNS `Action`).
    pub operation: &'static str,
    /// Text the request body must contain (an item key, a phone number), if any.
    pub body_contains: Option<String>,
    pub fault: Fault,
    pub times: Option<usize>,
}

impl Rule {
    pub fn always(operation: &'static str, body_contains: Option<&str>, fault: Fault) -> Rule {
        Rule {
            operation,
            body_contains: body_contains.map(str::to_owned),
            fault,
            times: None,
        }
    }

    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
}

/// One `Publish` to a phone number that reached the proxy.
#[derive(Debug, Clone)]
pub struct Publish {
    pub at: Instant,
    pub phone: String,
    pub message: String,
    /// The carrier parts the message goes as: the tokens it takes.
    pub parts: usize,
    /// Passed to moto; `false`: answered with SNS's throttling error.
    pub accepted: bool,
}

/// An origination number's throughput as AWS keeps it: a bucket of parts, refilled at
/// `rate` a second up to `burst` (full at first); a `Publish` of `p` parts takes `p` of
/// them, or is throttled and takes none.
#[derive(Debug, Clone, Copy)]
struct PartsBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl PartsBucket {
    fn take(&mut self, parts: usize, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens + 1e-9 >= parts as f64 {
            self.tokens -= parts as f64;
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
pub(crate) struct State {
    rules: Vec<Rule>,
    latency: Duration,
    injected: usize,
    forwarded: usize,
    /// The origination number's throughput in parts (see [`PartsBucket`]).
    publish_rate: Option<PartsBucket>,
    publishes: Vec<Publish>,
    /// The operation and body of every call, in order.
    calls: Vec<(String, String)>,
    chaos: Option<(Chaos, Rng)>,
    chaos_report: ChaosReport,
    /// Answers of the transactions applied, by their `ClientRequestToken`.
    transactions: std::collections::HashMap<String, Vec<u8>>,
    /// The End User Messaging stand-in's account.
    pub(crate) eum: super::eum::Account,
    /// The CommCare HQ stand-in's projects.
    pub(crate) hq: super::hq::Server,
}

/// What the proxy does with one call.
enum Plan {
    Fail(Fault),
    /// Pass it to moto; then answer a 500 instead of moto's answer (`lose`), or moto's
    /// answer after `late`.
    Forward {
        lose: bool,
        late: Duration,
        /// `PutEvents`: which entries to refuse (the others are forwarded).
        refuse: Vec<bool>,
    },
}

/// A form field of a query-protocol body (SNS), decoded.
fn form_field(body: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

/// The operation a call is for: DynamoDB's `X-Amz-Target` or SNS's `Action`.
fn operation_of(request: &Request) -> String {
    if super::hq::is_hq(request) {
        return format!("HQ {}", super::hq::kind(request));
    }
    if let Some(op) = request
        .header("x-amz-target")
        .and_then(|target| target.rsplit('.').next())
        .filter(|op| !op.is_empty())
    {
        return op.to_owned();
    }
    form_field(&request.text(), "Action").unwrap_or_default()
}

/// DynamoDB's limits on key values: 2048 bytes for a partition key, 1024 for a sort key.
/// moto has none; AWS refuses the call with a `ValidationException`.
const PARTITION_KEY_BYTES: usize = 2048;
const SORT_KEY_BYTES: usize = 1024;

/// The key attributes of the table and its indexes (`scripts/..`, `admin.rs`).
fn key_limit(attribute: &str) -> Option<usize> {
    match attribute {
        "pk" | "token" => Some(PARTITION_KEY_BYTES),
        "sk" => Some(SORT_KEY_BYTES),
        a if a.starts_with("gsi") && a.ends_with("pk") => Some(PARTITION_KEY_BYTES),
        a if a.starts_with("gsi") && a.ends_with("sk") => Some(SORT_KEY_BYTES),
        _ => None,
    }
}

fn too_long(value: &serde_json::Value, limit: usize) -> bool {
    value["S"].as_str().is_some_and(|s| s.len() > limit)
}

/// The `ValidationException` DynamoDB answers for a key value over its size limit, if any
/// key of the request (its `Key`s, the keys of the items it writes, the values of a
/// query's key condition) is one.
fn key_size_error(dynamodb_request: &serde_json::Value) -> Option<String> {
    let over = |map: &serde_json::Value| {
        map.as_object().is_some_and(|m| {
            m.iter()
                .any(|(name, v)| key_limit(name).is_some_and(|limit| too_long(v, limit)))
        })
    };
    let mut parts = vec![dynamodb_request];
    if let Some(items) = dynamodb_request["TransactItems"].as_array() {
        for item in items {
            parts.extend(item.as_object().into_iter().flat_map(|m| m.values()));
        }
    }
    let bad = parts.iter().any(|part| {
        over(&part["Key"])
            || over(&part["Item"])
            || over(&part["ExclusiveStartKey"])
            || part["KeyConditionExpression"].as_str().is_some_and(|_| {
                part["ExpressionAttributeValues"]
                    .as_object()
                    .is_some_and(|m| m.values().any(|v| too_long(v, PARTITION_KEY_BYTES)))
            })
    });
    bad.then(|| {
        "One or more parameter values were invalid: Size of hashkey has exceeded the \
         maximum size limit of 2048 bytes"
            .to_owned()
    })
}

fn dynamodb_error(code: &str, message: &str, extra: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"{message}"{extra}}}"#
    );
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A cancelled transaction of `items` items, the last one's reason `reason`.
fn transaction_canceled(items: usize, reason: &str) -> Vec<u8> {
    let reasons: Vec<String> = (0..items.max(1))
        .map(|i| {
            let code = if i + 1 == items.max(1) {
                reason
            } else {
                "None"
            };
            format!(r#"{{"Code":"{code}"}}"#)
        })
        .collect();
    dynamodb_error(
        "TransactionCanceledException",
        &format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{reason}]"
        ),
        &format!(r#","CancellationReasons":[{}]"#, reasons.join(",")),
    )
}

fn fault_response(fault: Fault, dynamodb: bool) -> Vec<u8> {
    let (status, code) = match fault {
        Fault::Throttle if dynamodb => ("400 Bad Request", "ThrottlingException"),
        Fault::Throttle => ("400 Bad Request", "Throttling"),
        Fault::Invalid if dynamodb => ("400 Bad Request", "ValidationException"),
        Fault::Invalid => ("400 Bad Request", "InvalidParameter"),
        _ if dynamodb => ("500 Internal Server Error", "InternalServerError"),
        _ => ("500 Internal Server Error", "InternalError"),
    };
    let (content_type, body) = if dynamodb {
        (
            "application/x-amz-json-1.0",
            format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected fault"}}"#
            ),
        )
    } else {
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
                 <Message>injected fault</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
            ),
        )
    };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The calls that make an account in a directory.
fn is_account_creation(operation: &str) -> bool {
    matches!(
        operation,
        "HQ POST user" | "AdminCreateUser" | "AdminSetUserPassword"
    )
}

/// Cognito's answer to a call refused with `fault` (its JSON protocol).
fn cognito_fault(fault: Fault) -> Vec<u8> {
    let (status, code) = match fault {
        Fault::Throttle => ("400 Bad Request", "TooManyRequestsException"),
        Fault::Invalid => ("400 Bad Request", "InvalidParameterException"),
        _ => ("500 Internal Server Error", "InternalErrorException"),
    };
    let body = format!(r#"{{"__type":"{code}","message":"injected fault"}}"#);
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn serve(
    client: TcpStream,
    upstream: String,
    state: Arc<Mutex<State>>,
    one_at_a_time: Arc<Mutex<()>>,
) {
    let mut writer = client.try_clone().unwrap();
    let mut reader = BufReader::new(client);
    // Answers say `connection: close`: one request per connection.
    if let Some(request) = read_request(&mut reader) {
        let operation = operation_of(&request);
        let dynamodb = request
            .header("x-amz-target")
            .is_some_and(|t| t.starts_with("DynamoDB"));
        let (plan, latency) = {
            let mut state = state.lock().unwrap();
            let body = request.text();
            state.calls.push((operation.clone(), body.clone()));
            let sms_to = match operation.as_str() {
                "Publish" => form_field(&body, "PhoneNumber")
                    .map(|to| (to, form_field(&body, "Message").unwrap_or_default())),
                "SendTextMessage" => super::eum::sms_of(&body),
                _ => None,
            };
            let rate_fault = match (sms_to, state.publish_rate.as_mut()) {
                (Some((phone, message)), Some(bucket)) => {
                    let now = Instant::now();
                    let parts = smsreg::domain::encoding::measure(&message).parts;
                    let accepted = bucket.take(parts, now);
                    state.publishes.push(Publish {
                        at: now,
                        phone,
                        message,
                        parts,
                        accepted,
                    });
                    (!accepted).then_some(Fault::Throttle)
                }
                _ => None,
            };
            let hit = state.rules.iter_mut().find(|rule| {
                rule.operation == operation
                    && rule.times != Some(0)
                    && rule
                        .body_contains
                        .as_deref()
                        .is_none_or(|needle| body.contains(needle))
            });
            let fault = hit
                .map(|rule| {
                    if let Some(n) = rule.times.as_mut() {
                        *n -= 1;
                    }
                    rule.fault
                })
                .or(rate_fault);
            if fault.is_some() {
                state.injected += 1;
            } else {
                state.forwarded += 1;
            }
            let mut plan = match fault {
                Some(fault) => Plan::Fail(fault),
                None => Plan::Forward {
                    lose: false,
                    late: Duration::ZERO,
                    refuse: Vec::new(),
                },
            };
            let state = &mut *state;
            if let (Plan::Forward { lose, late, refuse }, Some((chaos, rng))) =
                (&mut plan, &mut state.chaos)
            {
                let write = matches!(
                    operation.as_str(),
                    "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems"
                );
                if dynamodb && operation == "UpdateItem" && rng.next_f64() < chaos.update_conflicts
                {
                    state.chaos_report.update_conflicts += 1;
                    plan = Plan::Fail(Fault::UpdateConflict);
                } else if dynamodb && write && rng.next_f64() < chaos.lost_answers {
                    state.chaos_report.lost_answers += 1;
                    *lose = true;
                } else if is_account_creation(&operation) {
                    let draw = rng.next_f64();
                    if draw < chaos.directory_lost {
                        state.chaos_report.directory_lost += 1;
                        *lose = true;
                    } else if draw < chaos.directory_lost + chaos.directory_refused {
                        state.chaos_report.directory_refused += 1;
                        plan = Plan::Fail(if rng.next_f64() < 0.5 {
                            Fault::Throttle
                        } else {
                            Fault::ServerError
                        });
                    } else if draw
                        < chaos.directory_lost + chaos.directory_refused + chaos.directory_slow
                    {
                        state.chaos_report.directory_slow += 1;
                        *late = chaos.directory_delay;
                    }
                } else if operation == "PutEvents" && rng.next_f64() < chaos.put_events_lost {
                    state.chaos_report.put_events_lost += 1;
                    *lose = true;
                } else if operation == "PutEvents" && rng.next_f64() < chaos.put_events_partial {
                    let entries = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|b| b["Entries"].as_array().map(Vec::len))
                        .unwrap_or(0);
                    *refuse = (0..entries).map(|_| rng.next_f64() < 0.5).collect();
                    let refused = refuse.iter().filter(|r| **r).count();
                    if refused > 0 {
                        state.chaos_report.put_events_partial += 1;
                        state.chaos_report.entries_refused += refused;
                    }
                } else if matches!(operation.as_str(), "Publish" | "SendTextMessage")
                    && chaos.slow_publishes > 0
                {
                    chaos.slow_publishes -= 1;
                    state.chaos_report.slow_publishes += 1;
                    *late = chaos.publish_delay;
                }
            }
            (plan, state.latency)
        };
        let fault = match plan {
            Plan::Fail(fault) => Some(fault),
            Plan::Forward { .. } => None,
        };
        std::thread::sleep(latency);
        if super::eum::is_eum(&request) {
            match fault {
                Some(Fault::Hang(duration)) => std::thread::sleep(duration),
                Some(fault) => {
                    let _ = writer.write_all(&super::eum::fault_answer(fault));
                }
                None => {
                    let answer = super::eum::answer(&state, &operation, &request.body);
                    if let Plan::Forward { late, .. } = plan {
                        std::thread::sleep(late);
                    }
                    let _ = writer.write_all(&answer);
                }
            }
            return;
        }
        if super::hq::is_hq(&request) {
            let (lose, late) = match plan {
                Plan::Forward { lose, late, .. } => (lose, late),
                Plan::Fail(_) => (false, Duration::ZERO),
            };
            let answer = match fault {
                Some(Fault::Hang(duration)) => {
                    std::thread::sleep(duration);
                    return;
                }
                Some(Fault::Lost) => {
                    super::hq::answer(&state, &request);
                    super::hq::lost_answer()
                }
                Some(fault) => super::hq::fault_answer(fault),
                None if lose => {
                    super::hq::answer(&state, &request);
                    super::hq::lost_answer()
                }
                None => {
                    let answer = super::hq::answer(&state, &request);
                    std::thread::sleep(late);
                    answer
                }
            };
            let _ = writer.write_all(&answer);
            return;
        }
        let cognito = request
            .header("x-amz-target")
            .is_some_and(|t| t.starts_with("AWSCognitoIdentityProviderService"));
        let parsed: Option<serde_json::Value> = dynamodb
            .then(|| serde_json::from_slice(&request.body).ok())
            .flatten();
        if fault.is_none()
            && let Some(message) = parsed.as_ref().and_then(key_size_error)
        {
            let _ = writer.write_all(&dynamodb_error("ValidationException", &message, ""));
            return;
        }
        match fault {
            // Then the connection closes without an answer.
            Some(Fault::Hang(duration)) => std::thread::sleep(duration),
            Some(Fault::UpdateConflict) => {
                let _ = writer.write_all(&dynamodb_error(
                    "TransactionConflictException",
                    "Transaction is ongoing for the item",
                    "",
                ));
            }
            Some(Fault::TransactionConflict) => {
                let items = parsed
                    .as_ref()
                    .and_then(|p| p["TransactItems"].as_array().map(Vec::len))
                    .unwrap_or(1);
                let _ = writer.write_all(&transaction_canceled(items, "TransactionConflict"));
            }
            Some(fault) if cognito => {
                let _ = writer.write_all(&cognito_fault(fault));
            }
            Some(fault) => {
                let _ = writer.write_all(&fault_response(fault, dynamodb));
            }
            None => {
                let (lose, late, refuse) = match plan {
                    Plan::Forward { lose, late, refuse } => (lose, late, refuse),
                    Plan::Fail(_) => (false, Duration::ZERO, Vec::new()),
                };
                // A transaction whose token was applied already: DynamoDB answers as it
                // did the first time, and applies nothing (moto knows no tokens).
                let token = (operation == "TransactWriteItems")
                    .then(|| {
                        parsed.as_ref()?["ClientRequestToken"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .flatten();
                if let Some(token) = &token {
                    let mut guard = state.lock().unwrap();
                    if let Some(answer) = guard.transactions.get(token).cloned() {
                        guard.chaos_report.replayed_transactions += 1;
                        drop(guard);
                        if lose {
                            let _ = writer.write_all(&fault_response(Fault::ServerError, true));
                        } else {
                            let _ = writer.write_all(&answer);
                        }
                        return;
                    }
                }
                // Held while a DynamoDB request is with moto (SQS long polls would hold it
                // for seconds; moto's queues need no such help).
                let _turn =
                    dynamodb.then(|| one_at_a_time.lock().unwrap_or_else(|e| e.into_inner()));
                let Ok(mut moto) = TcpStream::connect(&upstream) else {
                    return;
                };
                // Every forwarded request gets its own connection to moto.
                let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
                for (name, value) in &request.headers {
                    if !matches!(
                        name.as_str(),
                        "connection" | "content-length" | "transfer-encoding"
                    ) {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                }
                head.push_str(&format!(
                    "content-length: {}\r\nconnection: close\r\n\r\n",
                    request.body.len()
                ));
                let refusing = refuse.iter().any(|r| *r);
                let body = if refusing {
                    put_events_kept(&request.body, &refuse)
                } else {
                    request.body.clone()
                };
                let head = head.replace(
                    &format!("content-length: {}\r\n", request.body.len()),
                    &format!("content-length: {}\r\n", body.len()),
                );
                let mut forwarded = head.into_bytes();
                forwarded.extend_from_slice(&body);
                let mut answer = Vec::new();
                if moto.write_all(&forwarded).is_err() || moto.read_to_end(&mut answer).is_err() {
                    return;
                }
                drop(_turn);
                if let Some(token) = token
                    && answer.starts_with(b"HTTP/1.1 200")
                {
                    state
                        .lock()
                        .unwrap()
                        .transactions
                        .insert(token, answer.clone());
                }
                if lose {
                    // Applied; the answer lost on the way.
                    let lost = if cognito {
                        cognito_fault(Fault::ServerError)
                    } else {
                        fault_response(Fault::ServerError, dynamodb)
                    };
                    let _ = writer.write_all(&lost);
                    return;
                }
                std::thread::sleep(late);
                if refusing {
                    answer = put_events_answer(&answer, &refuse);
                }
                let _ = writer.write_all(&answer);
            }
        }
    }
}

/// A `PutEvents` body with only the entries not refused.
fn put_events_kept(body: &[u8], refuse: &[bool]) -> Vec<u8> {
    let mut request: serde_json::Value = serde_json::from_slice(body).unwrap();
    let kept: Vec<serde_json::Value> = request["Entries"]
        .as_array()
        .unwrap()
        .iter()
        .zip(refuse)
        .filter(|(_, refused)| !**refused)
        .map(|(entry, _)| entry.clone())
        .collect();
    request["Entries"] = kept.into();
    request.to_string().into_bytes()
}

/// EventBridge's answer to a `PutEvents` whose `refuse`d entries were throttled: one result
/// per entry in order, moto's for those it put, an error for the others.
fn put_events_answer(moto_answer: &[u8], refuse: &[bool]) -> Vec<u8> {
    let text = String::from_utf8_lossy(moto_answer);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let put: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let mut taken = put["Entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter();
    let entries: Vec<serde_json::Value> = refuse
        .iter()
        .map(|refused| {
            if *refused {
                serde_json::json!({"ErrorCode": "ThrottlingException",
                    "ErrorMessage": "Rate exceeded"})
            } else {
                taken.next().unwrap_or_default()
            }
        })
        .collect();
    let failed = entries
        .iter()
        .filter(|e| e.get("ErrorCode").is_some())
        .count();
    let json = serde_json::json!({"FailedEntryCount": failed, "Entries": entries}).to_string();
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
        json.len()
    )
    .into_bytes()
}

impl FaultProxy {
    /// Starts a proxy in front of moto at `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let one_at_a_time = Arc::new(Mutex::new(()));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, state) = (upstream.clone(), shared.clone());
                let turn = one_at_a_time.clone();
                std::thread::spawn(move || serve(client, upstream, state, turn));
            }
        });
        FaultProxy { endpoint, state }
    }

    /// Lets `Publish` calls to phone numbers through at `rate` parts a second, a burst of
    /// `burst` parts at most (each message taking its parts), and answers the rest with
    /// SNS's throttling error, as AWS does past an origination number's throughput.
    pub fn limit_publish_parts(&self, rate: usize, burst: usize) {
        self.state.lock().unwrap().publish_rate = Some(PartsBucket {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            at: Instant::now(),
        });
    }

    /// The End User Messaging stand-in, to set up and to read what it sent.
    pub fn eum(&self) -> super::eum::Eum<'_> {
        super::eum::Eum(&self.state)
    }

    /// The CommCare HQ stand-in, to set up its projects and to read their users.
    pub fn hq(&self) -> super::hq::Hq<'_> {
        super::hq::Hq(&self.state)
    }

    /// Every `Publish` to a phone number seen while a rate was set, in order.
    pub fn publishes(&self) -> Vec<Publish> {
        self.state.lock().unwrap().publishes.clone()
    }

    /// Injects faults at random from now on (see [`Chaos`]).
    pub fn chaos(&self, chaos: Chaos) {
        let rng = Rng(chaos.seed);
        self.state.lock().unwrap().chaos = Some((chaos, rng));
    }

    /// Stops the random faults; what they injected.
    pub fn calm(&self) -> ChaosReport {
        let mut state = self.state.lock().unwrap();
        state.chaos = None;
        state.chaos_report.clone()
    }

    pub fn add(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Delay added to every call, as a slower network would.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    /// How many `operation` calls whose body contains `needle` reached the proxy so far.
    pub fn calls(&self, operation: &str, needle: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(op, body)| op == operation && body.contains(needle))
            .count()
    }

    /// Calls failed so far.
    pub fn injected(&self) -> usize {
        self.state.lock().unwrap().injected
    }

    pub fn forwarded(&self) -> usize {
        self.state.lock().unwrap().forwarded
    }
}
