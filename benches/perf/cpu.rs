//! Benchmark 1: CPU per number. A 500-user request through the whole handler
//! (`Api::handle`: auth, body, validation, phone parsing, claims, SMS texts, report) with
//! the in-memory adapters, so only the function's own CPU is timed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smsreg::adapters::memory::{MemorySms, MemoryStore};
use smsreg::config::Config;
use smsreg::domain::job::SmsJob;
use smsreg::domain::project::hash_key;
use smsreg::domain::{ApiKey, App, PhoneNumber, Plan, Project};
use smsreg::functions::api::Api;
use smsreg::ports::{JobQueue, QueueError, SystemClock};
use smsreg::service::RegistrationService;

use crate::stats::{self, OTHER_COUNTRIES, Summary, micros, millis, summarize};

pub const DOMAIN: &str = "demo";
pub const APP: &str = "abcd1234abcd1234";
pub const USER: &str = "admin@demo.example";
pub const KEY: &str = "bench-key-0123456789abcdef0123456789";

/// The E.164 form of a number, if the function accepts it.
pub fn valid(raw: &str) -> Option<String> {
    PhoneNumber::parse(raw).ok().map(|p| p.as_str().to_owned())
}

/// An API Gateway HTTP API (payload 2.0) event posting `body` to the create endpoint.
pub fn event(body: &Value) -> String {
    let path = format!("/a/{DOMAIN}/api/v0_5/sms_user_registration/");
    json!({
        "version": "2.0",
        "routeKey": "ANY /a/{domain}/api/{version}/sms_user_registration",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "authorization": format!("ApiKey {USER}:{KEY}"),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "bench"},
            "requestId": "req-bench",
            "routeKey": "ANY /a/{domain}/api/{version}/sms_user_registration",
            "stage": "$default",
            "time": "24/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795514400000_u64
        },
        "pathParameters": {"domain": DOMAIN, "version": "v0_5"},
        "isBase64Encoded": false,
        "body": body.to_string(),
    })
    .to_string()
}

pub fn request_body(numbers: &[String]) -> Value {
    let users: Vec<Value> = numbers.iter().map(|n| json!({"phone_number": n})).collect();
    json!({"app_id": APP, "users": users})
}

/// Accepts every job and keeps nothing: `MemorySms` keeps every job it was given (a test
/// aid), which this shows the cost of.
#[derive(Clone)]
struct NullSms;

impl JobQueue for NullSms {
    async fn enqueue(&self, jobs: &[SmsJob]) -> Vec<Result<(), QueueError>> {
        vec![Ok(()); jobs.len()]
    }

    async fn retry_later(
        &self,
        _receipt: &str,
        _from: Option<&str>,
        _delay: u32,
    ) -> Result<(), QueueError> {
        Ok(())
    }
}

fn memory_api() -> Api<MemoryStore, MemorySms> {
    api_with(MemorySms::new())
}

fn api_with<S: JobQueue + Clone>(sms: S) -> Api<MemoryStore, S> {
    let store = MemoryStore::new();
    store.put_project(Project {
        accounts: Default::default(),
        languages: vec![smsreg::domain::language::Language::En],
        texts: Default::default(),
        name: DOMAIN.into(),
        display_name: Some("Demo Health".into()),
        plan: Plan::Pro,
        registration_enabled: true,
        apps: vec![App {
            id: APP.into(),
            name: "Demo app".into(),
            install_url: None,
        }],
        allowed_countries: None,
        daily_invitation_limit: u32::MAX,
        sms: Default::default(),
    });
    store.put_key(ApiKey {
        username: USER.into(),
        domain: DOMAIN.into(),
        key_hash: hash_key(KEY),
        can_edit_data: true,
    });
    let config = Config {
        public_base_url: "https://sms.example.org".into(),
        ..Config::default()
    };
    Api::new(RegistrationService::new(
        store,
        sms.clone(),
        Arc::new(SystemClock),
        config,
    ))
}

/// Runs the 500-user request `runs` times (each on a fresh in-memory world, built
/// outside the timing) and returns the time per request.
fn time_requests<S: JobQueue + Clone>(
    numbers: &[String],
    runs: usize,
    warmup: usize,
    make_api: impl Fn() -> Api<MemoryStore, S>,
) -> Vec<Duration> {
    let event = event(&request_body(numbers));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let api = make_api();
        let request = lambda_http::request::from_str(&event).expect("a valid event");
        let started = Instant::now();
        let response = rt.block_on(api.handle(request));
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 200, "the bench request must succeed");
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(
            body["success_numbers"].as_array().map(Vec::len),
            Some(numbers.len()),
            "every number of the bench request must be a success: {body}"
        );
        if i >= warmup {
            times.push(elapsed);
        }
    }
    times
}

/// `PhoneNumber::parse` as it was before this benchmark: the leniency rules, then
/// libphonenumber's `parse`, `is_valid`, `country().id()` and E.164 formatter. Timed
/// beside the current one, and checked to give the same answers.
pub fn reference_parse(raw: &str) -> Option<(String, Option<String>)> {
    let cleaned = smsreg::domain::phone::lenient(raw);
    let digits = cleaned.strip_prefix('+').unwrap_or(&cleaned);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 15 {
        return None;
    }
    let parsed = phonenumber::parse(None, format!("+{digits}")).ok()?;
    parsed.is_valid().then(|| {
        (
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
            parsed.country().id().map(|id| id.as_ref().to_owned()),
        )
    })
}

fn current_parse(raw: &str) -> Option<(String, Option<String>)> {
    PhoneNumber::parse(raw)
        .ok()
        .map(|p| (p.as_str().to_owned(), p.region().map(str::to_owned)))
}

/// Time per number of `parse` over `numbers`, `runs` passes.
fn time_parse<T>(numbers: &[String], runs: usize, parse: impl Fn(&str) -> T) -> Summary {
    for n in numbers {
        std::hint::black_box(parse(n));
    }
    let samples: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            for n in numbers {
                std::hint::black_box(parse(std::hint::black_box(n)));
            }
            micros(started.elapsed()) / numbers.len() as f64
        })
        .collect();
    summarize(&samples)
}

/// Compares the current parse with the reference on `n` random numbers of every country
/// code (valid or not); returns how many were compared.
fn check_against_reference(per_code: usize) -> usize {
    let mut rng = stats::Rng::new(99);
    let mut compared = 0;
    for code in 1..1000u16 {
        if phonenumber::metadata::DATABASE.by_code(&code).is_none() {
            continue;
        }
        for _ in 0..per_code {
            let len = 4 + rng.below(12) as usize;
            let raw = format!("+{code}{}", rng.digits(len));
            let raw = &raw[..raw.len().min(16)];
            assert_eq!(
                current_parse(raw),
                reference_parse(raw),
                "the current parse disagrees with libphonenumber on {raw}"
            );
            compared += 1;
        }
    }
    compared
}

/// In a child process: the cost of loading the metadata, then of the first and the
/// second number of one country. Prints `load_ms first_us second_us`.
/// In a fresh process: the first number of a country (which builds the database of its
/// calling code and compiles the patterns it needs), a second one, then, for comparison,
/// the load of libphonenumber's own whole database (which the function no longer uses).
pub fn child_first_number(first: &str, second: &str) {
    let started = Instant::now();
    assert!(PhoneNumber::parse(first).is_ok(), "{first} is valid");
    let first_cost = started.elapsed();
    let started = Instant::now();
    assert!(PhoneNumber::parse(second).is_ok(), "{second} is valid");
    let second_cost = started.elapsed();
    let started = Instant::now();
    phonenumber::metadata::DATABASE.by_code(&1);
    let load = started.elapsed();
    println!(
        "{} {} {}",
        millis(load),
        micros(first_cost),
        micros(second_cost)
    );
}

pub fn profile_parse(rounds: usize) {
    let mix = stats::realistic_mix(500, 1, valid);
    for _ in 0..rounds {
        for n in &mix {
            std::hint::black_box(PhoneNumber::parse(std::hint::black_box(n)).is_ok());
        }
    }
}

struct FirstNumber {
    load_ms: Vec<f64>,
    first_us: Vec<f64>,
    second_us: Vec<f64>,
}

fn first_number_in_child(first: &str, second: &str, runs: usize) -> FirstNumber {
    let exe = std::env::current_exe().expect("the bench binary");
    let mut out = FirstNumber {
        load_ms: Vec::new(),
        first_us: Vec::new(),
        second_us: Vec::new(),
    };
    for _ in 0..runs {
        let output = std::process::Command::new(&exe)
            .args(["--child-first-number", first, second])
            .output()
            .expect("the bench binary runs");
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<f64> = text
            .split_whitespace()
            .map(|f| f.parse().expect("a figure"))
            .collect();
        out.load_ms.push(fields[0]);
        out.first_us.push(fields[1]);
        out.second_us.push(fields[2]);
    }
    out
}

pub struct CpuFigures {
    pub per_number_mix_us: Summary,
    pub per_number_us_only_us: Summary,
    pub worst_first_number: (String, Summary),
    pub metadata_load_ms: Summary,
}

pub fn run(quick: bool) -> CpuFigures {
    let (n, runs, warmup, child_runs) = if quick {
        (20, 2, 1, 1)
    } else {
        (500, 31, 5, 7)
    };
    let mix = stats::realistic_mix(n, 1, valid);
    let us = stats::us_numbers(n, 2, valid);
    println!("== 1. CPU per number ({n}-user request, in-memory adapters, Api::handle)");

    let per_number = |times: Vec<Duration>| {
        summarize(
            &times
                .iter()
                .map(|t| micros(*t) / n as f64)
                .collect::<Vec<_>>(),
        )
    };
    let mix_request = per_number(time_requests(&mix, runs, warmup, memory_api));
    let us_request = per_number(time_requests(&us, runs, warmup, memory_api));
    let null_sms = per_number(time_requests(&mix, runs, warmup, || api_with(NullSms)));
    println!(
        "   whole request, mix (9 in 10 US, 1 in 10 from CA/GB/IN/KE/NG): {} us per number   [target <= 10]",
        mix_request.show(2)
    );
    println!(
        "   whole request, US only:                                      {} us per number",
        us_request.show(2)
    );
    println!(
        "   whole request, mix, SMS sender that records nothing:         {} us per number",
        null_sms.show(2)
    );

    println!(
        "   PhoneNumber::parse alone, warm, us per number: now | before (libphonenumber's is_valid, country, formatter) | before/now"
    );
    let mut sets = vec![
        ("mix".to_owned(), mix.clone()),
        ("US".to_owned(), us.clone()),
    ];
    for (i, (code, _, _)) in OTHER_COUNTRIES.iter().enumerate() {
        sets.push((
            code.to_string(),
            stats::numbers_of(i, n.min(100), 10 + i as u64, valid),
        ));
    }
    for (name, numbers) in &sets {
        let now = time_parse(numbers, runs, current_parse);
        let before = time_parse(numbers, runs, reference_parse);
        println!(
            "     {name:<4} {:<28} | {:<28} | {:.1}x",
            now.show(2),
            before.show(2),
            before.median / now.median
        );
    }
    let compared = check_against_reference(if quick { 2 } else { 200 });
    println!(
        "   same answers as libphonenumber's own is_valid/country/E.164 on {compared} random numbers over every country code"
    );

    println!(
        "   first number of a country, in a fresh process (builds its calling code's database):"
    );
    let mut countries: Vec<(String, Vec<String>)> =
        vec![("US".into(), stats::us_numbers(2, 3, valid))];
    for (i, (code, _, _)) in OTHER_COUNTRIES.iter().enumerate() {
        countries.push((
            code.to_string(),
            stats::numbers_of(i, 2, 20 + i as u64, valid),
        ));
    }
    let mut worst: Option<(String, Summary)> = None;
    let mut loads = Vec::new();
    for (code, numbers) in &countries {
        let figures = first_number_in_child(&numbers[0], &numbers[1], child_runs);
        let first = summarize(&figures.first_us);
        let second = summarize(&figures.second_us);
        loads.extend(figures.load_ms);
        println!(
            "     {code}: first {} us, second {} us",
            first.show(0),
            second.show(1)
        );
        if worst.as_ref().is_none_or(|(_, w)| first.median > w.median) {
            worst = Some((code.clone(), first));
        }
    }
    let worst = worst.expect("some country");
    let load = summarize(&loads);
    println!(
        "   worst first-number-of-a-country cost: {} ({} us)",
        worst.0,
        worst.1.show(0)
    );
    println!(
        "   libphonenumber's whole database, as the crate loads it (not used by the function): {} ms",
        load.show(1)
    );
    CpuFigures {
        per_number_mix_us: mix_request,
        per_number_us_only_us: us_request,
        worst_first_number: worst,
        metadata_load_ms: load,
    }
}
