//! Benchmark 3 and the RSS part of 4: the release `smsreg-api` binary started as Lambda
//! starts it (Runtime API stand-in, `AWS_LAMBDA_*`), against the DynamoDB/SNS stand-in.
//! Cold start = process spawn to the answer of a 1-user request posted to the Runtime API;
//! then a 500-user request (calls answered after 20 ms) and the process's peak RSS.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cpu::{event, request_body, valid};
use crate::io::LATENCY;
use crate::runtime::RuntimeApi;
use crate::standin::StandIn;
use crate::stats::{self, Summary, millis, summarize};

pub struct ColdFigures {
    pub first_response_ms: Summary,
    pub init_ms: Summary,
    pub batch_ms: Summary,
    pub peak_rss_mb: Summary,
}

fn status_kb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn check(answer: Result<String, String>, users: usize) {
    let raw = answer.expect("the invocation succeeds");
    let response: Value = serde_json::from_str(&raw).expect("an API Gateway response");
    assert_eq!(response["statusCode"], 200, "{raw}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["success_numbers"].as_array().map(Vec::len),
        Some(users),
        "{body}"
    );
}

/// One cold start and a 500-user request; returns (first response ms, init ms,
/// 500-user request ms, peak RSS MB).
fn one_run(exe: &str, standin: &StandIn, one: &str, batch: &str, n: usize) -> [f64; 4] {
    standin.set_delay(Duration::ZERO);
    let runtime = RuntimeApi::start(30_000);
    let id = runtime.enqueue(one);
    let started = Instant::now();
    let mut child = Command::new(exe)
        .env_clear()
        .envs(runtime.env())
        .env("AWS_ENDPOINT_URL", &standin.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("TABLE_NAME", "bench")
        .env(
            "SEND_QUEUE_URL",
            format!("{}/123456789012/bench", standin.endpoint),
        )
        .env("PUBLIC_BASE_URL", "https://sms.example.org")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smsreg-api starts");
    let (answered, answer) = runtime.wait(&id, Duration::from_secs(60));
    check(answer, 1);
    let first = millis(answered - started);
    let init = millis(runtime.first_poll().expect("the function polled") - started);

    standin.set_delay(LATENCY);
    let id = runtime.enqueue(batch);
    let posted = Instant::now();
    let (answered, answer) = runtime.wait(&id, Duration::from_secs(120));
    check(answer, n);
    let batch_ms = millis(answered - posted);
    let hwm = status_kb(child.id(), "VmHWM:").expect("the function's /proc status");
    let _ = child.kill();
    let _ = child.wait();
    [first, init, batch_ms, hwm / 1024.0]
}

/// Runs the benchmark on `binaries` (the release `smsreg-api` when empty), taking turns so
/// that each sees the same machine load; returns the figures of the first.
pub fn run(quick: bool, binaries: &[String]) -> ColdFigures {
    let (runs, n) = if quick { (1, 8) } else { (15, 500) };
    let default = [env!("CARGO_BIN_EXE_smsreg-api").to_owned()];
    let binaries = if binaries.is_empty() {
        &default[..]
    } else {
        binaries
    };
    println!(
        "== 3. Cold start (smsreg-api built by cargo bench, under a Runtime API stand-in; DynamoDB/SNS stand-in answering at once)"
    );
    let standin = StandIn::start(Duration::ZERO);
    let one = event(&request_body(&["+16175551234".to_owned()]));
    let batch = event(&request_body(&stats::realistic_mix(n, 11, valid)));
    let mut samples = vec![vec![Vec::new(); 4]; binaries.len()];
    for _ in 0..runs {
        for (exe, samples) in binaries.iter().zip(&mut samples) {
            for (figure, sample) in one_run(exe, &standin, &one, &batch, n).iter().zip(samples) {
                sample.push(*figure);
            }
        }
    }
    let all: Vec<ColdFigures> = samples
        .iter()
        .map(|s| ColdFigures {
            first_response_ms: summarize(&s[0]),
            init_ms: summarize(&s[1]),
            batch_ms: summarize(&s[2]),
            peak_rss_mb: summarize(&s[3]),
        })
        .collect();
    for (exe, figures) in binaries.iter().zip(&all) {
        if binaries.len() > 1 {
            println!("   {exe}:");
        }
        println!(
            "   process start -> first response (1 user): {} ms   [target <= 40]",
            figures.first_response_ms.show(1)
        );
        println!(
            "   of which init (start -> first poll of /invocation/next): {} ms",
            figures.init_ms.show(1)
        );
        println!(
            "   peak RSS (VmHWM) after it and a {n}-user request (CONCURRENCY 16, calls answered after {} ms, {} ms): {} MB   [target <= 30]",
            LATENCY.as_millis(),
            figures.batch_ms.show(0),
            figures.peak_rss_mb.show(1)
        );
    }
    all.into_iter().next().expect("one binary")
}
