//! The performance benchmarks of issue 5, in one binary: `scripts/bench` runs them all
//! and prints the figures (see docs/PERFORMANCE.md). Under `cargo test` (no `--bench`
//! argument) each runs once on a tiny input, as a smoke test; nothing is timed there.
//!
//!     cargo bench --bench perf -- [cpu] [io] [cold] [sender] [auth]

mod auth;
mod cold;
mod cpu;
#[path = "../../tests/common/http1.rs"]
mod http1;
mod io;
#[path = "../../tests/common/runtime.rs"]
mod runtime;
mod sender;
mod standin;
mod stats;
mod tls;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child-first-number") {
        cpu::child_first_number(&args[i + 1], &args[i + 2]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--profile-parse") {
        // For a profiler (valgrind --tool=callgrind): parse the mix of benchmark 1 N times.
        let rounds: usize = args[i + 1].parse().expect("a number of rounds");
        cpu::profile_parse(rounds);
        return;
    }
    let quick = !args.iter().any(|a| a == "--bench");
    // Options that take a value: `--summary FILE`; `--api-bin [LABEL=]PATH` (repeatable),
    // another build of `smsreg-api` started beside the project's; `--hello-bin PATH`, the
    // hello-world function (`benches/hello-lambda`); `--hello-dynamodb-bin PATH`, the same
    // reading one DynamoDB item (`benches/hello-dynamodb`); `--cold-runs N`, starts of each build;
    // `--cold-number NUMBER`, `--only-bench-root`: experiments (see `cold::Experiment`).
    let mut summary_path = None;
    let mut builds = vec![cold::Build {
        label: "smsreg-api".to_owned(),
        exe: env!("CARGO_BIN_EXE_smsreg-api").to_owned(),
        kind: cold::Kind::Api,
    }];
    let mut hello = None;
    let mut hello_dynamodb = None;
    let mut cold_runs = None;
    let mut experiment = cold::Experiment::default();
    let mut selected: Vec<&str> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().unwrap_or_else(|| panic!("a value after {arg}"));
        match arg.as_str() {
            "--summary" => summary_path = Some(value().clone()),
            "--api-bin" => {
                let value = value();
                let (label, exe) = value.split_once('=').unwrap_or((value, value));
                builds.push(cold::Build {
                    label: label.to_owned(),
                    exe: exe.to_owned(),
                    kind: cold::Kind::Api,
                });
            }
            "--hello-bin" => hello = Some(value().clone()),
            "--hello-dynamodb-bin" => hello_dynamodb = Some(value().clone()),
            "--cold-runs" => cold_runs = Some(value().parse().expect("a number of starts")),
            "--cold-number" => experiment.number = Some(value().clone()),
            "--only-bench-root" => experiment.only_bench_root = true,
            _ if !arg.starts_with('-') => selected.push(arg),
            _ => {}
        }
    }
    // Without `--hello-bin` (`--hello-dynamodb-bin`), the yardstick built beside this binary,
    // if there is one (target/PROFILE/hello-lambda, this being target/PROFILE/deps/perf-HASH).
    let beside = |name: &str| {
        let exe = std::env::current_exe().ok()?;
        let path = exe.parent()?.parent()?.join(name);
        path.is_file().then(|| path.to_string_lossy().into_owned())
    };
    let yardsticks = [
        (hello, "hello-lambda", "hello-world", cold::Kind::Hello),
        (
            hello_dynamodb,
            "hello-dynamodb",
            "hello-world + DynamoDB",
            cold::Kind::HelloDynamoDb,
        ),
    ];
    for (given, file, label, kind) in yardsticks {
        if let Some(exe) = given.or_else(|| beside(file)) {
            builds.push(cold::Build {
                label: label.to_owned(),
                exe,
                kind,
            });
        }
    }
    if quick {
        println!(
            "(smoke run without --bench, e.g. under cargo test: tiny inputs, figures meaningless)"
        );
    }
    let wants = |name: &str| selected.is_empty() || selected.contains(&name);
    let mut rows: Vec<[String; 3]> = Vec::new();
    let mut row = |figure: &str, value: String, target: &str| {
        rows.push([figure.to_owned(), value, target.to_owned()]);
    };
    if wants("cpu") {
        let f = cpu::run(quick);
        row(
            "CPU per number, 500-user request, mix (us)",
            f.per_number_mix_us.show(2),
            "<= 10",
        );
        row(
            "CPU per number, 500-user request, US only (us)",
            f.per_number_us_only_us.show(2),
            "",
        );
        row(
            &format!(
                "worst first number of a country ({}) (us)",
                f.worst_first_number.0
            ),
            f.worst_first_number.1.show(0),
            "reported",
        );
        row(
            "libphonenumber's whole database load, not used (ms)",
            f.metadata_load_ms.show(1),
            "",
        );
    }
    if wants("io") {
        let io_rows = io::run(quick);
        let base = io_rows[0].elapsed_ms.median;
        if let Some(r) = io_rows.last() {
            row(
                "AWS calls per number, API (500-user request)",
                format!(
                    "{:.3} (+ {} per request)",
                    r.calls_per_number, r.fixed_calls
                ),
                "<= 1.2",
            );
        }
        for r in &io_rows {
            row(
                &format!("500-user request at C={} (ms)", r.concurrency),
                format!(
                    "{}; {:.2}x ideal {:.0}; {:.1}x faster than C=1",
                    r.elapsed_ms.show(0),
                    r.elapsed_ms.median / r.ideal_ms,
                    r.ideal_ms,
                    base / r.elapsed_ms.median
                ),
                if r.concurrency == 16 || r.concurrency == 32 {
                    "<= 1.3x ideal"
                } else {
                    ""
                },
            );
        }
    }
    if wants("auth") {
        let f = auth::run(quick);
        row(
            "401, known username with a wrong key (ns)",
            f.known_user_wrong_key_ns.show_spread(0),
            "= unknown username, within noise",
        );
        row(
            "401, unknown username (ns)",
            f.unknown_user_ns.show_spread(0),
            "",
        );
        row(
            "  one key hashed and compared (ns)",
            f.one_comparison_ns.show_spread(0),
            "",
        );
    }
    if wants("sender") {
        for r in sender::run(quick) {
            row(
                &format!(
                    "sender at R = {} SMS/s, {} instances (SMS/s)",
                    r.rate, r.instances
                ),
                format!(
                    "{:.2} = {:.3} R over {} SMS ({:.3} R over the middle 80 %); {} throttled ({:.1} %); {:.2} AWS calls per job",
                    r.per_second,
                    r.per_second / r.rate as f64,
                    r.sms,
                    r.middle_per_second / r.rate as f64,
                    r.throttled,
                    100.0 * r.throttled as f64 / r.sms as f64,
                    r.calls_per_job
                ),
                ">= 0.95 R, <= 5 % throttled",
            );
        }
    }
    if wants("cold") {
        let f = cold::run(quick, &builds, cold_runs, &experiment);
        for m in &f.measured {
            let transport = m.transport.name();
            row(
                &format!("cold start, {}, {transport} (ms)", m.label),
                m.first_response_ms.show_spread(1),
                if m.label == "smsreg-api" { "<= 40" } else { "" },
            );
            row(
                "  of which init: spawn -> first /invocation/next (ms)",
                m.init_ms.show_spread(1),
                "",
            );
            row(
                "  CPU to the first response, user + system (ms)",
                m.cpu_ms.show_spread(1),
                "",
            );
            if let Some(hello) = f.hello(m.transport).filter(|_| m.kind.calls_aws()) {
                let (a, h) = (m.first_response_ms.median, hello.first_response_ms.median);
                row(
                    &format!("  overhead over hello-world, {transport}, medians (ms)"),
                    format!(
                        "{:.1} = {:.1}x hello-world's {:.1}; first response / hello-world's {:.1}",
                        a - h,
                        (a - h) / h,
                        h,
                        a / h
                    ),
                    "",
                );
                if let Some(o) = m.start_overhead_ms() {
                    row(
                        &format!("  start overhead (first - warm request), {transport} (ms)"),
                        format!("{o:.1} = {:.1}x hello-world's start {h:.1}", o / h),
                        if m.kind.has_start_goal() {
                            "<= 2x hello-world"
                        } else {
                            ""
                        },
                    );
                }
            }
        }
        row(
            &format!("peak RSS after a {}-user request (MB)", f.users),
            f.peak_rss_mb.show(1),
            "<= 30",
        );
    }
    let table: String = rows
        .iter()
        .map(|[figure, value, target]| format!("{figure}\t{value}\t{target}\n"))
        .collect();
    if let Some(path) = summary_path {
        std::fs::write(&path, &table).expect("the summary file is writable");
    }
}
