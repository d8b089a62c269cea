//! Benchmark 5: the sender's sustained rate. Two sender instances (the real `Sender`, real
//! SDK clients) take batches of 10 jobs from one backlog, as the event source mapping hands
//! them out, against the stand-in: every AWS call answered after 20 ms, `Publish` to phone
//! numbers let through at R per second (at most R in any second) and throttled past it, and
//! the shared rate record kept with its compare-and-set. Reported: SMS per second from the
//! first SMS to the last, against R, and the throttled share.

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
    pub throttled: usize,
}

fn job(i: usize) -> SmsJob {
    SmsJob {
        id: format!("job-{i}"),
        domain: "demo".into(),
        phone: format!("+1617555{:04}", 4000 + i),
        texts: vec![
            format!("Demo invites you: https://sms.example.org/a/demo/register/t{i}"),
            "[commcare app - do not delete] aHR0cHM6Ly9leGFtcGxlLm9yZw==".into(),
        ],
        kind: JobKind::Invitation {
            token: format!("t{i}"),
            created_at: 0,
            previous: None,
        },
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
        let response = sender.handle_batch(&event(&batch), None).await.unwrap();
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
        &[(20, 2, 10), (3, 2, 3)]
    } else {
        &[(20, 2, 300), (20, 4, 300), (3, 2, 45)]
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
        rt.block_on(futures::future::join_all(
            senders.iter().map(|sender| instance(sender, &backlog)),
        ));
        let publishes = standin.publishes();
        let passed: Vec<_> = publishes.iter().filter(|(_, ok)| *ok).collect();
        let span = passed.last().unwrap().0.duration_since(passed[0].0);
        rows.push(SenderRow {
            rate,
            instances,
            sms: passed.len(),
            per_second: (passed.len() - 1) as f64 / span.as_secs_f64().max(1e-9),
            throttled: publishes.len() - passed.len(),
        });
    }
    standin.limit_publish_rate(0);
    println!("   R    instances  SMS    SMS per second   of R    throttled");
    for r in &rows {
        println!(
            "   {:<4} {:<10} {:<6} {:<16.2} {:<7.3} {} ({:.1} %)",
            r.rate,
            r.instances,
            r.sms,
            r.per_second,
            r.per_second / r.rate as f64,
            r.throttled,
            100.0 * r.throttled as f64 / r.sms as f64
        );
    }
    println!("   targets: >= 0.95 R, throttled <= 5 %");
    rows
}
