//! The send queue (SQS): every SMS of the service goes through it.

use std::future::Future;

use crate::domain::job::SmsJob;

/// A job that did not reach the send queue, after the queue client's own retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the job was not queued ({code})")]
pub struct QueueError {
    pub code: String,
}

/// The send queue (SQS): the API and the replies function put jobs on it; the sender
/// puts a failed job back with a delay.
pub trait JobQueue: Send + Sync {
    /// Most jobs one [`JobQueue::enqueue`] call takes (SQS's `SendMessageBatch`: 10).
    const MAX_BATCH: usize = 10;

    /// Puts at most 10 jobs on the queue in one call; one result per job, in order.
    fn enqueue(&self, jobs: &[SmsJob]) -> impl Future<Output = Vec<Result<(), QueueError>>> + Send;

    /// Makes a received job visible again after `delay_seconds` (a retry later).
    fn retry_later(
        &self,
        receipt_handle: &str,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}
