//! Test helpers: a moto server per test, the demo project, event files.
#![allow(dead_code)]

pub mod eum;
pub mod fault_proxy;
pub mod gateway;
pub mod hq;
pub mod http1;
pub mod process;
pub mod runtime;
pub mod webdriver;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::config::Credentials;
use serde_json::{Value, json};
use smsreg::adapters::dynamodb::{DynamoStore, ProjectUpdate};
use smsreg::config::Config;
use smsreg::domain::project::hash_key;
use smsreg::domain::{ApiKey, App, Plan};
use smsreg::functions::sender::SenderFunction;
use smsreg::ports::{JobQueue, Outgoing, SmsError, SmsFailure, SmsProvider, Store};

pub const DEMO_DOMAIN: &str = "demo";
pub const DEMO_APP: &str = "abcd1234abcd1234";
pub const DEMO_USER: &str = "admin@demo.example";
pub const DEMO_KEY: &str = "demo-test-key-0123456789abcdef";
pub const VIEWER_USER: &str = "viewer@demo.example";
pub const VIEWER_KEY: &str = "viewer-test-key-0123456789abcdef";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The moto server the tests use: `MOTO_SERVER`, or the one `scripts/test` installs.
fn moto_executable() -> PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("scripts/moto-server"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A `moto_server` (DynamoDB and SNS) on a free port of 127.0.0.1, stopped on drop.
/// It panics, failing the test, when moto cannot start: these tests never skip.
/// `endpoint` is a proxy that hands moto one request at a time, for the isolation of
/// writes and transactions that DynamoDB gives and moto alone does not (see `fault_proxy`).
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub front: fault_proxy::FaultProxy,
}

/// One receive of up to 10 visible messages of `queue_url`, with the `SqsEvent` the event
/// source mapping would hand the sender for them (the messages stay on the queue).
pub async fn receive_event(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> (Vec<aws_sdk_sqs::types::Message>, SqsEvent) {
    let messages = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive from the send queue")
        .messages
        .unwrap_or_default();
    let arn = queue_arn(client, queue_url).await;
    let event = smsreg::tools::local_esm::sqs_event(&messages, &arn, "us-east-1");
    let event = serde_json::from_value(event).expect("a real SQS event");
    (messages, event)
}

/// The organisation's subscription: the bus `bus`, and a rule on it sending every event to
/// the queue `seen_url`.
pub async fn subscribe(aws: &aws_config::SdkConfig, bus: &str, seen_url: &str) {
    let eventbridge = aws_sdk_eventbridge::Client::new(aws);
    eventbridge
        .create_event_bus()
        .name(bus)
        .send()
        .await
        .unwrap();
    let seen_arn = queue_arn(&aws_sdk_sqs::Client::new(aws), seen_url).await;
    eventbridge
        .put_rule()
        .name("everything")
        .event_bus_name(bus)
        .event_pattern(r#"{"source": ["smsreg"]}"#)
        .send()
        .await
        .unwrap();
    eventbridge
        .put_targets()
        .rule("everything")
        .event_bus_name(bus)
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
}

/// The ARN of the queue at `queue_url`, as an event source mapping names it in its events.
pub async fn queue_arn(client: &aws_sdk_sqs::Client, queue_url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueArn)
        .send()
        .await
        .expect("the queue's attributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueArn))
        .expect("the queue's ARN")
}

impl Moto {
    pub fn start() -> Moto {
        let exe = moto_executable();
        assert!(
            exe.exists(),
            "moto_server not found at {}: run scripts/test, which installs it into .venv",
            exe.display()
        );
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&exe)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("moto_server starts");
            let endpoint = format!("http://127.0.0.1:{port}");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was taken meanwhile
                }
                if ureq::get(format!("{endpoint}/moto-api/data.json"))
                    .call()
                    .is_ok()
                {
                    let front = fault_proxy::FaultProxy::start(&endpoint);
                    return Moto {
                        child,
                        endpoint: front.endpoint.clone(),
                        front,
                    };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start");
    }

    /// The CommCare HQ stand-in (answered by the proxy, at [`Moto::endpoint`]).
    pub fn hq(&self) -> hq::Hq<'_> {
        self.front.hq()
    }

    /// AWS configuration pointing the real SDK clients at this server.
    pub async fn sdk_config(&self) -> SdkConfig {
        smsreg::adapters::aws_config_loader()
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .load()
            .await
    }

    /// Environment for a process (the admin CLI, the function) to use this server.
    pub fn env(&self, table: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("TABLE_NAME", table.into()),
        ]
    }

    /// Two fields of every SMS sent, oldest first: those moto recorded as published by
    /// SNS, then those the End User Messaging stand-in accepted (a test uses one provider).
    fn sms_fields(&self, first: &str, second: &str) -> Vec<(String, String)> {
        let mut sms = self.sns_sms_fields(first, second);
        let field = |m: &eum::TextMessage, name: &str| match name {
            "phone_number" => m.phone.clone(),
            "message" => m.message.clone(),
            "message_id" => m.message_id.clone(),
            _ => panic!("no field {name}"),
        };
        sms.extend(
            self.front
                .eum()
                .sent()
                .iter()
                .map(|m| (field(m, first), field(m, second))),
        );
        sms
    }

    /// Two fields of every SMS moto recorded as published, oldest first. Loudly, if
    /// moto's data changes shape: an empty list would pass every test that checks nothing
    /// was sent.
    fn sns_sms_fields(&self, first: &str, second: &str) -> Vec<(String, String)> {
        let body: Value = ureq::get(format!("{}/moto-api/data.json", self.endpoint))
            .call()
            .expect("moto data")
            .body_mut()
            .read_to_string()
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .expect("moto data is JSON");
        if body["sns"].is_null() {
            // SNS was never called: moto lists only the services in use.
            return Vec::new();
        }
        let shape = || format!("moto's data.json has changed shape: {}", body["sns"]);
        body["sns"]["SMS"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", shape()))
            .iter()
            .map(|sms| {
                let field = |name: &str| {
                    sms[name]
                        .as_str()
                        .unwrap_or_else(|| panic!("{}", shape()))
                        .to_owned()
                };
                (field(first), field(second))
            })
            .collect()
    }

    /// Every SMS moto recorded as published, as (phone number, message), oldest first.
    pub fn sms(&self) -> Vec<(String, String)> {
        self.sms_fields("phone_number", "message")
    }

    /// The SNS message id of every SMS moto recorded, as (phone number, message id).
    pub fn sms_ids(&self) -> Vec<(String, String)> {
        self.sms_fields("phone_number", "message_id")
    }

    pub fn sms_to(&self, phone: &str) -> Vec<String> {
        self.sms()
            .into_iter()
            .filter(|(to, _)| to == phone)
            .map(|(_, m)| m)
            .collect()
    }

    /// Creates a send queue `name` and its dead-letter queue (`name-dlq`), a job moving
    /// there after `max_attempts` receives; returns the queue's URL.
    pub async fn send_queue(&self, name: &str, max_attempts: u32) -> String {
        let aws = self.sdk_config().await;
        smsreg::adapters::sqs::create_queues(
            &aws_sdk_sqs::Client::new(&aws),
            name,
            max_attempts,
            30,
        )
        .await
        .expect("the send queue is created")
    }

    /// `config` with a send queue of its own (named after the table) and an SMS rate that
    /// does not slow the tests down.
    pub async fn queued(&self, config: Config) -> Config {
        let url = self.send_queue(&config.table_name, 3).await;
        Config {
            send_queue_url: Some(url),
            sms_rate_per_second: 1000,
            send_max_attempts: 3,
            ..config
        }
    }

    /// Hands every job visible on `queue_url` to the sender, as the event source mapping
    /// does (an SQS event in, the batch's failures out, the rest deleted), until none is
    /// left visible. Returns how many deliveries were made.
    pub async fn deliver<St: Store, Q: JobQueue, P: SmsProvider>(
        &self,
        sender: &SenderFunction<St, Q, P>,
        queue_url: &str,
    ) -> usize {
        let client = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        let mut delivered = 0;
        loop {
            let (messages, event) = receive_event(&client, queue_url).await;
            if messages.is_empty() {
                return delivered;
            }
            delivered += messages.len();
            let response = sender
                .handle_batch(&event, None)
                .await
                .expect("the sender answers");
            let failed: Vec<String> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            for m in &messages {
                if !m
                    .message_id()
                    .is_some_and(|id| failed.iter().any(|f| f == id))
                {
                    client
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .send()
                        .await
                        .expect("delete a delivered job");
                }
            }
        }
    }

    /// Puts a second copy of the first job on `queue_url`, as SQS may hand a job out twice.
    pub async fn duplicate_first_job(&self, queue_url: &str) {
        let client = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        let message = client
            .receive_message()
            .queue_url(queue_url)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap()
            .remove(0);
        client
            .send_message()
            .queue_url(queue_url)
            .message_body(message.body().unwrap())
            .send()
            .await
            .unwrap();
    }

    /// Messages on a queue (visible or in flight), per SQS's attributes.
    pub async fn queue_depth(&self, queue_url: &str) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let client = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        let out = client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let get = |name: &A| {
            out.attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        };
        get(&A::ApproximateNumberOfMessages) + get(&A::ApproximateNumberOfMessagesNotVisible)
    }

    /// Everything the tests can read of the table `table` and of moto (queues, topics,
    /// events, SMS) as text; not the user pools, which keep passwords as Cognito does
    /// (hashed there, as by AWS).
    pub async fn everything(&self, table: &str) -> String {
        let aws = self.sdk_config().await;
        let items = aws_sdk_dynamodb::Client::new(&aws)
            .scan()
            .table_name(table)
            .send()
            .await
            .expect("scan the table");
        let moto = ureq::get(format!("{}/moto-api/data.json", self.endpoint))
            .call()
            .expect("moto's data")
            .body_mut()
            .read_to_string()
            .expect("moto's data as text");
        let mut moto: Value = serde_json::from_str(&moto).expect("moto's data as JSON");
        if let Some(services) = moto.as_object_mut() {
            services.retain(|service, _| !service.contains("cognito"));
        }
        format!("{:?}{moto}", items.items())
    }

    pub async fn store(&self, table: &str) -> DynamoStore {
        let aws = self.sdk_config().await;
        DynamoStore::new(&aws, table)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An enabled project with no allow-list and the default daily limit.
pub fn project<'a>(
    domain: &'a str,
    display_name: Option<&'a str>,
    plan: Plan,
) -> ProjectUpdate<'a> {
    ProjectUpdate {
        accounts: None,
        languages: None,
        domain,
        plan,
        enabled: true,
        display_name,
        allowed_countries: None,
        daily_invitation_limit: None,
        smart_encoding: None,
        max_parts_per_sms: None,
        // Tests run at any hour: no send window unless a test sets one.
        send_window: Some(smsreg::domain::window::SendWindow::Any),
        max_price_per_part: None,
    }
}

/// Creates the table and the demo project: PRO, registration on, one app, an
/// editing key and a read-only key; plus `other`, a second project with its own key.
pub async fn provision_demo(store: &DynamoStore, install_url: Option<&str>) {
    store.create_table().await.expect("table created");
    store
        .put_project(&project(DEMO_DOMAIN, Some("Demo Health"), Plan::Pro))
        .await
        .unwrap();
    let app = App {
        id: DEMO_APP.into(),
        name: "Demo app".into(),
        install_url: install_url.map(str::to_owned),
    };
    assert!(store.put_app(DEMO_DOMAIN, &app).await.unwrap());
    for (user, key, edit) in [
        (DEMO_USER, DEMO_KEY, true),
        (VIEWER_USER, VIEWER_KEY, false),
    ] {
        store
            .put_key(
                &ApiKey {
                    username: user.into(),
                    domain: DEMO_DOMAIN.into(),
                    key_hash: hash_key(key),
                    can_edit_data: edit,
                },
                0,
            )
            .await
            .unwrap();
    }
    store
        .put_project(&project("other", None, Plan::Enterprise))
        .await
        .unwrap();
    let other_app = App {
        id: DEMO_APP.into(),
        name: "Other app".into(),
        install_url: None,
    };
    assert!(store.put_app("other", &other_app).await.unwrap());
    store
        .put_key(
            &ApiKey {
                username: "admin@other.example".into(),
                domain: "other".into(),
                key_hash: hash_key("other-test-key-0123456789abcdef"),
                can_edit_data: true,
            },
            0,
        )
        .await
        .unwrap();
}

/// An event file of `events/`, as text.
pub fn event(name: &str) -> String {
    let path = repo_root().join("events").join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A POST event of the create endpoint with a given body and Authorization header.
pub fn post_event(domain: &str, body: &Value, authorization: &str) -> String {
    let mut event: Value = serde_json::from_str(&event("create-simple")).unwrap();
    let path = format!("/a/{domain}/api/v0_5/sms_user_registration/");
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    event["body"] = body.to_string().into();
    event["headers"]["authorization"] = authorization.into();
    event.to_string()
}

/// The demo admin's POST of `body` to the create endpoint, with an `Idempotency-Key`.
/// The registration page's JSON POST of `form` for the invitation `token`.
pub fn register_request(domain: &str, token: &str, form: &Value) -> lambda_http::Request {
    let mut event: Value =
        serde_json::from_str(&post_event(domain, &json!({}), "none")).expect("an event");
    let path = format!("/a/{domain}/register/{token}");
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    event["headers"] = json!({"content-type": "application/json"});
    event["body"] = form.to_string().into();
    lambda_http::request::from_str(&event.to_string()).expect("a register request")
}

pub fn keyed_request(key: &str, body: &Value) -> lambda_http::Request {
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    let mut event: Value = serde_json::from_str(&post_event(DEMO_DOMAIN, body, &auth)).unwrap();
    event["headers"]["idempotency-key"] = key.into();
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

pub fn api_key_header(user: &str, key: &str) -> String {
    format!("ApiKey {user}:{key}")
}

/// Status and JSON body of a response.
pub fn response_parts(response: &lambda_http::Response<lambda_http::Body>) -> (u16, Value) {
    let body: &[u8] = response.body().as_ref();
    let json = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("the body is JSON: {:?}", String::from_utf8_lossy(body)));
    (response.status().as_u16(), json)
}

/// `n` US numbers from `+1617555<from>` on, skipping those moto's SNS reports opted out
/// (ending in 99), which the sender would rightly not text.
pub fn us_numbers(n: usize, from: usize) -> Vec<String> {
    (from..)
        .filter(|i| i % 100 != 99)
        .take(n)
        .map(|i| format!("+1617555{i:04}"))
        .collect()
}

/// A create or reinstall response without its `sms` summary, once it is checked: present
/// exactly when some number was queued, at least one SMS a queued number, at least one part
/// an SMS, in GSM-7 or UCS-2. (Its figures are tested where the texts are known.)
pub fn without_sms(mut body: Value) -> Value {
    let queued = body["success_numbers"].as_array().map_or(0, Vec::len);
    match body.as_object_mut().and_then(|o| o.remove("sms")) {
        Some(sms) => {
            assert!(queued > 0, "an sms summary without a queued number: {body}");
            let messages = sms["messages"].as_u64().expect("messages") as usize;
            let parts = sms["parts"].as_u64().expect("parts") as usize;
            assert!(messages >= queued && parts >= messages, "{sms}");
            assert!(
                sms["encoding"] == "GSM-7" || sms["encoding"] == "UCS-2",
                "{sms}"
            );
            sms_counts(&sms);
        }
        None => assert_eq!(queued, 0, "no sms summary for queued numbers: {body}"),
    }
    body
}

/// An SMS summary's counts, once its times are checked: `first_at` and `last_at` RFC 3339,
/// the first not after the last.
pub fn sms_counts(sms: &Value) -> Value {
    let time = |name: &str| {
        let text = sms[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {sms}"));
        text.parse::<jiff::Timestamp>()
            .unwrap_or_else(|e| panic!("{name} {text}: {e}"))
    };
    assert!(time("first_at") <= time("last_at"), "{sms}");
    let mut counts = sms.clone();
    let object = counts.as_object_mut().expect("an object");
    object.remove("first_at");
    object.remove("last_at");
    counts
}

/// A create response without its `batch_id` (random) and `sms` summary, once they are
/// checked: the batch id present, a token-like id, exactly when some number was queued.
pub fn without_batch_id(body: Value) -> Value {
    let mut body = without_sms(body);
    let queued = body["success_numbers"]
        .as_array()
        .is_some_and(|s| !s.is_empty());
    match body.as_object_mut().and_then(|o| o.remove("batch_id")) {
        Some(Value::String(id)) => {
            assert!(queued, "a batch id without a queued number: {body}");
            assert!(smsreg::domain::Token::is_well_formed(&id), "{id}");
        }
        Some(other) => panic!("batch_id is not a string: {other}"),
        None => assert!(!queued, "no batch id for queued numbers: {body}"),
    }
    body
}

/// An SNS event carrying one reply, as End User Messaging publishes it to the replies
/// topic.
pub fn sns_reply(id: &str, from: &str, body: &str) -> aws_lambda_events::event::sns::SnsEvent {
    let message = serde_json::json!({
        "originationNumber": from,
        "destinationNumber": "+18005550100",
        "messageKeyword": "KEYWORD_123456789012",
        "messageBody": body,
        "inboundMessageId": id,
    });
    let event = serde_json::json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:replies:1",
        "Sns": {
            "Type": "Notification",
            "MessageId": id,
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:replies",
            "Subject": null,
            "Message": message.to_string(),
            "Timestamp": "2026-12-03T00:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "x",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/x.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {}
        }
    }]});
    serde_json::from_value(event).expect("an SNS event")
}

/// Real SNS (on moto), except SMS to the numbers in `failing`, which it answers with
/// `failure` (and `code`) without sending: moto offers no way to make SNS refuse.
#[derive(Clone)]
pub struct FailingFor {
    pub inner: smsreg::adapters::sns::SnsSms,
    pub failing: Vec<String>,
    pub failure: SmsFailure,
    pub code: &'static str,
}

impl FailingFor {
    /// SNS throttling the numbers in `failing` (retried, then given up).
    pub fn throttling(inner: smsreg::adapters::sns::SnsSms, failing: &[&str]) -> Self {
        FailingFor {
            inner,
            failing: failing.iter().map(|s| s.to_string()).collect(),
            failure: SmsFailure::Throttled,
            code: "Throttling",
        }
    }

    /// SNS refusing the numbers in `failing` for good (an invalid parameter).
    pub fn refusing(inner: smsreg::adapters::sns::SnsSms, failing: &[&str]) -> Self {
        FailingFor {
            failure: SmsFailure::Refused,
            code: "InvalidParameter",
            ..FailingFor::throttling(inner, failing)
        }
    }
}

impl SmsProvider for FailingFor {
    fn opt_out_checks_per_second(&self) -> Option<u32> {
        self.inner.opt_out_checks_per_second()
    }

    async fn send(&self, sms: &Outgoing<'_>) -> Result<String, SmsError> {
        if self.failing.iter().any(|f| f == sms.to.as_str()) {
            return Err(SmsError::new(self.failure, self.code));
        }
        self.inner.send(sms).await
    }

    async fn is_opted_out(&self, to: &smsreg::domain::PhoneNumber) -> Result<bool, SmsError> {
        self.inner.is_opted_out(to).await
    }

    fn read_report(line: &str) -> Option<smsreg::domain::receipt::DeliveryReport> {
        smsreg::adapters::sns::SnsSms::read_report(line)
    }
}

/// Checks every event against docs/events.schema.json with the venv's jsonschema.
pub fn assert_valid_events(events: &[Value]) {
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
