//! Benchmark 2: pipelined I/O. The real SDK clients (`wiring::aws_api_with`) against the
//! stand-in, which answers every DynamoDB, SQS and SNS call after 20 ms: a 500-user request
//! at several concurrencies, against the ideal: its rounds of calls (opt-out lookups,
//! claims, batches, C at a time; the batch record) x 20 ms.

use std::time::{Duration, Instant};

use aws_config::Region;
use aws_sdk_dynamodb::config::Credentials;
use serde_json::Value;
use smsreg::config::Config;

use crate::cpu::{event, request_body, valid};
use crate::standin::StandIn;
use crate::stats::{self, Summary, millis, summarize};

pub const LATENCY: Duration = Duration::from_millis(20);

pub struct IoRow {
    pub concurrency: usize,
    pub elapsed_ms: Summary,
    pub ideal_ms: f64,
    pub calls_per_number: f64,
    pub fixed_calls: usize,
    pub connections: usize,
}

pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    smsreg::adapters::aws_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .load()
        .await
}

pub fn config(concurrency: usize, endpoint: &str) -> Config {
    Config {
        public_base_url: "https://sms.example.org".into(),
        table_name: "bench".into(),
        concurrency,
        send_queue_url: Some(format!("{endpoint}/123456789012/bench")),
        ..Config::default()
    }
}

async fn post(api: &smsreg::wiring::AwsApi, event: &str, users: usize) -> Duration {
    let request = lambda_http::request::from_str(event).expect("a valid event");
    let started = Instant::now();
    let response = api.handle(request).await;
    let elapsed = started.elapsed();
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
    assert_eq!(response.status(), 200, "{body}");
    assert_eq!(
        body["success_numbers"].as_array().map(Vec::len),
        Some(users),
        "every number must succeed: {body}"
    );
    elapsed
}

pub fn run(quick: bool) -> Vec<IoRow> {
    let (n, levels, runs): (usize, &[usize], usize) = if quick {
        (12, &[1, 4], 1)
    } else {
        (500, &[1, 8, 16, 32, 64], 5)
    };
    println!(
        "== 2. Pipelined I/O ({n}-user request, real SDK clients, stand-in answering each call after {} ms)",
        LATENCY.as_millis()
    );
    let standin = StandIn::start(LATENCY);
    let numbers = stats::realistic_mix(n, 7, valid);
    let event = event(&request_body(&numbers));
    let warm_event = event_for(&numbers[..n.min(4)]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let sdk = rt.block_on(sdk_config(&standin.endpoint));
    let mut rows = Vec::new();
    for &c in levels {
        let api = smsreg::wiring::aws_api_with(&sdk, config(c, &standin.endpoint)).unwrap();
        // One small request first: the process is warm, as a Lambda after its first call.
        rt.block_on(post(&api, &warm_event, n.min(4)));
        let before = standin.snapshot();
        let runs = if c == 1 { runs.min(3) } else { runs };
        let mut elapsed = Vec::new();
        for _ in 0..runs {
            elapsed.push(millis(rt.block_on(post(&api, &event, n))));
        }
        let calls = standin.snapshot().since(&before);
        if calls.unknown > 0 {
            println!(
                "   (the stand-in did not recognise {} calls)",
                calls.unknown
            );
        }
        // Per request: the key and project lookups and the daily-limit reservation are
        // made once, before any number; the rest is per number.
        let fixed = calls.query / runs + 1;
        let per_number = (calls.calls() / runs - fixed) as f64 / n as f64;
        // The request's path: the opt-out lookups of 100 numbers, C at a time; then the
        // claims, C at a time; then the batches of 10 jobs, C at a time; then the batch's
        // record; each call one latency.
        let rounds = n.div_ceil(100).div_ceil(c) + n.div_ceil(c) + n.div_ceil(10).div_ceil(c) + 1;
        let ideal = rounds as f64 * LATENCY.as_secs_f64() * 1e3;
        rows.push(IoRow {
            concurrency: c,
            elapsed_ms: summarize(&elapsed),
            ideal_ms: ideal,
            calls_per_number: per_number,
            fixed_calls: fixed,
            connections: calls.connections,
        });
    }
    // The client's own cost per call: the same request with every call answered at once.
    standin.set_delay(Duration::ZERO);
    let api = smsreg::wiring::aws_api_with(&sdk, config(16, &standin.endpoint)).unwrap();
    let before = standin.snapshot();
    let mut at_once = Vec::new();
    for _ in 0..runs {
        at_once.push(millis(rt.block_on(post(&api, &event, n))));
    }
    let calls = standin.snapshot().since(&before).calls() / runs;
    let at_once = summarize(&at_once);
    standin.set_delay(LATENCY);
    let base = rows[0].elapsed_ms.median;
    println!(
        "   C    elapsed ms (median, min-max)     ideal ms  ratio  vs C=1  calls/number  new connections"
    );
    for row in &rows {
        println!(
            "   {:<4} {:<32} {:>8.0}  {:>5.2}  {:>5.1}x  {:>5.2}         {}",
            row.concurrency,
            row.elapsed_ms.show(0),
            row.ideal_ms,
            row.elapsed_ms.median / row.ideal_ms,
            base / row.elapsed_ms.median,
            row.calls_per_number,
            row.connections
        );
    }
    println!(
        "   (ideal = (ceil({}/C) opt-out lookups + ceil({n}/C) claims + ceil({}/C) batches + 1 batch record) x {} ms; the {} calls made once per request add one round, {} ms, to any run: the key and the project are looked up together, the daily reservation beside the opt-out lookups)",
        n.div_ceil(100),
        n.div_ceil(10),
        LATENCY.as_millis(),
        rows[0].fixed_calls,
        LATENCY.as_millis()
    );
    println!(
        "   with every call answered at once (C=16): {} ms for {calls} calls, {:.0} us per call (client and stand-in)",
        at_once.show(0),
        at_once.median * 1e3 / calls as f64
    );
    println!(
        "   targets: ratio <= 1.3 at the default C=16 and at C=32, at most 1.2 calls per number"
    );
    rows
}

fn event_for(numbers: &[String]) -> String {
    event(&request_body(numbers))
}
