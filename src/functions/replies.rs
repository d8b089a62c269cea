//! The replies function: SNS events (workers' SMS, published by End User Messaging SMS)
//! in, each reply handled (see `service::replies`), answers queued as SMS.

use aws_lambda_events::event::sns::SnsEvent;
use lambda_http::lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};
use tracing::{Instrument, info, info_span, warn};

use crate::metrics::Metrics;
use crate::ports::{JobQueue, SmsProvider, Store};
use crate::service::RegistrationService;
use crate::service::replies::{InboundSms, ReplyOutcome};

/// The replies function; the SMS provider hears of each STOP and START (for its opt-out
/// list).
pub struct RepliesFunction<St, Q, P> {
    service: RegistrationService<St, Q>,
    provider: P,
}

impl<St: Store, Q: JobQueue, P: SmsProvider> RepliesFunction<St, Q, P> {
    pub fn new(service: RegistrationService<St, Q>, provider: P) -> Self {
        RepliesFunction { service, provider }
    }

    /// Handles every reply of an SNS event. A failure fails the invocation, so that Lambda
    /// delivers the event again; replies already handled are skipped then.
    pub async fn handle(&self, event: LambdaEvent<SnsEvent>) -> Result<Value, Error> {
        let span = info_span!("inbound", request_id = %event.context.request_id);
        self.handle_records(&event.payload).instrument(span).await
    }

    pub async fn handle_records(&self, event: &SnsEvent) -> Result<Value, Error> {
        let mut outcomes = Vec::with_capacity(event.records.len());
        for record in &event.records {
            let sms: InboundSms = match serde_json::from_str(&record.sns.message) {
                Ok(sms) => sms,
                Err(_) => {
                    // Not an inbound SMS: retrying would not change that.
                    warn!("SNS message that is not an inbound SMS ignored");
                    outcomes.push("ignored".to_owned());
                    continue;
                }
            };
            let outcome = self.service.handle_reply(&sms, &self.provider).await?;
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
                .count(
                    "RepliesDropped",
                    usize::from(outcome == ReplyOutcome::Dropped),
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
        ReplyOutcome::RegistrationLinkSent => "registration_link_sent",
        ReplyOutcome::JoinRefused => "join_refused",
        ReplyOutcome::OptedOut => "opted_out",
        ReplyOutcome::OptedIn => "opted_in",
        ReplyOutcome::HelpSent => "help_sent",
        ReplyOutcome::NotAnswered => "not_answered",
        ReplyOutcome::Dropped => "dropped",
    }
}
