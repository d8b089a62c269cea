//! Delivery receipts, batch progress and the day's usage: SNS's delivery status log
//! replayed from `events/logs/` through the real `smsreg-receipts` binary (under the
//! Runtime API stand-in), against moto, after a batch went through the API and the sender.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::process::Process;
use common::runtime::RuntimeApi;
use common::*;
use serde_json::{Value, json};
use smsreg::config::Config;

const TABLE: &str = "sms-registration-receipts";
const A: &str = "+16175551234";
const B: &str = "+16175555512";
const C: &str = "+16175550123";
/// moto's SNS has numbers ending in 99 opted out: the sender texts it nothing.
const OUT: &str = "+16175550199";
/// The message ids the fixtures carry.
const FIXTURE_DELIVERED: &str = "5e1c0d1a-7f3b-5c2d-9e4f-000000000001";
const FIXTURE_FAILED: &str = "5e1c0d1a-7f3b-5c2d-9e4f-000000000002";

/// A fixture of `events/logs/`, with its message id replaced by `id` (that of an SMS the
/// sender sent here), packed again as CloudWatch Logs does.
fn fixture(name: &str, replace: Option<(&str, &str)>) -> String {
    let path = repo_root().join("events/logs").join(format!("{name}.json"));
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let packed = STANDARD
        .decode(event["awslogs"]["data"].as_str().unwrap())
        .unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&packed[..])
        .read_to_string(&mut text)
        .unwrap();
    if let Some((from, to)) = replace {
        assert!(text.contains(from), "{name} carries {from}");
        text = text.replace(from, to);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    json!({"awslogs": {"data": STANDARD.encode(gz.finish().unwrap())}}).to_string()
}

fn admin(moto: &Moto, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_smsreg-admin"))
        .args(args)
        .envs(moto.env(TABLE))
        .output()
        .expect("smsreg-admin runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The listing's object for `phone`.
fn listed(listing: &Value, phone: &str) -> Value {
    listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["phone_number"] == phone)
        .unwrap_or_else(|| panic!("{phone} listed: {listing}"))
        .clone()
}

/// A GET of the API with `path` (after `/a/demo/api/v0_5/`) and `query`.
fn get(path: &str, query: &str) -> lambda_http::Request {
    let mut event: Value = serde_json::from_str(&post_event(
        DEMO_DOMAIN,
        &json!({}),
        &api_key_header(VIEWER_USER, VIEWER_KEY),
    ))
    .unwrap();
    let path = format!("/a/{DEMO_DOMAIN}/api/v0_5/{path}");
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["method"] = "GET".into();
    event["rawQueryString"] = query.into();
    event.as_object_mut().unwrap().remove("body");
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// The registration page of `token`: GET, or POST of a JSON form.
fn page(method: &str, token: &str, form: Option<&Value>) -> lambda_http::Request {
    let mut event: Value =
        serde_json::from_str(&post_event(DEMO_DOMAIN, &json!({}), "none")).unwrap();
    let path = format!("/a/{DEMO_DOMAIN}/register/{token}");
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["method"] = method.into();
    event["headers"] = json!({"content-type": "application/json"});
    event["body"] = form.map_or(String::new(), Value::to_string).into();
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_counts_through_sent_opened_registered_and_its_receipts() {
    let moto = Moto::start();
    let store = moto.store(TABLE).await;
    provision_demo(&store, None).await;
    let aws = moto.sdk_config().await;
    let config = moto
        .queued(Config {
            table_name: TABLE.into(),
            public_base_url: "https://sms.example.org".into(),
            ..Config::default()
        })
        .await;
    let queue_url = config.send_queue_url.clone().unwrap();
    let api = smsreg::wiring::aws_api_with(&aws, config.clone()).unwrap();
    let sender = smsreg::wiring::aws_sender_with(&aws, config).unwrap();

    let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": A}, {"phone_number": B}, {"phone_number": C}, {"phone_number": OUT}]});
    let request = lambda_http::request::from_str(&post_event(
        DEMO_DOMAIN,
        &body,
        &api_key_header(DEMO_USER, DEMO_KEY),
    ))
    .unwrap();
    let (status, report) = response_parts(&api.handle(request).await);
    assert_eq!(status, 200, "{report}");
    let batch = report["batch_id"].as_str().expect("a batch id").to_owned();
    let progress_path = format!("sms_user_registration/batches/{batch}/");
    let progress = |response: lambda_http::Response<lambda_http::Body>| {
        let (status, body) = response_parts(&response);
        assert_eq!(status, 200, "{body}");
        body
    };
    let counts = progress(api.handle(get(&progress_path, "")).await);
    assert_eq!(
        (counts["queued"].as_u64(), counts["sent"].as_u64()),
        (Some(4), Some(0))
    );

    moto.deliver(&sender, &queue_url).await;
    let counts = progress(api.handle(get(&progress_path, "")).await);
    assert_eq!(
        (counts["sent"].as_u64(), counts["opted_out"].as_u64()),
        (Some(3), Some(1)),
        "{counts}"
    );

    // A opens the link and registers; B opens it only.
    let token_of = |phone: &str| {
        let store = store.clone();
        let phone = smsreg::domain::PhoneNumber::parse(phone).unwrap();
        async move {
            use smsreg::ports::InvitationStore;
            store
                .find(&phone)
                .await
                .unwrap()
                .unwrap()
                .token
                .as_str()
                .to_owned()
        }
    };
    let (token_a, token_b) = (token_of(A).await, token_of(B).await);
    for token in [&token_a, &token_a, &token_b] {
        assert_eq!(api.handle(page("GET", token, None)).await.status(), 200);
    }
    let form =
        json!({"username": "jane", "password": "correct horse", "password2": "correct horse"});
    assert_eq!(
        api.handle(page("POST", &token_a, Some(&form)))
            .await
            .status(),
        201
    );
    let counts = progress(api.handle(get(&progress_path, "")).await);
    assert_eq!(
        (counts["opened"].as_u64(), counts["registered"].as_u64()),
        (Some(2), Some(1)),
        "{counts}"
    );

    // SNS's delivery status log, replayed through the receipts function.
    let ids: std::collections::HashMap<String, String> = moto.sms_ids().into_iter().collect();
    let runtime = RuntimeApi::start(60_000);
    let mut env = moto.env(TABLE);
    env.extend(runtime.env());
    env.push(("PUBLIC_BASE_URL", "https://sms.example.org".into()));
    let function = Process::start(env!("CARGO_BIN_EXE_smsreg-receipts"), "receipts", &env, &[]);
    let invoke = |event: String| {
        let raw = runtime
            .invoke(&event, Duration::from_secs(60))
            .unwrap_or_else(|e| {
                panic!(
                    "the receipts function answers: {e}\n{}",
                    function.log_text()
                )
            });
        serde_json::from_str::<Value>(&raw).unwrap()
    };
    let delivered = fixture("delivered", Some((FIXTURE_DELIVERED, &ids[A])));
    let failed = fixture("failed", Some((FIXTURE_FAILED, &ids[B])));
    assert_eq!(invoke(delivered.clone())["delivered"], 1);
    assert_eq!(invoke(failed)["failed"], 1);
    let unknown = invoke(fixture("unknown-id", None));
    assert_eq!(
        (unknown["unknown"].as_u64(), unknown["delivered"].as_u64()),
        (Some(1), Some(0))
    );
    let malformed = invoke(fixture("malformed", None));
    assert_eq!(
        malformed["malformed"], 2,
        "malformed lines are skipped, the batch succeeds"
    );
    // CloudWatch Logs checking the destination: no receipt, and nothing malformed.
    let control = invoke(fixture("control-message", None));
    assert_eq!(control, json!({"control_message": true}));
    // Delivered again (CloudWatch Logs retries): recorded once.
    let again = invoke(delivered);
    assert_eq!(
        (again["duplicate"].as_u64(), again["delivered"].as_u64()),
        (Some(1), Some(0))
    );

    let counts = progress(api.handle(get(&progress_path, "")).await);
    assert_eq!(
        counts,
        json!({"batch_id": batch, "queued": 4, "scheduled": 0, "sent": 3, "delivered": 1, "delivery_failed": 1,
               "send_failed": 0, "opted_out": 1, "opened": 2, "registered": 1,
               "accounts_created": 0, "accounts_failed": 0,
               "parts_sent": 3, "parts_delivered": 1})
    );
    let (_, listing) = response_parts(&api.handle(get("sms_user_registration/", "")).await);
    let by_phone = |phone: &str| listed(&listing, phone);
    assert_eq!(by_phone(A)["delivery"], "delivered");
    assert!(by_phone(A)["delivered_at"].is_string());
    assert!(by_phone(A)["opened_at"].is_string());
    assert_eq!(by_phone(B)["delivery"], "failed");
    assert_eq!(
        by_phone(B)["delivery_detail"],
        "Unknown error attempting to reach phone"
    );
    assert_eq!(by_phone(C)["delivery"], "unknown");
    assert!(by_phone(C)["opened_at"].is_null());
    // Each invitation's own parts: one sent each, A's delivered.
    let parts = |phone: &str| {
        let o = by_phone(phone);
        (o["parts_sent"].as_u64(), o["parts_delivered"].as_u64())
    };
    assert_eq!(parts(A), (Some(1), Some(1)));
    assert_eq!(parts(B), (Some(1), Some(0)));
    assert_eq!(parts(C), (Some(1), Some(0)));
    let (_, failed_only) = response_parts(
        &api.handle(get("sms_user_registration/", "delivery=failed"))
            .await,
    );
    let phones: Vec<&str> = failed_only["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["phone_number"].as_str().unwrap())
        .collect();
    assert_eq!(phones, [B]);
    let (_, opened_not_registered) = response_parts(
        &api.handle(get("sms_user_registration/", "status=pending&opened=true"))
            .await,
    );
    let phones: Vec<&str> = opened_not_registered["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["phone_number"].as_str().unwrap())
        .collect();
    assert_eq!(phones, [B], "who opened but did not register");

    // Another project's key cannot see the batch.
    let mut other: Value = serde_json::from_str(&post_event(
        "other",
        &json!({}),
        &api_key_header("admin@other.example", "other-test-key-0123456789abcdef"),
    ))
    .unwrap();
    let path = format!("/a/other/api/v0_5/{progress_path}");
    other["rawPath"] = path.clone().into();
    other["requestContext"]["http"]["path"] = path.into();
    other["requestContext"]["http"]["method"] = "GET".into();
    other.as_object_mut().unwrap().remove("body");
    let response = api
        .handle(lambda_http::request::from_str(&other.to_string()).unwrap())
        .await;
    assert_eq!(response.status(), 404);

    // The day's usage, as the admin CLI prints it.
    let usage: Value = serde_json::from_str(admin(&moto, &["usage", DEMO_DOMAIN]).trim()).unwrap();
    assert_eq!(
        (
            usage["invitations"].as_u64(),
            usage["sms_sent"].as_u64(),
            usage["delivered"].as_u64(),
            usage["delivery_failed"].as_u64(),
            usage["parts_sent"].as_u64(),
            usage["parts_delivered"].as_u64()
        ),
        (Some(4), Some(3), Some(1), Some(1), Some(3), Some(1)),
        "{usage}"
    );
    assert!(
        (usage["price_usd"].as_f64().unwrap() - 0.00581).abs() < 1e-9,
        "{usage}"
    );
    let failed_cli = admin(
        &moto,
        &["list-invitations", DEMO_DOMAIN, "--delivery", "failed"],
    );
    assert_eq!(failed_cli.lines().count(), 1);
    assert!(failed_cli.contains(B));

    // The function's metrics: one EMF object per batch, no phone number in any.
    let log = function.log_text();
    let emf: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 5, "{log}");
    for object in &emf {
        let declared = &object["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "SmsRegistration");
        assert_eq!(declared["Dimensions"], json!([["Function"]]));
        assert_eq!(object["Function"], "receipts");
        for metric in declared["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            let unit = if name == "SmsPriceUSD" {
                "None"
            } else {
                "Count"
            };
            assert_eq!(metric["Unit"], unit, "{name}");
            assert!(object[name].is_number(), "{name} has a value");
        }
        let text = object.to_string();
        assert!(
            !text.contains("+1617") && !text.contains("16175"),
            "no phone number: {text}"
        );
    }
    let total = |name: &str| emf.iter().map(|o| o[name].as_f64().unwrap()).sum::<f64>();
    assert_eq!(
        (total("ReceiptsDelivered"), total("ReceiptsFailed")),
        (1.0, 1.0)
    );
    assert_eq!(
        (total("ReceiptsUnknown"), total("ReceiptsMalformed")),
        (1.0, 2.0)
    );
    assert!(
        !log.contains(A) && !log.contains(B),
        "no phone number in the logs"
    );
}

#[tokio::test]
async fn a_log_batch_that_failed_every_try_is_replayed_from_its_queue_by_the_admin_cli() {
    let moto = Moto::start();
    let store = moto.store(TABLE).await;
    provision_demo(&store, None).await;
    let aws = moto.sdk_config().await;
    let config = moto
        .queued(Config {
            table_name: TABLE.into(),
            ..Config::default()
        })
        .await;
    let queue_url = config.send_queue_url.clone().unwrap();
    let api = smsreg::wiring::aws_api_with(&aws, config.clone()).unwrap();
    let sender = smsreg::wiring::aws_sender_with(&aws, config).unwrap();
    let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": C}]});
    let request = lambda_http::request::from_str(&post_event(
        DEMO_DOMAIN,
        &body,
        &api_key_header(DEMO_USER, DEMO_KEY),
    ))
    .unwrap();
    assert_eq!(api.handle(request).await.status(), 200);
    moto.deliver(&sender, &queue_url).await;
    let ids: std::collections::HashMap<String, String> = moto.sms_ids().into_iter().collect();

    // What Lambda's on-failure destination keeps of a batch that failed every try: the
    // invocation record, with the whole event under requestPayload.
    let event: Value =
        serde_json::from_str(&fixture("delivered", Some((FIXTURE_DELIVERED, &ids[C])))).unwrap();
    let record = json!({
        "version": "1.0",
        "timestamp": "2026-12-03T06:00:00.000Z",
        "requestContext": {"requestId": "r-1", "condition": "RetriesExhausted", "approximateInvokeCount": 3,
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:smsreg-receipts:$LATEST"},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "StoreError", "errorMessage": "the store is unavailable"}
    });
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let failed_queue = sqs
        .create_queue()
        .queue_name("receipts-failed")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for body in [record.to_string(), "not an invocation record".to_owned()] {
        sqs.send_message()
            .queue_url(&failed_queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    let replayed: Value = serde_json::from_str(
        admin(&moto, &["replay-receipts", "--queue-url", &failed_queue]).trim(),
    )
    .unwrap();
    assert_eq!(
        (
            replayed["batches"].as_u64(),
            replayed["delivered"].as_u64(),
            replayed["left_on_queue"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{replayed}"
    );
    let usage: Value = serde_json::from_str(admin(&moto, &["usage", DEMO_DOMAIN]).trim()).unwrap();
    assert_eq!(usage["delivered"].as_u64(), Some(1), "{usage}");
    // The batch is off the queue: replayed again, nothing is recorded twice.
    let again: Value = serde_json::from_str(
        admin(&moto, &["replay-receipts", "--queue-url", &failed_queue]).trim(),
    )
    .unwrap();
    assert_eq!(again["batches"].as_u64(), Some(0), "{again}");
    let usage: Value = serde_json::from_str(admin(&moto, &["usage", DEMO_DOMAIN]).trim()).unwrap();
    assert_eq!(usage["delivered"].as_u64(), Some(1), "{usage}");
}

/// End User Messaging's delivery events (its configuration set's CloudWatch Logs event
/// destination, in AWS's documented format) replayed from `events/logs/eum-*.json` through
/// the real receipts function: delivered, failed with the event type as the reason, or not
/// final (skipped until the final one comes); price and parts recorded in the same
/// listing, batch progress and usage as SNS's.
#[tokio::test(flavor = "multi_thread")]
async fn end_user_messagings_delivery_events_are_recorded_as_sns_receipts_are() {
    let moto = Moto::start();
    let store = moto.store(TABLE).await;
    provision_demo(&store, None).await;
    let aws = moto.sdk_config().await;
    let config = moto
        .queued(Config {
            table_name: TABLE.into(),
            sms_provider: smsreg::config::Provider::EndUserMessaging,
            ..Config::default()
        })
        .await;
    let queue_url = config.send_queue_url.clone().unwrap();
    let api = smsreg::wiring::aws_api_with(&aws, config.clone()).unwrap();
    let sender = smsreg::wiring::aws_sender_with(&aws, config).unwrap();
    let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": A}, {"phone_number": B}, {"phone_number": C}]});
    let request = lambda_http::request::from_str(&post_event(
        DEMO_DOMAIN,
        &body,
        &api_key_header(DEMO_USER, DEMO_KEY),
    ))
    .unwrap();
    let (status, report) = response_parts(&api.handle(request).await);
    assert_eq!(status, 200, "{report}");
    let batch = report["batch_id"].as_str().unwrap().to_owned();
    moto.deliver(&sender, &queue_url).await;
    let ids: std::collections::HashMap<String, String> = moto.sms_ids().into_iter().collect();
    assert_eq!(
        moto.front.eum().sent().len(),
        3,
        "sent through End User Messaging"
    );

    let runtime = RuntimeApi::start(60_000);
    let mut env = moto.env(TABLE);
    env.extend(runtime.env());
    env.push(("SMS_PROVIDER", "end-user-messaging".into()));
    let function = Process::start(
        env!("CARGO_BIN_EXE_smsreg-receipts"),
        "receipts-eum",
        &env,
        &[],
    );
    let invoke = |event: String| {
        let raw = runtime
            .invoke(&event, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}\n{}", function.log_text()));
        serde_json::from_str::<Value>(&raw).unwrap()
    };
    let id = |n: u8| format!("6d1e7c2a-0b3f-4c5d-8e9f-00000000000{n}");
    let delivered = invoke(fixture("eum-delivered", Some((&id(1), &ids[A]))));
    assert_eq!(delivered["delivered"], 1, "{delivered}");
    let blocked = invoke(fixture("eum-carrier-blocked", Some((&id(2), &ids[B]))));
    assert_eq!(blocked["failed"], 1, "{blocked}");
    let interim = invoke(fixture("eum-not-final", Some((&id(3), &ids[C]))));
    assert_eq!(
        (interim["not_final"].as_u64(), interim["malformed"].as_u64()),
        (Some(1), Some(0)),
        "{interim}"
    );
    let (_, listing) = response_parts(&api.handle(get("sms_user_registration/", "")).await);
    let by_phone = |phone: &str| listed(&listing, phone);
    assert_eq!(
        by_phone(C)["delivery"],
        "unknown",
        "not final: no receipt yet"
    );
    let expired = invoke(fixture("eum-ttl-expired", Some((&id(3), &ids[C]))));
    assert_eq!(expired["failed"], 1, "{expired}");

    let (_, listing) = response_parts(&api.handle(get("sms_user_registration/", "")).await);
    let by_phone = |phone: &str| listed(&listing, phone);
    assert_eq!(by_phone(A)["delivery"], "delivered");
    assert_eq!(by_phone(B)["delivery"], "failed");
    assert_eq!(
        by_phone(B)["delivery_detail"],
        "TEXT_CARRIER_BLOCKED: Blocked as spam by carrier"
    );
    assert_eq!(by_phone(C)["delivery"], "failed");
    assert!(
        by_phone(C)["delivery_detail"]
            .as_str()
            .unwrap()
            .starts_with("TEXT_TTL_EXPIRED"),
        "{}",
        by_phone(C)
    );
    let (_, progress) = response_parts(
        &api.handle(get(&format!("sms_user_registration/batches/{batch}/"), ""))
            .await,
    );
    assert_eq!(
        (
            progress["sent"].as_u64(),
            progress["delivered"].as_u64(),
            progress["delivery_failed"].as_u64(),
            progress["parts_delivered"].as_u64()
        ),
        (Some(3), Some(1), Some(2), Some(1)),
        "{progress}"
    );
    let usage: Value = serde_json::from_str(admin(&moto, &["usage", DEMO_DOMAIN]).trim()).unwrap();
    assert_eq!(
        (
            usage["delivered"].as_u64(),
            usage["delivery_failed"].as_u64()
        ),
        (Some(1), Some(2)),
        "{usage}"
    );
    // The price of each event, as End User Messaging gave it (0.00581 a part).
    let cost = usage["price_usd"].as_f64().unwrap();
    assert!((cost - 3.0 * 0.00581).abs() < 1e-9, "{usage}");
}
