//! Bulk sending at the account's SMS rate, end to end: the API queues a 500-worker batch,
//! two real `smsreg-sender` processes (the mapping's maximum concurrency) fed by the real
//! `smsreg-local-esm` text it through a proxy in front of moto that lets `Publish` to phone
//! numbers through at R parts per second (a message of p parts takes p of them) and
//! throttles the rest, as AWS does past an origination number's throughput. Checked: every
//! SMS goes out once, no phone gets two SMS less than a second apart, throttles stay rare,
//! and the senders together never pass R over any 5 s window; an 11-part message at 1 part
//! per second is never throttled.
//! The figures (answer time, sending time, rate) are printed; `scripts/bench` reports them.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::fault_proxy::Publish;
use common::process::Process;
use common::runtime::RuntimeApi;
use common::*;
use serde_json::{Value, json};
use smsreg::config::{Config, Provider};
use smsreg::ports::InvitationStore;

const TABLE: &str = "sms-registration-sending";
const INSTALL_URL: &str = "https://www.commcarehq.org/a/demo/apps/download/app/media_profile.ccpr";
/// Sender instances at once (the template's `SenderMaxConcurrency` default), sharing the
/// rate.
const SENDERS: usize = 4;

struct Figures {
    answered: Duration,
    sending: Duration,
    accepted: usize,
    throttled: usize,
    /// How far past their deadline sender invocations answered (Lambda would have ended
    /// them there).
    overruns: Vec<Duration>,
}

/// Invites `users` workers (`android_only`, two SMS each with the app's install link) at
/// `rate` parts per second; returns every `Publish` the proxy saw once all SMS went out.
async fn send_batch(
    provider: Provider,
    users: usize,
    rate: usize,
    budget_ms: u64,
) -> (Vec<Publish>, Figures) {
    // The Android invitation with this deployment's link is two parts.
    send(provider, users, rate, budget_ms, None, rate.max(2)).await
}

/// Invites `users` workers at `rate` parts per second, the origination number holding a
/// burst of `burst` parts: `android_only` with the install link (two SMS each), or with
/// `custom` as the one SMS each (`android_only: false`).
async fn send(
    provider: Provider,
    users: usize,
    rate: usize,
    budget_ms: u64,
    custom: Option<&str>,
    burst: usize,
) -> (Vec<Publish>, Figures) {
    let moto = Moto::start();
    moto.front.limit_publish_parts(rate, burst);
    let store = moto.store(TABLE).await;
    provision_demo(&store, Some(INSTALL_URL)).await;
    // Long custom messages allowed: SNS's 11 parts.
    store
        .put_project(&smsreg::adapters::dynamodb::ProjectUpdate {
            accounts: None,
            max_parts_per_sms: Some(11),
            send_window: Some(smsreg::domain::window::SendWindow::Any),
            max_price_per_part: None,
            ..project(DEMO_DOMAIN, Some("Demo Health"), smsreg::domain::Plan::Pro)
        })
        .await
        .unwrap();
    // The template's send queue: maxReceiveCount 50, a safety net.
    let queue_url = moto.send_queue(TABLE, 50).await;

    // Each invocation of the sender gets `budget_ms` (the template's timeout: 60 s).
    let runtime = RuntimeApi::start(budget_ms);
    let mut env = moto.env(TABLE);
    env.extend(runtime.env());
    env.extend([
        ("SEND_QUEUE_URL", queue_url.clone()),
        ("SMS_RATE_PER_SECOND", rate.to_string()),
        ("SEND_MAX_ATTEMPTS", "8".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ]);
    if provider == Provider::EndUserMessaging {
        env.extend([
            ("SMS_PROVIDER", "end-user-messaging".to_string()),
            (
                "SMS_ORIGINATION_IDENTITY",
                "phone-0123456789abcdef".to_string(),
            ),
            ("SMS_CONFIGURATION_SET", "smsreg-events".to_string()),
        ]);
    }
    // Each sender process on its own address of the Runtime API, so that an invocation past
    // its deadline is ended as Lambda ends it: its process killed and a fresh one started.
    let start = |address: &str, label: String| {
        let mut env = env.clone();
        env.retain(|(name, _)| *name != "AWS_LAMBDA_RUNTIME_API");
        env.push(("AWS_LAMBDA_RUNTIME_API", address.to_owned()));
        Process::start(env!("CARGO_BIN_EXE_smsreg-sender"), &label, &env, &[])
    };
    let mut senders: std::collections::BTreeMap<usize, (String, Process)> = (0..SENDERS)
        .map(|i| {
            let (slot, address) = runtime.listener();
            let process = start(&address, format!("sender-{rate}-{i}"));
            (slot, (address, process))
        })
        .collect();
    let mut restarts = 0;
    let concurrency = SENDERS.to_string();
    let invoke_url = runtime.invoke_url("smsreg-sender");
    let _mapping = Process::start(
        env!("CARGO_BIN_EXE_smsreg-local-esm"),
        &format!("mapping-{rate}"),
        &env,
        &["--invoke-url", &invoke_url, "--concurrency", &concurrency],
    );

    let config = Config {
        table_name: TABLE.into(),
        send_queue_url: Some(queue_url),
        public_base_url: "https://sms.example.org".into(),
        ..Config::default()
    };
    let api = smsreg::wiring::aws_api_with(&moto.sdk_config().await, config).unwrap();
    let numbers = us_numbers(users, 3000);
    let users_json: Vec<Value> = numbers.iter().map(|n| json!({"phone_number": n})).collect();
    let body = match custom {
        Some(message) => {
            json!({"app_id": DEMO_APP, "custom_registration_message": message, "users": users_json})
        }
        None => json!({"app_id": DEMO_APP, "android_only": true, "users": users_json}),
    };
    let request = lambda_http::request::from_str(&post_event(
        DEMO_DOMAIN,
        &body,
        &api_key_header(DEMO_USER, DEMO_KEY),
    ))
    .unwrap();
    let started = Instant::now();
    let (status, report) = response_parts(&api.handle(request).await);
    let answered = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(
        report["success_numbers"],
        json!(numbers),
        "every worker recorded and queued"
    );

    let expected = users * if custom.is_some() { 1 } else { 2 };
    let accepted = |publishes: &[Publish]| publishes.iter().filter(|p| p.accepted).count();
    let give_up = Instant::now() + Duration::from_secs(60 + (expected / rate) as u64 * 3);
    while accepted(&moto.front.publishes()) < expected {
        assert!(
            Instant::now() < give_up,
            "only {} of {expected} SMS went out",
            accepted(&moto.front.publishes())
        );
        for slot in runtime.expire() {
            if let Some((address, process)) = senders.remove(&slot) {
                drop(process); // killed
                restarts += 1;
                let fresh = start(&address, format!("sender-{rate}-{slot}-{restarts}"));
                senders.insert(slot, (address, fresh));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Late duplicates would come now, if any.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let publishes = moto.front.publishes();
    let first = publishes.first().unwrap().at;
    let last_accepted = publishes.iter().rfind(|p| p.accepted).unwrap().at;
    let figures = Figures {
        answered,
        sending: last_accepted.duration_since(first),
        accepted: accepted(&publishes),
        throttled: publishes.iter().filter(|p| !p.accepted).count(),
        overruns: runtime.overruns(),
    };
    for n in &numbers {
        let record = store
            .find(&smsreg::domain::PhoneNumber::parse(n).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.status,
            smsreg::domain::RegistrationStatus::Pending,
            "{n}: no invitation failed without a failed SMS"
        );
    }
    assert_eq!(
        moto.sms().len(),
        figures.accepted,
        "moto (or the End User Messaging stand-in) recorded what the proxy passed"
    );
    assert_eq!(
        moto.front.eum().sent().len(),
        if provider == Provider::EndUserMessaging {
            figures.accepted
        } else {
            0
        },
        "every SMS through the provider chosen"
    );
    (publishes, figures)
}

/// The invariants of sending at `rate`, whatever the emulator's speed.
fn check(publishes: &[Publish], figures: &Figures, users: usize, rate: usize) {
    let parts: usize = publishes
        .iter()
        .filter(|p| p.accepted)
        .map(|p| p.parts)
        .sum();
    println!(
        "sending at R = {rate} parts/s: {users} workers answered in {:.2} s; {} SMS ({parts} \
         parts) sent in {:.1} s ({:.2} parts per second, {:.3} R; ideal {:.1} s); {} \
         throttled ({:.1} %)",
        figures.answered.as_secs_f64(),
        figures.accepted,
        figures.sending.as_secs_f64(),
        parts as f64 / figures.sending.as_secs_f64(),
        parts as f64 / figures.sending.as_secs_f64() / rate as f64,
        parts as f64 / rate as f64,
        figures.throttled,
        100.0 * figures.throttled as f64 / figures.accepted as f64,
    );
    assert!(
        figures.overruns.is_empty(),
        "sender invocations answered past their deadline by {:?}",
        figures.overruns
    );
    // Each worker gets the link, then the install link, once each.
    let mut per_phone: HashMap<&str, Vec<&Publish>> = HashMap::new();
    for p in publishes.iter().filter(|p| p.accepted) {
        per_phone.entry(&p.phone).or_default().push(p);
    }
    assert_eq!(per_phone.len(), users);
    for (phone, sms) in &per_phone {
        assert_eq!(sms.len(), 2, "{phone}: each SMS once");
        assert!(
            sms[0].message.contains("/a/demo/register/"),
            "{phone}: the link first"
        );
        assert!(
            sms[1]
                .message
                .starts_with("[commcare app - do not delete] ")
        );
        let gap = sms[1].at.duration_since(sms[0].at);
        assert!(
            gap >= Duration::from_secs(1),
            "{phone}: two SMS {gap:?} apart"
        );
    }
    assert!(
        figures.throttled * 20 <= figures.accepted,
        "throttled {} of {}",
        figures.throttled,
        figures.accepted
    );
    // The senders together, throttled calls included, within R over every 5 s window.
    let window = Duration::from_secs(5);
    let mut start = 0;
    for end in 0..publishes.len() {
        while publishes[end].at.duration_since(publishes[start].at) >= window {
            start += 1;
        }
        let calls = end + 1 - start;
        assert!(
            calls <= 5 * rate,
            "{calls} Publish calls within 5 s (at most {})",
            5 * rate
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_workers_are_texted_at_twenty_per_second_none_lost_none_doubled() {
    let (publishes, figures) = send_batch(Provider::Sns, 500, 20, 60_000).await;
    check(&publishes, &figures, 500, 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn through_end_user_messaging_five_hundred_workers_at_twenty_per_second_none_lost_none_doubled()
 {
    let (publishes, figures) = send_batch(Provider::EndUserMessaging, 500, 20, 60_000).await;
    check(&publishes, &figures, 500, 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_toll_free_number_is_paced_at_three_per_second() {
    let (publishes, figures) = send_batch(Provider::Sns, 30, 3, 60_000).await;
    check(&publishes, &figures, 30, 3);
}

/// End User Messaging's US toll-free number: 3 parts a second.
#[tokio::test(flavor = "multi_thread")]
async fn through_end_user_messaging_a_toll_free_number_is_paced_at_three_parts_per_second() {
    let (publishes, figures) = send_batch(Provider::EndUserMessaging, 30, 3, 60_000).await;
    check(&publishes, &figures, 30, 3);
}

/// A new US 10DLC number: 1 SMS a second, with the template's other defaults (4 instances,
/// 10 jobs a batch). Invocations are cut to 15 s here (7 s of sending each, after the 8 s in
/// which the sender starts no SMS), so that many end while their jobs wait for the rate:
/// none may answer past its deadline, and a job handed back spends no attempt.
#[tokio::test(flavor = "multi_thread")]
async fn a_ten_dlc_number_at_one_per_second_keeps_every_deadline() {
    let (publishes, figures) = send_batch(Provider::Sns, 12, 1, 15_000).await;
    check(&publishes, &figures, 12, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn through_end_user_messaging_a_ten_dlc_number_at_one_per_second_keeps_every_deadline() {
    let (publishes, figures) = send_batch(Provider::EndUserMessaging, 12, 1, 15_000).await;
    check(&publishes, &figures, 12, 1);
}

/// An 11-part custom message from a 10DLC number allowed 1 part a second: each SMS takes 11
/// of the rate's slots and leaves when the number has had room for all its parts, so none
/// is throttled and the parts go at the rate, as AWS counts them (the number's bucket holds
/// 11 parts, so that such a message can pass at all).
#[tokio::test(flavor = "multi_thread")]
async fn an_eleven_part_message_at_one_part_per_second_is_never_throttled() {
    eleven_parts_at_one_part_per_second(Provider::Sns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn through_end_user_messaging_an_eleven_part_message_at_one_part_per_second_is_never_throttled()
 {
    eleven_parts_at_one_part_per_second(Provider::EndUserMessaging).await;
}

async fn eleven_parts_at_one_part_per_second(provider: Provider) {
    let message = format!("Demo Health: {}", "x".repeat(153 * 10 + 20));
    let parts = smsreg::domain::encoding::measure(&message).parts;
    assert_eq!(parts, 11);
    let users = 4;
    let (publishes, figures) = send(provider, users, 1, 60_000, Some(&message), 11).await;
    let accepted: Vec<&Publish> = publishes.iter().filter(|p| p.accepted).collect();
    assert_eq!(accepted.len(), users, "each SMS once");
    assert!(accepted.iter().all(|p| p.parts == 11));
    // Over the sending, after the first message: parts per second, as AWS counts them.
    let span = accepted[users - 1].at.duration_since(accepted[0].at);
    let rate = (11 * (users - 1)) as f64 / span.as_secs_f64();
    println!(
        "11-part SMS at 1 part/s ({provider:?}): {} throttled, {rate:.3} parts per second over {:.1} s",
        figures.throttled,
        span.as_secs_f64()
    );
    assert_eq!(figures.throttled, 0, "no part past the number's throughput");
    assert!(rate >= 0.95, "{rate:.3} parts per second: the rate is used");
    assert!(figures.overruns.is_empty(), "{:?}", figures.overruns);
}
