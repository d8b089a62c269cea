//! `smsreg-admin replay-events`: the events of stream batches that the events function
//! failed at every try, put on the bus after all, from the descriptions the mapping left
//! on its on-failure queue.

use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde::Deserialize;
use serde_json::json;

use crate::adapters::dynamodb::DynamoStore;
use crate::config::Config;
use crate::tools::local_stream::stream_event;

/// Where a failed batch is on the stream, as Lambda describes it (`DDBStreamBatchInfo`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub stream_arn: String,
    #[serde(default)]
    pub approximate_arrival_of_first_record: Option<String>,
    #[serde(default)]
    pub approximate_arrival_of_last_record: Option<String>,
}

/// The batch a message of the on-failure queue describes, if it is one.
pub fn batch_info(body: &str) -> Option<BatchInfo> {
    let message: serde_json::Value = serde_json::from_str(body).ok()?;
    serde_json::from_value(message.get("DDBStreamBatchInfo")?.clone()).ok()
}

/// Sequence numbers are decimal strings of any length: compared as numbers.
fn sequence_le(a: &str, b: &str) -> bool {
    (a.len(), a) <= (b.len(), b)
}

/// The batch's records, read again from the stream; `Err` with the error code when the
/// stream no longer has them (it keeps 24 hours).
async fn read_batch(
    client: &aws_sdk_dynamodbstreams::Client,
    info: &BatchInfo,
) -> Result<Vec<Record>, String> {
    let mut iterator = client
        .get_shard_iterator()
        .stream_arn(&info.stream_arn)
        .shard_id(&info.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&info.start_sequence_number)
        .send()
        .await
        .map_err(|e| crate::adapters::error_code(&e))?
        .shard_iterator;
    let mut records = Vec::new();
    // Bounded: a batch is at most a few thousand records, read 1000 at a time.
    for _ in 0..100 {
        let Some(current) = iterator else { break };
        let page = client
            .get_records()
            .shard_iterator(current)
            .send()
            .await
            .map_err(|e| crate::adapters::error_code(&e))?;
        let mut past_end = page.records().is_empty();
        for record in page.records() {
            let seq = record
                .dynamodb()
                .and_then(|d| d.sequence_number())
                .unwrap_or_default();
            if sequence_le(seq, &info.end_sequence_number) {
                records.push(record.clone());
            } else {
                past_end = true;
            }
        }
        if past_end {
            return Ok(records);
        }
        iterator = page.next_shard_iterator().map(str::to_owned);
    }
    if records.is_empty() {
        return Err("NoRecords".to_owned());
    }
    Ok(records)
}

/// Seconds since the epoch of an RFC 3339 time.
fn epoch(at: &Option<String>) -> Option<u64> {
    let at: jiff::Timestamp = at.as_deref()?.parse().ok()?;
    u64::try_from(at.as_second()).ok()
}

/// Publishes every batch described on `queue_url`, deleting each message once all its
/// events are on the bus; prints one JSON line of what it did.
pub async fn replay(
    aws: &aws_config::SdkConfig,
    config: &Config,
    queue_url: &str,
) -> Result<(), String> {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let streams = aws_sdk_dynamodbstreams::Client::new(aws);
    let store = DynamoStore::new(aws, &config.table_name);
    let events = crate::wiring::aws_events_with(aws, config);
    let (mut batches, mut from_stream, mut from_table, mut kept) = (0, 0, 0, 0);
    let mut published = 0;
    let mut seen = std::collections::HashSet::new();
    loop {
        let messages = super::receive_failed(&sqs, queue_url).await?;
        let fresh: Vec<_> = messages
            .into_iter()
            .filter(|m| seen.insert(m.message_id().unwrap_or_default().to_owned()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for message in fresh {
            let Some(info) = message.body().and_then(batch_info) else {
                eprintln!(
                    "smsreg-admin: message {} describes no stream batch: left on the queue",
                    message.message_id().unwrap_or("?")
                );
                kept += 1;
                continue;
            };
            let done = match read_batch(&streams, &info).await {
                Ok(records) => {
                    from_stream += 1;
                    let event = stream_event(&records, &info.stream_arn, "");
                    let event = serde_json::from_value(event)
                        .map_err(|e| format!("a stream event that does not read: {e}"))?;
                    let answer = events.handle_records(&event).await;
                    published += records.len() - answer.batch_item_failures.len();
                    answer.batch_item_failures.is_empty()
                }
                // Past the stream's 24 hours: the outbox items themselves, written in the
                // batch's time (a minute either side: the arrival times are approximate).
                Err(code) => {
                    eprintln!(
                        "smsreg-admin: the stream no longer has the batch ({code}); its outbox \
                         items are read from the table (a batch's completion is not among them)"
                    );
                    from_table += 1;
                    let (Some(first), Some(last)) = (
                        epoch(&info.approximate_arrival_of_first_record),
                        epoch(&info.approximate_arrival_of_last_record),
                    ) else {
                        kept += 1;
                        continue;
                    };
                    let outbox = store
                        .outbox_between(first.saturating_sub(60), last + 60)
                        .await
                        .map_err(|e| e.to_string())?;
                    let taken = events.publish(&outbox).await;
                    published += taken.iter().filter(|t| **t).count();
                    taken.iter().all(|t| *t)
                }
            };
            if !done {
                kept += 1;
                continue;
            }
            super::delete_replayed(&sqs, queue_url, &message, "published").await?;
            batches += 1;
        }
    }
    let line = json!({
        "batches": batches,
        "from_stream": from_stream,
        "from_table": from_table,
        "records_published": published,
        "left_on_queue": kept,
    });
    println!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_le("99", "100"));
        assert!(sequence_le("100", "100"));
        assert!(!sequence_le("101", "100"));
        assert!(!sequence_le("1000", "999"));
    }

    #[test]
    fn a_failure_record_names_its_batch() {
        let body = r#"{"requestContext": {"condition": "RetryAttemptsExhausted"},
            "DDBStreamBatchInfo": {"shardId": "shardId-1", "startSequenceNumber": "100",
            "endSequenceNumber": "200", "streamArn": "arn:aws:dynamodb:r:1:table/t/stream/s",
            "approximateArrivalOfFirstRecord": "2026-12-07T10:00:00Z",
            "approximateArrivalOfLastRecord": "2026-12-07T10:00:05Z", "batchSize": 3}}"#;
        let info = batch_info(body).unwrap();
        assert_eq!(info.shard_id, "shardId-1");
        assert_eq!(info.end_sequence_number, "200");
        assert_eq!(
            epoch(&info.approximate_arrival_of_first_record),
            Some(1_796_637_600)
        );
        assert!(batch_info(r#"{"not": "a batch"}"#).is_none());
    }
}
