//! `smsreg-local-esm`: feeds the sender from the emulator's send queue, as Lambda's SQS
//! event source mapping does on AWS. For local runs and tests only; never deployed.

use clap::Parser;

/// Receives jobs from SEND_QUEUE_URL and invokes the sender with SQS events.
#[derive(Debug, Parser)]
#[command(name = "smsreg-local-esm", version)]
struct Args {
    /// The send queue (default: SEND_QUEUE_URL).
    #[arg(long, env = "SEND_QUEUE_URL")]
    queue_url: String,
    /// The sender's Invoke API URL, e.g.
    /// http://127.0.0.1:9000/2015-03-31/functions/smsreg-sender/invocations
    #[arg(long)]
    invoke_url: String,
    /// Jobs per invocation (the mapping's BatchSize, at most 10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=10))]
    batch_size: i32,
    /// Invocations at once (the mapping's MaximumConcurrency).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

#[tokio::main]
async fn main() {
    smsreg::telemetry::init();
    let args = Args::parse();
    let aws = smsreg::adapters::load_aws_config().await;
    let region = aws.region().map(|r| r.to_string()).unwrap_or_default();
    smsreg::tools::local_esm::run(
        aws_sdk_sqs::Client::new(&aws),
        smsreg::tools::local_esm::Mapping {
            queue_url: args.queue_url,
            invoke_url: args.invoke_url,
            batch_size: args.batch_size,
            concurrency: args.concurrency,
            region,
        },
    )
    .await;
}
