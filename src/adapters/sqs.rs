//! SQS adapter: the send queue. Jobs go on it 10 per `SendMessageBatch`; each entry's
//! result is checked (a batch answered 200 may still have failed entries), and failed
//! entries are tried again a few times before they are reported.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::domain::job::SmsJob;
use crate::ports::queue::MAX_VISIBILITY_SECONDS;
use crate::ports::{JobQueue, QueueError};

/// Most entries in one `SendMessageBatch`.
pub const MAX_BATCH: usize = 10;
/// Tries of an entry that SQS refused (its own fault, not ours), the first included.
const ENTRY_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }
}

fn queue_error(code: impl Into<String>) -> QueueError {
    QueueError { code: code.into() }
}

/// An SQS call that failed, by its error code only.
fn sqs_error<E: aws_sdk_sqs::error::ProvideErrorMetadata, R>(
    error: &aws_sdk_sqs::error::SdkError<E, R>,
) -> QueueError {
    queue_error(crate::adapters::error_code(error))
}

impl JobQueue for SqsQueue {
    const MAX_BATCH: usize = MAX_BATCH;

    async fn enqueue(&self, jobs: &[SmsJob]) -> Vec<Result<(), QueueError>> {
        assert!(jobs.len() <= MAX_BATCH, "at most 10 jobs per batch");
        let mut results: Vec<Result<(), QueueError>> =
            vec![Err(queue_error("NotSent")); jobs.len()];
        let mut pending: Vec<usize> = (0..jobs.len()).collect();
        for attempt in 0..ENTRY_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            let entries = pending
                .iter()
                .map(|&i| {
                    let body = serde_json::to_string(&jobs[i]).expect("a job serialises");
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .expect("an entry has its id and body")
                })
                .collect();
            let out = match self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => out,
                Err(error) => {
                    // The SDK already retried the call: every entry still waiting fails.
                    for &i in &pending {
                        results[i] = Err(sqs_error(&error));
                    }
                    return results;
                }
            };
            for ok in out.successful() {
                if let Ok(i) = ok.id().parse::<usize>()
                    && i < results.len()
                {
                    results[i] = Ok(());
                }
            }
            let mut again = Vec::new();
            for failed in out.failed() {
                let Ok(i) = failed.id().parse::<usize>() else {
                    continue;
                };
                if i >= results.len() {
                    continue;
                }
                results[i] = Err(queue_error(failed.code()));
                // The sender's fault (a malformed entry) will not pass on a retry.
                if !failed.sender_fault() {
                    again.push(i);
                }
            }
            pending = again;
        }
        results
    }

    async fn retry_later(
        &self,
        receipt_handle: &str,
        from: Option<&str>,
        delay_seconds: u32,
    ) -> Result<(), QueueError> {
        let url = from.and_then(|arn| sibling_url(&self.url, arn));
        self.client
            .change_message_visibility()
            .queue_url(url.as_deref().unwrap_or(&self.url))
            .receipt_handle(receipt_handle)
            .visibility_timeout(
                i32::try_from(delay_seconds.min(MAX_VISIBILITY_SECONDS)).unwrap_or(i32::MAX),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|error| sqs_error(&error))
    }
}

/// The URL of the queue `arn` (`arn:aws:sqs:REGION:ACCOUNT:NAME`) beside the queue at `url`
/// (`.../ACCOUNT/NAME` on SQS's endpoint, AWS's or an emulator's): the send queue's
/// dead-letter queue is of the same account and region. `None` for what is no queue ARN.
fn sibling_url(url: &str, arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let [_, _, "sqs", _, account, name] = parts.as_slice() else {
        return None;
    };
    let base = url.trim_end_matches('/').rsplitn(3, '/').nth(2)?;
    Some(format!("{base}/{account}/{name}"))
}

/// Creates the send queue and its dead-letter queue (`NAME-dlq`), the send queue moving a
/// job there after `max_receive_count` receives; returns the send queue's URL. Idempotent.
/// For local use: on AWS the stack creates both.
pub async fn create_queues(
    client: &Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout_seconds: u32,
) -> Result<String, QueueError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(|e| sqs_error(&e))?;
    let dlq_url = dlq.queue_url().ok_or_else(|| queue_error("NoQueueUrl"))?;
    let arn = client
        .get_queue_attributes()
        .queue_url(dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sqs_error(&e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| queue_error("NoQueueArn"))?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": arn,
        "maxReceiveCount": max_receive_count.to_string(),
    })
    .to_string();
    let queue = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        // As the stack's: long enough for a job held 7 days, then retried.
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_seconds.to_string(),
        )
        .send()
        .await
        .map_err(|e| sqs_error(&e))?;
    queue
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| queue_error("NoQueueUrl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dead_letter_queue_is_found_beside_the_send_queue() {
        let send = "https://sqs.eu-west-1.amazonaws.com/123456789012/stack-SendQueue-AbC";
        assert_eq!(
            sibling_url(
                send,
                "arn:aws:sqs:eu-west-1:123456789012:stack-SendDeadLetterQueue-XyZ"
            )
            .as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/123456789012/stack-SendDeadLetterQueue-XyZ")
        );
        assert_eq!(
            sibling_url(
                "http://127.0.0.1:5005/123456789012/smsreg-send",
                "arn:aws:sqs:us-east-1:123456789012:smsreg-send-dlq"
            )
            .as_deref(),
            Some("http://127.0.0.1:5005/123456789012/smsreg-send-dlq")
        );
        assert_eq!(sibling_url(send, "not an arn"), None);
        assert_eq!(
            sibling_url(send, "arn:aws:sns:eu-west-1:123456789012:topic"),
            None
        );
    }
}

/// The queue of accounts still to make (`ACCOUNTS_QUEUE_URL`): the same SQS calls as the
/// send queue's, one job a message.
#[derive(Clone, Debug)]
pub struct SqsAccountQueue(SqsQueue);

impl SqsAccountQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsAccountQueue(SqsQueue::new(client, url))
    }
}

impl crate::ports::AccountQueue for SqsAccountQueue {
    async fn put(
        &self,
        job: &crate::ports::AccountJob,
        delay_seconds: u32,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(job).expect("an account job serialises");
        self.0
            .client
            .send_message()
            .queue_url(&self.0.url)
            .message_body(body)
            .delay_seconds(i32::try_from(delay_seconds.min(900)).unwrap_or(900))
            .send()
            .await
            .map(|_| ())
            .map_err(|error| sqs_error(&error))
    }

    async fn retry_later(
        &self,
        receipt_handle: &str,
        delay_seconds: u32,
    ) -> Result<(), QueueError> {
        JobQueue::retry_later(&self.0, receipt_handle, None, delay_seconds).await
    }
}
