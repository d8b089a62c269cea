//! The sender's entry point: SQS events (send jobs, from the event source mapping) in,
//! the batch's failures out (`ReportBatchItemFailures`), each put back with a delay.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_http::lambda_runtime::{Error, LambdaEvent};
use tracing::{Instrument, error, info, info_span, warn};

use crate::domain::job::{SmsJob, retry_delay_seconds};
use crate::metrics::Metrics;
use crate::ports::{DailyQuota, DeliveryLog, JobQueue, OptOuts, RateSlots, SendLedger, SmsSender};
use crate::service::RegistrationService;
use crate::service::sender::{JobResult, Pacer};

/// No SMS is started with less than this left before the invocation's deadline.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

pub struct Sender<D, I, S> {
    pub service: RegistrationService<D, I, S>,
    pub pacer: Pacer,
}

impl<D, I, S> Sender<D, I, S>
where
    D: DailyQuota,
    I: SendLedger + RateSlots + OptOuts + DeliveryLog,
    S: SmsSender + JobQueue,
{
    pub fn new(service: RegistrationService<D, I, S>) -> Self {
        let pacer = Pacer::new(service.config.sms_rate_per_second);
        Sender { service, pacer }
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
        let outcomes =
            futures::future::join_all(event.records.iter().map(|m| self.one(m, until))).await;
        let mut response = SqsBatchResponse::default();
        let (mut sent, mut throttled, mut failed) = (0, 0, 0);
        for (message, done) in event.records.iter().zip(outcomes) {
            sent += done.sent;
            throttled += usize::from(done.throttled);
            failed += usize::from(done.gave_up);
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
            .emit();
        Ok(response)
    }

    /// Handles one job.
    async fn one(&self, message: &SqsMessage, until: Option<Instant>) -> Done {
        let Some(job) = message
            .body
            .as_deref()
            .and_then(|body| serde_json::from_str::<SmsJob>(body).ok())
        else {
            // Retrying would not make it readable.
            error!(message_id = ?message.message_id, "a message that is not a send job dropped");
            return Done::default();
        };
        let receives: u32 = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let kind = job.kind_name();
        match self.service.send_job(&job, &self.pacer, until).await {
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
            JobResult::Retry(code) if receives >= self.service.config.send_max_attempts => {
                warn!(job = %job.id, kind, phone = %job.masked_phone(), code, receives,
                    "last attempt failed: the job goes to the dead-letter queue");
                self.service
                    .give_up(
                        &job,
                        &format!("SMS not sent after {receives} attempts ({code})"),
                    )
                    .await;
                // Visible at once, so that SQS moves it on its next receive.
                if let Some(receipt) = &message.receipt_handle
                    && let Err(error) = self.service.sms.retry_later(receipt, 0).await
                {
                    warn!(job = %job.id, %error, "could not hand the job to the dead-letter queue now");
                }
                Done {
                    retry: true,
                    gave_up: true,
                    throttled: is_throttle(&code),
                    ..Done::default()
                }
            }
            JobResult::Retry(code) => {
                let delay = match code.as_str() {
                    // Another delivery is sending it: look again once it should be done.
                    "Busy" => 30,
                    // Not an SMS failure: as soon as an instance is free.
                    "DeadlineTooClose" => 0,
                    _ => retry_delay_seconds(receives),
                };
                warn!(job = %job.id, kind, phone = %job.masked_phone(), code, receives, delay,
                    "job put back to retry");
                if let Some(receipt) = &message.receipt_handle
                    && let Err(error) = self.service.sms.retry_later(receipt, delay).await
                {
                    // It comes back when its visibility timeout ends instead.
                    warn!(job = %job.id, %error, "could not set the retry delay");
                }
                Done {
                    retry: true,
                    throttled: is_throttle(&code),
                    ..Done::default()
                }
            }
        }
    }
}

/// What one job came to, for the batch's answer and metrics.
#[derive(Debug, Default)]
struct Done {
    /// Back to the queue.
    retry: bool,
    /// SMS sent now.
    sent: usize,
    /// SNS refused an SMS for the rate.
    throttled: bool,
    /// The last attempt failed: the invitation is `failed`.
    gave_up: bool,
}

fn is_throttle(code: &str) -> bool {
    code.starts_with("Throttl")
}

/// When to stop starting SMS, from the invocation's deadline (ms since the epoch).
fn until(deadline_ms: u64) -> Option<Instant> {
    crate::domain::time::invocation_deadline(deadline_ms)
        .map(|d| d.checked_sub(DEADLINE_MARGIN).unwrap_or(d))
}
