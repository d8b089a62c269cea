//! The sender function: SQS events (send jobs, from the event source mapping) in,
//! the batch's failures out (`ReportBatchItemFailures`), each put back with a delay.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_http::lambda_runtime::{Error, LambdaEvent};
use tracing::{Instrument, error, info, info_span, warn};

use crate::domain::job::{SmsJob, retry_delay_seconds};
use crate::metrics::Metrics;
use crate::ports::queue::{MAX_VISIBILITY_SECONDS, longest_hand_back};
use crate::ports::{JobQueue, SmsFailure, SmsProvider, Store};
use crate::service::send::{JobResult, Later, SEND_ALLOWANCE, Sender};

/// No SMS is started with less than this left before the invocation's deadline: the
/// time SNS is given to answer ([`SEND_ALLOWANCE`]), then 3 s to record the SMS.
const DEADLINE_MARGIN: Duration = SEND_ALLOWANCE.saturating_add(Duration::from_secs(3));

/// The sender function: one instance's share of the deployment's sending.
pub struct SenderFunction<St, Q, P> {
    sender: Sender<St, Q, P>,
}

impl<St: Store, Q: JobQueue, P: SmsProvider> SenderFunction<St, Q, P> {
    pub fn new(sender: Sender<St, Q, P>) -> Self {
        SenderFunction { sender }
    }

    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
        let span = info_span!("sender", request_id = %event.context.request_id);
        let until = until(event.context.deadline);
        self.handle_batch(&event.payload, until)
            .instrument(span)
            .await
    }

    /// Sends every job of the batch, sharing the instance's pace; reports those to retry.
    pub async fn handle_batch(
        &self,
        event: &SqsEvent,
        until: Option<Instant>,
    ) -> Result<SqsBatchResponse, Error> {
        // SQS's limit on a hand-back counts from its receive, a little before this.
        let received = Instant::now();
        let outcomes =
            futures::future::join_all(event.records.iter().map(|m| self.one(m, until, received)))
                .await;
        let mut response = SqsBatchResponse::default();
        let (mut sent, mut throttled, mut failed) = (0, 0, 0);
        let (mut unreadable, mut dead_lettered, mut suspended) = (0, 0, 0);
        for (message, done) in event.records.iter().zip(outcomes) {
            sent += done.sent;
            throttled += usize::from(done.throttled);
            failed += usize::from(done.gave_up);
            unreadable += usize::from(done.unreadable);
            dead_lettered += usize::from(done.dead_lettered);
            suspended += usize::from(done.suspended);
            if done.retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        info!(
            jobs = event.records.len(),
            retried = response.batch_item_failures.len(),
            "batch handled"
        );
        Metrics::new("sender")
            .count("SmsSent", sent)
            .count("SmsThrottled", throttled)
            .count("SmsFailed", failed)
            .count("UnreadableJobs", unreadable)
            .count("DeadLetterJobs", dead_lettered)
            .count("SmsSuspended", suspended)
            .emit();
        Ok(response)
    }

    /// Handles one job, received by SQS a little before `received`.
    async fn one(&self, message: &SqsMessage, until: Option<Instant>, received: Instant) -> Done {
        let dead_letter = self
            .sender
            .config()
            .send_dead_letter_queue_arn
            .as_deref()
            .is_some_and(|arn| message.event_source_arn.as_deref() == Some(arn));
        let Some(job) = message
            .body
            .as_deref()
            .and_then(|body| serde_json::from_str::<SmsJob>(body).ok())
        else {
            // Retrying will not make it readable, but it is kept for inspection: back on
            // the queue until SQS moves it to the dead-letter queue, and there for as long
            // as that queue keeps messages.
            error!(message_id = ?message.message_id, dead_letter,
                "a message that is not a send job: kept on its queue for inspection");
            let delay = if dead_letter {
                DEAD_LETTER_HAND_BACK_SECONDS
            } else {
                UNREADABLE_HAND_BACK_SECONDS
            };
            self.hand_back(message, None, delay, received).await;
            return Done {
                retry: true,
                unreadable: true,
                ..Done::default()
            };
        };
        let kind = job.kind_name();
        if dead_letter {
            // Received too many times (crashes, timeouts): it will not be sent. Its
            // invitation shows that, its number is free and its day's count given back.
            warn!(job = %job.id, kind, phone = %job.masked_phone(),
                "job on the dead-letter queue: given up");
            return match self
                .sender
                .give_up(&job, "SMS not sent: its job reached the dead-letter queue")
                .await
            {
                Ok(()) => Done {
                    dead_lettered: true,
                    ..Done::default()
                },
                Err(error) => {
                    warn!(job = %job.id, %error, "could not give up the job; tried again");
                    self.hand_back(message, Some(&job), 60, received).await;
                    Done {
                        retry: true,
                        ..Done::default()
                    }
                }
            };
        }
        match self.sender.send_job(&job, until).await {
            JobResult::Sent(sms) => {
                info!(job = %job.id, kind, phone = %job.masked_phone(), sms, "job sent");
                Done {
                    sent: sms,
                    ..Done::default()
                }
            }
            JobResult::Dropped(reason) => {
                info!(job = %job.id, kind, phone = %job.masked_phone(), reason, "job dropped unsent");
                Done::default()
            }
            JobResult::GaveUp(error) => {
                warn!(job = %job.id, kind, phone = %job.masked_phone(), code = error.code,
                    "last attempt failed: the job is given up");
                Done {
                    gave_up: true,
                    throttled: error.failure == SmsFailure::Throttled,
                    ..Done::default()
                }
            }
            JobResult::Failed { error, failures } => {
                let delay = retry_delay_seconds(failures);
                warn!(job = %job.id, kind, phone = %job.masked_phone(), code = error.code,
                    failures, delay, "SMS failed: the job is put back to retry");
                self.hand_back(message, Some(&job), delay, received).await;
                Done {
                    retry: true,
                    throttled: error.failure == SmsFailure::Throttled,
                    ..Done::default()
                }
            }
            JobResult::Later(later) => {
                let delay = later
                    .delay(receive_count(message))
                    .min(longest_hand_back(received.elapsed()));
                let reason = later.reason();
                info!(job = %job.id, kind, phone = %job.masked_phone(), reason, delay,
                    "job handed back, no attempt spent");
                self.hand_back(message, Some(&job), delay, received).await;
                Done {
                    retry: true,
                    suspended: matches!(later, Later::Suspended(_)),
                    ..Done::default()
                }
            }
        }
    }

    /// Sets when a message reported failed comes back: after `delay`, or sooner when SQS
    /// allows no more since the message's receive (a little before `received`). A longer
    /// wait (a hold for `send_at`) is handed back again when the message comes.
    async fn hand_back(
        &self,
        message: &SqsMessage,
        job: Option<&SmsJob>,
        delay: u32,
        received: Instant,
    ) {
        let delay = delay.min(longest_hand_back(received.elapsed()));
        if let Some(receipt) = &message.receipt_handle
            && let Err(error) = self
                .sender
                .hand_back(receipt, message.event_source_arn.as_deref(), delay)
                .await
        {
            // It comes back when its visibility timeout ends instead.
            warn!(job = ?job.map(|j| &j.id), %error, "could not set the retry delay");
        }
    }
}

/// How long a message that is not a send job waits between two receives: it reaches the
/// dead-letter queue after the queue's `maxReceiveCount` of them, and on that queue it
/// stays (about 12 hours between receives) until SQS's retention ends.
const UNREADABLE_HAND_BACK_SECONDS: u32 = 60;
/// On the dead-letter queue: as long as SQS allows (less what the hand-back must leave).
const DEAD_LETTER_HAND_BACK_SECONDS: u32 = MAX_VISIBILITY_SECONDS;

/// What one job came to, for the batch's answer and metrics.
#[derive(Debug, Default)]
struct Done {
    /// Back to the queue.
    retry: bool,
    /// SMS sent now.
    sent: usize,
    /// The provider refused an SMS for the rate.
    throttled: bool,
    /// The last attempt failed: the invitation is `failed`.
    gave_up: bool,
    /// Not a send job: kept on its queue.
    unreadable: bool,
    /// Taken off the dead-letter queue: its invitation given up.
    dead_lettered: bool,
    /// Held because the provider cannot send for now (the spend limit): the alarm's metric.
    suspended: bool,
}

/// How many times SQS has handed this message out (its `ApproximateReceiveCount`), 1 when
/// it does not say.
fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// When to stop starting SMS, from the invocation's deadline (ms since the epoch).
fn until(deadline_ms: u64) -> Option<Instant> {
    crate::domain::time::invocation_deadline(deadline_ms)
        .map(|d| d.checked_sub(DEADLINE_MARGIN).unwrap_or(d))
}
