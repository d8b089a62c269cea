//! The accounts function: account jobs (SQS, from the event source mapping) in, one at a
//! time so that a throttled directory is not asked again before its wait is over; the jobs
//! to retry handed back with their delay and reported (`ReportBatchItemFailures`).

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_http::lambda_runtime::{Error, LambdaEvent};
use tracing::{Instrument, error, info, info_span, warn};

use crate::metrics::Metrics;
use crate::ports::{AccountJob, AccountPorts, JobQueue, Store};
use crate::service::RegistrationService;
use crate::service::accounts::{AccountJobDone, AccountJobResult};

/// No job is started with less than this left before the invocation's deadline: a
/// directory call's timeout, then the table's writes.
const DEADLINE_MARGIN: Duration = Duration::from_secs(12);

/// How long an account job waits at most for its turn at the directory's pace inside one
/// invocation before it is handed back instead.
const LONGEST_WAIT_IN_INVOCATION: Duration = Duration::from_secs(5);

/// The accounts function.
pub struct AccountsFunction<St, Q> {
    service: RegistrationService<St, Q>,
    ports: std::sync::Arc<dyn AccountPorts>,
}

impl<St: Store, Q: JobQueue> AccountsFunction<St, Q> {
    pub fn new(
        service: RegistrationService<St, Q>,
        ports: std::sync::Arc<dyn AccountPorts>,
    ) -> Self {
        AccountsFunction { service, ports }
    }

    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
        let span = info_span!("accounts", request_id = %event.context.request_id);
        let until = crate::domain::time::invocation_deadline(event.context.deadline);
        self.handle_batch(&event.payload, until)
            .instrument(span)
            .await
    }

    /// Handles the batch's jobs in order; reports those to retry.
    pub async fn handle_batch(
        &self,
        event: &SqsEvent,
        until: Option<Instant>,
    ) -> Result<SqsBatchResponse, Error> {
        let mut response = SqsBatchResponse::default();
        let (mut created, mut failed, mut waiting, mut waiting_long) = (0, 0, 0, 0);
        for message in &event.records {
            let outcome = self.one(message, until).await;
            match outcome {
                Some(AccountJobResult::Done(AccountJobDone::Created)) => created += 1,
                Some(AccountJobResult::Done(AccountJobDone::Failed)) => failed += 1,
                Some(AccountJobResult::Done(AccountJobDone::Nothing)) => {}
                Some(AccountJobResult::RetryIn {
                    seconds,
                    waited_long,
                }) => {
                    waiting += 1;
                    waiting_long += usize::from(waited_long);
                    self.hand_back(message, seconds).await;
                }
                None => self.hand_back(message, 5).await,
            }
            if !matches!(outcome, Some(AccountJobResult::Done(_))) {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        info!(
            jobs = event.records.len(),
            created, failed, waiting, "batch handled"
        );
        Metrics::new("accounts")
            .count("AccountsCreated", created)
            .count("AccountsFailed", failed)
            .count("AccountsWaiting", waiting)
            .count("AccountsWaitingLong", waiting_long)
            .emit();
        Ok(response)
    }

    /// One job: `None` when it could not be handled now (no time left, the store down).
    async fn one(&self, message: &SqsMessage, until: Option<Instant>) -> Option<AccountJobResult> {
        let Some(job) = message
            .body
            .as_deref()
            .and_then(|body| serde_json::from_str::<AccountJob>(body).ok())
        else {
            error!(message_id = ?message.message_id, "a message that is not an account job: dropped");
            return Some(AccountJobResult::Done(AccountJobDone::Nothing));
        };
        if until
            .is_some_and(|until| until.saturating_duration_since(Instant::now()) < DEADLINE_MARGIN)
        {
            return None;
        }
        let receive_count = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        // The directory's turn (a CommCare HQ project's pace, and its pause after a 429,
        // shared with every page and instance) is waited for here a few seconds at most.
        let room = until.map_or(LONGEST_WAIT_IN_INVOCATION, |until| {
            until
                .saturating_duration_since(Instant::now())
                .saturating_sub(DEADLINE_MARGIN)
                .min(LONGEST_WAIT_IN_INVOCATION)
        });
        match self.service.finish_account(&job, receive_count, room).await {
            Ok(result) => Some(result),
            Err(error) => {
                warn!(%error, attempt = %job.attempt, "account job not handled: retried");
                None
            }
        }
    }

    async fn hand_back(&self, message: &SqsMessage, seconds: u32) {
        let Some(receipt) = message.receipt_handle.as_deref() else {
            return;
        };
        if let Err(error) = self.ports.retry_later(receipt, seconds).await {
            warn!(%error, "could not hand an account job back: it returns after the queue's timeout");
        }
    }
}
