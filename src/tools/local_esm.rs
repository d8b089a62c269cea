//! A local stand-in of Lambda's SQS event source mappings (and, with `local_stream`, of the
//! table's stream mapping), for the emulator (moto runs no
//! mappings): it receives jobs from the send queue (and the accounts queue), invokes the
//! sender (and the accounts function) with a real SQS
//! event through the Lambda Invoke API (`cargo lambda watch`, or a Runtime API stand-in),
//! and deletes every message the function did not report in `batchItemFailures`. A
//! function error leaves the whole batch to come back after its visibility timeout, as on
//! AWS. `concurrency` invocations run at once, like the mapping's maximum concurrency.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::{Value, json};
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct Mapping {
    /// The function fed, for the logs.
    pub function: &'static str,
    pub queue_url: String,
    /// `http://HOST:PORT/2015-03-31/functions/NAME/invocations`.
    pub invoke_url: String,
    pub batch_size: i32,
    pub concurrency: usize,
    pub region: String,
}

/// The SQS event Lambda would hand the function for these messages.
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Invokes the function at `url` (the Lambda Invoke API) and reads the item identifiers it
/// reported failed (`batchItemFailures`: message ids, or a stream's sequence numbers);
/// `None` when the invocation failed as a whole.
pub(crate) fn invoke(url: &str, event: &Value) -> Option<HashSet<String>> {
    let mut response = ureq::post(url)
        .header("content-type", "application/json")
        .send(event.to_string())
        .ok()?;
    if response.headers().contains_key("x-amz-function-error") {
        return None;
    }
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
    if body.get("errorType").is_some() {
        return None;
    }
    Some(
        body["batchItemFailures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
            .collect(),
    )
}

/// Runs the mapping until the process ends.
pub async fn run(client: Client, mapping: Mapping) {
    let arn = match client
        .get_queue_attributes()
        .queue_url(&mapping.queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
    {
        Ok(out) => out
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default(),
        Err(error) => {
            warn!(error = %crate::adapters::error_code(&error), queue = mapping.queue_url, "the queue cannot be read");
            String::new()
        }
    };
    let workers = (0..mapping.concurrency.max(1)).map(|_| poll(&client, &mapping, &arn));
    futures::future::join_all(workers).await;
}

/// Up to a batch of jobs, waiting a second at most for one (empty on an error).
async fn receive(client: &Client, mapping: &Mapping) -> Vec<Message> {
    let received = client
        .receive_message()
        .queue_url(&mapping.queue_url)
        .max_number_of_messages(mapping.batch_size)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await;
    match received {
        Ok(out) => out.messages.unwrap_or_default(),
        Err(error) => {
            warn!(error = %crate::adapters::error_code(&error), "receive failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
            Vec::new()
        }
    }
}

async fn poll(client: &Client, mapping: &Mapping, arn: &str) {
    let mut ready = Vec::new();
    loop {
        if ready.is_empty() {
            ready = receive(client, mapping).await;
            continue;
        }
        let messages = std::mem::take(&mut ready);
        let event = sqs_event(&messages, arn, &mapping.region);
        let url = mapping.invoke_url.clone();
        // As Lambda's pollers do, the next batch is fetched while this one is handled.
        let (failed, next) = tokio::join!(
            tokio::task::spawn_blocking(move || invoke(&url, &event)),
            receive(client, mapping)
        );
        ready = next;
        let Some(failed) = failed.ok().flatten() else {
            warn!(
                jobs = messages.len(),
                function = mapping.function,
                "the function failed: the batch comes back after its visibility timeout"
            );
            continue;
        };
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.message_id().is_some_and(|id| failed.contains(id)))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        info!(
            jobs = messages.len(),
            retried = failed.len(),
            function = mapping.function,
            "batch delivered"
        );
        if !done.is_empty()
            && let Err(error) = client
                .delete_message_batch()
                .queue_url(&mapping.queue_url)
                .set_entries(Some(done))
                .send()
                .await
        {
            warn!(error = %crate::adapters::error_code(&error), "delete failed: those jobs come again");
        }
    }
}

/// Receives jobs from SEND_QUEUE_URL and invokes the sender with SQS events.
#[derive(Debug, clap::Parser)]
#[command(name = "smsreg-local-esm", version)]
pub struct Args {
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
    /// Also feed the accounts function from this queue (default: ACCOUNTS_QUEUE_URL), one
    /// batch at a time, at --accounts-invoke-url.
    #[arg(long, env = "ACCOUNTS_QUEUE_URL")]
    accounts_queue_url: Option<String>,
    /// The accounts function's Invoke API URL, e.g.
    /// http://127.0.0.1:9000/2015-03-31/functions/smsreg-accounts/invocations
    #[arg(long)]
    accounts_invoke_url: Option<String>,
    /// Also feed the events function from the table's stream, at this Invoke API URL, e.g.
    /// http://127.0.0.1:9000/2015-03-31/functions/smsreg-events/invocations
    #[arg(long)]
    events_invoke_url: Option<String>,
    /// The table whose stream feeds the events function (default: TABLE_NAME).
    #[arg(long, env = "TABLE_NAME", default_value = "smsreg")]
    table: String,
    /// Where a stream batch that failed every try is described (the mapping's on-failure
    /// destination), if anywhere.
    #[arg(long)]
    events_failure_queue_url: Option<String>,
}

/// `smsreg-local-esm`: the binary only calls this.
pub async fn main() {
    crate::telemetry::init();
    let args = <Args as clap::Parser>::parse();
    let aws = crate::adapters::load_aws_config().await;
    let region = aws.region().map(|r| r.to_string()).unwrap_or_default();
    let stream = async {
        let Some(invoke) = args.events_invoke_url.clone() else {
            return;
        };
        let store = crate::adapters::dynamodb::DynamoStore::new(&aws, &args.table);
        let stream_arn = match store.stream_arn().await {
            Ok(Some(arn)) => arn,
            Ok(None) => {
                warn!(
                    "the table has no stream (run smsreg-admin create-table): the events function is not fed"
                );
                return;
            }
            Err(error) => {
                warn!(%error, "the events function is not fed");
                return;
            }
        };
        // As the template's mapping: batches of 10, 3 retries.
        let mapping = super::local_stream::StreamMapping {
            stream_arn,
            region: region.clone(),
            batch_size: 10,
            max_retries: 3,
        };
        super::local_stream::run(&aws, mapping, invoke, args.events_failure_queue_url.clone())
            .await;
    };
    let queue = run(
        Client::new(&aws),
        Mapping {
            function: "sender",
            queue_url: args.queue_url.clone(),
            invoke_url: args.invoke_url.clone(),
            batch_size: args.batch_size,
            concurrency: args.concurrency,
            region: region.clone(),
        },
    );
    let accounts = async {
        let (Some(queue_url), Some(invoke_url)) = (
            args.accounts_queue_url.clone(),
            args.accounts_invoke_url.clone(),
        ) else {
            return;
        };
        // As the template's mapping: one batch at a time.
        let mapping = Mapping {
            function: "accounts",
            queue_url,
            invoke_url,
            batch_size: 10,
            concurrency: 1,
            region: region.clone(),
        };
        run(Client::new(&aws), mapping).await;
    };
    tokio::join!(queue, stream, accounts);
}
