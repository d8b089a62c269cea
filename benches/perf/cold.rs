//! Benchmark 3 and the RSS part of 4: the release `smsreg-api` binary started as Lambda
//! starts it (Runtime API stand-in, `AWS_LAMBDA_*`), against the DynamoDB/SQS stand-in,
//! beside a hello-world `lambda_http` function (`benches/hello-lambda`) started the same way.
//!
//! Cold start = process spawn to the answer of a 1-user request posted to the Runtime API;
//! init = spawn to the first `GET /invocation/next`; CPU = the process's user + system time
//! when it is killed right after that answer (`wait4`), which is what a fraction of a vCPU
//! (Lambda at 256 MB) would have to run one thread at a time. Each build is started many
//! times, taking turns with the others (and HTTP with HTTPS), so that the machine's noise
//! falls on all of them alike. With the stand-in behind TLS (`tls.rs`) the function's first
//! calls make real TLS handshakes, as against AWS.
//!
//! Then, apart, the project's build serves a 500-user request (calls answered after 20 ms)
//! after its first one, and its peak RSS is read from `/proc/PID/status` (section 4).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cpu::{event, request_body, valid};
use crate::io::LATENCY;
use crate::runtime::RuntimeApi;
use crate::standin::StandIn;
use crate::stats::{self, Summary, millis, summarize};
use crate::tls::TlsFront;

/// What the benchmark starts: builds of `smsreg-api`, the hello-world function (the
/// yardstick), and the hello-world function reading one DynamoDB item (`benches/hello-dynamodb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Api,
    Hello,
    HelloDynamoDb,
}

impl Kind {
    /// Whether its requests call AWS (and so have AWS calls and warm requests to measure).
    pub fn calls_aws(self) -> bool {
        self != Kind::Hello
    }

    /// Whether the goal (a start overhead within 2x the hello-world's start) is
    /// printed beside its figures: for the builds of `smsreg-api`, not the yardsticks.
    pub fn has_start_goal(self) -> bool {
        self == Kind::Api
    }
}

#[derive(Debug, Clone)]
pub struct Build {
    pub label: String,
    pub exe: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Https,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Http => "HTTP",
            Transport::Https => "HTTPS",
        }
    }
}

/// One build's starts over one transport.
pub struct Measured {
    pub label: String,
    pub kind: Kind,
    pub transport: Transport,
    pub first_response_ms: Summary,
    pub init_ms: Summary,
    pub cpu_ms: Summary,
    pub rss_mb: Summary,
    /// Page faults to the first response.
    pub faults: Summary,
    /// When its first and last AWS call reached the stand-in (not for the hello-world).
    pub calls_ms: Option<(Summary, Summary)>,
    /// The same request again, warm: posted to answered (not for the hello-world).
    pub warm_ms: Option<Summary>,
}

impl Measured {
    /// The start's overhead as issue 17 measures it: the first request's time (spawn to
    /// answer) less a warm request's, in the same build.
    pub fn start_overhead_ms(&self) -> Option<f64> {
        self.warm_ms
            .as_ref()
            .map(|warm| self.first_response_ms.median - warm.median)
    }
}

pub struct ColdFigures {
    pub measured: Vec<Measured>,
    /// The 500-user request after a cold start, and the peak RSS after it.
    pub batch_ms: Summary,
    pub peak_rss_mb: Summary,
    pub users: usize,
}

impl ColdFigures {
    /// The hello-world's starts over `transport`, if it was measured.
    pub fn hello(&self, transport: Transport) -> Option<&Measured> {
        self.measured
            .iter()
            .find(|m| m.kind == Kind::Hello && m.transport == transport)
    }
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

/// Kills the process and reaps it; returns its CPU time (user + system), in ms, and its
/// page faults (minor: none of them read a disk).
fn kill_and_reap(child: Child) -> (f64, f64) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: `pid` is a child of this process that nothing has reaped (std reaps only in
    // `Child::wait`/`try_wait`, never called here); `usage` is written by `wait4`.
    let usage = unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        let reaped = libc::wait4(pid, &mut status, 0, usage.as_mut_ptr());
        assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
        usage.assume_init()
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    (
        ms(usage.ru_utime) + ms(usage.ru_stime),
        usage.ru_minflt as f64,
    )
}

fn check(kind: Kind, answer: Result<String, String>, users: usize) {
    let raw = answer.expect("the invocation succeeds");
    let response: Value = serde_json::from_str(&raw).expect("an API Gateway response");
    assert_eq!(response["statusCode"], 200, "{raw}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    match kind {
        Kind::Api => assert_eq!(
            body["success_numbers"].as_array().map(Vec::len),
            Some(users),
            "{body}"
        ),
        Kind::Hello | Kind::HelloDynamoDb => assert_eq!(body["message"], "hello", "{body}"),
    }
}

/// Where the function's AWS calls go, and the roots it trusts.
struct Target<'a> {
    endpoint: &'a str,
    trust_file: Option<&'a Path>,
}

/// The process as Lambda starts it: only the function's environment.
fn spawn(exe: &str, runtime: &RuntimeApi, target: &Target) -> Child {
    let mut command = Command::new(exe);
    command
        .env_clear()
        .envs(runtime.env())
        .env("AWS_ENDPOINT_URL", target.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("TABLE_NAME", "bench")
        .env(
            "SEND_QUEUE_URL",
            format!("{}/123456789012/bench", target.endpoint),
        )
        .env("PUBLIC_BASE_URL", "https://sms.example.org")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(file) = target.trust_file {
        command.env("SSL_CERT_FILE", file);
    }
    command.spawn().expect("the function starts")
}

/// What one cold start gives, in ms from the spawn (RSS in MB).
const FIGURES: usize = 7;
const FIRST_RESPONSE: usize = 0;
const INIT: usize = 1;
const CPU: usize = 2;
const RSS: usize = 3;
/// When the stand-in received the function's first and last AWS call (none: NaN).
const FIRST_CALL: usize = 4;
const LAST_CALL: usize = 5;
const FAULTS: usize = 6;

/// One cold start's figures (see `FIGURES`).
fn cold_once(build: &Build, standin: &StandIn, target: &Target, one: &str) -> [f64; FIGURES] {
    standin.set_delay(Duration::ZERO);
    let runtime = RuntimeApi::start(30_000);
    let id = runtime.enqueue(one);
    standin.take_arrivals();
    let started = Instant::now();
    let child = spawn(&build.exe, &runtime, target);
    let (answered, answer) = runtime.wait(&id, Duration::from_secs(60));
    let hwm = status_kb(child.id(), "VmHWM:").unwrap_or(f64::NAN);
    let (cpu, faults) = kill_and_reap(child);
    check(build.kind, answer, 1);
    let calls = standin.take_arrivals();
    let since = |at: Option<&Instant>| at.map_or(f64::NAN, |at| millis(*at - started));
    let mut figures = [0.0; FIGURES];
    figures[FIRST_RESPONSE] = millis(answered - started);
    figures[INIT] = millis(runtime.first_poll().expect("the function polled") - started);
    figures[CPU] = cpu;
    figures[RSS] = hwm / 1024.0;
    figures[FIRST_CALL] = since(calls.first());
    figures[LAST_CALL] = since(calls.last());
    figures[FAULTS] = faults;
    figures
}

/// A process of `build` started, with the 1-user request `one` answered (calls answered at
/// once), for the requests that follow it.
fn started(build: &Build, standin: &StandIn, target: &Target, one: &str) -> (RuntimeApi, Child) {
    standin.set_delay(Duration::ZERO);
    let runtime = RuntimeApi::start(30_000);
    let id = runtime.enqueue(one);
    let child = spawn(&build.exe, &runtime, target);
    let (_, answer) = runtime.wait(&id, Duration::from_secs(60));
    check(build.kind, answer, 1);
    (runtime, child)
}

/// A cold start then `requests` more of the same 1-user request, one after another: each
/// one's time from posted to answered, in ms.
fn warm_once(
    build: &Build,
    standin: &StandIn,
    target: &Target,
    one: &str,
    requests: usize,
) -> Vec<f64> {
    let (runtime, child) = started(build, standin, target, one);
    let times = (0..requests)
        .map(|_| {
            let posted = Instant::now();
            let id = runtime.enqueue(one);
            let (answered, answer) = runtime.wait(&id, Duration::from_secs(60));
            check(build.kind, answer, 1);
            millis(answered - posted)
        })
        .collect();
    kill_and_reap(child);
    times
}

/// A cold start then a `n`-user request (calls answered after 20 ms): (its ms, peak RSS MB).
fn batch_once(build: &Build, standin: &StandIn, one: &str, batch: &str, n: usize) -> [f64; 2] {
    let target = Target {
        endpoint: &standin.endpoint,
        trust_file: None,
    };
    let (runtime, child) = started(build, standin, &target, one);
    standin.set_delay(LATENCY);
    let id = runtime.enqueue(batch);
    let posted = Instant::now();
    let (answered, answer) = runtime.wait(&id, Duration::from_secs(120));
    check(Kind::Api, answer, n);
    let batch_ms = millis(answered - posted);
    let hwm = status_kb(child.id(), "VmHWM:").expect("the function's /proc status");
    kill_and_reap(child);
    [batch_ms, hwm / 1024.0]
}

/// The builds as started: each a fresh copy of its file, in a directory of the bench's own.
///
/// A file as the linker leaves it started measurably slower than a byte-for-byte copy of it
/// (1.3 ms more CPU over 50 starts, in three runs; the copy is written in one stream, and its
/// pages come in as fewer faults). Lambda starts a function from files unpacked from its
/// package, not from a linker's output, and a build given as a copy (`--api-bin` of a
/// binary set aside) must not be favoured over one given as built: so every build, the
/// hello-world's included, is started from a copy made the same way.
struct Staged {
    builds: Vec<Build>,
    dir: PathBuf,
}

impl Staged {
    fn copy(builds: &[Build]) -> Staged {
        let dir = std::env::temp_dir().join(format!("smsreg-bench-cold-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the builds' copies");
        let builds = builds
            .iter()
            .enumerate()
            .map(|(i, build)| {
                let name = Path::new(&build.exe)
                    .file_name()
                    .map_or_else(|| "build".into(), |n| n.to_string_lossy().into_owned());
                let copy = dir.join(format!("{i}-{name}"));
                std::fs::copy(&build.exe, &copy)
                    .unwrap_or_else(|e| panic!("copying {}: {e}", build.exe));
                Build {
                    exe: copy.to_string_lossy().into_owned(),
                    ..build.clone()
                }
            })
            .collect();
        Staged { builds, dir }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Experiments (`--cold-number`, `--only-bench-root`): not for the figures of record.
#[derive(Debug, Default)]
pub struct Experiment {
    /// The first request's number instead of a US one (e.g. a Kenyan number, whose calling
    /// code's metadata is small, so that the request does not wait for the +1 warm-up).
    pub number: Option<String>,
    /// The function trusts the bench's root alone instead of the system's ~145 roots.
    pub only_bench_root: bool,
}

/// Runs the benchmark on `builds` (the project's `smsreg-api` first), over plain HTTP and,
/// when its certificates can be made, HTTPS; `runs` starts of each (default 60).
pub fn run(quick: bool, builds: &[Build], runs: Option<usize>, exp: &Experiment) -> ColdFigures {
    let given = builds;
    let staged = Staged::copy(given);
    let builds = &staged.builds[..];
    let runs = runs.unwrap_or(if quick { 1 } else { 60 });
    let (batch_runs, n) = if quick { (1, 8) } else { (15, 500) };
    println!(
        "== 3. Cold start: spawn -> first response posted, 1-user request (under a Runtime API stand-in; DynamoDB/SQS stand-in answering at once)"
    );
    let standin = StandIn::start(Duration::ZERO);
    let tls = TlsFront::start(standin.endpoint.trim_start_matches("http://"));
    let mut transports = vec![Transport::Http];
    match &tls {
        Ok(front) => {
            transports.push(Transport::Https);
            println!(
                "   both transports: SSL_CERT_FILE = the system's CA bundle + the bench's root ({} certificates)",
                front.roots
            );
            println!(
                "   HTTPS: TLS 1.3 front on 127.0.0.1 (rustls, aws-lc), RSA 2048 leaf + intermediate, before the same stand-in"
            );
        }
        Err(why) => println!("   HTTPS stand-in skipped: {why}"),
    }
    let trust_file = tls.as_ref().ok().map(|f| {
        if exp.only_bench_root {
            println!("   experiment: SSL_CERT_FILE = the bench's root alone");
            f.root_file.as_path()
        } else {
            f.trust_file.as_path()
        }
    });
    let target = |transport: Transport| Target {
        endpoint: match (transport, &tls) {
            (Transport::Https, Ok(front)) => &front.endpoint,
            _ => &standin.endpoint,
        },
        trust_file,
    };
    if !builds.iter().any(|b| b.kind == Kind::Hello) {
        println!(
            "   no hello-world build (scripts/bench builds it: cargo build --release -p hello-lambda): no comparison"
        );
    }
    println!("   each started from a copy of its file (see `Staged`):");
    for build in given {
        println!("   {:<28} {}", build.label, build.exe);
    }

    let number = exp.number.as_deref().unwrap_or("+16175551234");
    assert!(valid(number).is_some(), "{number} is a valid number");
    if exp.number.is_some() {
        println!("   experiment: the 1-user request's number is {number}");
    }
    let one = event(&request_body(&[number.to_owned()]));
    let pairs: Vec<(usize, Transport)> = transports
        .iter()
        .flat_map(|&t| (0..builds.len()).map(move |b| (b, t)))
        .collect();
    let mut samples = vec![vec![Vec::new(); FIGURES]; pairs.len()];
    // One start of each first, not counted (the binaries into the page cache).
    for &(b, t) in &pairs {
        cold_once(&builds[b], &standin, &target(t), &one);
    }
    for round in 0..runs {
        // Taking turns, each round starting one further along the list.
        for k in 0..pairs.len() {
            let i = (round + k) % pairs.len();
            let (b, t) = pairs[i];
            let figures = cold_once(&builds[b], &standin, &target(t), &one);
            for (figure, sample) in figures.iter().zip(&mut samples[i]) {
                sample.push(*figure);
            }
            std::thread::sleep(Duration::from_millis(if quick { 0 } else { 30 }));
        }
    }
    // The warm requests, apart: 5 after each of a sixth as many starts, per build and
    // transport (the hello-world's are not needed: its start is the yardstick).
    let warm_starts = (runs / 6).max(1);
    let mut warm = vec![Vec::new(); pairs.len()];
    for _ in 0..warm_starts {
        for (i, &(b, t)) in pairs.iter().enumerate() {
            if builds[b].kind.calls_aws() {
                warm[i].extend(warm_once(&builds[b], &standin, &target(t), &one, 5));
            }
        }
    }
    let measured: Vec<Measured> = pairs
        .iter()
        .zip(&samples)
        .zip(&warm)
        .map(|((&(b, t), s), warm)| Measured {
            label: builds[b].label.clone(),
            kind: builds[b].kind,
            transport: t,
            first_response_ms: summarize(&s[FIRST_RESPONSE]),
            init_ms: summarize(&s[INIT]),
            cpu_ms: summarize(&s[CPU]),
            rss_mb: summarize(&s[RSS]),
            faults: summarize(&s[FAULTS]),
            calls_ms: (builds[b].kind.calls_aws())
                .then(|| (summarize(&s[FIRST_CALL]), summarize(&s[LAST_CALL]))),
            warm_ms: (!warm.is_empty()).then(|| summarize(warm)),
        })
        .collect();

    let batch = event(&request_body(&stats::realistic_mix(n, 11, valid)));
    let mut batch_samples = [Vec::new(), Vec::new()];
    for _ in 0..batch_runs {
        let figures = batch_once(&builds[0], &standin, &one, &batch, n);
        for (figure, sample) in figures.iter().zip(&mut batch_samples) {
            sample.push(*figure);
        }
    }
    let figures = ColdFigures {
        measured,
        batch_ms: summarize(&batch_samples[0]),
        peak_rss_mb: summarize(&batch_samples[1]),
        users: n,
    };
    print(&figures, &transports);
    figures
}

fn print(figures: &ColdFigures, transports: &[Transport]) {
    for &transport in transports {
        println!(
            "   {} stand-in (ms; median (min-max, p10-p90, n)):",
            transport.name()
        );
        for m in figures.measured.iter().filter(|m| m.transport == transport) {
            println!("     {}", m.label);
            println!(
                "       spawn -> first response  {}",
                m.first_response_ms.show_spread(1)
            );
            println!(
                "       spawn -> first poll (init) {}",
                m.init_ms.show_spread(1)
            );
            if let Some((first, last)) = &m.calls_ms {
                println!("       spawn -> first AWS call    {}", first.show_spread(1));
                println!("       spawn -> last AWS call     {}", last.show_spread(1));
            }
            println!(
                "       CPU, user + system       {}",
                m.cpu_ms.show_spread(1)
            );
            if let Some(warm) = &m.warm_ms {
                println!(
                    "       warm request, posted -> answered {}",
                    warm.show_spread(1)
                );
            }
            println!("       peak RSS (MB)            {}", m.rss_mb.show(1));
            println!("       page faults              {}", m.faults.show(0));
        }
        if let Some(hello) = figures.hello(transport) {
            for m in figures
                .measured
                .iter()
                .filter(|m| m.transport == transport && m.kind.calls_aws())
            {
                if let Some(line) = start_overhead_line(m, hello) {
                    println!("     {line}");
                }
                println!("     {}", overhead_line(m, hello));
            }
        }
    }
    println!(
        "   after a {}-user request (CONCURRENCY 16, calls answered after {} ms, {} ms): peak RSS (VmHWM) {} MB   [target <= 30]",
        figures.users,
        LATENCY.as_millis(),
        figures.batch_ms.show(0),
        figures.peak_rss_mb.show(1)
    );
}

/// `smsreg-api: start overhead (first - warm request) 6.1 ms = 2.1x hello-world's start (3.0 ms; goal <= 2x)`
fn start_overhead_line(api: &Measured, hello: &Measured) -> Option<String> {
    let h = hello.first_response_ms.median;
    let goal = if api.kind.has_start_goal() {
        "; goal <= 2x"
    } else {
        ""
    };
    api.start_overhead_ms().map(|o| {
        format!(
            "{}: start overhead (first - warm request) {o:.1} ms = {:.1}x {}'s start ({h:.1} ms{goal})",
            api.label,
            o / h,
            hello.label
        )
    })
}

/// `smsreg-api - hello-world: 9.1 ms = 2.8x hello-world's 3.2 ms; ...`
pub fn overhead_line(api: &Measured, hello: &Measured) -> String {
    let (a, h) = (api.first_response_ms.median, hello.first_response_ms.median);
    let (ca, ch) = (api.cpu_ms.median, hello.cpu_ms.median);
    format!(
        "{} - {}: {:.1} ms = {:.1}x {}'s {:.1} ms; {} / {} = {:.1}; CPU {:.1} - {:.1} = {:.1} ms",
        api.label,
        hello.label,
        a - h,
        (a - h) / h,
        hello.label,
        h,
        api.label,
        hello.label,
        a / h,
        ca,
        ch,
        ca - ch
    )
}
