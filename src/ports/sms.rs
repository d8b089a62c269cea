//! The SMS provider: everything the service asks of whoever texts the workers (SNS today;
//! AWS End User Messaging SMS next). Adding a provider is one adapter implementing
//! [`SmsProvider`] and one line of wiring: see docs/architecture.md.

use std::future::Future;

use crate::domain::PhoneNumber;
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

pub trait SmsProvider: Send + Sync {
    /// How many opt-out questions ([`SmsProvider::is_opted_out`]) the provider answers a
    /// second, for the whole account: the sender paces them across instances.
    const OPT_OUT_CHECKS_PER_SECOND: u32;

    /// Sends one SMS; the provider's message id, which its delivery report names.
    fn send(
        &self,
        to: &PhoneNumber,
        text: &str,
    ) -> impl Future<Output = Result<String, SmsError>> + Send;

    /// Whether the provider has the number opted out (it refuses to text it).
    fn is_opted_out(&self, to: &PhoneNumber)
    -> impl Future<Output = Result<bool, SmsError>> + Send;

    /// One line of the provider's delivery reports (as the receipts function receives
    /// them), read into the provider-neutral report; `None` when it is not one.
    fn read_report(line: &str) -> Option<DeliveryReport>;
}
