//! JSON logs, one line per event, for CloudWatch.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter for a requested level: the level applies to this crate only; every other
/// crate (the Lambda runtime, the AWS SDK, hyper) logs at `warn` whatever is asked, since
/// at `debug` and `trace` they print raw events, headers (`Authorization`) and request
/// bodies (phone numbers, SMS texts).
pub fn filter_directives(requested: Option<&str>) -> String {
    let level = requested
        .and_then(|text| text.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let own = env!("CARGO_CRATE_NAME");
    format!("warn,{own}={level}").to_lowercase()
}

/// Installs the JSON subscriber; the level comes from `RUST_LOG` (or Lambda's
/// `AWS_LAMBDA_LOG_LEVEL`), a single level such as `debug`, default `info`.
pub fn init() {
    let requested = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .ok();
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .finish()
        .with(filter(requested.as_deref()))
        .try_init();
}

/// The filter of [`filter_directives`]: by target prefix alone, which is all it needs
/// (`EnvFilter`, the alternative, brings the regex crate's DFA builder into the binary,
/// and with it a dense DFA built for every phone pattern: docs/PERFORMANCE.md).
fn filter(requested: Option<&str>) -> Targets {
    filter_directives(requested)
        .parse()
        .expect("filter_directives writes a level and a target's level")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_lets_this_crate_through_at_the_requested_level_and_others_at_warn() {
        use tracing::Level;
        let debug = filter(Some("debug"));
        assert!(debug.would_enable("smsreg::service::invite", &Level::DEBUG));
        assert!(!debug.would_enable("smsreg::service::invite", &Level::TRACE));
        assert!(debug.would_enable("aws_smithy_runtime", &Level::WARN));
        assert!(!debug.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(!debug.would_enable("lambda_runtime", &Level::DEBUG));
        let off = filter(Some("off"));
        assert!(!off.would_enable("smsreg", &Level::ERROR));
        assert!(off.would_enable("hyper", &Level::ERROR));
        let default = filter(None);
        assert!(default.would_enable("smsreg::functions::api", &Level::INFO));
        assert!(!default.would_enable("smsreg::functions::api", &Level::DEBUG));
    }

    #[test]
    fn only_this_crate_follows_the_requested_level() {
        assert_eq!(filter_directives(None), "warn,smsreg=info");
        assert_eq!(filter_directives(Some("TRACE")), "warn,smsreg=trace");
        assert_eq!(filter_directives(Some("debug")), "warn,smsreg=debug");
        assert_eq!(filter_directives(Some("off")), "warn,smsreg=off");
        // Directives for other crates are not honoured: they would print raw events.
        for other in [
            "lambda_runtime=trace",
            "trace,aws_smithy_runtime=trace",
            "nonsense",
        ] {
            assert_eq!(
                filter_directives(Some(other)),
                "warn,smsreg=info",
                "{other}"
            );
        }
    }
}
