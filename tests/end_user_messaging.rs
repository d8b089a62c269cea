//! End User Messaging SMS as the provider (`SMS_PROVIDER=end-user-messaging`), end to end
//! through the API, the real SQS queue (moto) and the sender, with the real SDK client
//! against the fault proxy's stand-in for `pinpoint-sms-voice-v2` (moto has none): what
//! each SMS carries, each of AWS's refusals mapped to its outcome, the opt-out list kept in
//! step with STOP and START, and the calls a job makes both ways of checking opt-outs.

mod common;

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use common::fault_proxy::{Fault, Rule};
use common::*;
use serde_json::{Value, json};
use smsreg::adapters::dynamodb::DynamoStore;
use smsreg::adapters::end_user_messaging::EndUserMessagingSms;
use smsreg::adapters::sqs::SqsQueue;
use smsreg::config::{Config, Provider};
use smsreg::domain::PhoneNumber;
use smsreg::functions::sender::SenderFunction;
use smsreg::ports::{InvitationStore, OptOuts, SystemClock};
use smsreg::service::RegistrationService;
use smsreg::service::send::Sender;
use smsreg::wiring::{AwsApi, AwsReplies, AwsSender};

const TABLE: &str = "sms-registration-eum";
const A: &str = "+16175551234";
const B: &str = "+16175555512";
const C: &str = "+16175550123";
/// Opted out at AWS (the stand-in, like moto's SNS, has numbers ending in 99 opted out).
const OUT: &str = "+16175550199";
/// A UK mobile: the protect configuration blocks the UK in these tests.
const UK: &str = "+447911123456";
/// A Kenyan mobile, priced here as a premium-rate destination.
const KE: &str = "+254712345678";

struct Env {
    moto: Moto,
    store: DynamoStore,
    config: Config,
    api: AwsApi,
    sender: AwsSender,
    replies: AwsReplies,
    queue_url: String,
}

fn eum_config() -> Config {
    Config {
        table_name: TABLE.into(),
        public_base_url: "https://sms.example.org".into(),
        sms_provider: Provider::EndUserMessaging,
        sms_origination_identity: Some("pool-0123456789abcdef0123456789abcdef".into()),
        sms_configuration_set: Some("smsreg-events".into()),
        ..Config::default()
    }
}

async fn env(max_price: Option<&str>) -> Env {
    let moto = Moto::start();
    let store = moto.store(TABLE).await;
    provision_demo(&store, None).await;
    if let Some(price) = max_price {
        store
            .put_project(&smsreg::adapters::dynamodb::ProjectUpdate {
                accounts: None,
                max_price_per_part: Some(Some(price)),
                ..project(DEMO_DOMAIN, None, smsreg::domain::Plan::Pro)
            })
            .await
            .unwrap();
    }
    let aws = moto.sdk_config().await;
    let config = moto.queued(eum_config()).await;
    Env {
        api: smsreg::wiring::aws_api_with(&aws, config.clone()).unwrap(),
        sender: smsreg::wiring::aws_sender_with(&aws, config.clone()).unwrap(),
        replies: smsreg::wiring::aws_replies_with(&aws, config.clone()).unwrap(),
        queue_url: config.send_queue_url.clone().unwrap(),
        config,
        moto,
        store,
    }
}

impl Env {
    async fn invite(&self, phones: &[&str]) -> Value {
        let users: Vec<Value> = phones.iter().map(|p| json!({"phone_number": p})).collect();
        let body = json!({"app_id": DEMO_APP, "users": users});
        let request = lambda_http::request::from_str(&post_event(
            DEMO_DOMAIN,
            &body,
            &api_key_header(DEMO_USER, DEMO_KEY),
        ))
        .unwrap();
        let (status, report) = response_parts(&self.api.handle(request).await);
        assert_eq!(status, 200, "{report}");
        report
    }

    async fn record(&self, phone: &str) -> smsreg::domain::invitation::RegistrationRecord {
        self.store
            .find(&PhoneNumber::parse(phone).unwrap())
            .await
            .unwrap()
            .expect("an invitation")
    }

    async fn failures(&self, phone: &str) -> u64 {
        let item = aws_sdk_dynamodb::Client::new(&self.moto.sdk_config().await)
            .get_item()
            .table_name(TABLE)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("PHONE#{phone}")),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("REGISTRATION".into()),
            )
            .send()
            .await
            .unwrap()
            .item
            .expect("the invitation's item");
        item.get("send_failures")
            .and_then(|v| v.as_n().ok())
            .map_or(0, |n| n.parse().unwrap())
    }

    /// Receives the queue's visible jobs once, as the event source mapping would hand
    /// them to the sender (left on the queue: the test hands the same event again).
    async fn received(&self) -> SqsEvent {
        let sqs = aws_sdk_sqs::Client::new(&self.moto.sdk_config().await);
        common::receive_event(&sqs, &self.queue_url).await.1
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_sms_goes_from_the_identity_with_the_cap_the_time_to_live_and_a_context_without_the_number()
 {
    let e = env(Some("0.05")).await;
    let report = e.invite(&[A, B, OUT]).await;
    let batch = report["batch_id"].as_str().unwrap().to_owned();
    e.moto.deliver(&e.sender, &e.queue_url).await;

    let eum = e.moto.front.eum();
    let sent = eum.sent();
    let phones: Vec<&str> = sent.iter().map(|m| m.phone.as_str()).collect();
    assert_eq!(phones.len(), 2, "{phones:?}");
    assert!(phones.contains(&A) && phones.contains(&B), "{phones:?}");
    let tokens = [e.record(A).await.token, e.record(B).await.token];
    for sms in &sent {
        assert_eq!(
            sms.origination_identity.as_deref(),
            Some("pool-0123456789abcdef0123456789abcdef")
        );
        assert_eq!(sms.configuration_set.as_deref(), Some("smsreg-events"));
        assert_eq!(sms.message_type.as_deref(), Some("TRANSACTIONAL"));
        assert_eq!(sms.max_price.as_deref(), Some("0.05"));
        assert_eq!(sms.time_to_live, Some(86_400));
        assert_eq!(sms.context["project"], DEMO_DOMAIN);
        assert_eq!(sms.context["batch"], batch);
        assert!(sms.context.contains_key("job"));
        assert_eq!(sms.context.len(), 3);
        let context = format!("{:?}", sms.context);
        assert!(!context.contains("6175"), "no phone number: {context}");
        for token in &tokens {
            assert!(!context.contains(token.as_str()), "no token: {context}");
        }
    }
    // SNS sent nothing: every SMS went through End User Messaging.
    assert_eq!(e.moto.sms().len(), 2);

    // The opted-out number: one refused send, no question asked first, recorded as a STOP.
    assert_eq!(eum.calls("DescribeOptedOutNumbers"), 0);
    assert_eq!(eum.calls("SendTextMessage"), 3);
    assert_eq!(
        e.record(OUT).await.status,
        smsreg::domain::RegistrationStatus::OptedOut
    );
    let out = PhoneNumber::parse(OUT).unwrap();
    assert!(e.store.opted_out(&[out]).await.unwrap().contains(OUT));
    // Invited again, it is answered opted out at once: nothing goes to AWS.
    let again = e.invite(&[OUT]).await;
    assert_eq!(again["opted_out_numbers"], json!([OUT]), "{again}");
    e.moto.deliver(&e.sender, &e.queue_url).await;
    assert_eq!(eum.calls("SendTextMessage"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_country_and_a_price_over_the_cap_fail_at_once_with_their_reason() {
    let e = env(Some("0.05")).await;
    let eum = e.moto.front.eum();
    eum.block_prefix("+44");
    eum.price_prefix("+254", 1.25);
    e.invite(&[UK, KE, A]).await;
    e.moto.deliver(&e.sender, &e.queue_url).await;

    for (phone, reason) in [
        (UK, "DESTINATION_COUNTRY_BLOCKED_BY_PROTECT_CONFIGURATION"),
        (KE, "PRICE_OVER_THRESHOLD"),
    ] {
        let record = e.record(phone).await;
        assert_eq!(
            record.status,
            smsreg::domain::RegistrationStatus::Failed,
            "{phone}"
        );
        let why = record.failure_reason.unwrap_or_default();
        assert!(why.contains(reason), "{phone}: {why}");
        // One send, no retry: a refusal for good is not tried again.
        assert_eq!(e.moto.front.calls("SendTextMessage", phone), 1, "{phone}");
    }
    assert_eq!(
        e.record(A).await.status,
        smsreg::domain::RegistrationStatus::Pending
    );
    assert_eq!(eum.sent().len(), 1);
    // The failures gave their numbers back: not stuck "in use", they can be invited again.
    let report = e.invite(&[UK, KE]).await;
    assert_eq!(report["success_numbers"], json!([UK, KE]), "{report}");
    assert_eq!(report["numbers_in_use"], json!([]), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sms_refused_as_invalid_fails_at_once_with_its_reason() {
    let e = env(None).await;
    e.moto
        .front
        .add(Rule::always("SendTextMessage", Some(A), Fault::Invalid));
    e.invite(&[A]).await;
    e.moto.deliver(&e.sender, &e.queue_url).await;
    let record = e.record(A).await;
    assert_eq!(record.status, smsreg::domain::RegistrationStatus::Failed);
    let why = record.failure_reason.unwrap_or_default();
    assert!(why.contains("INVALID_PARAMETER"), "{why}");
    // Sent again it would be refused again: one send, no retry.
    assert_eq!(e.moto.front.calls("SendTextMessage", A), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_monthly_spend_limit_holds_jobs_without_spending_attempts_until_it_is_raised() {
    let e = env(None).await;
    let eum = e.moto.front.eum();
    eum.spend_limit_reached(true);
    e.invite(&[A, B]).await;
    let event = e.received().await;
    assert_eq!(event.records.len(), 2);
    // Three deliveries at the limit: each job handed back, no attempt spent (a job's
    // attempts are 3 here), nothing failed.
    for _ in 0..3 {
        let response = e.sender.handle_batch(&event, None).await.unwrap();
        assert_eq!(response.batch_item_failures.len(), 2);
    }
    for phone in [A, B] {
        assert_eq!(
            e.record(phone).await.status,
            smsreg::domain::RegistrationStatus::Queued
        );
        assert_eq!(e.failures(phone).await, 0, "{phone}: no attempt spent");
    }
    assert_eq!(eum.sent().len(), 0);
    // Raised: the same jobs go, once each.
    eum.spend_limit_reached(false);
    let response = e.sender.handle_batch(&event, None).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let phones: Vec<String> = eum.sent().into_iter().map(|m| m.phone).collect();
    assert_eq!(phones.len(), 2);
    for phone in [A, B] {
        assert_eq!(
            e.record(phone).await.status,
            smsreg::domain::RegistrationStatus::Pending
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_send_comes_back_and_goes_once() {
    let e = env(None).await;
    e.moto
        .front
        .add(Rule::always("SendTextMessage", Some(A), Fault::Throttle).times(1));
    e.invite(&[A]).await;
    let event = e.received().await;
    let response = e.sender.handle_batch(&event, None).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1, "handed back");
    assert_eq!(e.failures(A).await, 1);
    let response = e.sender.handle_batch(&event, None).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(e.moto.sms_to(A).len(), 1);
    assert_eq!(e.moto.front.calls("SendTextMessage", A), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_and_start_keep_the_identitys_opt_out_list_in_step() {
    let e = env(None).await;
    let eum = e.moto.front.eum();
    let list = e.config.sms_opt_out_list.clone();
    assert_eq!(list, "Default");
    let stop = sns_reply("in-1", A, "STOP");
    e.replies.handle_records(&stop).await.unwrap();
    assert_eq!(eum.opted_out(&list), vec![A.to_owned()]);
    // Redelivered: handled once.
    e.replies.handle_records(&stop).await.unwrap();
    assert_eq!(eum.calls("PutOptedOutNumber"), 1);
    let start = sns_reply("in-2", A, "START");
    e.replies.handle_records(&start).await.unwrap();
    assert!(eum.opted_out(&list).is_empty());
    // Back in: invited and texted.
    e.invite(&[A]).await;
    e.moto.deliver(&e.sender, &e.queue_url).await;
    assert_eq!(e.moto.sms_to(A).len(), 1);

    // A STOP the list could not record fails the reply, so that Lambda delivers it again,
    // and the redelivery records it.
    e.moto
        .front
        .add(Rule::always("PutOptedOutNumber", None, Fault::ServerError).times(1));
    let stop = sns_reply("in-3", B, "STOP");
    assert!(e.replies.handle_records(&stop).await.is_err());
    assert!(eum.opted_out(&list).is_empty());
    e.replies.handle_records(&stop).await.unwrap();
    assert_eq!(eum.opted_out(&list), vec![B.to_owned()]);

    // A START the list refuses (AWS takes a number off once in 30 days): the reply is
    // handled, the list keeps the number, and the next send to it is refused and recorded
    // as a STOP again. One AWS fails once (its 500) is tried again.
    eum.keep_on_list(B);
    e.moto
        .front
        .add(Rule::always("DeleteOptedOutNumber", Some(B), Fault::ServerError).times(1));
    let start = sns_reply("in-4", B, "START");
    assert!(
        e.replies.handle_records(&start).await.is_err(),
        "AWS's 500: tried again"
    );
    e.replies.handle_records(&start).await.unwrap();
    assert_eq!(eum.opted_out(&list), vec![B.to_owned()]);
    e.invite(&[B]).await;
    e.moto.deliver(&e.sender, &e.queue_url).await;
    assert_eq!(
        e.record(B).await.status,
        smsreg::domain::RegistrationStatus::OptedOut
    );
    assert!(e.moto.sms_to(B).is_empty());

    // A number AWS has on the list (a STOP that reached AWS, not the service) is found
    // at the send and recorded: invited again, it is answered opted out.
    eum.opt_out(&list, C);
    e.invite(&[C]).await;
    e.moto.deliver(&e.sender, &e.queue_url).await;
    assert_eq!(
        e.record(C).await.status,
        smsreg::domain::RegistrationStatus::OptedOut
    );
    assert!(e.moto.sms_to(C).is_empty());
}

/// The question: ask the opt-out list before each first SMS, or rely on the send's
/// refusal? Measured over the same batch of 20 numbers (2 opted out), both ways.
#[tokio::test(flavor = "multi_thread")]
async fn calls_per_job_with_and_without_asking_the_opt_out_list_first() {
    let mut figures = Vec::new();
    for ask_first in [Some(50), None] {
        let e = env(None).await;
        let aws = e.moto.sdk_config().await;
        let mut settings = smsreg::wiring::end_user_messaging_settings(&e.config);
        settings.ask_opt_out_first = ask_first;
        let provider =
            EndUserMessagingSms::new(aws_sdk_pinpointsmsvoicev2::Client::new(&aws), settings);
        let service = RegistrationService::new(
            e.store.clone(),
            SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &e.queue_url),
            Arc::new(SystemClock),
            e.config.clone(),
        );
        let sender = SenderFunction::new(Sender::new(service, provider));
        let mut numbers = us_numbers(18, 4000);
        numbers.extend([OUT.to_owned(), "+16175551299".to_owned()]);
        let phones: Vec<&str> = numbers.iter().map(String::as_str).collect();
        e.invite(&phones).await;
        e.moto.deliver(&sender, &e.queue_url).await;
        let eum = e.moto.front.eum();
        let (asks, sends) = (
            eum.calls("DescribeOptedOutNumbers"),
            eum.calls("SendTextMessage"),
        );
        assert_eq!(eum.sent().len(), 18);
        for phone in [OUT, "+16175551299"] {
            assert_eq!(
                e.record(phone).await.status,
                smsreg::domain::RegistrationStatus::OptedOut
            );
        }
        let per_job = (asks + sends) as f64 / 20.0;
        println!(
            "opt-out check {}: {asks} DescribeOptedOutNumbers + {sends} SendTextMessage for 20 jobs = {per_job:.2} calls a job",
            if ask_first.is_some() {
                "asked first"
            } else {
                "at the send"
            }
        );
        figures.push((asks, sends));
    }
    // Asked first: one question per job and a send per number not opted out.
    assert_eq!(figures[0], (20, 18));
    // At the send: one call per job, the refusal included.
    assert_eq!(figures[1], (0, 20));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_delivered_twice_sends_its_sms_once() {
    let e = env(None).await;
    e.invite(&[A]).await;
    // SQS hands the same job out again: a second copy of its message.
    e.moto.duplicate_first_job(&e.queue_url).await;
    assert_eq!(e.moto.deliver(&e.sender, &e.queue_url).await, 2);
    assert_eq!(e.moto.sms_to(A).len(), 1);
    assert_eq!(e.moto.front.calls("SendTextMessage", A), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_attempt_fails_the_invitation_fails_and_the_number_is_freed() {
    let e = env(None).await;
    // End User Messaging's own failure at every try (its 500).
    e.moto
        .front
        .add(Rule::always("SendTextMessage", Some(B), Fault::ServerError));
    e.invite(&[A, B]).await;
    for wait in [0, 5, 10] {
        tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 300)).await;
        assert!(
            e.moto.deliver(&e.sender, &e.queue_url).await > 0,
            "the job comes back after {wait} s"
        );
    }
    assert_eq!(e.moto.sms_to(A).len(), 1);
    assert!(e.moto.sms_to(B).is_empty());
    let failed = e.record(B).await;
    assert_eq!(failed.status, smsreg::domain::RegistrationStatus::Failed);
    let why = failed.failure_reason.unwrap_or_default();
    assert!(
        why.contains("3 attempts") && why.contains("InternalServerException"),
        "{why}"
    );
    assert_eq!(e.moto.front.calls("SendTextMessage", B), 3);
    assert_eq!(e.moto.queue_depth(&e.queue_url).await, 0);
    let report = e.invite(&[B]).await;
    assert_eq!(report["success_numbers"], json!([B]), "freed: {report}");
}
