//! A stand-in for DynamoDB, SQS and SNS on 127.0.0.1: every call is answered, after a
//! fixed delay, with a valid response (the demo key and project for the lookups, no opt-out
//! for the opt-out lookups and checks, success for every write and publish, the rate
//! records kept with their compare-and-set). One thread per connection, HTTP/1.1 with
//! keep-alive, as the SDK's pooled client speaks it; it counts calls and connections.

use std::collections::HashMap;
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cpu::{APP, DOMAIN, KEY, USER};
use crate::http1::{read_request, respond};

#[derive(Default)]
pub struct Counts {
    pub connections: AtomicUsize,
    pub query: AtomicUsize,
    pub put_item: AtomicUsize,
    pub update_item: AtomicUsize,
    /// Of those, the rate records' compare-and-sets refused (another instance moved the
    /// record first).
    pub slot_refused: AtomicUsize,
    /// The opt-out lookups (`BatchGetItem`).
    pub batch_get_item: AtomicUsize,
    pub other_dynamodb: AtomicUsize,
    pub publish: AtomicUsize,
    /// SNS's `CheckIfPhoneNumberIsOptedOut`.
    pub opt_out_check: AtomicUsize,
    pub send_batch: AtomicUsize,
    /// SNS's SMS rate, when set: `Publish` calls to phone numbers past it in any second
    /// are answered with SNS's throttling error.
    pub publish_rate: AtomicUsize,
    /// Each `Publish` to a phone number: when, and whether it passed.
    pub publishes: Mutex<Vec<(Instant, bool)>>,
    /// The sender's shared rate records (`RATE#sms`, `RATE#opt-out-check`, any `RATE#...`):
    /// `next_us` by pk, kept with their compare-and-set.
    pub rate_records: Mutex<HashMap<String, String>>,
    pub unknown: AtomicUsize,
    /// When each call arrived (the cold-start benchmark's timeline).
    pub arrivals: Mutex<Vec<Instant>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub connections: usize,
    pub query: usize,
    pub put_item: usize,
    pub update_item: usize,
    pub slot_refused: usize,
    pub batch_get_item: usize,
    pub other_dynamodb: usize,
    pub publish: usize,
    pub opt_out_check: usize,
    pub send_batch: usize,
    pub unknown: usize,
}

impl Snapshot {
    pub fn calls(&self) -> usize {
        self.query
            + self.put_item
            + self.update_item
            + self.batch_get_item
            + self.other_dynamodb
            + self.publish
            + self.opt_out_check
            + self.send_batch
    }

    pub fn since(&self, before: &Snapshot) -> Snapshot {
        Snapshot {
            connections: self.connections - before.connections,
            query: self.query - before.query,
            put_item: self.put_item - before.put_item,
            update_item: self.update_item - before.update_item,
            slot_refused: self.slot_refused - before.slot_refused,
            batch_get_item: self.batch_get_item - before.batch_get_item,
            other_dynamodb: self.other_dynamodb - before.other_dynamodb,
            publish: self.publish - before.publish,
            opt_out_check: self.opt_out_check - before.opt_out_check,
            send_batch: self.send_batch - before.send_batch,
            unknown: self.unknown - before.unknown,
        }
    }
}

pub struct StandIn {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    counts: Arc<Counts>,
    delay_us: Arc<AtomicU64>,
}

impl StandIn {
    pub fn start(delay: Duration) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let counts = Arc::new(Counts::default());
        let delay_us = Arc::new(AtomicU64::new(delay.as_micros() as u64));
        let (c, d) = (counts.clone(), delay_us.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                c.connections.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_nodelay(true);
                let (c, d) = (c.clone(), d.clone());
                std::thread::spawn(move || serve(stream, &c, &d));
            }
        });
        StandIn {
            endpoint,
            counts,
            delay_us,
        }
    }

    /// Lets at most `rate` SMS through in any second (0: no limit), and forgets the SMS
    /// and the rate records seen so far.
    pub fn limit_publish_rate(&self, rate: usize) {
        self.counts.publish_rate.store(rate, Ordering::SeqCst);
        self.counts.publishes.lock().unwrap().clear();
        self.counts.rate_records.lock().unwrap().clear();
    }

    /// When each call arrived since the last time this was asked, oldest first.
    pub fn take_arrivals(&self) -> Vec<Instant> {
        std::mem::take(&mut *self.counts.arrivals.lock().unwrap())
    }

    /// Every SMS `Publish` seen since the rate was set: when, and whether it passed.
    pub fn publishes(&self) -> Vec<(Instant, bool)> {
        self.counts.publishes.lock().unwrap().clone()
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    pub fn snapshot(&self) -> Snapshot {
        let c = &self.counts;
        let get = |a: &AtomicUsize| a.load(Ordering::SeqCst);
        Snapshot {
            connections: get(&c.connections),
            query: get(&c.query),
            put_item: get(&c.put_item),
            update_item: get(&c.update_item),
            slot_refused: get(&c.slot_refused),
            batch_get_item: get(&c.batch_get_item),
            other_dynamodb: get(&c.other_dynamodb),
            publish: get(&c.publish),
            opt_out_check: get(&c.opt_out_check),
            unknown: get(&c.unknown),
            send_batch: get(&c.send_batch),
        }
    }
}

/// The demo key's item, laid out as `adapters::dynamodb::item::key_item` writes it.
fn key_query_response() -> String {
    let item = serde_json::json!({
        "pk": {"S": format!("USER#{USER}")},
        "sk": {"S": format!("KEY#{DOMAIN}")},
        "kind": {"S": "api_key"},
        "username": {"S": USER},
        "domain": {"S": DOMAIN},
        "key_sha256": {"S": hex::encode(smsreg::domain::project::hash_key(KEY))},
        "edit_data": {"BOOL": true},
        "created_at": {"N": "0"}
    });
    serde_json::json!({"Count": 1, "ScannedCount": 1, "Items": [item]}).to_string()
}

/// The demo project (PRO, registration on) and its app.
fn project_query_response() -> String {
    let project = serde_json::json!({
        "pk": {"S": format!("DOMAIN#{DOMAIN}")},
        "sk": {"S": "PROJECT"},
        "kind": {"S": "project"},
        "domain": {"S": DOMAIN},
        "plan": {"S": "PRO"},
        "registration_enabled": {"BOOL": true},
        "display_name": {"S": "Demo Health"},
        "daily_invitation_limit": {"N": "1000000"}
    });
    let app = serde_json::json!({
        "pk": {"S": format!("DOMAIN#{DOMAIN}")},
        "sk": {"S": format!("APP#{APP}")},
        "kind": {"S": "app"},
        "app_id": {"S": APP},
        "name": {"S": "Demo app"}
    });
    serde_json::json!({"Count": 2, "ScannedCount": 2, "Items": [project, app]}).to_string()
}

/// Whether a `Publish` passes SNS's SMS rate (a strict one: at most `rate` in any second);
/// every SMS is logged.
fn publish_passes(counts: &Counts, text: &str) -> bool {
    let rate = counts.publish_rate.load(Ordering::SeqCst);
    if !text.contains("PhoneNumber=") {
        return true;
    }
    let now = Instant::now();
    let mut log = counts.publishes.lock().unwrap();
    let in_last_second = log
        .iter()
        .rev()
        .take_while(|(at, _)| now.duration_since(*at) < Duration::from_secs(1))
        .filter(|(_, passed)| *passed)
        .count();
    let passes = rate == 0 || in_last_second < rate;
    log.push((now, passes));
    passes
}

/// The `pk` of a DynamoDB request's `Key` when it is a rate record's (`RATE#...`).
fn rate_pk(request: &Value) -> Option<&str> {
    request["Key"]["pk"]["S"]
        .as_str()
        .filter(|pk| pk.starts_with("RATE#"))
}

/// A rate record's compare-and-set (`RATE#sms`, `RATE#opt-out-check`, ...: one `next_us`
/// per pk), as DynamoDB answers it: written when the stored value is the expected one
/// (none expected: none stored), else refused with the item as it stands.
fn take_slot(counts: &Counts, request: &Value, pk: &str) -> Result<(), String> {
    let values = &request["ExpressionAttributeValues"];
    let expected = values[":expected"]["N"].as_str();
    let mut records = counts.rate_records.lock().unwrap();
    let stored = records.get(pk).map(String::as_str);
    if stored != expected {
        let item = match stored {
            Some(next) => {
                serde_json::json!({"pk": {"S": pk}, "sk": {"S": "RATE"}, "next_us": {"N": next}})
            }
            None => serde_json::json!({}),
        };
        return Err(serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
            "message": "The conditional request failed",
            "Item": item,
        })
        .to_string());
    }
    if let Some(next) = values[":next"]["N"].as_str() {
        records.insert(pk.to_owned(), next.to_owned());
    }
    Ok(())
}

/// The opt-out lookup (`BatchGetItem`): no number of the bench opted out, so no item of
/// any table asked, and nothing left unprocessed.
fn batch_get_response(request: &Value) -> String {
    let responses: serde_json::Map<String, Value> = request["RequestItems"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(table, _)| (table.clone(), serde_json::json!([])))
        .collect();
    serde_json::json!({"Responses": responses, "UnprocessedKeys": {}}).to_string()
}

fn serve(stream: TcpStream, counts: &Counts, delay_us: &AtomicU64) {
    let mut writer = stream.try_clone().expect("a second handle on the socket");
    let mut reader = BufReader::new(stream);
    let key_response = key_query_response();
    let project_response = project_query_response();
    let mut n = 0u64;
    while let Some(request) = read_request(&mut reader) {
        counts.arrivals.lock().unwrap().push(Instant::now());
        n += 1;
        let text = request.text();
        let target = request.header("x-amz-target");
        // An `UpdateItem` of a rate record (`RATE#...`), parsed, and its pk.
        let rate_update: Option<(Value, String)> = target
            .filter(|t| t.ends_with(".UpdateItem") && text.contains("RATE#"))
            .and_then(|_| {
                let request: Value = serde_json::from_str(&text).ok()?;
                let pk = rate_pk(&request)?.to_owned();
                Some((request, pk))
            });
        let (content_type, body) = match target {
            Some(target) if target.starts_with("AmazonSQS.") => {
                // SendMessageBatch: every entry accepted, by its id.
                counts.send_batch.fetch_add(1, Ordering::SeqCst);
                let entries: Value = serde_json::from_str(&text).unwrap_or_default();
                let ok: Vec<Value> = entries["Entries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| serde_json::json!({"Id": e["Id"], "MessageId": format!("m-{n}"), "MD5OfMessageBody": "0"}))
                    .collect();
                (
                    "application/x-amz-json-1.0",
                    serde_json::json!({"Successful": ok, "Failed": []}).to_string(),
                )
            }
            Some(_) if rate_update.is_some() => {
                counts.update_item.fetch_add(1, Ordering::SeqCst);
                let (request, pk) = rate_update.as_ref().expect("a rate record's update");
                match take_slot(counts, request, pk) {
                    Ok(()) => ("application/x-amz-json-1.0", "{}".to_owned()),
                    Err(refusal) => {
                        counts.slot_refused.fetch_add(1, Ordering::SeqCst);
                        let delay = delay_us.load(Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(delay));
                        let headers = [("content-type", "application/x-amz-json-1.0")];
                        if !respond(&mut writer, "400 Bad Request", &headers, refusal.as_bytes()) {
                            return;
                        }
                        continue;
                    }
                }
            }
            Some(target) => {
                let operation = target.rsplit('.').next().unwrap_or_default();
                let body = match operation {
                    "Query" => {
                        counts.query.fetch_add(1, Ordering::SeqCst);
                        if text.contains("\"USER#") {
                            key_response.clone()
                        } else {
                            project_response.clone()
                        }
                    }
                    "PutItem" => {
                        counts.put_item.fetch_add(1, Ordering::SeqCst);
                        "{}".to_owned()
                    }
                    "UpdateItem" => {
                        counts.update_item.fetch_add(1, Ordering::SeqCst);
                        "{}".to_owned()
                    }
                    "BatchGetItem" => {
                        counts.batch_get_item.fetch_add(1, Ordering::SeqCst);
                        batch_get_response(&serde_json::from_str(&text).unwrap_or_default())
                    }
                    _ => {
                        counts.other_dynamodb.fetch_add(1, Ordering::SeqCst);
                        "{}".to_owned()
                    }
                };
                ("application/x-amz-json-1.0", body)
            }
            None if text.contains("Action=Publish") && !publish_passes(counts, &text) => {
                let delay = delay_us.load(Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(delay));
                let throttled = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
                    <Message>Rate exceeded</Message></Error><RequestId>t</RequestId></ErrorResponse>";
                if !respond(
                    &mut writer,
                    "400 Bad Request",
                    &[("content-type", "text/xml")],
                    throttled.as_bytes(),
                ) {
                    return;
                }
                continue;
            }
            None if text.contains("Action=Publish") => {
                counts.publish.fetch_add(1, Ordering::SeqCst);
                (
                    "text/xml",
                    format!(
                        "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
                         <PublishResult><MessageId>00000000-0000-0000-0000-{n:012}</MessageId>\
                         </PublishResult><ResponseMetadata><RequestId>r-{n}</RequestId>\
                         </ResponseMetadata></PublishResponse>"
                    ),
                )
            }
            None if text.contains("Action=CheckIfPhoneNumberIsOptedOut") => {
                counts.opt_out_check.fetch_add(1, Ordering::SeqCst);
                (
                    "text/xml",
                    format!(
                        "<CheckIfPhoneNumberIsOptedOutResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
                         <CheckIfPhoneNumberIsOptedOutResult><isOptedOut>false</isOptedOut>\
                         </CheckIfPhoneNumberIsOptedOutResult><ResponseMetadata><RequestId>r-{n}</RequestId>\
                         </ResponseMetadata></CheckIfPhoneNumberIsOptedOutResponse>"
                    ),
                )
            }
            None => {
                counts.unknown.fetch_add(1, Ordering::SeqCst);
                ("application/json", "{}".to_owned())
            }
        };
        let delay = delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        let request_id = format!("r-{n}");
        let headers = [
            ("content-type", content_type),
            ("x-amzn-requestid", request_id.as_str()),
        ];
        if !respond(&mut writer, "200 OK", &headers, body.as_bytes()) {
            return;
        }
    }
}
