//! AWS's ordinary faults, at random, through every function at once (Jepsen's way): a
//! proxy in front of moto loses the answers of 5 % of DynamoDB writes after moto applied
//! them (the SDK retries and meets its own write), answers 5 % of `UpdateItem` calls with
//! `TransactionConflictException`, and answers 3 `Publish` calls 3.5 s late (or 3
//! `SendTextMessage` calls, with End User Messaging as the provider: the run is made for
//! both). Through it the
//! API invites 40 Android workers (80 SMS with the install link), the sender texts them,
//! 5 reply STOP, and the receipts of the 40 first SMS arrive. Then, for several seeds, the
//! invariants over everything that happened:
//! - each worker got each SMS exactly once;
//! - every count (the batch's progress, the day's usage) equals what passed: the SMS moto
//!   took, the receipts fed, the STOPs sent;
//! - every STOP is honoured (the numbers are answered as opted out), and no invitation is
//!   left `queued` or `failed`.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::fault_proxy::{Chaos, ChaosReport};
use common::*;
use serde_json::{Value, json};
use smsreg::config::{Config, Provider};
use smsreg::domain::PhoneNumber;
use smsreg::ports::{DeliveryLog, InvitationStore};

const INSTALL_URL: &str = "https://www.commcarehq.org/a/demo/apps/download/abcd/";
const WORKERS: usize = 40;
const STOPS: usize = 5;

/// Everything that happened in one run, for the invariants.
struct Run {
    report: ChaosReport,
    numbers: Vec<String>,
    provider: Provider,
    /// SMS the End User Messaging stand-in took, and the numbers on its opt-out list.
    through_eum: usize,
    opt_out_list: Vec<String>,
    sms: Vec<(String, String)>,
    create: Value,
    again: Value,
    progress: smsreg::ports::BatchProgress,
    usage: smsreg::ports::DayUsage,
    statuses: HashMap<String, String>,
    /// Each invitation's own `parts_sent` and `parts_delivered`, summed (every receipt
    /// fed is of a one-part SMS: the log line does not say otherwise).
    invitation_parts: (u64, u64),
    receipts: usize,
}

fn today() -> String {
    smsreg::domain::time::utc_day(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
}

fn invite(numbers: &[String]) -> Value {
    let users: Vec<Value> = numbers.iter().map(|n| json!({"phone_number": n})).collect();
    json!({"app_id": DEMO_APP, "users": users, "android_only": true})
}

/// The provider's delivery report of a delivered one-part SMS: SNS's delivery status log
/// line, or End User Messaging's `TEXT_DELIVERED` event.
fn delivered_line(provider: Provider, message_id: &str, phone: &str) -> String {
    if provider == Provider::EndUserMessaging {
        return json!({
            "eventType": "TEXT_DELIVERED", "eventVersion": "1.0", "eventTimestamp": 1_764_720_000_900u64,
            "isFinal": true, "destinationPhoneNumber": phone, "messageId": message_id,
            "messageRequestTimestamp": 1_764_720_000_600u64, "messageType": "TRANSACTIONAL",
            "messageStatus": "DELIVERED", "messageStatusDescription": "Message has been delivered",
            "totalMessageParts": 1, "totalMessagePrice": 0.00581, "totalCarrierFee": 0.0
        })
        .to_string();
    }
    json!({
        "notification": {"messageId": message_id, "timestamp": "2026-12-03 00:00:00.000"},
        "delivery": {
            "phoneCarrier": "Carrier", "mnc": 1, "destination": phone, "priceInUSD": 0.00645,
            "smsType": "Transactional", "mcc": 310,
            "providerResponse": "Message has been accepted by phone carrier",
            "dwellTimeMs": 300, "dwellTimeMsUntilDeviceAck": 1200
        },
        "status": "SUCCESS"
    })
    .to_string()
}

async fn run(seed: u64, provider: Provider) -> Run {
    let table = format!("chaos-{seed}");
    let moto = Moto::start();
    provision_demo(&moto.store(&table).await, Some(INSTALL_URL)).await;
    let queue_url = moto.send_queue(&table, 50).await;
    let config = Config {
        table_name: table.clone(),
        send_queue_url: Some(queue_url.clone()),
        sms_rate_per_second: 1000,
        sms_provider: provider,
        ..Config::default()
    };
    let aws = moto.sdk_config().await;
    let api = smsreg::wiring::aws_api_with(&aws, config.clone()).unwrap();
    let sender = smsreg::wiring::aws_sender_with(&aws, config.clone()).unwrap();
    let replies = smsreg::wiring::aws_replies_with(&aws, config.clone()).unwrap();
    let receipts = smsreg::wiring::aws_receipts_use_case(&aws, &config);
    let store = moto.store(&table).await;

    moto.front.chaos(Chaos {
        seed,
        lost_answers: 0.05,
        update_conflicts: 0.05,
        slow_publishes: 3,
        publish_delay: Duration::from_millis(3_500),
        ..Chaos::default()
    });

    // The API records and queues.
    let numbers = us_numbers(WORKERS, 2000 + seed as usize * 100);
    let auth = api_key_header(DEMO_USER, DEMO_KEY);
    let request =
        lambda_http::request::from_str(&post_event(DEMO_DOMAIN, &invite(&numbers), &auth)).unwrap();
    let (status, create) = response_parts(&api.handle(request).await);
    assert_eq!(status, 200, "{create}");

    // The sender, fed as the event source mapping feeds it, until the queue is empty.
    let started = Instant::now();
    loop {
        moto.deliver(&sender, &queue_url).await;
        if moto.queue_depth(&queue_url).await == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "jobs still on the queue after 4 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 5 workers reply STOP; a reply whose handling failed is delivered again, as SNS does.
    for (i, number) in numbers.iter().take(STOPS).enumerate() {
        let event = sns_reply(&format!("stop-{seed}-{i}"), number, "STOP");
        let mut tries = 0;
        while let Err(error) = replies.handle_records(&event).await {
            tries += 1;
            assert!(tries < 10, "a STOP never handled: {error}");
        }
    }

    // The receipts of every first SMS, ten lines a log batch; a failed batch comes again.
    let ids = moto.sms_ids();
    let mut first: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (phone, id) in &ids {
        if seen.insert(phone.clone()) {
            first.push(delivered_line(provider, id, phone));
        }
    }
    for batch in first.chunks(10) {
        let lines: Vec<&str> = batch.iter().map(String::as_str).collect();
        let mut tries = 0;
        loop {
            let mut report = smsreg::service::receipts::ReceiptsReport::default();
            match receipts.record(&lines, &mut report).await {
                Ok(()) => break,
                Err(error) => {
                    tries += 1;
                    assert!(tries < 10, "a log batch never recorded: {error}");
                }
            }
        }
    }

    // The STOP numbers invited again (still under the faults).
    let request =
        lambda_http::request::from_str(&post_event(DEMO_DOMAIN, &invite(&numbers[..STOPS]), &auth))
            .unwrap();
    let (status, again) = response_parts(&api.handle(request).await);
    assert_eq!(status, 200, "inviting the STOP numbers again: {again}");

    let report = moto.front.calm();
    let batch_id = create["batch_id"].as_str().unwrap().to_owned();
    let progress = store.batch_progress(&batch_id).await.unwrap().unwrap();
    let usage = store.day_usage(DEMO_DOMAIN, &today()).await.unwrap();
    let mut statuses = HashMap::new();
    let mut invitation_parts = (0, 0);
    for n in &numbers {
        let record = store
            .find(&PhoneNumber::parse(n).unwrap())
            .await
            .unwrap()
            .unwrap();
        statuses.insert(n.clone(), record.status.as_str().to_owned());
        invitation_parts.0 += record.parts_sent;
        invitation_parts.1 += record.parts_delivered;
    }
    let eum = moto.front.eum();
    let mut opt_out_list = eum.opted_out("Default");
    opt_out_list.sort();
    Run {
        report,
        numbers,
        provider,
        through_eum: eum.sent().len(),
        opt_out_list,
        sms: moto.sms(),
        create,
        again,
        progress,
        usage,
        statuses,
        invitation_parts,
        receipts: first.len(),
    }
}

fn check(seed: u64, run: &Run) {
    println!("seed {seed}: faults injected {:?}", run.report);
    assert!(
        run.report.lost_answers > 0 && run.report.update_conflicts > 0,
        "faults were injected: {:?}",
        run.report
    );
    assert_eq!(run.report.slow_publishes, 3, "{:?}", run.report);
    assert_eq!(
        run.create["success_numbers"],
        json!(run.numbers),
        "{}",
        run.create
    );
    // Each worker's SMS exactly once.
    let mut per_phone: HashMap<&str, Vec<&str>> = HashMap::new();
    for (phone, message) in &run.sms {
        per_phone.entry(phone).or_default().push(message);
    }
    for number in &run.numbers {
        let got = per_phone.get(number.as_str()).cloned().unwrap_or_default();
        assert_eq!(got.len(), 2, "seed {seed}: {number} got {} SMS", got.len());
        assert_ne!(got[0], got[1], "seed {seed}: {number} got one SMS twice");
    }
    assert_eq!(
        run.sms.len(),
        2 * WORKERS,
        "seed {seed}: no other SMS went out"
    );
    // Through the provider chosen; with End User Messaging, every STOP is on its list.
    let eum = run.provider == Provider::EndUserMessaging;
    assert_eq!(run.through_eum, if eum { 2 * WORKERS } else { 0 });
    let mut stops: Vec<String> = run.numbers[..STOPS].to_vec();
    stops.sort();
    assert_eq!(
        run.opt_out_list,
        if eum { stops } else { Vec::new() },
        "seed {seed}: the opt-out list"
    );
    assert_eq!(run.receipts, WORKERS);
    // Every count equals what passed.
    let p = &run.progress;
    assert_eq!(
        (
            p.queued,
            p.sent,
            p.delivered,
            p.delivery_failed,
            p.send_failed,
            p.opted_out
        ),
        (
            WORKERS as u64,
            WORKERS as u64,
            WORKERS as u64,
            0,
            0,
            STOPS as u64
        ),
        "seed {seed}: batch progress {p:?}"
    );
    let u = &run.usage;
    assert_eq!(
        (u.invitations, u.sms_sent, u.delivered, u.delivery_failed),
        (WORKERS as u64, run.sms.len() as u64, WORKERS as u64, 0),
        "seed {seed}: usage {u:?}"
    );
    // The parts counted are the parts of the SMS that went out, each once; the answer
    // said as much before they went.
    let parts: u64 = run
        .sms
        .iter()
        .map(|(_, text)| smsreg::domain::encoding::measure(text).parts as u64)
        .sum();
    assert_eq!(
        (u.parts_sent, p.parts_sent, run.invitation_parts.0),
        (parts, parts, parts),
        "seed {seed}: parts counted once"
    );
    assert_eq!(
        (u.parts_delivered, p.parts_delivered, run.invitation_parts.1),
        (WORKERS as u64, WORKERS as u64, WORKERS as u64),
        "seed {seed}: delivered parts counted once, in the day, the batch and the invitations"
    );
    assert_eq!(
        run.create["sms"]["parts"].as_u64(),
        Some(parts),
        "seed {seed}: {}",
        run.create
    );
    // Every STOP honoured; nothing left queued or failed.
    assert_eq!(
        run.again["opted_out_numbers"],
        json!(run.numbers[..STOPS]),
        "seed {seed}: {}",
        run.again
    );
    for (i, number) in run.numbers.iter().enumerate() {
        let expected = if i < STOPS { "opted_out" } else { "pending" };
        assert_eq!(run.statuses[number], expected, "seed {seed}: {number}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_lost_answers_conflicts_and_slow_sns_every_sms_goes_once_and_every_count_is_right() {
    for seed in [11, 23, 47] {
        let run = run(seed, Provider::Sns).await;
        check(seed, &run);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn through_end_user_messaging_under_the_same_faults_every_sms_goes_once_and_every_count_is_right()
 {
    for seed in [11, 23, 47] {
        let run = run(seed, Provider::EndUserMessaging).await;
        check(seed, &run);
    }
}
