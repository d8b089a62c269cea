//! The send queue (SQS): every SMS of the service goes through it.

use std::future::Future;
use std::time::Duration;

use crate::domain::job::SmsJob;

/// A job that did not reach the send queue, after the queue client's own retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the job was not queued ({code})")]
pub struct QueueError {
    pub code: String,
}

/// SQS's longest visibility for a received message, counted from that receive: a change
/// that would carry the message past it is refused (`InvalidParameterValue`), not trimmed,
/// so even 43200 s asked a moment after the receive fails.
pub const MAX_VISIBILITY_SECONDS: u32 = 43_200;

/// Left unused of [`MAX_VISIBILITY_SECONDS`]: the time between SQS's receive and the
/// sender getting the batch, which the sender cannot measure (the mapping's batching
/// window, the invocation starting; a batch that took longer than the queue's 360 s
/// visibility timeout would be handed out again anyway).
pub const RECEIVE_MARGIN_SECONDS: u32 = 600;

/// The longest delay a received job may be handed back for, `since` the sender got it:
/// what SQS still allows, less [`RECEIVE_MARGIN_SECONDS`].
pub fn longest_hand_back(since: Duration) -> u32 {
    // Whole seconds, rounded up: SQS counts the milliseconds.
    let spent = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    let spent = u32::try_from(spent).unwrap_or(u32::MAX);
    MAX_VISIBILITY_SECONDS
        .saturating_sub(RECEIVE_MARGIN_SECONDS)
        .saturating_sub(spent)
}

/// The send queue (SQS): the API and the replies function put jobs on it; the sender
/// puts a failed job back with a delay.
pub trait JobQueue: Send + Sync {
    /// Most jobs one [`JobQueue::enqueue`] call takes (SQS's `SendMessageBatch`: 10).
    const MAX_BATCH: usize = 10;

    /// Puts at most 10 jobs on the queue in one call; one result per job, in order.
    fn enqueue(&self, jobs: &[SmsJob]) -> impl Future<Output = Vec<Result<(), QueueError>>> + Send;

    /// Makes a received job visible again after `delay_seconds` (a retry later), at most
    /// [`longest_hand_back`] since the job was received: SQS refuses more. `from`: the ARN
    /// of the queue it was received from, when not the send queue (its dead-letter queue,
    /// which the sender consumes too): a receipt handle is good on its own queue only.
    fn retry_later(
        &self,
        receipt_handle: &str,
        from: Option<&str>,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_back_leaves_the_margin_and_every_started_second_since_the_receive() {
        assert_eq!(longest_hand_back(Duration::ZERO), 42_600);
        assert_eq!(longest_hand_back(Duration::from_millis(1)), 42_599);
        assert_eq!(longest_hand_back(Duration::from_millis(59_001)), 42_540);
        assert_eq!(longest_hand_back(Duration::from_secs(50_000)), 0);
    }
}
