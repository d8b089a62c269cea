//! Benchmark 5: the sender's sustained rate. Sender instances (the template's 4, and 2 for
//! comparison; the real `Sender`, real
//! SDK clients) take batches of 10 jobs from one backlog, as the event source mapping hands
//! them out, against the stand-in: every AWS call answered after 20 ms, `Publish` to phone
//! numbers let through at R per second (at most R in any second) and throttled past it, and
//! the shared rate records (`RATE#sms`, `RATE#opt-out-check`) kept with their
//! compare-and-set; nobody opted out (our record and SNS's check both say no). Reported: SMS
//! per second from the first SMS to the last, against R (and over the middle 80 % of the
//! SMS, without the run's start and end), the throttled share, and the AWS calls per job.

use std::collections::VecDeque;
use std::sync::Mutex;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::json;
use smsreg::config::Config;
use smsreg::domain::job::{JobKind, SmsJob};

use crate::io::{LATENCY, sdk_config};
use crate::standin::StandIn;

pub struct SenderRow {
    pub rate: usize,
    pub instances: usize,
    pub sms: usize,
    pub per_second: f64,
    /// SMS per second from the 10th percentile SMS to the 90th: the steady pace, without
    /// the run's first batches and its last (whose second SMS wait for the per-phone gap
    /// with nothing left to fill the slots).
    pub middle_per_second: f64,
    pub throttled: usize,
    /// Every AWS call of the run, per job (retries and refused slots included).
    pub calls_per_job: f64,
    /// Opt-out checks (`CheckIfPhoneNumberIsOptedOut`) per job.
    pub checks_per_job: f64,
    /// Slots refused by the rate records' compare-and-set (another instance was first),
    /// per job.
    pub refused_per_job: f64,
}

fn job(i: usize) -> SmsJob {
    SmsJob {
        id: format!("job-{i}"),
        domain: "demo".into(),
        phone: smsreg::domain::PhoneNumber::parse(&format!("+1617555{:04}", 4000 + i)).unwrap(),
        texts: vec![
            format!("Demo invites you: https://sms.example.org/a/demo/register/t{i}"),
            "[commcare app - do not delete] aHR0cHM6Ly9leGFtcGxlLm9yZw==".into(),
        ],
        kind: JobKind::Invitation {
            token: format!("t{i}"),
            created_at: 0,
            previous: None,
            batch_id: None,
        },
        schedule: Default::default(),
        max_price_per_part: None,
    }
}

fn event(jobs: &[(usize, u32)]) -> SqsEvent {
    let records: Vec<_> = jobs
        .iter()
        .map(|(i, receives)| {
            json!({
                "messageId": format!("m-{i}"),
                "receiptHandle": format!("r-{i}"),
                "body": serde_json::to_string(&job(*i)).unwrap(),
                "attributes": {"ApproximateReceiveCount": receives.to_string()},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("an SQS event")
}

/// The sender's timeout in the template, and the time before it in which it starts no SMS.
const INVOCATION: std::time::Duration = std::time::Duration::from_secs(60);
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(8);

/// One sender instance: batches of 10 from the backlog, one at a time, until it is empty;
/// a job put back comes again later.
async fn instance(sender: &smsreg::wiring::AwsSender, backlog: &Mutex<VecDeque<(usize, u32)>>) {
    loop {
        let batch: Vec<(usize, u32)> = {
            let mut backlog = backlog.lock().unwrap();
            let n = backlog.len().min(10);
            backlog.drain(..n).collect()
        };
        if batch.is_empty() {
            return;
        }
        // As Lambda runs it: the template's 60 s timeout, so no SMS starts after 52 s.
        let until = std::time::Instant::now() + INVOCATION - DEADLINE_MARGIN;
        let response = sender
            .handle_batch(&event(&batch), Some(until))
            .await
            .unwrap();
        let mut backlog = backlog.lock().unwrap();
        for failure in &response.batch_item_failures {
            let i: usize = failure.item_identifier[2..].parse().unwrap();
            let receives = batch.iter().find(|(j, _)| *j == i).unwrap().1;
            backlog.push_back((i, receives + 1));
        }
    }
}

pub fn run(quick: bool) -> Vec<SenderRow> {
    // (R, instances: the template's SenderMaxConcurrency, jobs of 2 SMS)
    let cases: &[(usize, usize, usize)] = if quick {
        &[(20, 4, 10), (3, 4, 3)]
    } else {
        &[(20, 2, 300), (20, 4, 300), (3, 4, 45), (1, 4, 20)]
    };
    println!(
        "== 5. Sender: sustained rate (real SDK clients, stand-in answering each call after {} ms and throttling SMS past R per second)",
        LATENCY.as_millis()
    );
    let standin = StandIn::start(LATENCY);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let sdk = rt.block_on(sdk_config(&standin.endpoint));
    let mut rows = Vec::new();
    for &(rate, instances, jobs) in cases {
        standin.limit_publish_rate(rate);
        let config = Config {
            table_name: "bench".into(),
            send_queue_url: Some(format!("{}/123456789012/bench", standin.endpoint)),
            sms_rate_per_second: rate as u32,
            ..Config::default()
        };
        let senders: Vec<_> = (0..instances)
            .map(|_| smsreg::wiring::aws_sender_with(&sdk, config.clone()).unwrap())
            .collect();
        // The backlog, as (job, receives so far).
        let backlog = Mutex::new((0..jobs).map(|i| (i, 1u32)).collect::<VecDeque<_>>());
        let before = standin.snapshot();
        rt.block_on(futures::future::join_all(
            senders.iter().map(|sender| instance(sender, &backlog)),
        ));
        let calls = standin.snapshot().since(&before);
        let publishes = standin.publishes();
        let passed: Vec<_> = publishes.iter().filter(|(_, ok)| *ok).collect();
        let span = passed.last().unwrap().0.duration_since(passed[0].0);
        let (from, to) = (
            passed.len() / 10,
            (passed.len() * 9 / 10).min(passed.len() - 1),
        );
        let middle = passed[to].0.duration_since(passed[from].0);
        if calls.unknown > 0 {
            println!(
                "   (the stand-in did not recognise {} calls)",
                calls.unknown
            );
        }
        rows.push(SenderRow {
            rate,
            instances,
            sms: passed.len(),
            per_second: (passed.len() - 1) as f64 / span.as_secs_f64().max(1e-9),
            middle_per_second: (to - from) as f64 / middle.as_secs_f64().max(1e-9),
            throttled: publishes.len() - passed.len(),
            calls_per_job: calls.calls() as f64 / jobs as f64,
            checks_per_job: calls.opt_out_check as f64 / jobs as f64,
            refused_per_job: calls.slot_refused as f64 / jobs as f64,
        });
    }
    standin.limit_publish_rate(0);
    println!(
        "   R    instances  SMS    SMS per second   of R    middle 80 %: of R  throttled    AWS calls per job (opt-out checks, refused slots)"
    );
    for r in &rows {
        println!(
            "   {:<4} {:<10} {:<6} {:<16.2} {:<7.3} {:<18} {:<12} {:.2} ({:.2}, {:.2})",
            r.rate,
            r.instances,
            r.sms,
            r.per_second,
            r.per_second / r.rate as f64,
            format!(
                "{:.2}: {:.3}",
                r.middle_per_second,
                r.middle_per_second / r.rate as f64
            ),
            format!(
                "{} ({:.1} %)",
                r.throttled,
                100.0 * r.throttled as f64 / r.sms as f64
            ),
            r.calls_per_job,
            r.checks_per_job,
            r.refused_per_job
        );
    }
    println!("   targets: >= 0.95 R, throttled <= 5 %");
    rows
}
