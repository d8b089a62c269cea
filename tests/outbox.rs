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
use smsreg::config::Config;
use smsreg::domain::PhoneNumber;
use smsreg::functions::api::Api;
use smsreg::functions::events::EventsFunction;
use smsreg::functions::replies::RepliesFunction;
use smsreg::functions::sender::SenderFunction;
use smsreg::ports::{InvitationStore, SystemClock};
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

struct Env {
    moto: Moto,
    store: DynamoStore,
    api: Api<DynamoStore, SqsQueue>,
    sender: SenderFunction<DynamoStore, SqsQueue, FailingFor>,
    replies: RepliesFunction<DynamoStore, SqsQueue, FailingFor>,
    events: EventsFunction<EventBridgeBus>,
    queue_url: String,
    /// Where the bus's rule sends every event.
    seen_url: String,
    /// The stream mapping's on-failure destination (`EventsFailedQueue`).
    failed_url: String,
    stream: tokio::sync::Mutex<StreamReader>,
    stream_arn: String,
}

async fn env() -> Env {
    env_publishing_to(BUS).await
}

/// The stack, its events function putting events on `bus` (which may not exist).
async fn env_publishing_to(bus: &str) -> Env {
    let moto = Moto::start();
    let store = moto.store(TABLE).await;
    provision_demo(&store, None).await;
    let aws = moto.sdk_config().await;
    let config = moto
        .queued(Config {
            table_name: TABLE.into(),
            public_base_url: "https://sms.example.org".into(),
            event_bus_name: bus.into(),
            ..Config::default()
        })
        .await;
    let queue_url = config.send_queue_url.clone().unwrap();
    let provider = FailingFor::refusing(
        SnsSms::new(aws_sdk_sns::Client::new(&aws), None, None),
        &[C],
    );
    let service = RegistrationService::new(
        store.clone(),
        SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &queue_url),
        Arc::new(SystemClock),
        config.clone(),
    );
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let seen_url = sqs
        .create_queue()
        .queue_name("events-seen")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    subscribe(&aws, BUS, &seen_url).await;
    let failed_url = sqs
        .create_queue()
        .queue_name("events-failed")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let stream_arn = store
        .stream_arn()
        .await
        .unwrap()
        .expect("create-table gives the table its stream");
    Env {
        api: Api::new(service.clone()),
        sender: SenderFunction::new(Sender::new(service.clone(), provider.clone())),
        replies: RepliesFunction::new(service, provider),
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
        failed_url,
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
        self.publish_with(3, |_| None).await.0
    }

    /// Hands the stream's new records to the events function as the mapping does, with
    /// `max_retries`; invocation `n` is killed after `kill(n)`, if that is `Some` (Lambda
    /// ending it mid-batch). Returns the batches sent to the on-failure destination, and
    /// the invocations made.
    async fn publish_with(
        &self,
        max_retries: u32,
        kill: impl Fn(usize) -> Option<std::time::Duration>,
    ) -> (usize, usize) {
        let shards = self.stream.lock().await.next_records().await.unwrap();
        let mapping = StreamMapping {
            stream_arn: self.stream_arn.clone(),
            region: "us-east-1".into(),
            batch_size: 10,
            max_retries,
        };
        let sqs = aws_sdk_sqs::Client::new(&self.moto.sdk_config().await);
        let invocations = std::sync::atomic::AtomicUsize::new(0);
        let mut dead = 0;
        for (shard, records) in shards {
            let records: Vec<_> = records
                .into_iter()
                .filter(local_stream::passes_filter)
                .collect();
            dead += local_stream::deliver(
                &records,
                &shard,
                &mapping,
                |event| {
                    let n = invocations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let budget = kill(n).unwrap_or(std::time::Duration::from_secs(60));
                    async move {
                        let event = serde_json::from_value(event).expect("a DynamoDB stream event");
                        let answer =
                            tokio::time::timeout(budget, self.events.handle_records(&event)).await;
                        answer.ok().map(|a| {
                            a.batch_item_failures
                                .into_iter()
                                .filter_map(|f| f.item_identifier)
                                .collect()
                        })
                    }
                },
                // The mapping's on-failure destination.
                |failure| {
                    let sqs = sqs.clone();
                    async move {
                        sqs.send_message()
                            .queue_url(&self.failed_url)
                            .message_body(failure.to_string())
                            .send()
                            .await
                            .unwrap();
                    }
                },
            )
            .await;
        }
        (dead, invocations.into_inner())
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
    assert_valid_events(&events);
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
    assert_valid_events(&events);
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

#[tokio::test]
async fn a_batch_the_bus_refused_at_every_try_waits_on_the_failure_queue_and_replay_events_publishes_it_once()
 {
    // The events function puts events on a bus that does not exist yet: every put fails.
    let e = env_publishing_to("late-bus").await;
    e.invite(&[A]).await;
    assert_eq!(e.register(A, "jane").await, 201);
    let dead = e.publish().await;
    assert!(dead >= 1, "the batch went to the on-failure destination");
    // What the alarm watches: a message on the queue.
    assert_eq!(e.moto.queue_depth(&e.failed_url).await, dead);
    assert!(e.seen().await.is_empty());

    // The bus comes; an operator replays the queue with the admin CLI.
    let aws = e.moto.sdk_config().await;
    subscribe(&aws, "late-bus", &e.seen_url).await;
    let mut env = e.moto.env(TABLE);
    env.push(("EVENT_BUS_NAME", "late-bus".into()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smsreg-admin"))
        .args(["replay-events", "--queue-url", &e.failed_url])
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["batches"], dead, "{report}");
    assert_eq!(report["left_on_queue"], 0, "{report}");
    assert_eq!(e.moto.queue_depth(&e.failed_url).await, 0);
    let events = e.seen().await;
    assert_valid_events(&events);
    let types = by_type(&events);
    assert_eq!(types["Worker Registered"].len(), 1, "{events:#?}");
    assert_eq!(types["Batch Completed"].len(), 1, "{events:#?}");

    // Replayed again (nothing left): nothing more.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smsreg-admin"))
        .args(["replay-events", "--queue-url", &e.failed_url])
        .envs(e.moto.env(TABLE))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(e.seen().await.is_empty());
}

#[test]
fn the_documented_events_match_the_schema() {
    let api = std::fs::read_to_string(repo_root().join("docs/api.md")).unwrap();
    let section = &api[api.find("## Events").expect("an Events section")..];
    let examples: Vec<Value> = section
        .split("```json")
        .skip(1)
        .map(|block| serde_json::from_str(block.split("```").next().unwrap()).unwrap())
        .collect();
    let types: BTreeSet<&str> = examples
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect();
    assert_eq!(types.len(), 5, "one example of each detail type");
    assert_valid_events(&examples);
}

/// Jepsen's way, for several seeds: AWS's ordinary faults at random through the whole path
/// (lost answers of DynamoDB writes, the outbox's transactions included; update conflicts;
/// `PutEvents` applied with its answer lost; `PutEvents` with entries refused; the events
/// function killed mid-batch and its batch handed over again), then the invariants over
/// everything that happened: every change has exactly one distinct `event_id` on the bus,
/// every event on the bus stands for a change in the table, none is missing once the
/// retries settle. Duplicates of an id are allowed, counted and reported.
#[tokio::test]
async fn under_faults_every_change_has_exactly_one_event_id_on_the_bus_and_every_event_a_change() {
    use common::fault_proxy::Chaos;
    use smsreg::domain::event::stable_id;
    for seed in [1u64, 2, 3] {
        let e = env().await;
        let numbers: Vec<String> = us_numbers(10, 3000 + seed as usize * 100);
        // This seed's provider refuses the last two for good: their invitations fail.
        let refused: Vec<&str> = numbers[8..].iter().map(String::as_str).collect();
        let provider_refused = FailingFor::refusing(
            SnsSms::new(
                aws_sdk_sns::Client::new(&e.moto.sdk_config().await),
                None,
                None,
            ),
            &refused,
        );
        let aws = e.moto.sdk_config().await;
        let config = Config {
            table_name: TABLE.into(),
            public_base_url: "https://sms.example.org".into(),
            event_bus_name: BUS.into(),
            send_queue_url: Some(e.queue_url.clone()),
            sms_rate_per_second: 1000,
            send_max_attempts: 3,
            ..Config::default()
        };
        let service = RegistrationService::new(
            e.store.clone(),
            SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &e.queue_url),
            Arc::new(SystemClock),
            config,
        );
        let sender = SenderFunction::new(Sender::new(service, provider_refused));
        e.moto.front.chaos(Chaos {
            seed,
            lost_answers: 0.05,
            update_conflicts: 0.05,
            put_events_lost: 0.2,
            put_events_partial: 0.2,
            ..Chaos::default()
        });

        // The changes: 10 invited (one batch), 4 register, 2 STOP, 1 of them START.
        let users: Vec<Value> = numbers.iter().map(|n| json!({"phone_number": n})).collect();
        let body = json!({"app_id": DEMO_APP, "android_only": true, "users": users});
        let event = post_event(DEMO_DOMAIN, &body, &api_key_header(DEMO_USER, DEMO_KEY));
        let (status, answer) = response_parts(
            &e.api
                .handle(lambda_http::request::from_str(&event).unwrap())
                .await,
        );
        assert_eq!(status, 200, "{answer}");
        let batch_id = answer["batch_id"].as_str().unwrap().to_owned();
        let invited = answer["success_numbers"].as_array().unwrap().len();
        for _ in 0..60 {
            e.moto.deliver(&sender, &e.queue_url).await;
            if e.moto.queue_depth(&e.queue_url).await == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        for (i, n) in numbers[..4].iter().enumerate() {
            // As a worker would: again after a 503 or a 409 "try again".
            for _ in 0..10 {
                match e.register(n, &format!("worker{i}")).await {
                    201 => break,
                    _ if e
                        .store
                        .list_workers(DEMO_DOMAIN)
                        .await
                        .is_ok_and(|w| w.iter().any(|w| w.phone.as_str() == n.as_str())) =>
                    {
                        break;
                    }
                    _ => {}
                }
            }
        }
        let replies = [
            ("stop-a", numbers[4].as_str(), "STOP"),
            ("stop-b", numbers[5].as_str(), "STOP"),
            ("start-b", numbers[5].as_str(), "START"),
        ];
        for (id, from, text) in replies {
            // As Lambda redelivers a failed invocation.
            for _ in 0..10 {
                if e.replies
                    .handle_records(&sns_reply(id, from, text))
                    .await
                    .is_ok()
                {
                    break;
                }
            }
        }

        // The stream to the bus, one invocation in three of the events function killed a
        // few milliseconds in, until nothing is left to hand over.
        let (dead, invocations) = e
            .publish_with(10, |n| {
                (n as u64 + seed)
                    .is_multiple_of(3)
                    .then(|| std::time::Duration::from_millis(2 + (n as u64 * 7 + seed) % 10))
            })
            .await;
        let report = e.moto.front.calm();
        assert_eq!(dead, 0, "seed {seed}: no batch failed every try");

        // What the table says happened.
        let mut expected: BTreeMap<String, String> = BTreeMap::new();
        let workers = e.store.list_workers(DEMO_DOMAIN).await.unwrap();
        let mut settled = 0;
        for n in &numbers {
            let record = e
                .store
                .find(&PhoneNumber::parse(n).unwrap())
                .await
                .unwrap()
                .unwrap();
            let token = record.token.as_str();
            if workers.iter().any(|w| w.phone.as_str() == n.as_str()) {
                expected.insert(stable_id(&["registered", token]), format!("registered {n}"));
            }
            if record.status == smsreg::domain::RegistrationStatus::Failed {
                expected.insert(stable_id(&["failed", token]), format!("failed {n}"));
            }
            if record.sent_at.is_some()
                || record.status == smsreg::domain::RegistrationStatus::Failed
            {
                settled += 1;
            }
        }
        for (id, from, text) in replies {
            let kind = if text == "STOP" {
                "opted-out"
            } else {
                "opted-in"
            };
            expected.insert(stable_id(&[kind, from, id]), format!("{kind} {from}"));
        }
        if settled == invited {
            expected.insert(stable_id(&["batch-completed", &batch_id]), "batch".into());
        }

        // What reached the bus.
        let events = e.seen().await;
        assert_valid_events(&events);
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut ids_of_change: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for event in &events {
            let detail = &event["detail"];
            let id = detail["event_id"].as_str().unwrap().to_owned();
            *seen.entry(id.clone()).or_default() += 1;
            let subject = detail["phone_number"]
                .as_str()
                .or(detail["batch_id"].as_str())
                .unwrap()
                .to_owned();
            let kind = event["detail-type"].as_str().unwrap().to_owned();
            ids_of_change.entry((kind, subject)).or_default().insert(id);
        }
        let duplicates: usize = seen.values().map(|n| n - 1).sum();
        eprintln!(
            "seed {seed}: {} changes, {} events on the bus ({duplicates} duplicates), \
             {} invocations, faults {report:?}",
            expected.len(),
            events.len(),
            invocations,
        );
        for (id, change) in &expected {
            assert!(seen.contains_key(id), "seed {seed}: no event for {change}");
        }
        for id in seen.keys() {
            assert!(
                expected.contains_key(id),
                "seed {seed}: an event on the bus with no change behind it: {id}"
            );
        }
        for (change, ids) in &ids_of_change {
            assert_eq!(
                ids.len(),
                1,
                "seed {seed}: two ids for one change {change:?}"
            );
        }
        assert_eq!(workers.len(), 4, "seed {seed}");
        assert!(
            report.lost_answers + report.put_events_lost + report.put_events_partial > 0,
            "seed {seed}: faults were injected: {report:?}"
        );
    }
}
