//! The inbound-SMS entry point: SNS events (replies published by End User Messaging SMS)
//! in, replies by SMS out.

use lambda_http::lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};
use tracing::{Instrument, info, info_span, warn};

use crate::metrics::Metrics;
use crate::ports::{
    Directory, InboundLog, InvitationStore, JobQueue, RegistrationEvents, WorkerStore,
};
use crate::service::RegistrationService;
use crate::service::replies::{InboundSms, ReplyOutcome};

pub struct Inbound<D, I, S> {
    pub service: RegistrationService<D, I, S>,
}

impl<D, I, S> Inbound<D, I, S>
where
    D: Directory + InboundLog,
    I: InvitationStore + WorkerStore,
    S: JobQueue + RegistrationEvents,
{
    pub fn new(service: RegistrationService<D, I, S>) -> Self {
        Inbound { service }
    }

    /// Handles every reply of an SNS event. A failure fails the invocation, so that Lambda
    /// delivers the event again; replies already handled are skipped then.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let span = info_span!("inbound", request_id = %event.context.request_id);
        self.handle_records(&event.payload).instrument(span).await
    }

    pub async fn handle_records(&self, payload: &Value) -> Result<Value, Error> {
        let records = payload["Records"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            let message = record["Sns"]["Message"].as_str().unwrap_or_default();
            let sms: InboundSms = match serde_json::from_str(message) {
                Ok(sms) => sms,
                Err(_) => {
                    // Not an inbound SMS: retrying would not change that.
                    warn!("SNS message that is not an inbound SMS ignored");
                    outcomes.push("ignored".to_owned());
                    continue;
                }
            };
            let outcome = self.service.handle_reply(&sms).await?;
            Metrics::new("inbound")
                .count("RepliesHandled", 1)
                .count(
                    "RepliesOptedOut",
                    usize::from(outcome == ReplyOutcome::OptedOut),
                )
                .count(
                    "RepliesNotAnswered",
                    usize::from(outcome == ReplyOutcome::NotAnswered),
                )
                .emit();
            let outcome = describe(&outcome);
            info!(outcome, "reply handled");
            outcomes.push(outcome.to_owned());
        }
        Ok(json!({ "outcomes": outcomes }))
    }
}

fn describe(outcome: &ReplyOutcome) -> &'static str {
    match outcome {
        ReplyOutcome::Duplicate => "duplicate",
        ReplyOutcome::Ignored => "ignored",
        ReplyOutcome::AndroidLinkSent => "android_link_sent",
        ReplyOutcome::JoinInstructionsSent => "join_instructions_sent",
        ReplyOutcome::StartResent => "start_resent",
        ReplyOutcome::Joined(_) => "joined",
        ReplyOutcome::JoinRefused => "join_refused",
        ReplyOutcome::OptedOut => "opted_out",
        ReplyOutcome::OptedIn => "opted_in",
        ReplyOutcome::HelpSent => "help_sent",
        ReplyOutcome::NotAnswered => "not_answered",
    }
}
