//! A local stand-in of Lambda's DynamoDB Streams event source mapping, for the emulator
//! (moto serves the stream but runs no mappings): it reads the table's stream, keeps the
//! records the template's filter keeps (outbox items inserted), and invokes the events
//! function with them as Lambda would: a batch whose records are reported failed is handed
//! over again from the first of them, a batch that fails as a whole is split in two, and
//! after the last retry the batch's description goes to the on-failure queue, as the
//! mapping's `DestinationConfig` sends it.

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use crate::adapters::dynamodb::outbox::{BATCH_KIND, OUTBOX_KIND};

/// What the mapping does with a batch, as the template configures it.
#[derive(Debug, Clone)]
pub struct StreamMapping {
    pub stream_arn: String,
    pub region: String,
    /// Records per invocation (`BatchSize`).
    pub batch_size: usize,
    /// Retries of a batch before it goes to the on-failure queue (`MaximumRetryAttempts`).
    pub max_retries: u32,
}

/// The answer of one invocation: the sequence numbers reported failed, or `None` when the
/// invocation failed as a whole.
pub type Invoked = Option<std::collections::HashSet<String>>;

/// The template's filter: an outbox item inserted, or a batch item written.
pub fn passes_filter(record: &Record) -> bool {
    let name = record.event_name().map_or("", |n| n.as_str());
    let kind = record
        .dynamodb()
        .and_then(|d| d.new_image())
        .and_then(|image| image.get("kind"))
        .and_then(|kind| kind.as_s().ok())
        .map_or("", String::as_str);
    (name == "INSERT" && kind == OUTBOX_KIND)
        || (matches!(name, "INSERT" | "MODIFY") && kind == BATCH_KIND)
}

/// An attribute value in DynamoDB's JSON, as stream events carry it.
fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
    };
    match value {
        AttributeValue::S(v) => json!({ "S": v }),
        AttributeValue::N(v) => json!({ "N": v }),
        AttributeValue::B(v) => json!({ "B": b64(v) }),
        AttributeValue::Bool(v) => json!({ "BOOL": v }),
        AttributeValue::Null(v) => json!({ "NULL": v }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(v) => json!({ "M": image_json(v) }),
        _ => Value::Null,
    }
}

fn image_json(image: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        image
            .iter()
            .map(|(name, value)| (name.clone(), attribute_json(value)))
            .collect::<Map<_, _>>(),
    )
}

/// The event Lambda hands the function for these records.
pub fn stream_event(records: &[Record], stream_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            let change = r.dynamodb();
            let mut dynamodb = Map::new();
            if let Some(at) = change.and_then(|c| c.approximate_creation_date_time()) {
                dynamodb.insert("ApproximateCreationDateTime".into(), json!(at.secs()));
            }
            for (name, image) in [
                ("Keys", change.and_then(|c| c.keys())),
                ("NewImage", change.and_then(|c| c.new_image())),
                ("OldImage", change.and_then(|c| c.old_image())),
            ] {
                if let Some(image) = image {
                    dynamodb.insert(name.into(), image_json(image));
                }
            }
            dynamodb.insert(
                "SequenceNumber".into(),
                json!(change.and_then(|c| c.sequence_number())),
            );
            dynamodb.insert(
                "SizeBytes".into(),
                json!(change.and_then(|c| c.size_bytes()).unwrap_or(0)),
            );
            dynamodb.insert(
                "StreamViewType".into(),
                json!(
                    change
                        .and_then(|c| c.stream_view_type())
                        .map(|v| v.as_str())
                ),
            );
            json!({
                "eventID": r.event_id().unwrap_or_default(),
                "eventName": r.event_name().map_or("", |n| n.as_str()),
                "eventVersion": r.event_version(),
                "eventSource": "aws:dynamodb",
                "awsRegion": region,
                "dynamodb": dynamodb,
                "eventSourceARN": stream_arn,
            })
        })
        .collect();
    json!({ "Records": records })
}

fn sequence_number(record: &Record) -> &str {
    record
        .dynamodb()
        .and_then(|d| d.sequence_number())
        .unwrap_or_default()
}

/// What the mapping sends its on-failure destination for a batch that failed every try
/// (Lambda's `DDBStreamBatchInfo` record): where the batch is on the stream, not its
/// records.
pub fn failure_record(
    records: &[Record],
    shard_id: &str,
    mapping: &StreamMapping,
    invokes: u32,
) -> Value {
    let arrival = |r: Option<&Record>| {
        r.and_then(|r| r.dynamodb())
            .and_then(|d| d.approximate_creation_date_time())
            .map(|t| crate::domain::time::rfc3339(t.secs().max(0) as u64))
    };
    json!({
        "requestContext": {
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invokes,
        },
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST" },
        "version": "1.0",
        "timestamp": crate::domain::time::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records.first().map(sequence_number),
            "endSequenceNumber": records.last().map(sequence_number),
            "approximateArrivalOfFirstRecord": arrival(records.first()),
            "approximateArrivalOfLastRecord": arrival(records.last()),
            "batchSize": records.len(),
            "streamArn": mapping.stream_arn,
        }
    })
}

/// Hands `records` (already filtered, of the shard `shard_id`) to the function in batches,
/// as the mapping does; `invoke` calls the function with an event, `dead_letter` takes a
/// failure record. Returns the number of batches that went to the on-failure destination.
pub async fn deliver<I, IF, D, DF>(
    records: &[Record],
    shard_id: &str,
    mapping: &StreamMapping,
    invoke: I,
    dead_letter: D,
) -> usize
where
    I: Fn(Value) -> IF,
    IF: Future<Output = Invoked>,
    D: Fn(Value) -> DF,
    DF: Future<Output = ()>,
{
    let mut dead = 0;
    for batch in records.chunks(mapping.batch_size.max(1)) {
        // Batches still to go, each with its retries so far; split batches go first.
        let mut todo: Vec<(&[Record], u32)> = vec![(batch, 0)];
        while let Some((batch, retries)) = todo.pop() {
            let answer = invoke(stream_event(batch, &mapping.stream_arn, &mapping.region)).await;
            let rest = match answer {
                Some(failed) if failed.is_empty() => continue,
                // From the first record reported failed on: the mapping's checkpoint.
                Some(failed) => {
                    let from = batch
                        .iter()
                        .position(|r| failed.contains(sequence_number(r)))
                        .unwrap_or(0);
                    &batch[from..]
                }
                // Bisect on error: each half is retried on its own.
                None if batch.len() > 1 && retries < mapping.max_retries => {
                    let (first, second) = batch.split_at(batch.len() / 2);
                    todo.push((second, retries + 1));
                    todo.push((first, retries + 1));
                    continue;
                }
                None => batch,
            };
            if retries < mapping.max_retries {
                todo.push((rest, retries + 1));
            } else {
                warn!(
                    records = rest.len(),
                    "a batch failed every try: sent to the on-failure destination"
                );
                dead_letter(failure_record(rest, shard_id, mapping, retries + 1)).await;
                dead += 1;
            }
        }
    }
    dead
}

/// A reader of every shard of a stream, from its oldest record on.
pub struct StreamReader {
    client: Client,
    stream_arn: String,
    /// Each shard's next iterator (`None` once the shard is closed and read).
    iterators: Vec<(String, Option<String>)>,
}

impl StreamReader {
    pub fn new(client: Client, stream_arn: String) -> Self {
        StreamReader {
            client,
            stream_arn,
            iterators: Vec::new(),
        }
    }

    /// Finds shards not seen yet.
    async fn discover(&mut self) -> Result<(), String> {
        let described = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| crate::adapters::error_code(&e))?;
        let shards = described
            .stream_description()
            .map(|d| d.shards().to_vec())
            .unwrap_or_default();
        for shard in shards {
            let Some(id) = shard.shard_id() else { continue };
            if self.iterators.iter().any(|(known, _)| known == id) {
                continue;
            }
            let iterator = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(|e| crate::adapters::error_code(&e))?
                .shard_iterator
                .clone();
            self.iterators.push((id.to_owned(), iterator));
        }
        Ok(())
    }

    /// The records written since the last call, by shard, in each shard's order.
    pub async fn next_records(&mut self) -> Result<Vec<(String, Vec<Record>)>, String> {
        self.discover().await?;
        let mut shards = Vec::new();
        for (shard, iterator) in &mut self.iterators {
            let Some(current) = iterator.clone() else {
                continue;
            };
            let page = self
                .client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .map_err(|e| crate::adapters::error_code(&e))?;
            shards.push((shard.clone(), page.records().to_vec()));
            *iterator = page.next_shard_iterator().map(str::to_owned);
        }
        Ok(shards)
    }
}

/// Feeds the events function at `invoke` from the stream until the process ends; failure
/// records go to `failure_queue_url` when given.
pub async fn run(
    aws: &aws_config::SdkConfig,
    mapping: StreamMapping,
    invoke: String,
    failure_queue_url: Option<String>,
) {
    let mut reader = StreamReader::new(Client::new(aws), mapping.stream_arn.clone());
    let sqs = aws_sdk_sqs::Client::new(aws);
    loop {
        let shards = match reader.next_records().await {
            Ok(shards) => shards,
            Err(code) => {
                warn!(code, "the stream cannot be read");
                Vec::new()
            }
        };
        let mut handed = 0;
        for (shard, records) in shards {
            let records: Vec<Record> = records.into_iter().filter(passes_filter).collect();
            if !records.is_empty() {
                handed += records.len();
                run_shard(
                    &sqs,
                    &mapping,
                    &invoke,
                    &failure_queue_url,
                    &shard,
                    &records,
                )
                .await;
            }
        }
        if handed == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// One shard's new records handed to the function at `invoke`.
async fn run_shard(
    sqs: &aws_sdk_sqs::Client,
    mapping: &StreamMapping,
    invoke: &str,
    failure_queue_url: &Option<String>,
    shard: &str,
    records: &[Record],
) {
    let dead = deliver(
            records,
            shard,
            mapping,
            |event| {
                let url = invoke.to_owned();
                async move {
                    tokio::task::spawn_blocking(move || super::local_esm::invoke(&url, &event))
                        .await
                        .ok()
                        .flatten()
                }
            },
            |failure| {
                let (sqs, queue) = (sqs.clone(), failure_queue_url.clone());
                async move {
                    let Some(queue) = queue else { return };
                    if let Err(error) = sqs
                        .send_message()
                        .queue_url(queue)
                        .message_body(failure.to_string())
                        .send()
                        .await
                    {
                        warn!(error = %crate::adapters::error_code(&error), "on-failure record not sent");
                    }
                }
            },
        )
        .await;
    info!(
        records = records.len(),
        dead, "outbox records handed to the events function"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::{OperationType, StreamRecord};
    use std::sync::Mutex;

    fn record(seq: u32, kind: &str, op: OperationType) -> Record {
        let image = std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S(format!("OUTBOX#{seq}"))),
            ("kind".to_owned(), AttributeValue::S(kind.to_owned())),
        ]);
        Record::builder()
            .event_name(op)
            .dynamodb(
                StreamRecord::builder()
                    .sequence_number(format!("{seq:05}"))
                    .set_new_image(Some(image))
                    .build(),
            )
            .build()
    }

    fn mapping() -> StreamMapping {
        StreamMapping {
            stream_arn: "arn:stream".into(),
            region: "us-east-1".into(),
            batch_size: 4,
            max_retries: 2,
        }
    }

    fn sequence_numbers(event: &Value) -> Vec<String> {
        event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_filter_keeps_outbox_items_inserted_only() {
        assert!(passes_filter(&record(1, "outbox", OperationType::Insert)));
        assert!(!passes_filter(&record(1, "outbox", OperationType::Remove)));
        assert!(!passes_filter(&record(
            1,
            "invitation",
            OperationType::Insert
        )));
    }

    #[test]
    fn a_stream_event_reads_as_lambdas_dynamodb_event() {
        let event = stream_event(&[record(7, "outbox", OperationType::Insert)], "arn:s", "r");
        let parsed: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(event).unwrap();
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(parsed.records[0].event_name, "INSERT");
        assert_eq!(
            parsed.records[0].change.sequence_number.as_deref(),
            Some("00007")
        );
        assert!(parsed.records[0].change.new_image.contains_key("kind"));
    }

    #[tokio::test]
    async fn a_batch_with_failed_records_is_handed_over_again_from_the_first_of_them() {
        let records: Vec<_> = (1..=4)
            .map(|n| record(n, "outbox", OperationType::Insert))
            .collect();
        let seen = Mutex::new(Vec::new());
        let dead = deliver(
            &records,
            "shard-1",
            &mapping(),
            |event| {
                let seqs = sequence_numbers(&event);
                let first = seen.lock().unwrap().is_empty();
                seen.lock().unwrap().push(seqs);
                async move {
                    Some(if first {
                        ["00003".to_owned()].into()
                    } else {
                        Default::default()
                    })
                }
            },
            |_| async {},
        )
        .await;
        assert_eq!(dead, 0);
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen[1], ["00003", "00004"]);
        assert_eq!(seen.len(), 2);
    }

    #[tokio::test]
    async fn a_batch_that_fails_every_try_goes_to_the_on_failure_destination_once() {
        let records: Vec<_> = (1..=1)
            .map(|n| record(n, "outbox", OperationType::Insert))
            .collect();
        let invokes = Mutex::new(0);
        let failures = Mutex::new(Vec::new());
        let dead = deliver(
            &records,
            "shard-1",
            &mapping(),
            |_| {
                *invokes.lock().unwrap() += 1;
                async { None }
            },
            |failure| {
                failures.lock().unwrap().push(failure);
                async {}
            },
        )
        .await;
        assert_eq!(dead, 1);
        assert_eq!(*invokes.lock().unwrap(), 3);
        let failures = failures.into_inner().unwrap();
        assert_eq!(failures.len(), 1);
        assert_eq!(
            failures[0]["DDBStreamBatchInfo"]["startSequenceNumber"],
            json!("00001")
        );
    }

    #[tokio::test]
    async fn a_batch_that_fails_whole_is_split_and_only_the_bad_half_dead_lettered() {
        let records: Vec<_> = (1..=4)
            .map(|n| record(n, "outbox", OperationType::Insert))
            .collect();
        let failures = Mutex::new(Vec::new());
        let dead = deliver(
            &records,
            "shard-1",
            &mapping(),
            // Record 00002 makes every invocation that holds it fail.
            |event| {
                let bad = sequence_numbers(&event).iter().any(|s| s == "00002");
                async move { if bad { None } else { Some(Default::default()) } }
            },
            |failure| {
                failures.lock().unwrap().push(failure);
                async {}
            },
        )
        .await;
        assert_eq!(dead, 1);
        let failures = failures.into_inner().unwrap();
        let info = &failures[0]["DDBStreamBatchInfo"];
        assert_eq!(info["startSequenceNumber"], json!("00002"));
        assert_eq!(info["endSequenceNumber"], json!("00002"));
    }
}
