//! The real `smsreg-api` binary, run as Lambda runs it (Runtime API, `AWS_LAMBDA_*`),
//! provisioned with the real `smsreg-admin`, against moto: a black-box check.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::Process;
use common::runtime::RuntimeApi;
use common::*;
use serde_json::{Value, json};
use smsreg::ports::InvitationStore;

const TABLE: &str = "sms-registration-lambda";

fn admin(moto: &Moto, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smsreg-admin"))
        .args(args)
        .envs(moto.env(TABLE))
        .output()
        .expect("smsreg-admin runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A binary of the project under `runtime`, on moto's table and `queue_url`.
fn start_binary(
    exe: &str,
    label: &str,
    moto: &Moto,
    runtime: &RuntimeApi,
    queue_url: &str,
    args: &[&str],
) -> Process {
    let mut env = moto.env(TABLE);
    env.extend(runtime.env());
    env.push(("SEND_QUEUE_URL", queue_url.to_owned()));
    env.push(("PUBLIC_BASE_URL", "https://sms.example.org".to_owned()));
    Process::start(exe, label, &env, args)
}

/// The table, the demo project (PRO, registration on, no send window: the tests run at
/// any hour), its app, a key and the send queue, made with the admin CLI as an operator
/// would; returns the key's header value and the queue's URL.
fn provision(moto: &Moto) -> (String, String) {
    assert!(admin(moto, &["create-table"]).0);
    assert!(
        admin(
            moto,
            &[
                "put-domain",
                "demo",
                "--plan",
                "PRO",
                "--enable",
                "--display-name",
                "Demo Health",
                "--send-window",
                "any"
            ]
        )
        .0
    );
    assert!(admin(moto, &["put-app", "demo", DEMO_APP, "--name", "Demo app"]).0);
    let (ok, key_line, _) = admin(moto, &["create-key", "demo", "ops@demo.example"]);
    assert!(ok);
    let (ok, queue_out, _) = admin(moto, &["create-queue"]);
    assert!(ok);
    let queue_url = queue_out.lines().last().unwrap().trim().to_owned();
    (key_line.trim().to_owned(), queue_url)
}

/// Status, headers and JSON body of an API Gateway v2 response.
fn parse_response(raw: &str) -> (u16, Value, Value) {
    let response: Value = serde_json::from_str(raw).expect("the function answers JSON");
    let body: Value =
        serde_json::from_str(response["body"].as_str().unwrap()).expect("a JSON body");
    (
        response["statusCode"].as_u64().unwrap() as u16,
        response["headers"].clone(),
        body,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bootstrap_serves_the_contract_under_the_lambda_runtime_api() {
    let moto = Moto::start();
    let (key_line, queue_url) = provision(&moto);
    let runtime = RuntimeApi::start(30_000);
    let function = start_binary(
        env!("CARGO_BIN_EXE_smsreg-api"),
        "api",
        &moto,
        &runtime,
        &queue_url,
        &[],
    );
    // The sender under a runtime API of its own, fed by the local mapping as on AWS.
    let sender_runtime = RuntimeApi::start(60_000);
    let _sender = start_binary(
        env!("CARGO_BIN_EXE_smsreg-sender"),
        "sender",
        &moto,
        &sender_runtime,
        &queue_url,
        &[],
    );
    let invoke_url = sender_runtime.invoke_url("smsreg-sender");
    let _mapping = start_binary(
        env!("CARGO_BIN_EXE_smsreg-local-esm"),
        "mapping",
        &moto,
        &sender_runtime,
        &queue_url,
        &["--invoke-url", &invoke_url],
    );
    let simple = json!({"app_id": DEMO_APP, "users": [{"phone_number": "+16175551234"}]});
    let auth = format!("ApiKey {key_line}");

    let raw = runtime
        .invoke(&post_event("demo", &simple, &auth), Duration::from_secs(60))
        .expect("the invocation succeeds");
    let (status, headers, body) = parse_response(&raw);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        without_batch_id(body),
        json!({"success_numbers": ["+16175551234"], "invalid_format_numbers": [], "numbers_in_use": [], "error_numbers": [], "opted_out_numbers": []})
    );
    // Queued by the API, texted by the sender within seconds.
    let waited = std::time::Instant::now();
    while moto.sms_to("+16175551234").is_empty() && waited.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(moto.sms_to("+16175551234").len(), 1);

    // Same runtime, next invocation: a wrong key gets 401 with its challenge.
    let raw = runtime
        .invoke(
            &post_event("demo", &simple, "ApiKey ops@demo.example:wrong"),
            Duration::from_secs(30),
        )
        .unwrap();
    let (status, headers, body) = parse_response(&raw);
    assert_eq!(status, 401);
    // ApiKey alone: a Basic challenge would have a browser cache the credentials.
    assert_eq!(
        headers["www-authenticate"],
        "ApiKey realm=\"sms-registration\""
    );
    assert!(body["error"].is_string());

    // A body not declared as JSON (a cross-site text/plain form, or no Content-Type):
    // 415, whatever the credentials, and nobody is invited.
    let other = json!({"app_id": DEMO_APP, "users": [{"phone_number": "+16175555512"}]});
    for (content_type, authorization) in [
        (Some("text/plain"), auth.as_str()),
        (Some("text/plain"), "ApiKey ops@demo.example:wrong"),
        (None, auth.as_str()),
    ] {
        let mut event: Value =
            serde_json::from_str(&post_event("demo", &other, authorization)).unwrap();
        let headers = event["headers"].as_object_mut().unwrap();
        headers.remove("content-type");
        if let Some(content_type) = content_type {
            headers.insert("content-type".into(), content_type.into());
        }
        let raw = runtime
            .invoke(&event.to_string(), Duration::from_secs(30))
            .unwrap();
        let (status, headers, body) = parse_response(&raw);
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert_eq!(headers["content-type"], "application/json");
        assert!(body["error"].as_str().unwrap().contains("application/json"));
    }
    let (ok, all, _) = admin(&moto, &["list-invitations", "demo"]);
    assert!(ok);
    assert!(all.contains("+16175551234"), "{all}");
    assert!(
        !all.contains("+16175555512"),
        "invited by a refused request:\n{all}"
    );

    // The listing of the admin CLI shows the invitation.
    let (ok, listing, _) = admin(&moto, &["list-invitations", "demo", "--status", "pending"]);
    assert!(ok);
    let line: Value = serde_json::from_str(listing.lines().next().unwrap()).unwrap();
    assert_eq!(line["phone_number"], "+16175551234");

    // Logs: JSON lines with the request id and the domain; no number, key or link in clear.
    drop(runtime);
    let logs = function.log_text();
    drop(function);
    let key = key_line.split_once(':').unwrap().1;
    for secret in [
        "+16175551234",
        "6175551234",
        key,
        "/register/",
        "Demo Health invites",
    ] {
        assert!(!logs.contains(secret), "the logs hold {secret:?}:\n{logs}");
    }
    let handled: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "invitations recorded and queued")
        .collect();
    assert_eq!(handled.len(), 1, "{logs}");
    assert_eq!(handled[0]["span"]["request_id"], "invocation-1");
    assert_eq!(handled[0]["span"]["domain"], "demo");
    assert_eq!(handled[0]["fields"]["success"], 1);
}

/// An API Gateway v2 event for the registration page of `token` in `domain`.
fn page_event(method: &str, token: &str, content_type: &str, body: &str) -> String {
    let mut event: Value =
        serde_json::from_str(&post_event("demo", &json!({}), "none")).expect("an event");
    let path = format!("/a/demo/register/{token}");
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["method"] = method.into();
    event["headers"] = json!({"content-type": content_type, "host": "sms.example.org"});
    event["body"] = body.into();
    event.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_disabled_with_the_admin_cli_closes_its_pending_links() {
    let moto = Moto::start();
    let provision: [&[&str]; 3] = [
        &["create-table"],
        &[
            "put-domain",
            "demo",
            "--plan",
            "PRO",
            "--enable",
            "--send-window",
            "any",
        ],
        &["put-app", "demo", DEMO_APP, "--name", "Demo app"],
    ];
    for args in provision {
        assert!(admin(&moto, args).0, "{args:?}");
    }
    let (ok, key_line, _) = admin(&moto, &["create-key", "demo", "ops@demo.example"]);
    assert!(ok);
    let (ok, queue_out, _) = admin(&moto, &["create-queue"]);
    assert!(ok);
    let queue_url = queue_out.lines().last().unwrap().trim().to_owned();
    let runtime = RuntimeApi::start(30_000);
    let _function = start_binary(
        env!("CARGO_BIN_EXE_smsreg-api"),
        "api",
        &moto,
        &runtime,
        &queue_url,
        &[],
    );
    let invite = json!({"app_id": DEMO_APP, "users": [{"phone_number": "+16175551234"}]});
    let auth = format!("ApiKey {}", key_line.trim());
    let raw = runtime
        .invoke(&post_event("demo", &invite, &auth), Duration::from_secs(60))
        .expect("the invocation succeeds");
    assert_eq!(parse_response(&raw).0, 200);
    let store = moto.store(TABLE).await;
    let phone = smsreg::domain::PhoneNumber::parse("+16175551234").unwrap();
    let before = store.find(&phone).await.unwrap().expect("the invitation");
    let token = before.token.as_str().to_owned();

    // GIVEN the operator turns the feature off
    assert!(admin(&moto, &["put-domain", "demo", "--plan", "PRO", "--disable"]).0);

    // WHEN the worker opens the link and submits the form, as a page and as JSON
    let answers = [
        page_event("GET", &token, "", ""),
        page_event(
            "POST",
            &token,
            "application/x-www-form-urlencoded",
            "username=jane&password=12345678&password2=12345678",
        ),
        page_event(
            "POST",
            &token,
            "application/json",
            r#"{"username": "jane", "password": "12345678", "password2": "12345678"}"#,
        ),
    ]
    .map(|event| {
        let raw = runtime
            .invoke(&event, Duration::from_secs(30))
            .expect("the invocation succeeds");
        let response: Value = serde_json::from_str(&raw).expect("the function answers JSON");
        (
            response["statusCode"].as_u64().unwrap(),
            response["body"].as_str().unwrap_or_default().to_owned(),
        )
    });

    // THEN each answer is 403 saying registration is closed, and nothing is written
    for (status, body) in &answers {
        assert_eq!(*status, 403, "{body}");
        assert!(body.contains("Registration is closed"), "{body}");
    }
    assert!(answers[0].1.contains("<html"), "the GET is a page");
    let token_error: Value = serde_json::from_str(&answers[2].1).expect("a JSON answer");
    assert!(token_error["errors"]["token"].is_string(), "{token_error}");
    let after = store.find(&phone).await.unwrap().expect("the invitation");
    assert_eq!(after, before, "neither registered nor marked opened");
    let (ok, workers, _) = admin(&moto, &["list-workers", "demo"]);
    assert!(ok);
    assert!(!workers.contains("jane"), "{workers}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_events_bootstrap_puts_the_outbox_on_the_bus_under_the_lambda_runtime_api() {
    let moto = Moto::start();
    let (key_line, queue_url) = provision(&moto);
    let aws = moto.sdk_config().await;
    let seen_url = aws_sdk_sqs::Client::new(&aws)
        .create_queue()
        .queue_name("seen")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    subscribe(&aws, "org-bus", &seen_url).await;

    // The API, the sender and the events function, each under a runtime API of its own;
    // the local mappings feed the sender from the queue and the events function from the
    // table's stream, as Lambda's would.
    let api_runtime = RuntimeApi::start(30_000);
    let _api = start_binary(
        env!("CARGO_BIN_EXE_smsreg-api"),
        "api",
        &moto,
        &api_runtime,
        &queue_url,
        &[],
    );
    let sender_runtime = RuntimeApi::start(60_000);
    let _sender = start_binary(
        env!("CARGO_BIN_EXE_smsreg-sender"),
        "sender",
        &moto,
        &sender_runtime,
        &queue_url,
        &[],
    );
    let events_runtime = RuntimeApi::start(60_000);
    let mut env = moto.env(TABLE);
    env.extend(events_runtime.env());
    env.push(("EVENT_BUS_NAME", "org-bus".to_owned()));
    let events = Process::start(env!("CARGO_BIN_EXE_smsreg-events"), "events", &env, &[]);
    let _mapping = start_binary(
        env!("CARGO_BIN_EXE_smsreg-local-esm"),
        "mapping",
        &moto,
        &sender_runtime,
        &queue_url,
        &[
            "--invoke-url",
            &sender_runtime.invoke_url("smsreg-sender"),
            "--events-invoke-url",
            &events_runtime.invoke_url("smsreg-events"),
        ],
    );

    let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": "+16175551234"}]});
    let raw = api_runtime
        .invoke(
            &post_event("demo", &body, &format!("ApiKey {key_line}")),
            Duration::from_secs(60),
        )
        .expect("the invocation succeeds");
    let (status, _, answer) = parse_response(&raw);
    assert_eq!(status, 200, "{answer}");

    // The SMS goes; the batch completes; its event reaches the bus.
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let waited = std::time::Instant::now();
    let mut seen = Vec::new();
    while seen.is_empty() && waited.elapsed() < Duration::from_secs(60) {
        let got = sqs
            .receive_message()
            .queue_url(&seen_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        seen.extend(
            got.iter()
                .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()),
        );
    }
    assert_eq!(seen.len(), 1, "{}", events.log_text());
    assert_eq!(seen[0]["source"], "smsreg");
    assert_eq!(seen[0]["detail-type"], "Batch Completed");
    assert_eq!(seen[0]["detail"]["batch_id"], answer["batch_id"]);
    // Its log: the batch handled (written just after the put), never a number.
    let waited = std::time::Instant::now();
    while !events.log_text().contains("stream batch handled")
        && waited.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = events.log_text();
    assert!(log.contains("stream batch handled"), "{log}");
    assert!(!log.contains("6175551234"), "{log}");
}
