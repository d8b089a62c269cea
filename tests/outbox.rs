//! The outbox end to end on moto: each change writes its event in its own transaction, the
//! table's stream hands it to the events function, and it reaches the bus, where a rule
//! sends it to a queue as an organisation's subscription would.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::*;
use serde_json::{Value, json};
use smsreg::adapters::dynamodb::DynamoStore;
use smsreg::adapters::eventbridge::EventBridgeBus;
use smsreg::adapters::sns::SnsSms;
use smsreg::adapters::sqs::SqsQueue;
use smsreg::adapters::topic::SnsTopic;
use smsreg::config::Config;
use smsreg::domain::PhoneNumber;
use smsreg::functions::api::Api;
use smsreg::functions::events::EventsFunction;
use smsreg::functions::replies::RepliesFunction;
use smsreg::functions::sender::SenderFunction;
use smsreg::ports::{InvitationStore, Outgoing, SmsError, SmsFailure, SmsProvider, SystemClock};
use smsreg::service::RegistrationService;
use smsreg::service::send::Sender;
use smsreg::tools::local_stream::{self, StreamMapping, StreamReader};

const TABLE: &str = "outbox-test";
const BUS: &str = "smsreg-test";
/// Registers on the page.
const A: &str = "+16175551234";
/// Replies STOP, then START.
const B: &str = "+16175555512";
/// Refused by the provider for good: the invitation fails.
const C: &str = "+16175555513";

/// Real SNS, except numbers refused for good (moto refuses none).
#[derive(Clone)]
struct Refusing {
    inner: SnsSms,
    refused: Vec<String>,
}

impl SmsProvider for Refusing {
    fn opt_out_checks_per_second(&self) -> Option<u32> {
        self.inner.opt_out_checks_per_second()
    }

    async fn send(&self, sms: &Outgoing<'_>) -> Result<String, SmsError> {
        if self.refused.iter().any(|r| r == sms.to.as_str()) {
            return Err(SmsError::new(SmsFailure::Refused, "InvalidParameter"));
        }
        self.inner.send(sms).await
    }

    async fn is_opted_out(&self, to: &PhoneNumber) -> Result<bool, SmsError> {
        self.inner.is_opted_out(to).await
    }

    fn read_report(line: &str) -> Option<smsreg::domain::receipt::DeliveryReport> {
        SnsSms::read_report(line)
    }
}

struct Env {
    moto: Moto,
    store: DynamoStore,
    api: Api<DynamoStore, SqsQueue, SnsTopic>,
    sender: SenderFunction<DynamoStore, SqsQueue, Refusing>,
    replies: RepliesFunction<DynamoStore, SqsQueue, SnsTopic, Refusing>,
    events: EventsFunction<EventBridgeBus>,
    queue_url: String,
    /// Where the bus's rule sends every event.
    seen_url: String,
    stream: tokio::sync::Mutex<StreamReader>,
    stream_arn: String,
}

async fn env() -> Env {
    let moto = Moto::start();
    let store = moto.store(TABLE).await;
    provision_demo(&store, None).await;
    let aws = moto.sdk_config().await;
    let config = moto
        .queued(Config {
            table_name: TABLE.into(),
            public_base_url: "https://sms.example.org".into(),
            event_bus_name: BUS.into(),
            ..Config::default()
        })
        .await;
    let queue_url = config.send_queue_url.clone().unwrap();
    let provider = Refusing {
        inner: SnsSms::new(aws_sdk_sns::Client::new(&aws), None, None),
        refused: vec![C.to_owned()],
    };
    let service = RegistrationService::new(
        store.clone(),
        SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &queue_url),
        Arc::new(SystemClock),
        config.clone(),
    );
    // The organisation's subscription: a rule on the bus sending every event to a queue.
    let eventbridge = aws_sdk_eventbridge::Client::new(&aws);
    eventbridge
        .create_event_bus()
        .name(BUS)
        .send()
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let seen_url = sqs
        .create_queue()
        .queue_name("events-seen")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let seen_arn = sqs
        .get_queue_attributes()
        .queue_url(&seen_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    eventbridge
        .put_rule()
        .name("everything")
        .event_bus_name(BUS)
        .event_pattern(r#"{"source": ["smsreg"]}"#)
        .send()
        .await
        .unwrap();
    eventbridge
        .put_targets()
        .rule("everything")
        .event_bus_name(BUS)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(seen_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let stream_arn = local_stream::stream_arn(&aws_sdk_dynamodb::Client::new(&aws), TABLE)
        .await
        .expect("create-table gives the table its stream");
    Env {
        api: Api::new(service.clone(), SnsTopic::default()),
        sender: SenderFunction::new(Sender::new(service.clone(), provider.clone())),
        replies: RepliesFunction::new(service, SnsTopic::default(), provider),
        events: smsreg::wiring::aws_events_with(&aws, &config),
        stream: tokio::sync::Mutex::new(StreamReader::new(
            aws_sdk_dynamodbstreams::Client::new(&aws),
            stream_arn.clone(),
        )),
        stream_arn,
        moto,
        store,
        queue_url,
        seen_url,
    }
}

impl Env {
    async fn invite(&self, numbers: &[&str]) {
        let users: Vec<Value> = numbers.iter().map(|n| json!({"phone_number": n})).collect();
        let body = json!({"app_id": DEMO_APP, "android_only": true, "users": users});
        let event = post_event(DEMO_DOMAIN, &body, &api_key_header(DEMO_USER, DEMO_KEY));
        let (status, answer) = response_parts(
            &self
                .api
                .handle(lambda_http::request::from_str(&event).unwrap())
                .await,
        );
        assert_eq!(status, 200, "{answer}");
        self.moto.deliver(&self.sender, &self.queue_url).await;
    }

    async fn register(&self, phone: &str, username: &str) -> u16 {
        let token = self
            .store
            .find(&PhoneNumber::parse(phone).unwrap())
            .await
            .unwrap()
            .unwrap()
            .token;
        let mut event: Value =
            serde_json::from_str(&post_event(DEMO_DOMAIN, &json!({}), "none")).unwrap();
        let path = format!("/a/{DEMO_DOMAIN}/register/{}", token.as_str());
        event["rawPath"] = path.clone().into();
        event["requestContext"]["http"]["path"] = path.into();
        event["headers"] = json!({"content-type": "application/json"});
        event["body"] = json!({"username": username, "password": "correct horse",
            "password2": "correct horse", "email": "jane@example.org"})
        .to_string()
        .into();
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        self.api.handle(request).await.status().as_u16()
    }

    async fn reply(&self, id: &str, from: &str, body: &str) {
        self.replies
            .handle_records(&sns_reply(id, from, body))
            .await
            .expect("the reply is handled");
    }

    /// Hands the stream's new outbox records to the events function as the mapping does;
    /// returns the number of batches that went to the on-failure destination.
    async fn publish(&self) -> usize {
        let records = self.stream.lock().await.next_records().await.unwrap();
        let records: Vec<_> = records
            .into_iter()
            .filter(local_stream::passes_filter)
            .collect();
        let mapping = StreamMapping {
            stream_arn: self.stream_arn.clone(),
            region: "us-east-1".into(),
            batch_size: 10,
            max_retries: 3,
        };
        local_stream::deliver(
            &records,
            &mapping,
            |event| async move {
                let event = serde_json::from_value(event).expect("a DynamoDB stream event");
                let answer = self.events.handle_records(&event).await;
                Some(
                    answer
                        .batch_item_failures
                        .into_iter()
                        .filter_map(|f| f.item_identifier)
                        .collect(),
                )
            },
            |_| async {},
        )
        .await
    }

    /// Every event the rule delivered so far, as EventBridge delivers them.
    async fn seen(&self) -> Vec<Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.moto.sdk_config().await);
        let mut seen = Vec::new();
        loop {
            let messages = sqs
                .receive_message()
                .queue_url(&self.seen_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if messages.is_empty() {
                return seen;
            }
            for m in messages {
                seen.push(serde_json::from_str(m.body().unwrap()).unwrap());
                sqs.delete_message()
                    .queue_url(&self.seen_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

/// Checks every event against docs/events.schema.json with the venv's jsonschema.
fn assert_valid(events: &[Value]) {
    let python = repo_root().join(".venv/bin/python");
    assert!(python.exists(), "the venv's python (scripts/test makes it)");
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open('docs/events.schema.json'))\n\
        v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())\n\
        bad = [str(e.message) for ev in json.load(sys.stdin) for e in v.iter_errors(ev)]\n\
        print('\\n'.join(bad)); sys.exit(1 if bad else 0)";
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .current_dir(repo_root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::from(events.to_vec()).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "events against docs/events.schema.json: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn by_type(events: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut map: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for event in events {
        map.entry(event["detail-type"].as_str().unwrap().to_owned())
            .or_default()
            .push(event);
    }
    map
}

#[tokio::test]
async fn each_change_reaches_the_bus_once_with_what_the_organisation_needs_and_no_secret() {
    let e = env().await;
    e.invite(&[A, B, C]).await;
    assert_eq!(e.register(A, "jane").await, 201);
    e.reply("in-1", B, "STOP").await;
    e.reply("in-2", B, "START").await;
    // START again from a number already opted in: no change, no event.
    e.reply("in-3", B, "START").await;
    assert_eq!(e.publish().await, 0, "no batch failed");
    let events = e.seen().await;
    assert_valid(&events);
    let types = by_type(&events);
    let count = |t: &str| types.get(t).map_or(0, Vec::len);
    assert_eq!(count("Worker Registered"), 1, "{events:#?}");
    assert_eq!(count("Worker Opted Out"), 1, "{events:#?}");
    assert_eq!(count("Worker Opted In"), 1, "{events:#?}");
    assert_eq!(count("Invitation Failed"), 1, "{events:#?}");
    // The batch: A and B sent, C failed; told once, though receipts and a registration
    // changed its counts after.
    assert_eq!(count("Batch Completed"), 1, "{events:#?}");
    let completed = &types["Batch Completed"][0]["detail"];
    assert_eq!(completed["counts"]["queued"], 3);
    assert_eq!(completed["counts"]["sent"], 2);
    assert_eq!(completed["counts"]["send_failed"], 1);
    let registered = &types["Worker Registered"][0]["detail"];
    assert_eq!(completed["batch_id"], registered["batch_id"]);
    assert_eq!(registered["phone_number"], A);
    assert_eq!(registered["project"], DEMO_DOMAIN);
    assert_eq!(registered["username"], "jane");
    assert_eq!(registered["email"], "jane@example.org");
    assert_eq!(registered["app_id"], DEMO_APP);
    assert!(registered["batch_id"].is_string());
    assert_eq!(types["Invitation Failed"][0]["detail"]["phone_number"], C);
    assert_eq!(types["Worker Opted Out"][0]["detail"]["phone_number"], B);
    assert_eq!(
        types["Worker Opted Out"][0]["detail"]["project"],
        DEMO_DOMAIN
    );
    // Never a token, a link or a password.
    let text = Value::from(events.clone()).to_string();
    for phone in [A, B, C] {
        let record = e
            .store
            .find(&PhoneNumber::parse(phone).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(!text.contains(record.token.as_str()), "a token in {text}");
    }
    assert!(!text.contains("register/") && !text.contains("correct horse"));
    // Ids: one per change, all distinct.
    let ids: BTreeSet<String> = events
        .iter()
        .map(|e| e["detail"]["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), events.len());
    // Handed over again (the mapping retries a batch): the same ids again, no new one.
    assert_eq!(e.publish().await, 0);
    assert!(e.seen().await.is_empty(), "nothing new on the stream");
}

#[tokio::test]
async fn a_batch_whose_invitation_was_replaced_before_its_sms_completes_when_the_job_is_dropped() {
    let e = env().await;
    // Two requests for A before the sender takes the first's job: the first invitation is
    // replaced, its job dropped unsent, and its batch completes all the same.
    let users = json!([{"phone_number": A}]);
    for _ in 0..2 {
        let body = json!({"app_id": DEMO_APP, "android_only": true, "users": users});
        let event = post_event(DEMO_DOMAIN, &body, &api_key_header(DEMO_USER, DEMO_KEY));
        let answer = e
            .api
            .handle(lambda_http::request::from_str(&event).unwrap())
            .await;
        assert_eq!(answer.status(), 200);
    }
    e.moto.deliver(&e.sender, &e.queue_url).await;
    assert_eq!(
        e.moto.sms_to(A).len(),
        1,
        "the replaced invitation's SMS never goes"
    );
    e.publish().await;
    let events = e.seen().await;
    assert_valid(&events);
    let types = by_type(&events);
    let batches: BTreeSet<&str> = types
        .get("Batch Completed")
        .into_iter()
        .flatten()
        .map(|e| e["detail"]["batch_id"].as_str().unwrap())
        .collect();
    assert_eq!(batches.len(), 2, "both batches complete: {events:#?}");
}

#[tokio::test]
async fn a_registration_refused_writes_no_event() {
    let e = env().await;
    e.invite(&[A, B]).await;
    assert_eq!(e.register(A, "jane").await, 201);
    // The username is taken in the project: no account, no invitation change, no event.
    assert_eq!(e.register(B, "jane").await, 400);
    // The link already used: nothing changes.
    assert_eq!(e.register(A, "john").await, 409);
    e.publish().await;
    let events = e.seen().await;
    let types = by_type(&events);
    assert_eq!(
        types.get("Worker Registered").map_or(0, Vec::len),
        1,
        "{events:#?}"
    );
}
