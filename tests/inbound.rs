//! Workers' SMS replies: SNS events of `events/sns/` replayed through the inbound handler,
//! against moto.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{Value, json};
use smsreg::config::Config;
use smsreg::domain::PhoneNumber;
use smsreg::domain::invitation::{PhoneType, RegistrationStatus};
use smsreg::ports::InvitationStore;
use smsreg::wiring::{AwsApi, AwsReplies, aws_api_with, aws_replies_with};

const TABLE: &str = "sms-registration-inbound";
const A: &str = "+16175551234";

struct Env {
    moto: Moto,
    api: AwsApi,
    inbound: AwsReplies,
    sender: smsreg::wiring::AwsSender,
    queue_url: String,
}

async fn env(install_url: Option<&str>) -> Env {
    let moto = Moto::start();
    provision_demo(&moto.store(TABLE).await, install_url).await;
    let aws = moto.sdk_config().await;
    let config = moto
        .queued(Config {
            table_name: TABLE.into(),
            public_base_url: "https://sms.example.org".into(),
            ..Config::default()
        })
        .await;
    Env {
        api: aws_api_with(&aws, config.clone()).unwrap(),
        inbound: aws_replies_with(&aws, config.clone()).unwrap(),
        sender: smsreg::wiring::aws_sender_with(&aws, config.clone()).unwrap(),
        queue_url: config.send_queue_url.unwrap(),
        moto,
    }
}

/// The event as the function reads it.
fn sns(event: &Value) -> aws_lambda_events::event::sns::SnsEvent {
    serde_json::from_value(event.clone()).expect("an SNS event")
}

fn sns_event(name: &str) -> Value {
    let path = repo_root().join("events/sns").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The same event with another message id and body.
fn reply(body: &str, id: &str) -> Value {
    let mut event = sns_event("reply-other");
    let mut message: Value =
        serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    message["messageBody"] = body.into();
    message["inboundMessageId"] = id.into();
    event["Records"][0]["Sns"]["Message"] = message.to_string().into();
    event
}

/// The same event from another number.
fn from(phone: &str, mut event: Value) -> Value {
    let mut message: Value =
        serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    message["originationNumber"] = phone.into();
    event["Records"][0]["Sns"]["Message"] = message.to_string().into();
    event
}

impl Env {
    async fn invite(&self, phone: &str) {
        self.invite_with(phone, json!({})).await;
    }

    /// Invites `phone` with the request's other fields taken from `fields`.
    async fn invite_with(&self, phone: &str, fields: Value) {
        let mut body = json!({"app_id": DEMO_APP, "users": [{"phone_number": phone, "custom_user_data": {"team": "north"}}]});
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let request = lambda_http::request::from_str(&post_event(
            DEMO_DOMAIN,
            &body,
            &api_key_header(DEMO_USER, DEMO_KEY),
        ))
        .unwrap();
        let (status, report) = response_parts(&self.api.handle(request).await);
        assert_eq!((status, &report["success_numbers"]), (200, &json!([phone])));
        self.moto.deliver(&self.sender, &self.queue_url).await;
    }

    async fn replay(&self, event: &Value) -> Vec<String> {
        let out = self
            .inbound
            .handle_records(&sns(event))
            .await
            .expect("handled");
        // The answers go through the send queue, like every SMS.
        self.moto.deliver(&self.sender, &self.queue_url).await;
        out["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().to_owned())
            .collect()
    }

    async fn record(&self) -> smsreg::domain::RegistrationRecord {
        self.moto
            .store(TABLE)
            .await
            .find(&PhoneNumber::parse(A).unwrap())
            .await
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn replying_1_sends_the_android_link_and_the_install_link() {
    let e = env(Some("https://www.commcarehq.org/a/demo/app/1")).await;
    e.invite(A).await;
    assert_eq!(e.replay(&sns_event("reply-1")).await, ["android_link_sent"]);
    let record = e.record().await;
    assert_eq!(record.phone_type, Some(PhoneType::Android));
    let sms = e.moto.sms_to(A);
    assert_eq!(sms.len(), 3, "{sms:?}");
    assert!(sms[1].ends_with(&format!(
        "https://sms.example.org/a/demo/register/{}",
        record.token.as_str()
    )));
    assert!(sms[2].starts_with("[commcare app - do not delete] "));
}

#[tokio::test]
async fn the_same_reply_delivered_twice_sends_nothing_twice() {
    let e = env(None).await;
    e.invite(A).await;
    assert_eq!(e.replay(&sns_event("reply-1")).await, ["android_link_sent"]);
    assert_eq!(e.replay(&sns_event("reply-1")).await, ["duplicate"]);
    assert_eq!(e.moto.sms_to(A).len(), 2);
}

#[tokio::test]
async fn replying_2_asks_for_a_join_message_and_a_known_type_is_resent() {
    let e = env(None).await;
    e.invite(A).await;
    assert_eq!(
        e.replay(&sns_event("reply-2")).await,
        ["join_instructions_sent"]
    );
    assert_eq!(e.record().await.phone_type, Some(PhoneType::Other));
    let sms = e.moto.sms_to(A);
    assert!(sms[1].contains("reply JOIN demo WORKER"), "{}", sms[1]);
    // Out of order: a later "1" does not change the type, it resends the JOIN instructions.
    assert_eq!(
        e.replay(&reply("1", "late-1")).await,
        ["join_instructions_sent"]
    );
    assert_eq!(e.record().await.phone_type, Some(PhoneType::Other));
}

#[tokio::test]
async fn anything_else_resends_the_start_sms() {
    let e = env(None).await;
    e.invite(A).await;
    assert_eq!(e.replay(&sns_event("reply-other")).await, ["start_resent"]);
    let sms = e.moto.sms_to(A);
    assert_eq!(sms[1], sms[0]);
}

#[tokio::test]
async fn join_registers_the_worker_and_welcomes_them_by_username() {
    let e = env(None).await;
    e.invite(A).await;
    assert_eq!(e.replay(&sns_event("reply-join")).await, ["joined"]);
    let record = e.record().await;
    assert_eq!(record.status, RegistrationStatus::Registered);
    let workers = e
        .moto
        .store(TABLE)
        .await
        .list_workers(DEMO_DOMAIN)
        .await
        .unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].username, "jane.doe");
    assert_eq!(
        workers[0].custom_user_data.as_ref().unwrap()["team"],
        "north"
    );
    assert!(
        e.moto
            .sms_to(A)
            .last()
            .unwrap()
            .contains("username is jane.doe")
    );
}

#[tokio::test]
async fn join_without_a_username_uses_the_numbers_digits() {
    let e = env(None).await;
    e.invite(A).await;
    assert_eq!(
        e.replay(&reply("JOIN demo WORKER", "j-2")).await,
        ["joined"]
    );
    let workers = e
        .moto
        .store(TABLE)
        .await
        .list_workers(DEMO_DOMAIN)
        .await
        .unwrap();
    assert_eq!(workers[0].username, "16175551234");
}

#[tokio::test]
async fn join_with_a_taken_or_invalid_username_says_so_and_leaves_the_invitation_pending() {
    let e = Arc::new(env(None).await);
    e.invite("+16175555512").await;
    let mut first = reply("JOIN demo WORKER jane", "j-3");
    let mut message: Value =
        serde_json::from_str(first["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    message["originationNumber"] = "+16175555512".into();
    first["Records"][0]["Sns"]["Message"] = message.to_string().into();
    assert_eq!(e.replay(&first).await, ["joined"]);

    e.invite(A).await;
    assert_eq!(
        e.replay(&reply("join demo worker JANE", "j-4")).await,
        ["join_refused"]
    );
    assert!(e.moto.sms_to(A).last().unwrap().contains("already taken"));
    assert_eq!(
        e.replay(&reply("JOIN demo WORKER admin", "j-5")).await,
        ["join_refused"]
    );
    assert!(e.moto.sms_to(A).last().unwrap().contains("cannot be used"));
    assert_eq!(
        e.replay(&reply("JOIN other WORKER jim", "j-6")).await,
        ["join_refused"]
    );
    assert_eq!(e.record().await.status, RegistrationStatus::Pending);
}

#[tokio::test]
async fn replies_without_a_pending_invitation_are_ignored() {
    let e = env(None).await;
    assert_eq!(e.replay(&sns_event("reply-1")).await, ["ignored"]);
    // An SNS notification whose message is not an inbound SMS.
    let mut garbage = sns_event("reply-other");
    garbage["Records"][0]["Sns"]["Message"] = "not json".into();
    assert_eq!(e.replay(&garbage).await, ["ignored"]);
    assert!(e.moto.sms().is_empty());
}

#[tokio::test]
async fn stop_is_never_answered_and_the_number_is_texted_no_more_until_start() {
    let e = env(None).await;
    e.invite(A).await;
    assert_eq!(e.moto.sms_to(A).len(), 1);
    assert_eq!(e.replay(&sns_event("reply-stop")).await, ["opted_out"]);
    assert_eq!(e.moto.sms_to(A).len(), 1, "STOP is not answered");
    let record = e.record().await;
    assert_eq!(record.status, RegistrationStatus::OptedOut);

    // A new invitation records nothing and sends nothing.
    let body = json!({"app_id": DEMO_APP, "users": [{"phone_number": A}]});
    let request = lambda_http::request::from_str(&post_event(
        DEMO_DOMAIN,
        &body,
        &api_key_header(DEMO_USER, DEMO_KEY),
    ))
    .unwrap();
    let (status, report) = response_parts(&e.api.handle(request).await);
    assert_eq!(status, 200);
    assert_eq!(report["opted_out_numbers"], json!([A]), "{report}");
    assert_eq!(report["success_numbers"], json!([]));
    assert_eq!(e.record().await.token, record.token, "nothing recorded");
    // Neither other replies nor HELP are answered while opted out.
    assert_eq!(e.replay(&reply("1", "after-stop-1")).await, ["ignored"]);
    assert_eq!(e.replay(&sns_event("reply-help")).await, ["help_sent"]);
    assert_eq!(e.moto.sms_to(A).len(), 1, "nothing texted after STOP");

    assert_eq!(e.replay(&sns_event("reply-start")).await, ["opted_in"]);
    assert_eq!(e.moto.sms_to(A).len(), 1, "START is not answered either");
    e.invite(A).await;
    assert_eq!(e.moto.sms_to(A).len(), 2, "invited again after START");
    assert_eq!(e.record().await.status, RegistrationStatus::Pending);
}

#[tokio::test]
async fn every_opt_out_word_in_any_case_opts_out() {
    let e = env(None).await;
    for (i, word) in [
        "stopall",
        "Unsubscribe now",
        "CANCEL",
        "end",
        "Quit",
        "optout",
        "OPT-OUT",
        "revoke",
    ]
    .into_iter()
    .enumerate()
    {
        e.invite(A).await;
        assert_eq!(
            e.replay(&reply(word, &format!("word-{i}"))).await,
            ["opted_out"],
            "{word}"
        );
        assert_eq!(
            e.record().await.status,
            RegistrationStatus::OptedOut,
            "{word}"
        );
        assert_eq!(
            e.replay(&reply("unstop", &format!("back-{i}"))).await,
            ["opted_in"]
        );
    }
}

#[tokio::test]
async fn help_gets_one_sms_naming_the_project_and_how_to_stop() {
    let e = env(None).await;
    e.invite(A).await;
    assert_eq!(e.replay(&sns_event("reply-help")).await, ["help_sent"]);
    let sms = e.moto.sms_to(A);
    assert_eq!(sms.len(), 2, "{sms:?}");
    assert!(
        sms[1].starts_with("Demo Health") && sms[1].contains("Reply STOP"),
        "{}",
        sms[1]
    );
    assert_eq!(e.record().await.status, RegistrationStatus::Pending);
    // From a number the service never texted: a help text without a project.
    let mut stranger = reply("info", "stranger-help");
    let mut message: Value =
        serde_json::from_str(stranger["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    message["originationNumber"] = "+16175550123".into();
    stranger["Records"][0]["Sns"]["Message"] = message.to_string().into();
    assert_eq!(e.replay(&stranger).await, ["help_sent"]);
    assert_eq!(e.moto.sms_to("+16175550123").len(), 1);
}

#[tokio::test]
async fn a_reply_that_fails_is_handled_when_delivered_again() {
    use common::fault_proxy::{Fault, Rule};
    let e = env(None).await;
    e.invite(A).await;
    e.moto.front.add(Rule::always(
        "TransactWriteItems",
        Some("OPTOUT"),
        Fault::ServerError,
    ));
    assert!(
        e.inbound
            .handle_records(&sns(&sns_event("reply-stop")))
            .await
            .is_err()
    );
    assert_eq!(e.record().await.status, RegistrationStatus::Pending);
    e.moto.front.clear();
    // Lambda delivers the event again: it is not taken for a duplicate.
    assert_eq!(e.replay(&sns_event("reply-stop")).await, ["opted_out"]);
    assert_eq!(e.record().await.status, RegistrationStatus::OptedOut);
}

#[tokio::test]
async fn an_auto_responder_gets_two_answers_a_day_and_the_third_is_kept_for_the_workers_choice() {
    let e = env(None).await;
    e.invite(A).await;
    let before = e.moto.sms_to(A).len();
    // "I am away until Monday", thirty times: two answers, then none.
    let mut outcomes = Vec::new();
    for i in 0..30 {
        outcomes.extend(
            e.replay(&reply("I am away until Monday", &format!("away-{i}")))
                .await,
        );
    }
    assert_eq!(outcomes[..2], ["start_resent"; 2]);
    assert!(
        outcomes[2..].iter().all(|o| o == "not_answered"),
        "{outcomes:?}"
    );
    assert_eq!(e.moto.sms_to(A).len(), before + 2, "two answers sent");
    // A retry of an answered reply keeps its answer (it is a duplicate, sent nothing).
    assert_eq!(
        e.replay(&reply("I am away until Monday", "away-0")).await,
        ["duplicate"]
    );
    // The worker's 1 takes the answer kept for it: the link arrives the same day.
    assert_eq!(e.replay(&reply("1", "one")).await, ["android_link_sent"]);
    // That was the day's third answer: HELP is not answered, STOP is still recorded.
    assert_eq!(e.replay(&reply("HELP", "help")).await, ["not_answered"]);
    assert_eq!(e.replay(&reply("STOP", "stop")).await, ["opted_out"]);
    assert_eq!(e.moto.sms_to(A).len(), before + 3);
}

/// HELP as people and auto-responders write it: each is the HELP keyword.
const HELPS: [&str; 6] = [
    "HELP",
    "help me please",
    "HELP!",
    "Info: I am out of the office until Monday",
    "Help desk hours are 9 to 5",
    "info",
];

#[tokio::test]
async fn help_counts_against_the_numbers_three_answers_a_day() {
    let e = env(None).await;
    // The phone type is known from the start: nothing waits for the worker's 1 or 2.
    e.invite_with(A, json!({"android_only": true})).await;
    let before = e.moto.sms_to(A).len();
    let mut outcomes = Vec::new();
    for (i, body) in HELPS.iter().enumerate() {
        outcomes.extend(e.replay(&reply(body, &format!("help-{i}"))).await);
    }
    assert_eq!(outcomes[..3], ["help_sent"; 3], "{outcomes:?}");
    assert!(
        outcomes[3..].iter().all(|o| o == "not_answered"),
        "{outcomes:?}"
    );
    assert_eq!(e.moto.sms_to(A).len(), before + 3, "three answers a day");
    // The cap is the number's, not the invitation's: a new invitation gets no more today.
    e.invite_with(A, json!({"android_only": true})).await;
    let invited_again = e.moto.sms_to(A).len();
    assert_eq!(
        e.replay(&reply("HELP", "help-after-reinvite")).await,
        ["not_answered"]
    );
    assert_eq!(e.moto.sms_to(A).len(), invited_again);
}

#[tokio::test]
async fn a_number_never_invited_gets_one_help_answer_a_day() {
    let e = env(None).await;
    let stranger = "+16175550123";
    let mut outcomes = Vec::new();
    for (i, body) in HELPS.iter().enumerate() {
        outcomes.extend(
            e.replay(&from(stranger, reply(body, &format!("stranger-{i}"))))
                .await,
        );
    }
    assert_eq!(outcomes[0], "help_sent", "{outcomes:?}");
    assert!(
        outcomes[1..].iter().all(|o| o == "not_answered"),
        "{outcomes:?}"
    );
    assert_eq!(e.moto.sms_to(stranger).len(), 1);
}

#[tokio::test]
async fn join_on_an_invitation_requiring_an_email_answers_the_registration_link_and_registers_nobody()
 {
    let e = env(None).await;
    e.invite_with(A, json!({"require_email": true})).await;
    assert_eq!(
        e.replay(&reply("JOIN demo WORKER jane", "join-email"))
            .await,
        ["registration_link_sent"]
    );
    let record = e.record().await;
    assert_eq!(record.status, RegistrationStatus::Pending);
    let workers = e
        .moto
        .store(TABLE)
        .await
        .list_workers(DEMO_DOMAIN)
        .await
        .unwrap();
    assert!(workers.is_empty(), "nobody registered without an email");
    let answer = e.moto.sms_to(A).pop().unwrap();
    assert!(
        answer.contains(&format!(
            "https://sms.example.org/a/demo/register/{}",
            record.token.as_str()
        )) || answer.contains(&format!(
            "https://sms.example.org/r/{}",
            record.token.as_str()
        )),
        "{answer}"
    );
    assert!(answer.contains("email"), "{answer}");
}

#[tokio::test]
async fn join_in_a_project_whose_accounts_live_in_a_directory_answers_the_page_and_registers_nobody()
 {
    let e = env(None).await;
    let store = e.moto.store(TABLE).await;
    let mut update = project(DEMO_DOMAIN, Some("Demo Health"), smsreg::domain::Plan::Pro);
    update.accounts = Some(&smsreg::domain::account::Accounts::Cognito);
    store.put_project(&update).await.unwrap();
    e.invite(A).await;
    assert_eq!(
        e.replay(&reply("JOIN demo WORKER jane", "join-directory"))
            .await,
        ["registration_link_sent"]
    );
    let record = e.record().await;
    assert_eq!(record.status, RegistrationStatus::Pending);
    assert!(record.account.is_none(), "no account begun");
    assert!(store.list_workers(DEMO_DOMAIN).await.unwrap().is_empty());
    let answer = e.moto.sms_to(A).pop().unwrap();
    assert!(answer.contains("choose your password"), "{answer}");
    assert!(answer.contains(record.token.as_str()), "{answer}");
}

#[tokio::test]
async fn a_join_with_a_2000_character_username_is_refused_in_one_sms_part() {
    let e = env(None).await;
    e.invite(A).await;
    for (i, name) in ["x".repeat(2000), "ж".repeat(2000)].iter().enumerate() {
        let sent = e.moto.sms_to(A).len();
        assert_eq!(
            e.replay(&reply(
                &format!("JOIN demo WORKER {name}"),
                &format!("long-{i}")
            ))
            .await,
            ["join_refused"]
        );
        let sms = e.moto.sms_to(A);
        assert_eq!(sms.len(), sent + 1, "the refusal is sent");
        let refusal = sms.last().unwrap();
        assert!(refusal.contains("cannot be used"), "{refusal}");
        assert_eq!(
            smsreg::domain::encoding::measure(refusal).parts,
            1,
            "{refusal}"
        );
    }
    assert_eq!(e.record().await.status, RegistrationStatus::Pending);
}

#[tokio::test]
async fn a_reply_with_an_id_too_long_to_store_is_dropped_not_retried() {
    let e = env(None).await;
    e.invite(A).await;
    let sent = e.moto.sms_to(A).len();
    // DynamoDB refuses a partition key over 2048 bytes (the proxy in front of moto does too).
    assert_eq!(e.replay(&reply("1", &"x".repeat(3000))).await, ["dropped"]);
    assert_eq!(e.moto.sms_to(A).len(), sent);
    assert_eq!(e.record().await.phone_type, None);
}

#[tokio::test]
async fn a_reply_the_store_refuses_as_invalid_is_dropped_not_retried() {
    use common::fault_proxy::{Fault, Rule};
    let e = env(None).await;
    e.invite(A).await;
    let sent = e.moto.sms_to(A).len();
    e.moto
        .front
        .add(Rule::always("PutItem", Some("INBOUND#"), Fault::Invalid));
    assert_eq!(e.replay(&reply("1", "refused-id")).await, ["dropped"]);
    assert_eq!(e.moto.sms_to(A).len(), sent);
}
