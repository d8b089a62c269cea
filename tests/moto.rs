//! The real SDK clients against moto: conditional claims, rollbacks and published SMS.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{Value, json};
use smsreg::adapters::dynamodb::{DynamoStore, MarkRegistered, ProjectUpdate};
use smsreg::adapters::sns::SnsSms;
use smsreg::adapters::sqs::SqsQueue;
use smsreg::config::Config;
use smsreg::domain::invitation::{ClaimRules, RegistrationStatus};
use smsreg::domain::job::SmsJob;
use smsreg::domain::{PhoneNumber, RegistrationRecord};
use smsreg::functions::api::Api;
use smsreg::functions::sender::SenderFunction;
use smsreg::ports::{Claim, InvitationStore, SystemClock};
use smsreg::service::RegistrationService;
use smsreg::service::send::Sender;

const TABLE: &str = "sms-registration-test";
const A: &str = "+16175551234";
const B: &str = "+16175555512";

struct Env {
    moto: Moto,
    store: DynamoStore,
    api: Api<DynamoStore, SqsQueue>,
    sender: SenderFunction<DynamoStore, SqsQueue, FailingFor>,
    queue_url: String,
}

async fn env_with(install_url: Option<&str>, failing: &[&str]) -> Env {
    let moto = Moto::start();
    let store = moto.store(TABLE).await;
    provision_demo(&store, install_url).await;
    let config = Config {
        table_name: TABLE.into(),
        public_base_url: "https://sms.example.org".into(),
        ..Config::default()
    };
    env_from(moto, store, config, failing).await
}

/// The API and the sender over moto with `config` and a send queue of their own.
async fn env_from(moto: Moto, store: DynamoStore, config: Config, failing: &[&str]) -> Env {
    let aws = moto.sdk_config().await;
    let config = moto.queued(config).await;
    let queue_url = config.send_queue_url.clone().unwrap();
    let sms = FailingFor::throttling(
        SnsSms::new(aws_sdk_sns::Client::new(&aws), None, None),
        failing,
    );
    let service = RegistrationService::new(
        store.clone(),
        SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &queue_url),
        Arc::new(SystemClock),
        config.clone(),
    );
    Env {
        api: Api::new(service.clone()),
        sender: SenderFunction::new(Sender::new(service, sms)),
        moto,
        store,
        queue_url,
    }
}

async fn env() -> Env {
    env_with(None, &[]).await
}

impl Env {
    /// Answers the request, then lets the sender take every job it queued.
    async fn post_as(&self, domain: &str, auth: &str, body: &Value) -> (u16, Value) {
        let answer = self.post_only(domain, auth, body).await;
        self.deliver().await;
        answer
    }

    /// Answers the request; its jobs stay on the queue.
    async fn post_only(&self, domain: &str, auth: &str, body: &Value) -> (u16, Value) {
        let (status, body) = self.post_raw(domain, auth, body).await;
        (status, without_batch_id(body))
    }

    /// The answer as it is, batch id and SMS summary included; the jobs stay queued.
    async fn post_raw(&self, domain: &str, auth: &str, body: &Value) -> (u16, Value) {
        let request = lambda_http::request::from_str(&post_event(domain, body, auth)).unwrap();
        response_parts(&self.api.handle(request).await)
    }

    async fn deliver(&self) -> usize {
        self.moto.deliver(&self.sender, &self.queue_url).await
    }

    async fn post(&self, body: &Value) -> (u16, Value) {
        self.post_as(DEMO_DOMAIN, &api_key_header(DEMO_USER, DEMO_KEY), body)
            .await
    }

    async fn post_other(&self, body: &Value) -> (u16, Value) {
        let auth = api_key_header("admin@other.example", "other-test-key-0123456789abcdef");
        self.post_as("other", &auth, body).await
    }

    async fn record(&self, phone: &str) -> Option<RegistrationRecord> {
        self.store
            .find(&PhoneNumber::parse(phone).unwrap())
            .await
            .unwrap()
    }
}

fn invite(numbers: &[&str]) -> Value {
    let users: Vec<Value> = numbers.iter().map(|n| json!({"phone_number": n})).collect();
    json!({"app_id": DEMO_APP, "users": users})
}

fn lists(success: &[&str], in_use: &[&str], errors: &[&str]) -> Value {
    json!({"success_numbers": success, "invalid_format_numbers": [], "numbers_in_use": in_use, "error_numbers": errors, "opted_out_numbers": []})
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_fresh_number_is_claimed_stored_and_texted() {
    let e = env().await;
    let (status, body) = e.post(&invite(&[A])).await;
    assert_eq!((status, body), (200, lists(&[A], &[], &[])));

    let record = e.record(A).await.expect("the invitation is stored");
    assert_eq!(record.domain, DEMO_DOMAIN);
    assert_eq!(record.status, RegistrationStatus::Pending);
    assert_eq!(record.app_id.as_deref(), Some(DEMO_APP));
    assert!(
        record.sent_at.is_some(),
        "marked sent after SNS accepted it"
    );
    assert_eq!(record.expires_at - record.created_at, 30 * 86_400);

    let sms = e.moto.sms_to(A);
    assert_eq!(sms.len(), 1);
    assert!(sms[0].starts_with("Demo Health invites you"), "{}", sms[0]);
    assert!(sms[0].contains("Reply 1"));
}

#[tokio::test]
async fn a_reinvite_in_the_same_project_succeeds_with_a_new_token() {
    let e = env().await;
    e.post(&invite(&[A])).await;
    let first = e.record(A).await.unwrap();
    let (_, body) = e.post(&invite(&[A])).await;
    assert_eq!(body, lists(&[A], &[], &[]));
    let second = e.record(A).await.unwrap();
    assert_ne!(first.token, second.token);
    assert_eq!(e.moto.sms_to(A).len(), 2);
}

#[tokio::test]
async fn another_projects_pending_invitation_is_in_use() {
    let e = env().await;
    e.post(&invite(&[A])).await;
    let (_, body) = e.post_other(&invite(&[A, B])).await;
    assert_eq!(body, lists(&[B], &[A], &[]));
    assert_eq!(e.record(A).await.unwrap().domain, DEMO_DOMAIN);
    assert_eq!(e.moto.sms_to(A).len(), 1, "no SMS for a number in use");
}

#[tokio::test]
async fn a_registered_number_is_in_use_for_every_project() {
    let e = env().await;
    let phone = PhoneNumber::parse(A).unwrap();
    let t = now();
    let rules = ClaimRules {
        domain: DEMO_DOMAIN,
        now: t,
        stale_before: t - 300,
    };
    assert_eq!(
        e.store
            .mark_registered(DEMO_DOMAIN, &phone, rules)
            .await
            .unwrap(),
        MarkRegistered::Registered
    );
    assert_eq!(e.post(&invite(&[A])).await.1, lists(&[], &[A], &[]));
    assert_eq!(e.post_other(&invite(&[A])).await.1, lists(&[], &[A], &[]));
    assert!(e.moto.sms_to(A).is_empty());
}

fn stored(
    domain: &str,
    phone: &str,
    created_at: u64,
    expires_at: u64,
    sent_at: Option<u64>,
) -> RegistrationRecord {
    // Sent: pending, its job long taken; not sent: a claim whose job never reached the
    // queue (a crash).
    let status = if sent_at.is_some() {
        RegistrationStatus::Pending
    } else {
        RegistrationStatus::Queued
    };
    RegistrationRecord {
        app_id: Some(DEMO_APP.into()),
        custom_user_data: Some(json!({"team": "north"}).as_object().unwrap().clone()),
        sent_at,
        enqueued_at: sent_at,
        ..RegistrationRecord::new(
            domain,
            PhoneNumber::parse(phone).unwrap(),
            status,
            created_at,
            expires_at,
        )
    }
}

/// Writes a record as a claim of its own project would.
async fn put(store: &DynamoStore, record: &RegistrationRecord) {
    let rules = ClaimRules {
        domain: &record.domain,
        now: record.created_at,
        stale_before: 0,
    };
    assert!(matches!(
        store.claim(record, rules).await.unwrap(),
        Claim::Taken { .. }
    ));
}

#[tokio::test]
async fn an_expired_invitation_of_another_project_can_be_claimed() {
    let e = env().await;
    let t = now();
    put(
        &e.store,
        &stored(
            "other",
            A,
            t - 40 * 86_400,
            t - 10 * 86_400,
            Some(t - 40 * 86_400),
        ),
    )
    .await;
    assert_eq!(e.post(&invite(&[A])).await.1, lists(&[A], &[], &[]));
    assert_eq!(e.record(A).await.unwrap().domain, DEMO_DOMAIN);
}

#[tokio::test]
async fn a_never_sent_claim_of_another_project_is_in_use_until_stale() {
    let e = env().await;
    let t = now();
    put(&e.store, &stored("other", A, t - 60, t + 86_400, None)).await;
    put(&e.store, &stored("other", B, t - 301, t + 86_400, None)).await;
    assert_eq!(e.post(&invite(&[A, B])).await.1, lists(&[B], &[A], &[]));
}

#[tokio::test]
async fn a_stale_claim_is_taken_over_only_when_its_batch_never_queued_its_job() {
    let moto = Moto::start();
    let store = moto.store(TABLE).await;
    provision_demo(&store, None).await;
    let config = Config {
        table_name: TABLE.into(),
        claim_stale_after: std::time::Duration::from_secs(1),
        ..Config::default()
    };
    let e = env_from(moto, store, config, &[]).await;
    // A: queued by the API (its batch is recorded), the sender not there yet.
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    assert_eq!(
        e.post_only(DEMO_DOMAIN, &auth, &invite(&[A])).await.1,
        lists(&[A], &[], &[])
    );
    // B: a claim left by a crash before its batch was recorded.
    let t = now();
    let mut left = stored(DEMO_DOMAIN, B, t, t + 86_400, None);
    left.batch_id = Some("never-recorded".into());
    put(&e.store, &left).await;
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let other = api_key_header("admin@other.example", "other-test-key-0123456789abcdef");
    assert_eq!(
        e.post_only("other", &other, &invite(&[A, B])).await.1,
        lists(&[B], &[A], &[])
    );
    assert_eq!(e.record(A).await.unwrap().domain, DEMO_DOMAIN);
    assert_eq!(e.record(B).await.unwrap().domain, "other");
}

#[tokio::test]
async fn an_sms_that_sns_refuses_as_an_invalid_parameter_fails_at_once_with_that_reason() {
    use common::fault_proxy::{Fault, Rule};
    let e = env().await;
    // Digits alone: the form-encoded body carries the plus as %2B.
    e.moto
        .front
        .add(Rule::always("Publish", Some(&B[1..]), Fault::Invalid));
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    assert_eq!(
        e.post_as(DEMO_DOMAIN, &auth, &invite(&[A, B])).await.1,
        lists(&[A, B], &[], &[])
    );
    let failed = e.record(B).await.unwrap();
    assert_eq!(failed.status, RegistrationStatus::Failed, "{failed:?}");
    let why = failed.failure_reason.unwrap_or_default();
    assert!(why.contains("InvalidParameter"), "{why}");
    // Sent again it would be refused again: one Publish, the job done with.
    assert_eq!(e.moto.front.calls("Publish", &B[1..]), 1);
    assert_eq!(e.deliver().await, 0);
    assert_eq!(
        e.record(A).await.unwrap().status,
        RegistrationStatus::Pending
    );
}

/// Delivers the queued jobs until their attempts (3 here) are spent: SNS refuses each,
/// and each retry waits longer (5 s, then 10 s).
/// Delivers the failing job until its last attempt: one failed SMS per delivery, each
/// counted on its record, the job back after 5 s, then 10 s.
async fn deliver_until_dead_letter(e: &Env) {
    for wait in [0, 5, 10] {
        tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 300)).await;
        assert!(e.deliver().await > 0, "the job comes back after {wait} s");
    }
}

#[tokio::test]
async fn when_sns_fails_every_attempt_the_invitation_fails_the_number_is_freed_and_counted_back() {
    let e = env_with(None, &[B]).await;
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    // Queued: both are recorded; SNS's failure does not reach the caller.
    assert_eq!(
        e.post_only(DEMO_DOMAIN, &auth, &invite(&[A, B])).await.1,
        lists(&[A, B], &[], &[])
    );
    let day = smsreg::domain::time::utc_day(now());
    let usage = |e: &Env| {
        let store = e.store.clone();
        let day = day.clone();
        async move { store.usage_of(DEMO_DOMAIN, &day).await.unwrap() }
    };
    assert_eq!(usage(&e).await, 2);
    deliver_until_dead_letter(&e).await;
    assert_eq!(e.moto.sms_to(A).len(), 1);
    assert!(e.moto.sms_to(B).is_empty());
    let failed = e.record(B).await.unwrap();
    assert_eq!(failed.status, RegistrationStatus::Failed);
    assert!(
        failed
            .failure_reason
            .as_deref()
            .unwrap()
            .contains("3 attempts"),
        "{failed:?}"
    );
    assert_eq!(
        e.record(A).await.unwrap().status,
        RegistrationStatus::Pending
    );
    // The day's count is given back, the job is done with (its outcome is on the
    // invitation: no dead letter), and any project may invite the number at once.
    assert_eq!(usage(&e).await, 1);
    assert_eq!(e.deliver().await, 0);
    let dlq = e.queue_url.replace(TABLE, &format!("{TABLE}-dlq"));
    assert_eq!(e.moto.queue_depth(&dlq).await, 0);
    assert_eq!(e.moto.queue_depth(&e.queue_url).await, 0);
    assert_eq!(e.post_other(&invite(&[B])).await.1, lists(&[B], &[], &[]));
    assert_eq!(e.record(B).await.unwrap().domain, "other");
}

#[tokio::test]
async fn while_its_job_is_retried_the_number_stays_held() {
    let e = env_with(None, &[B]).await;
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    e.post_only(DEMO_DOMAIN, &auth, &invite(&[B])).await;
    e.deliver().await;
    let record = e.record(B).await.unwrap();
    assert_eq!(record.status, RegistrationStatus::Queued);
    assert!(record.enqueued_at.is_some(), "marked queued");
    assert_eq!(e.post_other(&invite(&[B])).await.1, lists(&[], &[B], &[]));
}

#[tokio::test]
async fn when_sns_fails_every_attempt_a_reinvite_restores_the_previous_sent_invitation_exactly() {
    let e = env_with(None, &[A]).await;
    let t = now();
    let before = stored(DEMO_DOMAIN, A, t - 1_000, t + 86_400, Some(t - 999));
    put(&e.store, &before).await;
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    assert_eq!(
        e.post_only(DEMO_DOMAIN, &auth, &invite(&[A])).await.1,
        lists(&[A], &[], &[])
    );
    deliver_until_dead_letter(&e).await;
    assert_eq!(e.record(A).await, Some(before));
}

#[tokio::test]
async fn android_only_with_an_install_link_publishes_two_sms_in_order() {
    let e = env_with(Some("https://www.commcarehq.org/a/demo/app/1"), &[]).await;
    let body = json!({
        "app_id": DEMO_APP, "android_only": true, "require_email": true,
        "custom_registration_message": "Please register a new user here: {}",
        "users": [{"phone_number": A, "custom_user_data": {"customdata1": "foo"}}]
    });
    assert_eq!(e.post(&body).await.1, lists(&[A], &[], &[]));
    let record = e.record(A).await.unwrap();
    let sms = e.moto.sms_to(A);
    assert_eq!(
        sms,
        vec![
            format!(
                "Please register a new user here: https://sms.example.org/a/demo/register/{}",
                record.token.as_str()
            ),
            "[commcare app - do not delete] aHR0cHM6Ly93d3cuY29tbWNhcmVocS5vcmcvYS9kZW1vL2FwcC8x"
                .to_owned(),
        ]
    );
    assert!(record.require_email && record.android_only);
    assert_eq!(record.custom_user_data.unwrap()["customdata1"], "foo");
}

#[tokio::test]
async fn two_projects_racing_for_a_fresh_number_one_wins() {
    let e = env().await;
    let mut tasks = Vec::new();
    let e = Arc::new(e);
    for i in 0..50 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let body = invite(&["+16175552000"]);
            let (status, body) = if i % 2 == 0 {
                e.post(&body).await
            } else {
                e.post_other(&body).await
            };
            assert_eq!(status, 200);
            (i % 2 == 0, body)
        }));
    }
    let mut winners = std::collections::HashSet::new();
    for task in tasks {
        let (is_demo, body) = task.await.unwrap();
        if body["success_numbers"].as_array().unwrap().len() == 1 {
            winners.insert(is_demo);
        } else {
            assert_eq!(body["numbers_in_use"], json!(["+16175552000"]));
        }
    }
    assert_eq!(winners.len(), 1, "successes come from one project only");
    let owner = e.record("+16175552000").await.unwrap().domain;
    assert_eq!(owner == DEMO_DOMAIN, winners.contains(&true));
}

impl Env {
    async fn post_with_key(
        &self,
        key: &str,
        body: &Value,
    ) -> lambda_http::Response<lambda_http::Body> {
        let response = self.api.handle(keyed_request(key, body)).await;
        self.deliver().await;
        response
    }
}

#[tokio::test]
async fn an_idempotent_retry_is_answered_from_dynamodb_without_a_second_sms() {
    let e = env().await;
    let body = invite(&[A, B]);
    let (status, first) = response_parts(&e.post_with_key("import-42", &body).await);
    assert_eq!(
        (status, without_batch_id(first.clone())),
        (200, lists(&[A, B], &[], &[]))
    );
    let token = e.record(A).await.unwrap().token;

    let again = e.post_with_key("import-42", &body).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(response_parts(&again), (200, first));
    assert_eq!(e.moto.sms().len(), 2);
    assert_eq!(e.record(A).await.unwrap().token, token);

    let (status, _) = response_parts(&e.post_with_key("import-42", &invite(&[A])).await);
    assert_eq!(status, 422);
    // Keys are scoped to the project: the same key elsewhere is a new request.
    let mut event: Value = serde_json::from_str(&post_event(
        "other",
        &invite(&["+16175552100"]),
        &api_key_header("admin@other.example", "other-test-key-0123456789abcdef"),
    ))
    .unwrap();
    event["headers"]["idempotency-key"] = "import-42".into();
    let response = e
        .api
        .handle(lambda_http::request::from_str(&event.to_string()).unwrap())
        .await;
    assert_eq!(
        without_batch_id(response_parts(&response).1),
        lists(&["+16175552100"], &[], &[])
    );
}

#[tokio::test]
async fn the_daily_limit_is_an_atomic_counter_in_dynamodb() {
    let e = env().await;
    let mut update = project(DEMO_DOMAIN, Some("Demo Health"), smsreg::domain::Plan::Pro);
    update.daily_invitation_limit = Some(2);
    e.store.put_project(&update).await.unwrap();

    let (status, body) = e.post(&invite(&[A, B, "+16175552200"])).await;
    assert_eq!(status, 429, "{body}");
    assert!(e.moto.sms().is_empty());
    // In use elsewhere: counted, then given back.
    e.post_other(&invite(&[A])).await;
    assert_eq!(e.post(&invite(&[A, B])).await.1, lists(&[B], &[A], &[]));
    assert_eq!(
        e.post(&invite(&["+16175552200"])).await.1,
        lists(&["+16175552200"], &[], &[])
    );
    assert_eq!(e.post(&invite(&["+16175552201"])).await.0, 429);

    // Concurrent requests never pass the limit together.
    update.daily_invitation_limit = Some(5);
    e.store.put_project(&update).await.unwrap();
    let e = Arc::new(e);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let e = e.clone();
            tokio::spawn(async move { e.post(&invite(&[&format!("+1617555230{i}")])).await })
        })
        .collect();
    let (mut sent, mut refused) = (0, 0);
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => {
                assert_eq!(body["error_numbers"], json!([]), "{body}");
                sent += body["success_numbers"].as_array().unwrap().len();
            }
            429 => refused += 1,
            other => panic!("a request failed ({other}): {body}"),
        }
    }
    assert_eq!((sent, refused), (3, 7), "two of five were used before");
}

#[tokio::test]
async fn an_allow_list_stored_in_dynamodb_rejects_other_countries() {
    let e = env().await;
    let codes = vec!["US".to_owned(), "KE".to_owned()];
    let mut update = project(DEMO_DOMAIN, Some("Demo Health"), smsreg::domain::Plan::Pro);
    update.allowed_countries = Some(&codes);
    e.store.put_project(&update).await.unwrap();
    let (status, body) = e.post(&invite(&[A, "+442079460958"])).await;
    assert_eq!(status, 400);
    assert!(
        body["sms_user_registration"]["users"]
            .as_str()
            .unwrap()
            .ends_with("(US, KE): +442079460958")
    );
    assert_eq!(e.post(&invite(&[A, "+254712345678"])).await.0, 200);
    // An empty list removes the allow-list.
    update.allowed_countries = Some(&[]);
    e.store.put_project(&update).await.unwrap();
    assert_eq!(e.post(&invite(&["+442079460958"])).await.0, 200);
}

// ---- Registration: the transaction against DynamoDB -------------------------------------

use smsreg::domain::worker::{Worker, hash_password};
use smsreg::ports::{RegisterOutcome, WorkerStore};

fn worker_for(record: &RegistrationRecord, username: &str, at: u64) -> Worker {
    Worker {
        domain: record.domain.clone(),
        username: username.into(),
        password_hash: Some(hash_password("correct horse")),
        phone: record.phone.clone(),
        email: None,
        custom_user_data: record.custom_user_data.clone(),
        app_id: record.app_id.clone(),
        registered_at: at,
    }
}

/// A request to a registration link: GET shows it, POST submits `body` as `content_type`.
async fn registration(
    e: &Env,
    method: &str,
    token: &str,
    content_type: &str,
    body: &str,
) -> lambda_http::Response<lambda_http::Body> {
    let mut event: Value =
        serde_json::from_str(&post_event(DEMO_DOMAIN, &json!({}), "none")).unwrap();
    let path = format!("/a/{DEMO_DOMAIN}/register/{token}");
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["method"] = method.into();
    event["headers"] = json!({"content-type": content_type});
    event["body"] = body.into();
    e.api
        .handle(lambda_http::request::from_str(&event.to_string()).unwrap())
        .await
}

async fn register_json(e: &Env, token: &str, body: &Value) -> (u16, Value) {
    response_parts(&registration(e, "POST", token, "application/json", &body.to_string()).await)
}

#[tokio::test]
async fn transaction_conflicts_at_every_try_are_a_409_to_try_again_never_a_taken_username() {
    use common::fault_proxy::{Fault, Rule};
    let e = env().await;
    e.post(&invite(&[A])).await;
    let token = e.record(A).await.unwrap().token.as_str().to_owned();
    let form =
        json!({"username": "jane", "password": "correct horse", "password2": "correct horse"});
    // DynamoDB cancels a transaction that meets another in flight on the same item; moto
    // never does, so the proxy in front of it answers as DynamoDB would.
    // One conflict is tried again (see below); conflicts at every try are a 409.
    let conflict = || Rule::always("TransactWriteItems", None, Fault::TransactionConflict);
    e.moto.front.add(conflict());
    let response = registration(&e, "POST", &token, "application/json", &form.to_string()).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = response_parts(&response);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["errors"]["token"]
            .as_str()
            .unwrap()
            .contains("try again")
    );
    assert!(e.store.list_workers(DEMO_DOMAIN).await.unwrap().is_empty());
    assert_eq!(
        e.record(A).await.unwrap().status,
        RegistrationStatus::Pending
    );

    let page = registration(
        &e,
        "POST",
        &token,
        "application/x-www-form-urlencoded",
        "username=jane&password=correct+horse&password2=correct+horse",
    )
    .await;
    assert_eq!(page.status(), 409);
    let html = String::from_utf8_lossy(page.body().as_ref()).into_owned();
    assert!(html.contains("Please try again") && !html.contains("already taken"));

    // Submitted again, with one conflict on the way (tried again), it registers: nothing
    // of the cancelled tries was kept.
    e.moto.front.clear();
    e.moto.front.add(conflict().times(1));
    assert_eq!(
        register_json(&e, &token, &form).await,
        (201, json!({"username": "jane"}))
    );
}

#[tokio::test]
async fn values_over_dynamodbs_key_limits_are_401_and_404_never_503() {
    let e = env().await;
    // The proxy in front of moto refuses what DynamoDB refuses.
    assert!(
        e.store
            .invitation_by_token(&"t".repeat(3000))
            .await
            .is_err()
    );

    let long_user = api_key_header(&"u".repeat(3000), DEMO_KEY);
    let (status, _) = e.post_only(DEMO_DOMAIN, &long_user, &invite(&[A])).await;
    assert_eq!(status, 401);
    let long_key = api_key_header(DEMO_USER, &"k".repeat(3000));
    assert_eq!(
        e.post_only(DEMO_DOMAIN, &long_key, &invite(&[A])).await.0,
        401
    );
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    let long_domain = "d".repeat(3000);
    assert_eq!(e.post_only(&long_domain, &auth, &invite(&[A])).await.0, 403);
    for token in ["t".repeat(3000), "é".repeat(1500), "short".into()] {
        for method in ["GET", "POST"] {
            let response = registration(&e, method, &token, "application/json", "{}").await;
            assert_eq!(
                response.status(),
                404,
                "{method} a {}-byte token",
                token.len()
            );
        }
    }
    let (status, body) = e
        .post_only(
            DEMO_DOMAIN,
            &auth,
            &json!({"app_id": "a".repeat(3000), "users": [{"phone_number": A}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(e.record(A).await.is_none(), "nothing recorded");
}

#[tokio::test]
async fn a_worker_registers_through_the_link_and_the_number_is_then_in_use() {
    let e = env().await;
    e.post(&invite(&[A])).await;
    let record = e.record(A).await.unwrap();
    let found = e
        .store
        .invitation_by_token(record.token.as_str())
        .await
        .unwrap();
    assert_eq!(
        found.as_ref().map(|r| &r.phone),
        Some(&record.phone),
        "found by token through the index"
    );

    let form =
        json!({"username": "Jane", "password": "correct horse", "password2": "correct horse"});
    assert_eq!(
        register_json(&e, record.token.as_str(), &form).await,
        (201, json!({"username": "jane"}))
    );
    assert_eq!(
        e.record(A).await.unwrap().status,
        RegistrationStatus::Registered
    );
    let workers = e.store.list_workers(DEMO_DOMAIN).await.unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].phone.as_str(), A);
    assert_eq!(e.post_other(&invite(&[A])).await.1, lists(&[], &[A], &[]));
    assert_eq!(e.post(&invite(&[A])).await.1, lists(&[], &[A], &[]));
}

#[tokio::test]
async fn a_taken_username_leaves_the_invitation_pending() {
    let e = env().await;
    e.post(&invite(&[A, B])).await;
    let (a, b) = (e.record(A).await.unwrap(), e.record(B).await.unwrap());
    let t = now();
    assert_eq!(
        e.store
            .register(&a, &worker_for(&a, "jane", t))
            .await
            .unwrap(),
        RegisterOutcome::Registered
    );
    assert_eq!(
        e.store
            .register(&b, &worker_for(&b, "jane", t))
            .await
            .unwrap(),
        RegisterOutcome::UsernameTaken
    );
    assert_eq!(
        e.record(B).await.unwrap().status,
        RegistrationStatus::Pending
    );
}

#[tokio::test]
async fn an_invitation_replaced_meanwhile_creates_no_account() {
    let e = env().await;
    e.post(&invite(&[A])).await;
    let old = e.record(A).await.unwrap();
    e.post(&invite(&[A])).await; // a re-invite replaces the token
    let outcome = e
        .store
        .register(&old, &worker_for(&old, "jane", now()))
        .await
        .unwrap();
    assert_eq!(outcome, RegisterOutcome::InvitationChanged);
    assert!(e.store.list_workers(DEMO_DOMAIN).await.unwrap().is_empty());
    assert_eq!(
        e.record(A).await.unwrap().status,
        RegistrationStatus::Pending
    );
}

#[tokio::test]
async fn an_invitation_expired_meanwhile_creates_no_account() {
    let e = env().await;
    e.post(&invite(&[A])).await;
    let record = e.record(A).await.unwrap();
    let after_expiry = record.expires_at;
    let outcome = e
        .store
        .register(&record, &worker_for(&record, "jane", after_expiry))
        .await
        .unwrap();
    assert_eq!(outcome, RegisterOutcome::InvitationChanged);
    assert!(e.store.list_workers(DEMO_DOMAIN).await.unwrap().is_empty());
}

#[tokio::test]
async fn two_submissions_racing_for_one_link_one_wins() {
    let e = Arc::new(env().await);
    e.post(&invite(&[A])).await;
    let token = e.record(A).await.unwrap().token.as_str().to_owned();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let (e, token) = (e.clone(), token.clone());
            tokio::spawn(async move {
                let form = json!({"username": format!("worker{i}"), "password": "12345678", "password2": "12345678"});
                register_json(&e, &token, &form).await.0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(e.store.list_workers(DEMO_DOMAIN).await.unwrap().len(), 1);
}

// ---- Listing and reinstall ----------------------------------------------------------------

async fn get_list(e: &Env, auth: &str, query: &str) -> (u16, Value) {
    let mut event: Value =
        serde_json::from_str(&post_event(DEMO_DOMAIN, &json!({}), auth)).unwrap();
    event["requestContext"]["http"]["method"] = "GET".into();
    event["rawQueryString"] = query.into();
    event.as_object_mut().unwrap().remove("body");
    response_parts(
        &e.api
            .handle(lambda_http::request::from_str(&event.to_string()).unwrap())
            .await,
    )
}

#[tokio::test]
async fn the_listing_pages_through_the_index_newest_first_with_a_cursor() {
    let e = env().await;
    let t = now();
    // 25 invitations created a second apart, oldest first; two registered, three expired.
    for i in 0..25u64 {
        let phone = format!("+1617555{:04}", 3000 + i);
        let mut r = stored(
            DEMO_DOMAIN,
            &phone,
            t - 100 + i,
            t + 86_400,
            Some(t - 100 + i),
        );
        if i < 3 {
            r.expires_at = t - 1;
        }
        put(&e.store, &r).await;
    }
    for i in [20u64, 21] {
        let phone = PhoneNumber::parse(&format!("+1617555{:04}", 3000 + i)).unwrap();
        let rules = ClaimRules {
            domain: DEMO_DOMAIN,
            now: t,
            stale_before: t - 300,
        };
        e.store
            .mark_registered(DEMO_DOMAIN, &phone, rules)
            .await
            .unwrap();
    }
    // Another project's invitation never shows.
    e.post_other(&invite(&["+16175559999"])).await;

    let viewer = api_key_header(VIEWER_USER, VIEWER_KEY);
    let (mut seen, mut query) = (Vec::new(), "limit=10".to_owned());
    loop {
        let (status, page) = get_list(&e, &viewer, &query).await;
        assert_eq!(status, 200, "{page}");
        for object in page["objects"].as_array().unwrap() {
            seen.push(object["phone_number"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(cursor) => query = format!("limit=10&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25u64)
        .rev()
        .map(|i| format!("+1617555{:04}", 3000 + i))
        .collect();
    assert_eq!(seen, expected, "every invitation once, newest first");

    let (_, page) = get_list(&e, &viewer, "status=registered").await;
    let registered: Vec<&str> = page["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["phone_number"].as_str().unwrap())
        .collect();
    assert_eq!(registered, ["+16175553021", "+16175553020"]);
    assert!(page["objects"][0]["registered_at"].is_string());
    let (_, page) = get_list(&e, &viewer, "status=expired&limit=2").await;
    assert_eq!(page["objects"].as_array().unwrap().len(), 2);
    assert!(
        page["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "expired")
    );
    let (_, rest) = get_list(
        &e,
        &viewer,
        &format!(
            "status=expired&limit=2&cursor={}",
            page["next"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(rest["objects"][0]["phone_number"], "+16175553000");
    let (_, pending) = get_list(&e, &viewer, "status=pending&limit=100").await;
    assert_eq!(pending["objects"].as_array().unwrap().len(), 20);
    let object = &pending["objects"][0];
    for field in [
        "phone_number",
        "status",
        "phone_type",
        "app_id",
        "created_at",
        "expires_at",
        "registered_at",
    ] {
        assert!(object.get(field).is_some(), "{field}");
    }

    // A key of another project is refused; a cursor of another project's number shows
    // nothing of it.
    let other = api_key_header("admin@other.example", "other-test-key-0123456789abcdef");
    assert_eq!(get_list(&e, &other, "").await.0, 403);
    let foreign = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"c":{},"p":"+16175559999"}}"#, t + 10))
    };
    let (status, page) = get_list(&e, &viewer, &format!("cursor={foreign}")).await;
    assert_eq!(status, 200);
    assert!(!page.to_string().contains("+16175559999"));
}

async fn post_reinstall(e: &Env, body: &Value) -> (u16, Value) {
    let mut event: Value = serde_json::from_str(&post_event(
        DEMO_DOMAIN,
        body,
        &api_key_header(DEMO_USER, DEMO_KEY),
    ))
    .unwrap();
    let path = "/a/demo/api/v1/sms_user_registration_reinstall";
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    let answer = response_parts(
        &e.api
            .handle(lambda_http::request::from_str(&event.to_string()).unwrap())
            .await,
    );
    e.deliver().await;
    answer
}

#[tokio::test]
async fn a_reinstall_sends_the_play_store_link_and_the_install_link_except_to_other_projects_workers()
 {
    let e = env_with(Some("https://www.commcarehq.org/a/demo/app/1"), &[]).await;
    let t = now();
    let phone = PhoneNumber::parse(B).unwrap();
    let rules = ClaimRules {
        domain: "other",
        now: t,
        stale_before: t - 300,
    };
    e.store
        .mark_registered("other", &phone, rules)
        .await
        .unwrap();
    let body = json!({"app_id": DEMO_APP, "reinstall_message": "  Get CommCare: {}  ",
        "users": [{"phone_number": A}, {"phone_number": B}, {"phone_number": "12"}]});
    let (status, report) = post_reinstall(&e, &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        without_sms(report),
        json!({"success_numbers": [A], "invalid_format_numbers": ["12"], "error_numbers": [B], "opted_out_numbers": []})
    );
    assert_eq!(
        e.moto.sms_to(A),
        vec![
            "Get CommCare: https://play.google.com/store/apps/details?id=org.commcare.dalvik"
                .to_owned(),
            "[commcare app - do not delete] aHR0cHM6Ly93d3cuY29tbWNhcmVocS5vcmcvYS9kZW1vL2FwcC8x"
                .to_owned(),
        ]
    );
    assert!(e.moto.sms_to(B).is_empty());

    let (status, errors) =
        post_reinstall(&e, &json!({"users": [{}], "reinstall_message": 5})).await;
    assert_eq!(status, 400);
    assert_eq!(
        errors,
        json!({"sms_user_registration_reinstall": {
            "app_id": "This field is required",
            "reinstall_message": "Expected type: str",
            "users[0].phone_number": "This field is required",
        }})
    );
}

#[tokio::test]
async fn a_write_of_the_sender_retried_by_the_sdk_finds_its_own_lease_and_record() {
    use smsreg::domain::job::JobKind;
    use smsreg::ports::{DeliveryLog, SendLedger, SendStart};
    let e = env().await;
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    e.post_only(DEMO_DOMAIN, &auth, &invite(&[A])).await;
    let record = e.record(A).await.unwrap();
    let job = SmsJob {
        id: "j".into(),
        domain: DEMO_DOMAIN.into(),
        phone: PhoneNumber::parse(A).unwrap(),
        texts: vec!["one".into(), "two".into()],
        kind: JobKind::Invitation {
            token: record.token.as_str().to_owned(),
            created_at: record.created_at,
            previous: None,
            batch_id: None,
        },
        schedule: Default::default(),
        max_price_per_part: None,
    };
    let at = now() * 1000;
    let go = SendStart::Go {
        sent: 0,
        last_sms_ms: None,
    };
    // The same delivery twice (a retry after a timeout): its own lease; another: busy.
    assert_eq!(
        e.store.begin_send(&job, "d1", at, 60_000).await.unwrap(),
        go
    );
    assert_eq!(
        e.store.begin_send(&job, "d1", at, 60_000).await.unwrap(),
        go
    );
    assert_eq!(
        e.store.begin_send(&job, "d2", at, 60_000).await.unwrap(),
        SendStart::Busy
    );
    // The first SMS recorded, the write retried: still recorded, once; not by another.
    assert!(e.store.record_sent(&job, "d1", 0, at, "m0").await.unwrap());
    assert!(e.store.record_sent(&job, "d1", 0, at, "m0").await.unwrap());
    assert!(!e.store.record_sent(&job, "d2", 1, at, "m1").await.unwrap());
    assert!(
        e.store
            .record_sent(&job, "d1", 1, at + 1_100, "m1")
            .await
            .unwrap()
    );
    let day = smsreg::domain::time::utc_day(at / 1000);
    assert_eq!(
        e.store.day_usage(DEMO_DOMAIN, &day).await.unwrap().sms_sent,
        2,
        "each SMS counted once, the retried record included"
    );
    assert_eq!(
        e.store.begin_send(&job, "d2", at, 60_000).await.unwrap(),
        SendStart::Drop("already sent")
    );
    assert_eq!(
        e.record(A).await.unwrap().status,
        RegistrationStatus::Pending
    );
}

#[tokio::test]
async fn a_reinvite_while_queued_sends_only_the_new_link() {
    let e = env_with(None, &[]).await;
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    let body = json!({"app_id": DEMO_APP, "android_only": true, "users": [{"phone_number": A}]});
    e.post_only(DEMO_DOMAIN, &auth, &body).await;
    let first = e.record(A).await.unwrap().token;
    e.post_only(DEMO_DOMAIN, &auth, &body).await;
    let second = e.record(A).await.unwrap().token;
    assert_ne!(first, second);
    // Both jobs are on the queue; the first is dropped as replaced.
    assert_eq!(e.deliver().await, 2);
    let sms = e.moto.sms_to(A);
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert!(sms[0].ends_with(&format!("/a/demo/register/{}", second.as_str())));
}

#[tokio::test]
async fn a_number_registered_before_its_job_runs_gets_no_sms() {
    let e = env().await;
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    e.post_only(DEMO_DOMAIN, &auth, &invite(&[A])).await;
    let token = e.record(A).await.unwrap().token;
    let form =
        json!({"username": "jane", "password": "correct horse", "password2": "correct horse"});
    assert_eq!(register_json(&e, token.as_str(), &form).await.0, 201);
    assert_eq!(e.deliver().await, 1);
    assert!(e.moto.sms_to(A).is_empty());
    assert_eq!(
        e.record(A).await.unwrap().status,
        RegistrationStatus::Registered
    );
}

#[tokio::test]
async fn a_job_delivered_twice_sends_each_sms_once() {
    let e = env_with(Some("https://www.commcarehq.org/a/demo/app/1"), &[]).await;
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    let body = json!({"app_id": DEMO_APP, "android_only": true, "users": [{"phone_number": A}]});
    e.post_only(DEMO_DOMAIN, &auth, &body).await;
    // SQS hands the same job out again: a second copy of its message.
    e.moto.duplicate_first_job(&e.queue_url).await;
    assert_eq!(e.deliver().await, 2);
    assert_eq!(
        e.moto.sms_to(A).len(),
        2,
        "the link and the install link, once each"
    );
}

#[tokio::test]
async fn an_undo_never_erases_an_invitation_that_went_out_or_was_registered_meanwhile() {
    let e = env().await;
    let t = now();
    // A claim whose job was reported lost, yet went out and was registered meanwhile
    // (an SQS answer lost on the way back).
    let record = stored(DEMO_DOMAIN, A, t, t + 86_400, None);
    put(&e.store, &record).await;
    assert_eq!(
        e.store
            .register(&record, &worker_for(&record, "jane", t))
            .await
            .unwrap(),
        RegisterOutcome::Registered
    );
    e.store.release(&record, None).await.unwrap();
    assert_eq!(
        e.record(A).await.unwrap().status,
        RegistrationStatus::Registered,
        "the registration stays"
    );
    // One that is still queued is undone.
    let queued = stored(DEMO_DOMAIN, B, t, t + 86_400, None);
    put(&e.store, &queued).await;
    e.store.release(&queued, None).await.unwrap();
    assert!(e.record(B).await.is_none());
}

#[tokio::test]
async fn a_number_sns_has_opted_out_is_not_texted_and_then_reported_opted_out() {
    // moto's SNS answers CheckIfPhoneNumberIsOptedOut with true for numbers ending in 99.
    const OUT: &str = "+16175550199";
    let e = env().await;
    let (status, body) = e.post(&invite(&[OUT, A])).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["success_numbers"],
        json!([OUT, A]),
        "not known yet: {body}"
    );
    assert!(e.moto.sms_to(OUT).is_empty(), "the sender asked SNS first");
    assert_eq!(e.moto.sms_to(A).len(), 1);
    assert_eq!(
        e.record(OUT).await.unwrap().status,
        RegistrationStatus::OptedOut
    );
    let (_, body) = e.post(&invite(&[OUT])).await;
    assert_eq!(body["opted_out_numbers"], json!([OUT]), "{body}");
    assert!(e.moto.sms_to(OUT).is_empty());
    // The listing shows it.
    let (status, page) =
        get_list(&e, &api_key_header(DEMO_USER, DEMO_KEY), "status=opted_out").await;
    assert_eq!(status, 200);
    let phones: Vec<&str> = page["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["phone_number"].as_str().unwrap())
        .collect();
    assert_eq!(phones, [OUT]);
}

#[tokio::test]
async fn a_listing_by_status_costs_one_query_per_page_whatever_the_projects_size() {
    let e = env().await;
    let t = now();
    // 120 pending invitations, then one registered number, the oldest.
    let mut registered = stored(
        DEMO_DOMAIN,
        "+16175554999",
        t - 500,
        t + 86_400,
        Some(t - 500),
    );
    put(&e.store, &registered).await;
    let phone = registered.phone.clone();
    e.store
        .mark_registered(
            DEMO_DOMAIN,
            &phone,
            ClaimRules {
                domain: DEMO_DOMAIN,
                now: t,
                stale_before: t - 300,
            },
        )
        .await
        .unwrap();
    registered.status = RegistrationStatus::Registered;
    for i in 0..120u64 {
        let phone = format!("+1617555{:04}", 4000 + i);
        put(
            &e.store,
            &stored(
                DEMO_DOMAIN,
                &phone,
                t - 400 + i,
                t + 86_400,
                Some(t - 400 + i),
            ),
        )
        .await;
    }
    for i in 0..3u64 {
        let phone = format!("+1617555{:04}", 4500 + i);
        put(
            &e.store,
            &stored(DEMO_DOMAIN, &phone, t - 9_000 + i, t - 10, None),
        )
        .await;
    }
    let viewer = api_key_header(VIEWER_USER, VIEWER_KEY);
    let listing_queries =
        || e.moto.front.calls("Query", "\"gsi") - e.moto.front.calls("Query", "\"gsi2\"");
    for (query, expected, queries) in [
        ("status=registered&limit=1", vec!["+16175554999"], 1),
        (
            "status=expired&limit=2",
            vec!["+16175554502", "+16175554501"],
            2,
        ),
        ("status=queued&limit=5", vec![], 1),
    ] {
        let before = listing_queries();
        let (status, page) = get_list(&e, &viewer, query).await;
        assert_eq!(status, 200, "{page}");
        let phones: Vec<&str> = page["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["phone_number"].as_str().unwrap())
            .collect();
        assert_eq!(phones, expected, "{query}");
        assert_eq!(
            listing_queries() - before,
            queries,
            "{query}: queries of an index"
        );
    }
    // Paging the expired ones: the cursor carries on in both partitions.
    let (_, page) = get_list(&e, &viewer, "status=expired&limit=2").await;
    let (_, rest) = get_list(
        &e,
        &viewer,
        &format!(
            "status=expired&limit=2&cursor={}",
            page["next"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(rest["objects"][0]["phone_number"], "+16175554500");
    assert!(rest["next"].is_null());
}

#[tokio::test]
async fn a_job_on_the_dead_letter_queue_is_given_up_and_a_message_that_is_no_job_is_kept() {
    let e = env().await;
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    e.post_only(DEMO_DOMAIN, &auth, &invite(&[A])).await;
    let day = smsreg::domain::time::utc_day(now());
    assert_eq!(e.store.usage_of(DEMO_DOMAIN, &day).await.unwrap(), 1);
    // The job as SQS would hand it over from the dead-letter queue (received too often:
    // its deliveries crashed), beside a message that is no send job.
    let sqs = aws_sdk_sqs::Client::new(&e.moto.sdk_config().await);
    let job = sqs
        .receive_message()
        .queue_url(&e.queue_url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap()
        .remove(0);
    let dead_letters = "arn:aws:sqs:us-east-1:123456789012:smsreg-send-dlq";
    let record = |id: &str, body: &str| {
        json!({
            "messageId": id, "receiptHandle": format!("handle-{id}"), "body": body,
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": dead_letters, "awsRegion": "us-east-1"
        })
    };
    let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(json!({
        "Records": [record("job", job.body().unwrap()), record("junk", "not a send job")]
    }))
    .unwrap();
    let aws = e.moto.sdk_config().await;
    let queue_url = e.moto.send_queue("smsreg-held", 50).await;
    let config = Config {
        table_name: TABLE.into(),
        send_queue_url: Some(queue_url.clone()),
        send_dead_letter_queue_arn: Some(dead_letters.into()),
        ..Config::default()
    };
    let sender = smsreg::wiring::aws_sender_with(&aws, config).unwrap();
    let response = sender.handle_batch(&event, None).await.unwrap();
    let kept: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        kept,
        ["junk"],
        "the unreadable message stays for inspection"
    );
    // The job is given up: its invitation failed with the reason, the day's count given
    // back, the number free; nothing was sent.
    let failed = e.record(A).await.unwrap();
    assert_eq!(failed.status, RegistrationStatus::Failed);
    assert!(
        failed
            .failure_reason
            .as_deref()
            .unwrap()
            .contains("dead-letter queue"),
        "{failed:?}"
    );
    assert_eq!(e.store.usage_of(DEMO_DOMAIN, &day).await.unwrap(), 0);
    assert!(e.moto.sms_to(A).is_empty());
    // Handed over again (SQS delivers at least once), it counts nothing twice.
    sender.handle_batch(&event, None).await.unwrap();
    assert_eq!(e.store.usage_of(DEMO_DOMAIN, &day).await.unwrap(), 0);
    assert_eq!(e.post_other(&invite(&[A])).await.1, lists(&[A], &[], &[]));
}

#[tokio::test]
async fn a_projects_sms_settings_are_kept_and_applied() {
    let e = env().await;
    // Two parts allowed, smart encoding off: stored by put-domain's update.
    e.store
        .put_project(&ProjectUpdate {
            accounts: None,
            smart_encoding: Some(false),
            max_parts_per_sms: Some(2),
            send_window: Some(smsreg::domain::window::SendWindow::Any),
            max_price_per_part: None,
            ..project(DEMO_DOMAIN, Some("Demo Health"), smsreg::domain::Plan::Pro)
        })
        .await
        .unwrap();
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    let pasted = format!("Don’t wait: {}", "x".repeat(120));
    // 132 UTF-16 units in UCS-2 (the apostrophe stays): two parts, allowed.
    let body = json!({"app_id": DEMO_APP, "custom_registration_message": pasted, "users": [{"phone_number": A}]});
    let (status, report) = e.post_raw(DEMO_DOMAIN, &auth, &body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        sms_counts(&report["sms"]),
        json!({"messages": 1, "parts": 2, "encoding": "UCS-2"})
    );
    // Three parts: refused, naming the encoding and the parts; nothing recorded.
    let longer = format!("Don’t wait: {}", "x".repeat(130));
    let (status, answer) = e
        .post(&json!({"app_id": DEMO_APP, "custom_registration_message": longer, "users": [{"phone_number": B}]}))
        .await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["sms_user_registration"]["custom_registration_message"].to_string();
    assert!(message.contains("3 parts in UCS-2"), "{answer}");
    assert!(e.record(B).await.is_none());
    // The request may turn smart encoding back on: then it is one part of GSM-7.
    let body = json!({"app_id": DEMO_APP, "custom_registration_message": longer,
        "smart_encoding": true, "users": [{"phone_number": B}]});
    let (status, report) = e.post_raw(DEMO_DOMAIN, &auth, &body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        sms_counts(&report["sms"]),
        json!({"messages": 1, "parts": 1, "encoding": "GSM-7"})
    );
}

// ---- Send windows on the real queue ------------------------------------------------------

/// A clock the test sets.
struct SetClock(std::sync::atomic::AtomicU64);

impl smsreg::ports::Clock for SetClock {
    fn now(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl SetClock {
    fn set(&self, at: &str) {
        let secs = at.parse::<jiff::Timestamp>().unwrap().as_second() as u64;
        self.0.store(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A hand-back's delay and SQS's answer to it.
type HandBack = (u32, Result<(), smsreg::ports::QueueError>);

/// The send queue, with every hand-back kept with SQS's answer to it: a hand-back SQS
/// refuses shows nowhere else (the job just comes back when the queue's own visibility
/// timeout ends).
#[derive(Clone)]
struct Watched {
    inner: SqsQueue,
    hand_backs: Arc<std::sync::Mutex<Vec<HandBack>>>,
}

impl Watched {
    fn new(inner: SqsQueue) -> Watched {
        Watched {
            inner,
            hand_backs: Arc::default(),
        }
    }

    /// The hand-backs since the last call, as (delay, SQS's answer).
    fn take(&self) -> Vec<HandBack> {
        std::mem::take(&mut self.hand_backs.lock().unwrap())
    }
}

impl smsreg::ports::JobQueue for Watched {
    async fn enqueue(&self, jobs: &[SmsJob]) -> Vec<Result<(), smsreg::ports::QueueError>> {
        self.inner.enqueue(jobs).await
    }

    async fn retry_later(
        &self,
        receipt_handle: &str,
        from: Option<&str>,
        delay_seconds: u32,
    ) -> Result<(), smsreg::ports::QueueError> {
        let answer = self
            .inner
            .retry_later(receipt_handle, from, delay_seconds)
            .await;
        self.hand_backs
            .lock()
            .unwrap()
            .push((delay_seconds, answer.clone()));
        answer
    }
}

/// The API and the sender over moto, on `clock`, for a demo project with `window`.
struct Windowed {
    e: Env,
    /// A send queue with the stack's maxReceiveCount (50), not the tests' 3.
    queue_url: String,
    api: Api<DynamoStore, Watched>,
    sender: SenderFunction<DynamoStore, Watched, SnsSms>,
    queue: Watched,
    /// The delays of the last receive's hand-backs, every one accepted by SQS.
    holds: std::sync::Mutex<Vec<u32>>,
}

impl Windowed {
    /// A create request of the demo project, answered on the test's clock.
    async fn create(&self, body: &Value) -> (u16, Value) {
        let auth = api_key_header(DEMO_USER, DEMO_KEY);
        let request =
            lambda_http::request::from_str(&post_event(DEMO_DOMAIN, body, &auth)).unwrap();
        response_parts(&self.api.handle(request).await)
    }
}

async fn windowed(window: &str, clock: &Arc<SetClock>) -> Windowed {
    let e = env().await;
    e.store
        .put_project(&ProjectUpdate {
            accounts: None,
            send_window: Some(window.parse().unwrap()),
            max_price_per_part: None,
            ..project(DEMO_DOMAIN, Some("Demo Health"), smsreg::domain::Plan::Pro)
        })
        .await
        .unwrap();
    let aws = e.moto.sdk_config().await;
    let queue_url = e.moto.send_queue("smsreg-held", 50).await;
    let config = Config {
        table_name: TABLE.into(),
        send_queue_url: Some(queue_url.clone()),
        public_base_url: "https://sms.example.org".into(),
        sms_rate_per_second: 1000,
        ..Config::default()
    };
    let queue = Watched::new(SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &queue_url));
    let service = RegistrationService::new(e.store.clone(), queue.clone(), clock.clone(), config);
    let sender = SenderFunction::new(Sender::new(
        service.clone(),
        SnsSms::new(aws_sdk_sns::Client::new(&aws), None, None),
    ));
    Windowed {
        e,
        queue_url,
        api: Api::new(service),
        sender,
        queue,
        holds: Default::default(),
    }
}

/// One receive of the send queue handed to `sender`, as the event source mapping does:
/// the sent jobs deleted, the rest left as the sender set them. Returns, for each job
/// handed back, its receipt handle and how often SQS had delivered it.
async fn receive_once(w: &Windowed) -> Vec<(String, u32)> {
    let (sqs, sender) = (
        aws_sdk_sqs::Client::new(&w.e.moto.sdk_config().await),
        &w.sender,
    );
    let (messages, event) = common::receive_event(&sqs, &w.queue_url).await;
    let response = sender.handle_batch(&event, None).await.unwrap();
    let mut holds = Vec::new();
    for (delay, answer) in w.queue.take() {
        assert_eq!(answer, Ok(()), "SQS refused a hand-back of {delay} s");
        holds.push(delay);
    }
    *w.holds.lock().unwrap() = holds;
    let mut back = Vec::new();
    for m in &messages {
        let handle = m.receipt_handle().unwrap().to_owned();
        if response
            .batch_item_failures
            .iter()
            .any(|f| Some(f.item_identifier.as_str()) == m.message_id())
        {
            let count = m
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                })
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            back.push((handle, count));
        } else {
            sqs.delete_message()
                .queue_url(&w.queue_url)
                .receipt_handle(handle)
                .send()
                .await
                .unwrap();
        }
    }
    back
}

/// The hold's wait passed: the handed-back jobs visible again (SQS's clock is real time).
async fn time_passed(w: &Windowed, back: &[(String, u32)]) {
    let sqs = aws_sdk_sqs::Client::new(&w.e.moto.sdk_config().await);
    for (handle, _) in back {
        sqs.change_message_visibility()
            .queue_url(&w.queue_url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_window_closing_mid_batch_holds_the_rest_on_the_queue_until_the_morning() {
    let clock = Arc::new(SetClock(0.into()));
    // 20:59 in Boston (EST): the window is open, the batch is not held.
    clock.set("2027-01-15T01:59:00Z");
    let w = windowed("08:00-21:00", &clock).await;
    let e = &w.e;
    let numbers = [
        "+16175551001",
        "+16175551002",
        "+16175551003",
        "+16175551004",
    ];
    let (status, report) = w.create(&invite(&numbers)).await;
    assert_eq!(status, 200, "{report}");
    for n in numbers {
        assert_eq!(e.record(n).await.unwrap().scheduled_for, None, "{n}");
    }
    // 21:01 when the sender takes them: every one is handed back until 08:00 (13:00 UTC),
    // nothing sent, no attempt spent.
    clock.set("2027-01-15T02:01:00Z");
    let back = receive_once(&w).await;
    assert_eq!(back.len(), 4);
    assert!(e.moto.sms().is_empty());
    assert_eq!(
        receive_once(&w).await,
        [],
        "handed back with a visibility of hours: not received again meanwhile"
    );
    // 07:59: still held (redelivered early, as SQS may).
    time_passed(&w, &back).await;
    clock.set("2027-01-15T12:59:00Z");
    let back = receive_once(&w).await;
    assert_eq!(back.len(), 4);
    assert!(e.moto.sms().is_empty());
    // 08:00: every one goes, once.
    time_passed(&w, &back).await;
    clock.set("2027-01-15T13:00:00Z");
    assert_eq!(receive_once(&w).await, []);
    for n in numbers {
        assert_eq!(e.moto.sms_to(n).len(), 1, "{n}");
        let record = e.record(n).await.unwrap();
        assert_eq!(record.status, RegistrationStatus::Pending);
    }
}

#[tokio::test]
async fn a_job_held_30_hours_comes_back_a_few_times_and_spends_no_attempt() {
    let clock = Arc::new(SetClock(0.into()));
    clock.set("2027-01-15T08:00:00Z");
    let w = windowed("any", &clock).await;
    let e = &w.e;
    let body = json!({"app_id": DEMO_APP, "send_at": "2027-01-16T14:00:00Z",
        "users": [{"phone_number": A}]});
    let (status, report) = w.create(&body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["sms"]["first_at"], "2027-01-16T14:00:00Z");
    // Handed back for a little under 12 hours at a time: at 08:00, 20:00, then 08:00 the next
    // day; sent on the fourth receive, at 14:00.
    let mut receives = 0;
    for (at, held) in [
        ("2027-01-15T08:00:00Z", true),
        ("2027-01-15T20:00:00Z", true),
        ("2027-01-16T08:00:00Z", true),
        ("2027-01-16T14:00:00Z", false),
    ] {
        clock.set(at);
        let back = receive_once(&w).await;
        receives += 1;
        assert_eq!(back.len(), usize::from(held), "{at}");
        if let Some((_, count)) = back.first() {
            assert_eq!(*count, receives, "{at}");
        }
        assert_eq!(
            e.moto.sms_to(A).len(),
            usize::from(!held),
            "{at}: {:?}",
            e.record(A).await
        );
        time_passed(&w, &back).await;
    }
    assert!(
        receives < 50 / 10,
        "far from the queue's maxReceiveCount (50)"
    );
    let record = e.record(A).await.unwrap();
    assert_eq!(record.status, RegistrationStatus::Pending);
    assert_eq!(
        record.expires_at,
        record.scheduled_for.unwrap() + 30 * 86_400
    );
}

/// Creates a request whose `send_at` is `ahead` seconds after the clock, then lets the
/// sender take its job as often as it comes back, the clock moved on by each hold as it
/// ends (SQS's own clock is real time: the job is made visible then). Returns how many
/// receives it took, once the SMS went; checks each receive's count and that nothing went
/// before `send_at`.
async fn held_until_sent(ahead: u64) -> u32 {
    let clock = Arc::new(SetClock(0.into()));
    clock.set("2027-01-15T08:00:00Z");
    let w = windowed("any", &clock).await;
    let e = &w.e;
    let send_at = smsreg::ports::Clock::now(&*clock) + ahead;
    let send_at_text = jiff::Timestamp::from_second(send_at as i64)
        .unwrap()
        .to_string();
    let body = json!({"app_id": DEMO_APP, "send_at": send_at_text,
        "users": [{"phone_number": A}]});
    let (status, report) = w.create(&body).await;
    assert_eq!(status, 200, "{report}");
    let mut receives = 0;
    loop {
        let now = smsreg::ports::Clock::now(&*clock);
        // receive_once checks that SQS accepted every hand-back.
        let back = receive_once(&w).await;
        receives += 1;
        if back.is_empty() {
            assert_eq!(now, send_at, "sent at its send_at, not before, not later");
            assert_eq!(e.moto.sms_to(A).len(), 1);
            assert_eq!(
                e.record(A).await.unwrap().status,
                RegistrationStatus::Pending
            );
            return receives;
        }
        assert!(e.moto.sms_to(A).is_empty(), "sent before its send_at");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].1, receives, "SQS's receive count");
        let holds = w.holds.lock().unwrap().clone();
        assert_eq!(holds.len(), 1);
        let hold = holds[0];
        assert!(hold > 0 && u64::from(hold) <= send_at - now, "{hold}");
        assert_eq!(
            receive_once(&w).await,
            [],
            "held: not received again before its hold ends"
        );
        assert!(receives < 50, "it would have reached the dead-letter queue");
        clock
            .0
            .fetch_add(u64::from(hold), std::sync::atomic::Ordering::SeqCst);
        time_passed(&w, &back).await;
    }
}

#[tokio::test]
async fn a_send_at_20_hours_ahead_is_held_as_long_as_sqs_allows_each_time_and_sent_at_its_time() {
    // Two hand-backs of a little under 12 hours, the SMS at the third receive.
    assert_eq!(held_until_sent(20 * 3600).await, 3);
}

#[tokio::test]
async fn a_send_at_7_days_ahead_is_sent_at_its_time_within_16_receives_of_the_queues_50() {
    // docs/sending.md's bound: 15 hand-backs, then the receive that sends.
    let receives = held_until_sent(7 * 86_400).await;
    assert!(receives <= 16, "{receives} receives");
}

#[tokio::test]
async fn a_message_kept_on_the_dead_letter_queue_is_handed_back_as_sqs_allows() {
    let clock = Arc::new(SetClock(0.into()));
    clock.set("2027-01-15T08:00:00Z");
    let w = windowed("any", &clock).await;
    let aws = w.e.moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    sqs.send_message()
        .queue_url(&w.queue_url)
        .message_body("not a send job")
        .send()
        .await
        .unwrap();
    let (messages, event) = common::receive_event(&sqs, &w.queue_url).await;
    assert_eq!(messages.len(), 1);
    // The sender told that this queue is its dead-letter queue (the ARN receive_event gives).
    let config = Config {
        table_name: TABLE.into(),
        send_queue_url: Some(w.queue_url.clone()),
        send_dead_letter_queue_arn: event.records[0].event_source_arn.clone(),
        ..Config::default()
    };
    let service = RegistrationService::new(w.e.store.clone(), w.queue.clone(), clock, config);
    let sender = SenderFunction::new(Sender::new(
        service,
        SnsSms::new(aws_sdk_sns::Client::new(&aws), None, None),
    ));
    let response = sender.handle_batch(&event, None).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1, "kept for inspection");
    let hand_backs = w.queue.take();
    assert_eq!(hand_backs.len(), 1);
    let (delay, answer) = &hand_backs[0];
    assert_eq!(answer, &Ok(()), "SQS refused a hand-back of {delay} s");
    assert!(*delay > 11 * 3600, "back about every 12 hours: {delay}");
}

// ---- The emulator itself -----------------------------------------------------------------

/// `scripts/moto-server` alone on a free port (no proxy handing it one request at a time),
/// its log kept in a file: what it does with concurrent requests, and what it writes.
struct BareMoto {
    child: std::process::Child,
    endpoint: String,
    log: std::path::PathBuf,
}

impl BareMoto {
    fn start(name: &str) -> BareMoto {
        let exe = repo_root().join("scripts/moto-server");
        let log = std::env::temp_dir().join(format!("{name}-{}.log", std::process::id()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
            .port();
        let child = std::process::Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&log).expect("a log file"))
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", exe.display()));
        let moto = BareMoto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let started = std::time::Instant::now();
        while ureq::get(format!("{}/moto-api/data.json", moto.endpoint))
            .call()
            .is_err()
        {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "scripts/moto-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        moto
    }

    /// A DynamoDB client that reports every error as it came: no retry hides a 500.
    async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let aws = smsreg::adapters::aws_config_loader()
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        aws_sdk_dynamodb::Client::new(&aws)
    }
}

impl Drop for BareMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Kept when the test failed, for a look at what moto answered.
        if std::thread::panicking() {
            eprintln!("moto's log: {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_emulator_answers_concurrent_transactions_as_dynamodb_would_never_with_a_500() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, KeySchemaElement,
        KeyType, Put, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TransactWriteItem,
    };
    let moto = BareMoto::start("moto-transactions");
    let db = moto.dynamodb().await;
    db.create_table()
        .table_name("t")
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("the table is created");
    // Items beside the ones written: a transaction that copied whole tables (as moto alone
    // does) would take long enough to meet the others.
    for chunk in 0..20 {
        let puts = (0..25).map(|i| {
            aws_sdk_dynamodb::types::WriteRequest::builder()
                .put_request(
                    aws_sdk_dynamodb::types::PutRequest::builder()
                        .item("pk", AttributeValue::S(format!("OTHER#{chunk}-{i}")))
                        .build()
                        .unwrap(),
                )
                .build()
        });
        db.batch_write_item()
            .request_items("t", puts.collect())
            .send()
            .await
            .expect("the table is filled");
    }
    const TASKS: usize = 16;
    const EACH: usize = 40;
    let phone = |task: usize, n: usize| format!("+1617555{:02}{:02}", task, n);
    let token =
        |task: usize, n: usize| format!("Tk{task:02}{n:02}q7ZpX4vR9mL2wYc8bN5")[..22].to_owned();
    let put = |pk: String, token: String| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name("t")
                    .item("pk", AttributeValue::S(pk))
                    .item("token", AttributeValue::S(token))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    // Every second transaction is cancelled by a condition on an item of its task (a number
    // already held), which it asks back: the wrapper then puts back what it saved, while the
    // others run, and moto's cancellation carries that item's number and token.
    for task in 0..TASKS {
        db.put_item()
            .table_name("t")
            .item("pk", AttributeValue::S(format!("HELD#{task}")))
            .item("phone", AttributeValue::S(phone(task, 99)))
            .item("token", AttributeValue::S(token(task, 99)))
            .send()
            .await
            .expect("a held number");
    }
    let cancelled = |n: usize| n % 2 == 1;
    let tasks = (0..TASKS).map(|task| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut unexpected = Vec::new();
            for n in 0..EACH {
                let mut call = db
                    .transact_write_items()
                    .transact_items(put(format!("INV#{}", phone(task, n)), token(task, n)))
                    .transact_items(put(format!("JOB#{task}-{n}"), token(task, n)));
                if cancelled(n) {
                    call = call.transact_items(
                        TransactWriteItem::builder()
                            .condition_check(
                                ConditionCheck::builder()
                                    .table_name("t")
                                    .key("pk", AttributeValue::S(format!("HELD#{task}")))
                                    .condition_expression("attribute_not_exists(pk)")
                                    .return_values_on_condition_check_failure(
                                        ReturnValuesOnConditionCheckFailure::AllOld,
                                    )
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    );
                }
                let answer = call.send().await;
                let fine = match &answer {
                    Ok(_) => !cancelled(n),
                    Err(error) => {
                        cancelled(n)
                            && error
                                .as_service_error()
                                .is_some_and(|e| e.is_transaction_canceled_exception())
                    }
                };
                if !fine {
                    let error = answer.err().map(|e| {
                        let raw = e.raw_response().map(|r| r.status().as_u16());
                        format!(
                            "{:?} {raw:?}",
                            aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&e)
                        )
                    });
                    unexpected.push(format!("{task}-{n}: {error:?}"));
                }
            }
            unexpected
        })
    });
    let unexpected: Vec<String> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    assert!(
        unexpected.is_empty(),
        "answers no DynamoDB gives: {unexpected:?}"
    );
    // What each transaction wrote is there, all of it or none of it, whatever ran beside it.
    for task in 0..TASKS {
        for n in 0..EACH {
            for pk in [format!("INV#{}", phone(task, n)), format!("JOB#{task}-{n}")] {
                let item = db
                    .get_item()
                    .table_name("t")
                    .key("pk", AttributeValue::S(pk.clone()))
                    .send()
                    .await
                    .unwrap()
                    .item;
                assert_eq!(item.is_some(), !cancelled(n), "{pk}");
            }
        }
    }
    // Its log holds no number nor token in full.
    let log = std::fs::read_to_string(&moto.log).unwrap();
    for task in 0..TASKS {
        for n in (0..EACH).chain([99]) {
            assert!(
                !log.contains(&phone(task, n)[..]),
                "a full number in moto's log"
            );
            assert!(!log.contains(&token(task, n)[..]), "a token in moto's log");
        }
    }
}

#[tokio::test]
async fn a_message_on_the_real_dead_letter_queue_is_handed_back_on_that_queue() {
    // The send queue and its own dead-letter queue, as the stack makes them: a message the
    // sender takes off the dead-letter queue is handed back there, under that queue's URL
    // (its receipt handle means nothing to the send queue).
    let moto = Moto::start();
    let store = moto.store(TABLE).await;
    provision_demo(&store, None).await;
    let aws = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue_url = moto.send_queue("dlq-hand-back", 50).await;
    let dlq_url = format!("{queue_url}-dlq");
    let dlq_arn = common::queue_arn(&sqs, &dlq_url).await;
    sqs.send_message()
        .queue_url(&dlq_url)
        .message_body("not a send job")
        .send()
        .await
        .unwrap();
    // Received with no visibility of its own: only the sender's hand-back hides it.
    let messages = sqs
        .receive_message()
        .queue_url(&dlq_url)
        .visibility_timeout(0)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(messages.len(), 1);
    let event = smsreg::tools::local_esm::sqs_event(&messages, &dlq_arn, "us-east-1");
    let event = serde_json::from_value(event).unwrap();
    let config = Config {
        table_name: TABLE.into(),
        send_queue_url: Some(queue_url.clone()),
        send_dead_letter_queue_arn: Some(dlq_arn.clone()),
        ..Config::default()
    };
    let sender = smsreg::wiring::aws_sender_with(&aws, config).unwrap();
    let response = sender.handle_batch(&event, None).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1, "kept for inspection");
    let visible = sqs
        .receive_message()
        .queue_url(&dlq_url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(visible.is_empty(), "the hand-back hid it for hours");
}
