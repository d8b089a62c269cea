//! The SMS provider: everything the service asks of whoever texts the workers (SNS today;
//! AWS End User Messaging SMS next). Adding a provider is one adapter implementing
//! [`SmsProvider`] and one line of wiring: see docs/architecture.md.

use std::future::Future;

use crate::domain::PhoneNumber;
use crate::domain::job::{JobKind, SmsJob};
use crate::domain::receipt::DeliveryReport;

/// What kind of failure an SMS met, as the provider's error says: the sender's decisions
/// rest on this, never on the provider's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsFailure {
    /// Refused for the rate (the account's or the origination number's): not sent.
    Throttled,
    /// Refused, or not sent for another reason known not to have sent it.
    Failed,
    /// No answer, or one that could not be read: the SMS may have gone.
    Unknown,
    /// The provider refuses the number because it opted out (End User Messaging's
    /// `DESTINATION_PHONE_NUMBER_OPTED_OUT`): not sent, recorded as a STOP.
    OptedOut,
    /// Refused for good: a blocked country, a destination the origination identity cannot
    /// reach, a price over the project's cap, a request the provider finds invalid (a body
    /// over its limit). Not sent, not tried again.
    Refused,
    /// The account cannot send for now (the monthly spend limit reached): not sent, held
    /// without an attempt spent until it can.
    Suspended,
}

/// An SMS that was not accepted, or not known to be. It carries the provider's error
/// code, never request data, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the SMS was not accepted ({code})")]
pub struct SmsError {
    pub failure: SmsFailure,
    pub code: String,
}

impl SmsError {
    pub fn new(failure: SmsFailure, code: impl Into<String>) -> Self {
        SmsError {
            failure,
            code: code.into(),
        }
    }
}

/// One SMS to send, with what a provider may do with it besides texting it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub to: &'a PhoneNumber,
    pub text: &'a str,
    /// The most the project pays per part, in USD (`0.05`): a dearer SMS is refused.
    pub max_price_per_part: Option<&'a str>,
    /// What travels with the SMS into its delivery events: never the phone number or the
    /// registration token.
    pub context: SmsContext<'a>,
}

/// What an SMS was sent for, for providers that carry it into their delivery events.
#[derive(Debug, Clone, Copy)]
pub struct SmsContext<'a> {
    pub project: &'a str,
    /// The create request's batch, for an invitation's SMS.
    pub batch: Option<&'a str>,
    /// The send job (its id is in the sender's logs).
    pub job: &'a str,
}

impl<'a> Outgoing<'a> {
    /// SMS `text` of `job`.
    pub fn of(job: &'a SmsJob, text: &'a str) -> Self {
        let batch = match &job.kind {
            JobKind::Invitation { batch_id, .. } => batch_id.as_deref(),
            JobKind::Message => None,
        };
        Outgoing {
            to: &job.phone,
            text,
            max_price_per_part: job.max_price_per_part.as_deref(),
            context: SmsContext {
                project: &job.domain,
                batch,
                job: &job.id,
            },
        }
    }
}

pub trait SmsProvider: Send + Sync {
    /// How many opt-out questions ([`SmsProvider::is_opted_out`]) the provider answers a
    /// second, for the whole account: the sender paces them across instances. `None`: the
    /// sender does not ask before a first SMS, because the provider refuses an opted-out
    /// number when sent to ([`SmsFailure::OptedOut`]), at no cost.
    fn opt_out_checks_per_second(&self) -> Option<u32>;

    /// Sends one SMS; the provider's message id, which its delivery report names.
    fn send(&self, sms: &Outgoing<'_>) -> impl Future<Output = Result<String, SmsError>> + Send;

    /// Whether the provider has the number opted out (it refuses to text it).
    fn is_opted_out(&self, to: &PhoneNumber)
    -> impl Future<Output = Result<bool, SmsError>> + Send;

    /// Tells the provider that the number opted out (`true`, a STOP the service recorded)
    /// or back in (`false`, START), for providers whose opt-out list the service keeps.
    fn set_opted_out(
        &self,
        to: &PhoneNumber,
        opted_out: bool,
    ) -> impl Future<Output = Result<(), SmsError>> + Send {
        let _ = (to, opted_out);
        async { Ok(()) }
    }

    /// One line of the provider's delivery reports (as the receipts function receives
    /// them), read into the provider-neutral report; `None` when it is not one.
    fn read_report(line: &str) -> Option<DeliveryReport>;

    /// Whether a line [`SmsProvider::read_report`] did not read is a report that is not
    /// final yet (End User Messaging's `TEXT_QUEUED`, `TEXT_CARRIER_UNREACHABLE`, ...): a
    /// later one will say how the SMS ended.
    fn is_interim(line: &str) -> bool {
        let _ = line;
        false
    }
}
