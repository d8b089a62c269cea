//! Replays every API Gateway event of `events/` through the handler, against moto.

mod common;

use common::*;
use serde_json::{Value, json};
use smsreg::config::Config;
use smsreg::domain::PhoneNumber;
use smsreg::ports::InvitationStore;
use smsreg::wiring::aws_api_with;

const TABLE: &str = "sms-registration-events";

/// What an event must answer: status, then a check of headers and body.
struct Expected {
    status: u16,
    body: Option<Value>,
    header: Option<(&'static str, &'static str)>,
}

fn exactly(status: u16, body: Value) -> Expected {
    Expected {
        status,
        body: Some(body),
        header: None,
    }
}

fn lists(success: &[&str], invalid: &[&str], in_use: &[&str]) -> Value {
    json!({"success_numbers": success, "invalid_format_numbers": invalid, "numbers_in_use": in_use, "error_numbers": [], "opted_out_numbers": []})
}

fn expectations() -> Vec<(&'static str, Expected)> {
    let forbidden =
        json!({"error": "You do not have permission to register mobile workers in this project."});
    vec![
        // The seeds' simple input gives exactly the seeds' sample output (plus error_numbers).
        (
            "create-simple",
            exactly(200, lists(&["+16175551234"], &[], &[])),
        ),
        (
            "create-complex",
            exactly(200, lists(&["+16175551234", "+16175555512"], &[], &[])),
        ),
        (
            "create-basic-auth",
            exactly(200, lists(&["+16175551234"], &[], &[])),
        ),
        (
            "create-base64-body",
            exactly(200, lists(&["+16175551234"], &[], &[])),
        ),
        (
            "create-named-stage",
            exactly(200, lists(&["+16175551234"], &[], &[])),
        ),
        (
            "create-mixed-numbers",
            exactly(
                200,
                lists(
                    &["+16175551234", "+16175555512"],
                    &["+1617JKL1234", "+1234"],
                    &[],
                ),
            ),
        ),
        ("create-empty-users", exactly(200, lists(&[], &[], &[]))),
        (
            "bad-invalid-json",
            exactly(400, json!({"error": "Request is not valid JSON."})),
        ),
        (
            "bad-json-array",
            exactly(400, json!({"error": "Request is not valid JSON."})),
        ),
        (
            "bad-send-at",
            exactly(
                400,
                json!({"sms_user_registration": {
                    "send_at": "Enter a date and time in RFC 3339 form, such as 2026-12-03T08:00:00+03:00",
                }}),
            ),
        ),
        (
            "bad-field-errors",
            exactly(
                400,
                json!({"sms_user_registration": {
                    "app_id": "Invalid app_id specified",
                    "android_only": "Expected type: bool",
                    "users[0].phone_number": "Expected type: str",
                    "users[1].phone_number": "This field is required",
                    "users[1].custom_user_data": "Expected type: dict",
                }}),
            ),
        ),
        (
            "bad-duplicate-number",
            exactly(
                400,
                json!({"sms_user_registration": {
                    "users": "phone_number cannot be reused within a request: +16175551234"
                }}),
            ),
        ),
        (
            "bad-no-auth",
            Expected {
                status: 401,
                body: None,
                header: Some(("www-authenticate", "ApiKey")),
            },
        ),
        (
            "bad-wrong-key",
            Expected {
                status: 401,
                body: None,
                header: Some(("www-authenticate", "ApiKey")),
            },
        ),
        // A page of another site posting a text/plain form with the browser's cached Basic
        // credentials: refused before they are even checked, nothing recorded or sent.
        (
            "bad-cross-site-form",
            exactly(
                415,
                json!({"error": "Send the request body as JSON, with 'Content-Type: application/json'."}),
            ),
        ),
        ("bad-other-domain", exactly(403, forbidden.clone())),
        ("bad-read-only-key", exactly(403, forbidden)),
        (
            "bad-unknown-version",
            exactly(404, json!({"error": "Not found."})),
        ),
        (
            "bad-put-method",
            Expected {
                status: 405,
                body: Some(json!({"error": "Method not allowed."})),
                header: Some(("allow", "GET, POST")),
            },
        ),
        (
            "bad-list-limit",
            exactly(
                400,
                json!({"error": "limit must be a whole number from 1 to 100."}),
            ),
        ),
        (
            "list-pending",
            exactly(200, json!({"objects": [], "next": null})),
        ),
        (
            "reinstall-simple",
            exactly(
                200,
                json!({"success_numbers": ["+16175551234"], "invalid_format_numbers": ["+1617JKL1234"], "error_numbers": [], "opted_out_numbers": []}),
            ),
        ),
    ]
}

#[test]
fn every_event_file_has_an_expectation() {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".json").map(str::to_owned))
        .collect();
    files.sort();
    let mut named: Vec<String> = expectations().iter().map(|(n, _)| n.to_string()).collect();
    named.sort();
    assert_eq!(files, named);
}

#[tokio::test]
async fn every_event_gives_its_expected_response() {
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let config = moto
        .queued(Config {
            table_name: TABLE.into(),
            ..Config::default()
        })
        .await;
    let queue_url = config.send_queue_url.clone().unwrap();
    let sender = smsreg::wiring::aws_sender_with(&aws, config.clone()).unwrap();
    let api = aws_api_with(&aws, config).unwrap();
    let mut failures = Vec::new();
    for (name, expected) in expectations() {
        // Each event starts from a fresh emulator: the numbers are free again.
        ureq::post(format!("{}/moto-api/reset", moto.endpoint))
            .send_empty()
            .unwrap();
        provision_demo(&moto.store(TABLE).await, None).await;
        // The reset removed the queue too: the same one again.
        assert_eq!(moto.send_queue(TABLE, 3).await, queue_url);

        let request =
            lambda_http::request::from_str(&event(name)).expect("a valid API Gateway v2 event");
        let response = api.handle(request).await;
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{name}"
        );
        if let Some((header, contains)) = expected.header {
            let value = response
                .headers()
                .get(header)
                .map(|v| v.to_str().unwrap().to_owned());
            if !value.as_deref().is_some_and(|v| v.contains(contains)) {
                failures.push(format!(
                    "{name}: header {header} = {value:?}, wanted it to contain {contains:?}"
                ));
            }
        }
        let (status, body) = response_parts(&response);
        // A create answer's batch id is random: checked, then left out of the comparison.
        let body = if body.get("success_numbers").is_some() && body.get("numbers_in_use").is_some()
        {
            without_batch_id(body)
        } else if body.get("success_numbers").is_some() {
            without_sms(body)
        } else {
            body
        };
        if status != expected.status {
            failures.push(format!(
                "{name}: status {status}, wanted {}: {body}",
                expected.status
            ));
        }
        match expected.body {
            Some(want) if body != want => {
                failures.push(format!("{name}: body {body}, wanted {want}"))
            }
            None if !body["error"].is_string() => {
                failures.push(format!("{name}: no error message: {body}"))
            }
            _ => {}
        }
        // What a success claims is stored, queued and texted; a refusal changes nothing.
        moto.deliver(&sender, &queue_url).await;
        let sent = moto.sms();
        let store = moto.store(TABLE).await;
        let stored = store
            .find(&PhoneNumber::parse("+16175551234").unwrap())
            .await
            .unwrap();
        let succeeded = body["success_numbers"].as_array().map_or(0, Vec::len);
        let android_only = name == "create-complex";
        let reinstall = name.starts_with("reinstall");
        if reinstall {
            // A reinstall texts the Play Store link and stores nothing.
            if sent.len() != succeeded
                || stored.is_some()
                || !sent
                    .iter()
                    .all(|(_, m)| m.starts_with("Install CommCare: https://play.google.com/"))
            {
                failures.push(format!(
                    "{name}: SMS {sent:?}, stored {:?}",
                    stored.is_some()
                ));
            }
        } else if sent.len() != succeeded || (succeeded == 0) != stored.is_none() {
            failures.push(format!(
                "{name}: {} SMS, stored {:?}, for {succeeded} successes",
                sent.len(),
                stored.is_some()
            ));
        }
        if android_only
            && !sent.iter().all(|(_, m)| {
                m.starts_with(
                    "Please register a new user here: http://127.0.0.1:9000/a/demo/register/",
                )
            })
        {
            failures.push(format!("{name}: SMS {sent:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
