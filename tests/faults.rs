//! Faults injected on the real SDK path (a proxy in front of moto): at each step, the
//! numbers stay right. Invariants checked after every fault:
//! - every number of the request is in exactly one list;
//! - every success has its invitation stored and its SMS published;
//! - every number in `error_numbers` can be invited again at once by another project.

mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use common::fault_proxy::{Fault, FaultProxy, Rule};
use common::*;
use lambda_http::RequestExt;
use serde_json::{Value, json};
use smsreg::config::Config;
use smsreg::domain::PhoneNumber;
use smsreg::ports::InvitationStore;
use smsreg::wiring::AwsApi;

const TABLE: &str = "sms-registration-faults";
const OTHER_KEY: &str = "other-test-key-0123456789abcdef";

struct Env {
    moto: Moto,
    proxy: FaultProxy,
    api: AwsApi,
    /// The sender, over moto directly (the faults here are the API's).
    sender: smsreg::wiring::AwsSender,
    queue_url: String,
}

/// SDK settings scaled down so that timeouts show within a test.
async fn config_through(endpoint: &str) -> SdkConfig {
    smsreg::adapters::aws_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(800))
                .operation_timeout(Duration::from_secs(4))
                .build(),
        )
        .load()
        .await
}

async fn env() -> Env {
    let moto = Moto::start();
    provision_demo(&moto.store(TABLE).await, None).await;
    let proxy = FaultProxy::start(&moto.endpoint);
    let aws = config_through(&proxy.endpoint).await;
    let config = moto
        .queued(Config {
            table_name: TABLE.into(),
            claim_stale_after: Duration::from_secs(2),
            ..Config::default()
        })
        .await;
    let direct = moto.sdk_config().await;
    // SQS through the same proxy, but with the service's own timeouts: moto's queue takes
    // about 55 ms per batch of 10, one batch at a time (Python's lock), so the 16 batches
    // a request has in flight outlast the scaled-down 800 ms, which AWS's do not.
    let queue_aws = smsreg::adapters::aws_config_loader()
        .endpoint_url(&proxy.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    let store = smsreg::adapters::dynamodb::DynamoStore::new(&aws, TABLE);
    let queue = smsreg::adapters::sqs::SqsQueue::new(
        aws_sdk_sqs::Client::new(&queue_aws),
        config.send_queue_url.clone().unwrap(),
    );
    Env {
        api: smsreg::functions::api::Api::new(smsreg::service::RegistrationService::new(
            store,
            queue,
            std::sync::Arc::new(smsreg::ports::SystemClock),
            config.clone(),
        )),
        sender: smsreg::wiring::aws_sender_with(&direct, config.clone()).unwrap(),
        queue_url: config.send_queue_url.unwrap(),
        moto,
        proxy,
    }
}

fn numbers(n: usize, from: usize) -> Vec<String> {
    us_numbers(n, from)
}

fn invite(numbers: &[String]) -> Value {
    let users: Vec<Value> = numbers.iter().map(|n| json!({"phone_number": n})).collect();
    json!({"app_id": DEMO_APP, "users": users})
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

impl Env {
    async fn send(
        &self,
        domain: &str,
        auth: &str,
        body: &Value,
        deadline_ms: Option<u64>,
    ) -> lambda_http::Response<lambda_http::Body> {
        let mut request = lambda_http::request::from_str(&post_event(domain, body, auth)).unwrap();
        if let Some(deadline) = deadline_ms {
            let mut context = lambda_http::Context::default();
            context.deadline = deadline;
            request = request.with_lambda_context(context);
        }
        self.api.handle(request).await
    }

    async fn post(&self, body: &Value) -> (u16, Value) {
        response_parts(
            &self
                .send(
                    DEMO_DOMAIN,
                    &api_key_header(DEMO_USER, DEMO_KEY),
                    body,
                    None,
                )
                .await,
        )
    }

    async fn post_other(&self, body: &Value) -> Value {
        let auth = api_key_header("admin@other.example", OTHER_KEY);
        response_parts(&self.send("other", &auth, body, None).await).1
    }

    /// Checks the three invariants; returns the error numbers.
    async fn check(&self, requested: &[String], body: &Value) -> Vec<String> {
        let lists = [
            "success_numbers",
            "invalid_format_numbers",
            "numbers_in_use",
            "error_numbers",
        ];
        let mut seen = Vec::new();
        for list in lists {
            for n in body[list]
                .as_array()
                .unwrap_or_else(|| panic!("{list} missing: {body}"))
            {
                seen.push(n.as_str().unwrap().to_owned());
            }
        }
        let distinct: HashSet<&String> = seen.iter().collect();
        assert_eq!(
            seen.len(),
            requested.len(),
            "each number in exactly one list: {body}"
        );
        assert_eq!(
            distinct,
            requested.iter().collect(),
            "each number in exactly one list"
        );

        let store = self.moto.store(TABLE).await;
        self.moto.deliver(&self.sender, &self.queue_url).await;
        let sent: HashSet<String> = self.moto.sms().into_iter().map(|(to, _)| to).collect();
        for n in body["success_numbers"].as_array().unwrap() {
            let n = n.as_str().unwrap();
            let record = store.find(&PhoneNumber::parse(n).unwrap()).await.unwrap();
            assert!(
                record.is_some_and(|r| r.domain == DEMO_DOMAIN),
                "{n} stored"
            );
            assert!(sent.contains(n), "{n} texted");
        }
        let errors: Vec<String> = body["error_numbers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect();
        for n in &errors {
            assert!(!sent.contains(n), "{n} is an error but was texted");
        }
        errors
    }

    /// With faults gone, another project invites the error numbers: all succeed.
    async fn assert_free(&self, errors: &[String]) {
        eprintln!(
            "faults injected: {}, calls forwarded: {}, error numbers: {}",
            self.proxy.injected(),
            self.proxy.forwarded(),
            errors.len()
        );
        self.proxy.clear();
        self.proxy.set_latency(Duration::ZERO);
        if errors.is_empty() {
            return;
        }
        let body = self.post_other(&invite(errors)).await;
        assert_eq!(
            body["success_numbers"],
            json!(errors),
            "error numbers are free at once: {body}"
        );
    }
}

async fn assert_unavailable(env: &Env, rule: Rule) {
    env.proxy.add(rule);
    let response = env
        .send(
            DEMO_DOMAIN,
            &api_key_header(DEMO_USER, DEMO_KEY),
            &invite(&numbers(3, 1000)),
            None,
        )
        .await;
    assert_eq!(response.headers()["retry-after"], "2");
    let (status, body) = response_parts(&response);
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"error": "The service is temporarily unavailable. Please retry."})
    );
    assert!(env.proxy.injected() > 0);
    eprintln!("faults injected: {}", env.proxy.injected());
    assert!(env.moto.sms().is_empty());
}

#[tokio::test]
async fn key_lookup_throttled_gives_503() {
    let e = env().await;
    assert_unavailable(&e, Rule::always("Query", Some("USER#"), Fault::Throttle)).await;
    assert_eq!(e.proxy.injected(), 3, "the SDK retried the throttled call");
}

#[tokio::test]
async fn key_lookup_server_error_gives_503() {
    let e = env().await;
    assert_unavailable(&e, Rule::always("Query", Some("USER#"), Fault::ServerError)).await;
}

#[tokio::test]
async fn key_lookup_timeout_gives_503() {
    let e = env().await;
    assert_unavailable(
        &e,
        Rule::always("Query", Some("USER#"), Fault::Hang(Duration::from_secs(2))),
    )
    .await;
}

#[tokio::test]
async fn domain_lookup_throttled_gives_503() {
    let e = env().await;
    assert_unavailable(&e, Rule::always("Query", Some("DOMAIN#"), Fault::Throttle)).await;
}

#[tokio::test]
async fn idempotency_record_failing_gives_503_and_a_retry_runs_afresh() {
    let e = env().await;
    e.proxy.add(Rule::always(
        "PutItem",
        Some("IDEMPOTENCY#"),
        Fault::ServerError,
    ));
    let mut event: Value = serde_json::from_str(&post_event(
        DEMO_DOMAIN,
        &invite(&numbers(2, 1000)),
        &api_key_header(DEMO_USER, DEMO_KEY),
    ))
    .unwrap();
    event["headers"]["idempotency-key"] = "faulty".into();
    let response = e
        .api
        .handle(lambda_http::request::from_str(&event.to_string()).unwrap())
        .await;
    assert_eq!(response_parts(&response).0, 503);
    assert!(e.moto.sms().is_empty());
    e.proxy.clear();
    let response = e
        .api
        .handle(lambda_http::request::from_str(&event.to_string()).unwrap())
        .await;
    let (status, body) = response_parts(&response);
    assert_eq!(status, 200);
    e.check(&numbers(2, 1000), &body).await;
    assert_eq!(body["success_numbers"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_whole_store_unreachable_gives_503_without_detail() {
    let e = env().await;
    for op in ["Query", "GetItem", "PutItem", "UpdateItem", "DeleteItem"] {
        e.proxy.add(Rule::always(op, None, Fault::ServerError));
    }
    assert_unavailable(&e, Rule::always("Query", None, Fault::ServerError)).await;
}

#[tokio::test]
async fn claims_failing_for_some_numbers_make_only_those_errors() {
    let e = env().await;
    let requested = numbers(20, 1000);
    for (i, fault) in [
        (3, Fault::Throttle),
        (7, Fault::ServerError),
        (12, Fault::Hang(Duration::from_secs(1))),
    ] {
        e.proxy.add(Rule::always(
            "PutItem",
            Some(&format!("PHONE#{}", requested[i])),
            fault,
        ));
    }
    let (status, body) = e.post(&invite(&requested)).await;
    assert_eq!(status, 200);
    let errors = e.check(&requested, &body).await;
    assert_eq!(
        errors,
        [
            requested[3].clone(),
            requested[7].clone(),
            requested[12].clone()
        ]
    );
    e.assert_free(&errors).await;
}

/// The numbers of the request whose batch of 10 (in request order) holds one of `failing`.
fn batches_holding(requested: &[String], failing: &[&String]) -> Vec<String> {
    requested
        .chunks(10)
        .filter(|batch| batch.iter().any(|n| failing.contains(&n)))
        .flatten()
        .cloned()
        .collect()
}

#[tokio::test]
async fn sqs_failing_on_some_batches_of_a_500_user_request_rolls_those_numbers_back() {
    let e = env().await;
    let requested = numbers(500, 1000);
    let failing: Vec<&String> = requested.iter().step_by(45).collect();
    for (i, n) in failing.iter().enumerate() {
        let fault = if i % 2 == 0 {
            Fault::Throttle
        } else {
            Fault::ServerError
        };
        e.proxy
            .add(Rule::always("SendMessageBatch", Some(n.as_str()), fault));
    }
    let (status, body) = e.post(&invite(&requested)).await;
    assert_eq!(status, 200);
    let errors = e.check(&requested, &body).await;
    assert_eq!(errors, batches_holding(&requested, &failing));
    e.assert_free(&errors).await;
}

#[tokio::test]
async fn a_rollback_failing_at_first_still_frees_the_number_at_once() {
    let e = env().await;
    let requested = numbers(3, 1100);
    e.proxy.add(Rule::always(
        "SendMessageBatch",
        Some(requested[1].as_str()),
        Fault::ServerError,
    ));
    e.proxy.add(
        Rule::always(
            "DeleteItem",
            Some(&format!("PHONE#{}", requested[1])),
            Fault::Throttle,
        )
        .times(2),
    );
    let (_, body) = e.post(&invite(&requested)).await;
    let errors = e.check(&requested, &body).await;
    // One batch: its three numbers are undone, the second after two throttled tries.
    assert_eq!(errors, requested);
    e.assert_free(&errors).await;
}

#[tokio::test]
async fn a_rollback_that_keeps_failing_frees_the_number_once_the_claim_is_stale() {
    let e = env().await;
    let requested = numbers(2, 1200);
    e.proxy.add(Rule::always(
        "SendMessageBatch",
        Some(requested[0].as_str()),
        Fault::ServerError,
    ));
    e.proxy
        .add(Rule::always("DeleteItem", None, Fault::ServerError));
    let (_, body) = e.post(&invite(&requested)).await;
    let errors = e.check(&requested, &body).await;
    assert_eq!(errors, requested);
    e.proxy.clear();
    // The left-over claims never reached the queue: after CLAIM_STALE_SECONDS (2 s here)
    // they no longer hold the numbers.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    e.assert_free(&errors).await;
}

#[tokio::test]
async fn the_lambda_deadline_arriving_mid_batch_leaves_unstarted_numbers_untouched() {
    let e = env().await;
    let requested = numbers(500, 2000);
    e.proxy.set_latency(Duration::from_millis(20));
    // 2 s margin + about 1.5 s of work: the batch cannot all be claimed and queued.
    let deadline = now_ms() + 3_500;
    let response = e
        .send(
            DEMO_DOMAIN,
            &api_key_header(DEMO_USER, DEMO_KEY),
            &invite(&requested),
            Some(deadline),
        )
        .await;
    let (status, body) = response_parts(&response);
    assert!(now_ms() < deadline, "answered before the deadline");
    assert_eq!(status, 200);
    // Undoing hundreds of claims may not fit in the margin left: those never reached the
    // queue, so they stop holding their numbers after CLAIM_STALE_SECONDS (2 s here).
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let errors = e.check(&requested, &body).await;
    let done = body["success_numbers"].as_array().unwrap().len();
    // Claims cut off by the deadline are undone with their batch: none is half made.
    assert!(
        !errors.is_empty(),
        "the deadline fell mid-batch: {done} done, {} not",
        errors.len()
    );
    // The unstarted ones were never written.
    let store = e.moto.store(TABLE).await;
    for n in errors.iter().take(20) {
        assert!(
            store
                .find(&PhoneNumber::parse(n).unwrap())
                .await
                .unwrap()
                .is_none()
        );
    }
    e.assert_free(&errors).await;
}

#[tokio::test]
async fn storing_the_idempotent_answer_is_retried_so_a_retry_replays_it() {
    let e = env().await;
    // One whole SDK call (three attempts) fails; the service tries again.
    e.proxy
        .add(Rule::always("UpdateItem", Some("IDEMPOTENCY#"), Fault::ServerError).times(3));
    let body = invite(&numbers(2, 1000));
    let (status, first) = response_parts(&e.api.handle(keyed_request("store-retry", &body)).await);
    assert_eq!(status, 200);
    assert_eq!(e.proxy.injected(), 3);
    e.check(&numbers(2, 1000), &first).await;
    let again = e.api.handle(keyed_request("store-retry", &body)).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(response_parts(&again), (200, first));
    e.moto.deliver(&e.sender, &e.queue_url).await;
    assert_eq!(e.moto.sms().len(), 2, "each number texted once");
}

#[tokio::test]
async fn an_answer_that_cannot_be_stored_makes_a_retry_409_never_a_second_run() {
    let e = env().await;
    e.proxy.add(Rule::always(
        "UpdateItem",
        Some("IDEMPOTENCY#"),
        Fault::ServerError,
    ));
    let body = invite(&numbers(2, 1000));
    let (status, first) = response_parts(&e.api.handle(keyed_request("lost", &body)).await);
    assert_eq!(status, 200);
    assert_eq!(e.proxy.injected(), 9, "three SDK calls of three attempts");
    e.check(&numbers(2, 1000), &first).await;
    e.proxy.clear();
    let (status, body) = response_parts(&e.api.handle(keyed_request("lost", &body)).await);
    assert_eq!(status, 409, "{body}");
    e.moto.deliver(&e.sender, &e.queue_url).await;
    assert_eq!(e.moto.sms().len(), 2, "no number texted twice");
}

#[tokio::test]
async fn the_daily_count_unavailable_gives_503_and_nothing_is_recorded_or_sent() {
    let e = env().await;
    e.proxy.add(Rule::always(
        "TransactWriteItems",
        Some(":room"),
        Fault::ServerError,
    ));
    let requested = numbers(3, 1000);
    let (status, body) = e.post(&invite(&requested)).await;
    assert_eq!(status, 503, "{body}");
    assert!(e.proxy.injected() > 0);
    e.proxy.clear();
    let store = e.moto.store(TABLE).await;
    for n in &requested {
        assert!(
            store
                .find(&PhoneNumber::parse(n).unwrap())
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(e.moto.queue_depth(&e.queue_url).await, 0, "no job queued");
    // Once it is back, the same request runs.
    let (status, body) = e.post(&invite(&requested)).await;
    assert_eq!(status, 200);
    e.check(&requested, &body).await;
}

#[tokio::test]
async fn a_give_back_that_fails_leaves_the_answer_right_and_only_over_counts() {
    let e = env().await;
    let taken = numbers(1, 1000);
    e.post_other(&invite(&taken)).await;
    // The give-back: a negative addition to the day's count.
    e.proxy.add(Rule::always(
        "TransactWriteItems",
        Some(r#"{"N":"-"#),
        Fault::ServerError,
    ));
    let mut requested = taken.clone();
    requested.extend(numbers(1, 1001));
    let (status, body) = e.post(&invite(&requested)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["numbers_in_use"], json!(taken));
    assert!(e.proxy.injected() > 0, "the give-back was tried");
    e.proxy.clear();
    e.check(&requested, &body).await;
    let day = smsreg::domain::time::utc_day(now_ms() / 1000);
    let store = e.moto.store(TABLE).await;
    assert_eq!(
        store.usage_of(DEMO_DOMAIN, &day).await.unwrap(),
        2,
        "the number in use stays counted: the count errs high, never low"
    );
}

#[tokio::test]
async fn a_claim_hanging_past_the_deadline_leaves_no_number_held_or_texted() {
    let e = env().await;
    let requested = numbers(3, 1000);
    e.proxy.add(Rule::always(
        "PutItem",
        Some(&requested[1]),
        Fault::Hang(Duration::from_secs(6)),
    ));
    // The work stops DEADLINE_MARGIN_MS (2 s) before the deadline: 1.5 s from now.
    let deadline = now_ms() + 3_500;
    let response = e
        .send(
            DEMO_DOMAIN,
            &api_key_header(DEMO_USER, DEMO_KEY),
            &invite(&requested),
            Some(deadline),
        )
        .await;
    assert!(now_ms() < deadline, "answered before the deadline");
    let (status, body) = response_parts(&response);
    assert_eq!(status, 200, "{body}");
    // The claims run first, then the jobs are queued: the hung claim held the batch until
    // the work had to stop, so no number was queued, and every claim is undone.
    assert_eq!(body["error_numbers"], json!(requested), "{body}");
    e.proxy.clear();
    let errors = e.check(&requested, &body).await;
    let store = e.moto.store(TABLE).await;
    for n in &requested {
        assert!(
            store
                .find(&PhoneNumber::parse(n).unwrap())
                .await
                .unwrap()
                .is_none(),
            "{n}"
        );
    }
    e.assert_free(&errors).await;
}
