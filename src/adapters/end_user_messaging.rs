//! AWS End User Messaging SMS (`pinpoint-sms-voice-v2`) as the SMS provider:
//! `SendTextMessage` from the deployment's origination identity through its configuration
//! set, with the project's price cap, a time to live and the SMS's context; the identity's
//! opt-out list kept in step with the STOP and START the service records; and the
//! configuration set's delivery events (in CloudWatch Logs) read into delivery reports.
//!
//! Opted-out numbers are not asked about before a first SMS: `SendTextMessage` refuses them
//! with `DESTINATION_PHONE_NUMBER_OPTED_OUT`, at no cost, in the one call a job makes
//! anyway (see docs/sending.md, "End User Messaging SMS").

use aws_sdk_pinpointsmsvoicev2::Client;
use aws_sdk_pinpointsmsvoicev2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_pinpointsmsvoicev2::operation::send_text_message::SendTextMessageError;
use aws_sdk_pinpointsmsvoicev2::types::{ConflictExceptionReason, MessageType};
use serde::Deserialize;

use crate::domain::PhoneNumber;
use crate::domain::receipt::DeliveryReport;
use crate::ports::{Outgoing, SmsError, SmsFailure, SmsProvider};

/// The opt-out list of an identity that was given none: the account's default list.
pub const DEFAULT_OPT_OUT_LIST: &str = "Default";

/// Where and how the deployment sends (template parameters, through the environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUserMessagingSettings {
    /// A phone number, sender ID or pool, by ID or ARN (`SMS_ORIGINATION_IDENTITY`); none:
    /// End User Messaging picks one of the account's.
    pub origination_identity: Option<String>,
    /// The configuration set whose event destination carries the delivery events.
    pub configuration_set: Option<String>,
    /// The opt-out list the service keeps STOP and START on.
    pub opt_out_list: String,
    /// Seconds an SMS may wait to be handed to a carrier before it is dropped
    /// (`TEXT_TTL_EXPIRED`).
    pub time_to_live_seconds: u64,
    pub protect_configuration_id: Option<String>,
    /// Ask the opt-out list before a first SMS, at this many questions a second, instead of
    /// relying on the send's refusal (measured in tests/sending.rs; off in deployments).
    pub ask_opt_out_first: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct EndUserMessagingSms {
    client: Client,
    settings: EndUserMessagingSettings,
}

/// What End User Messaging would do with an SMS: `DryRun` answers (`smsreg-admin
/// check-sms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DryRun {
    /// It would be sent; the id the dry run was given.
    WouldSend(String),
    WouldRefuse(SmsError),
}

impl EndUserMessagingSms {
    pub fn new(client: Client, settings: EndUserMessagingSettings) -> Self {
        EndUserMessagingSms { client, settings }
    }

    fn request(&self, sms: &Outgoing<'_>) -> SendRequest {
        let s = &self.settings;
        let c = sms.context;
        let mut request = self
            .client
            .send_text_message()
            .destination_phone_number(sms.to.as_str())
            .message_body(sms.text)
            .message_type(MessageType::Transactional)
            .set_origination_identity(s.origination_identity.clone())
            .set_configuration_set_name(s.configuration_set.clone())
            .set_protect_configuration_id(s.protect_configuration_id.clone())
            .set_max_price(sms.max_price_per_part.map(str::to_owned))
            .time_to_live(i32::try_from(s.time_to_live_seconds).unwrap_or(i32::MAX))
            // Never the phone number or the registration token.
            .context("project", c.project)
            .context("job", c.job);
        if let Some(batch) = c.batch {
            request = request.context("batch", batch);
        }
        request
    }

    /// What End User Messaging would do with this SMS: a `DryRun`, which costs nothing and
    /// sends nothing.
    pub async fn dry_run(&self, sms: &Outgoing<'_>) -> Result<DryRun, SmsError> {
        match self.request(sms).dry_run(true).send().await {
            Ok(out) => Ok(DryRun::WouldSend(out.message_id.unwrap_or_default())),
            Err(error) => {
                let error = classify_send(&error);
                match error.failure {
                    SmsFailure::Throttled | SmsFailure::Unknown => Err(error),
                    _ => Ok(DryRun::WouldRefuse(error)),
                }
            }
        }
    }
}

type SendRequest = aws_sdk_pinpointsmsvoicev2::operation::send_text_message::builders::SendTextMessageFluentBuilder;

/// What a `SendTextMessage` failure means for the SMS; the code kept is AWS's reason
/// where it gives one (`DESTINATION_COUNTRY_BLOCKED_BY_PROTECT_CONFIGURATION`), which
/// becomes the invitation's `failure_reason`.
fn classify_send<R>(error: &SdkError<SendTextMessageError, R>) -> SmsError {
    let SdkError::ServiceError(service) = error else {
        // No answer, or one that could not be read: it may have been taken.
        return SmsError::new(SmsFailure::Unknown, crate::adapters::error_code(error));
    };
    let code = || crate::adapters::error_code(error);
    match service.err() {
        SendTextMessageError::ThrottlingException(_) => {
            SmsError::new(SmsFailure::Throttled, code())
        }
        SendTextMessageError::ConflictException(e) => match e.reason() {
            Some(ConflictExceptionReason::DestinationPhoneNumberOptedOut) => SmsError::new(
                SmsFailure::OptedOut,
                ConflictExceptionReason::DestinationPhoneNumberOptedOut.as_str(),
            ),
            Some(
                reason @ (ConflictExceptionReason::DestinationCountryBlockedByProtectConfiguration
                | ConflictExceptionReason::DestinationPhoneNumberBlockedByProtectNumberOverride
                | ConflictExceptionReason::DestinationPhoneNumberNotVerified),
            ) => SmsError::new(SmsFailure::Refused, reason.as_str()),
            Some(reason) => SmsError::new(SmsFailure::Failed, reason.as_str()),
            None => SmsError::new(SmsFailure::Failed, code()),
        },
        // Whatever its reason (a destination it will not reach, a body over 1600
        // characters, a parameter it cannot take), the same request is refused again:
        // retrying only delays the failure.
        SendTextMessageError::ValidationException(e) => SmsError::new(
            SmsFailure::Refused,
            e.reason().map_or_else(code, |r| r.as_str().to_owned()),
        ),
        // The monthly spend limit (or another of the account's quotas): nothing goes until
        // it is raised or the month turns.
        SendTextMessageError::ServiceQuotaExceededException(e) => SmsError::new(
            SmsFailure::Suspended,
            e.reason().map_or_else(code, |r| r.as_str().to_owned()),
        ),
        _ => SmsError::new(SmsFailure::Failed, code()),
    }
}

/// Any other operation's failure: throttled, unknown (no answer, or AWS's own error: worth
/// another try) or failed (refused).
fn classify<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> SmsError {
    let code = crate::adapters::error_code(error);
    let failure = match error {
        SdkError::ServiceError(_) if code == "ThrottlingException" => SmsFailure::Throttled,
        SdkError::ServiceError(_) if code == "InternalServerException" => SmsFailure::Unknown,
        SdkError::ServiceError(_) => SmsFailure::Failed,
        _ => SmsFailure::Unknown,
    };
    SmsError::new(failure, code)
}

impl SmsProvider for EndUserMessagingSms {
    fn opt_out_checks_per_second(&self) -> Option<u32> {
        self.settings.ask_opt_out_first
    }

    async fn send(&self, sms: &Outgoing<'_>) -> Result<String, SmsError> {
        self.request(sms)
            .send()
            .await
            .map(|out| out.message_id.unwrap_or_default())
            .map_err(|error| classify_send(&error))
    }

    async fn is_opted_out(&self, to: &PhoneNumber) -> Result<bool, SmsError> {
        self.client
            .describe_opted_out_numbers()
            .opt_out_list_name(&self.settings.opt_out_list)
            .opted_out_numbers(to.as_str())
            .send()
            .await
            .map(|out| {
                out.opted_out_numbers()
                    .iter()
                    .any(|n| n.opted_out_number() == to.as_str())
            })
            .map_err(|error| classify(&error))
    }

    async fn set_opted_out(&self, to: &PhoneNumber, opted_out: bool) -> Result<(), SmsError> {
        let list = &self.settings.opt_out_list;
        if opted_out {
            self.client
                .put_opted_out_number()
                .opt_out_list_name(list)
                .opted_out_number(to.as_str())
                .send()
                .await
                .map(|_| ())
                .map_err(|error| classify(&error))
        } else {
            match self
                .client
                .delete_opted_out_number()
                .opt_out_list_name(list)
                .opted_out_number(to.as_str())
                .send()
                .await
            {
                Ok(_) => Ok(()),
                // Not on the list: nothing to take off.
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    Ok(())
                }
                Err(error) => Err(classify(&error)),
            }
        }
    }

    fn read_report(line: &str) -> Option<DeliveryReport> {
        read_event(line)
    }

    fn is_interim(line: &str) -> bool {
        serde_json::from_str::<Event>(line)
            .is_ok_and(|e| !e.is_final && e.event_type.starts_with("TEXT_"))
    }
}

/// One event of a configuration set's event destination, as AWS documents it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    event_type: String,
    is_final: bool,
    message_id: String,
    #[serde(default)]
    event_timestamp: u64,
    #[serde(default)]
    message_request_timestamp: u64,
    #[serde(default)]
    message_status_description: String,
    #[serde(default = "one_part")]
    total_message_parts: u64,
    #[serde(default)]
    total_message_price: f64,
}

fn one_part() -> u64 {
    1
}

/// The event types that say the SMS reached the worker's phone (`TEXT_DELIVERED`), or
/// its carrier where carriers give no more (`TEXT_SUCCESSFUL` marked final).
fn delivered(event_type: &str) -> bool {
    matches!(event_type, "TEXT_DELIVERED" | "TEXT_SUCCESSFUL")
}

/// A delivery event, or `None` when it is not one this service can read or not final
/// (`TEXT_QUEUED`, `TEXT_PENDING`, `TEXT_CARRIER_UNREACHABLE`, ... until a final one).
/// Every final event other than delivered is a failure, its event type the reason
/// (`TEXT_BLOCKED`, `TEXT_SPAM`, `TEXT_TTL_EXPIRED`, `TEXT_PROTECT_BLOCKED`, ...).
pub fn read_event(line: &str) -> Option<DeliveryReport> {
    let event: Event = serde_json::from_str(line).ok()?;
    if !event.is_final
        || !event.event_type.starts_with("TEXT_")
        || event.message_id.is_empty()
        || !event.total_message_price.is_finite()
        || event.total_message_price < 0.0
    {
        return None;
    }
    let delivered = delivered(&event.event_type);
    let provider_response = if delivered || event.message_status_description.is_empty() {
        event.event_type.clone()
    } else {
        format!("{}: {}", event.event_type, event.message_status_description)
    };
    Some(DeliveryReport {
        message_id: event.message_id,
        delivered,
        provider_response,
        price_usd: event.total_message_price,
        dwell_ms: event
            .event_timestamp
            .saturating_sub(event.message_request_timestamp),
        parts: event.total_message_parts.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example of an SMS event (End User Messaging user guide, "Messaging
    /// events"), with its context as this service sends it.
    const SUCCESSFUL: &str = r#"{"eventType":"TEXT_SUCCESSFUL","eventVersion":"1.0","eventTimestamp":1686975103470,"isFinal":true,"originationPhoneNumber":"+12065550152","destinationPhoneNumber":"+14255550156","isInternationalSend":false,"mcc":"310","mnc":"800","messageId":"862a8790-60c0-4430-9b2b-658bdexample","messageRequestTimestamp":1686975103170,"messageEncoding":"GSM","messageType":"TRANSACTIONAL","messageStatus":"SUCCESSFUL","messageStatusDescription":"Message has been accepted by phone carrier","context":{"project":"demo","batch":"b1","job":"j1"},"totalMessageParts":1,"totalMessagePrice":0.09582,"totalCarrierFee":0.0}"#;

    fn event(event_type: &str, is_final: bool) -> String {
        SUCCESSFUL
            .replace("TEXT_SUCCESSFUL", event_type)
            .replace(r#""isFinal":true"#, &format!(r#""isFinal":{is_final}"#))
    }

    #[test]
    fn the_documented_example_is_a_delivered_report() {
        let r = read_event(SUCCESSFUL).unwrap();
        assert_eq!(r.message_id, "862a8790-60c0-4430-9b2b-658bdexample");
        assert!(r.delivered);
        assert_eq!(r.provider_response, "TEXT_SUCCESSFUL");
        assert!((r.price_usd - 0.09582).abs() < 1e-12);
        assert_eq!((r.dwell_ms, r.parts), (300, 1));
    }

    #[test]
    fn every_event_type_is_delivered_failed_or_not_final() {
        for (event_type, is_final, expected) in [
            ("TEXT_DELIVERED", true, Some(true)),
            ("TEXT_SUCCESSFUL", true, Some(true)),
            ("TEXT_SUCCESSFUL", false, None),
            ("TEXT_QUEUED", false, None),
            ("TEXT_PENDING", false, None),
            ("TEXT_CARRIER_UNREACHABLE", false, None),
            ("TEXT_BLOCKED", true, Some(false)),
            ("TEXT_CARRIER_BLOCKED", true, Some(false)),
            ("TEXT_SPAM", true, Some(false)),
            ("TEXT_UNREACHABLE", true, Some(false)),
            ("TEXT_INVALID", true, Some(false)),
            ("TEXT_INVALID_MESSAGE", true, Some(false)),
            ("TEXT_UNKNOWN", true, Some(false)),
            ("TEXT_TTL_EXPIRED", true, Some(false)),
            ("TEXT_PROTECT_BLOCKED", true, Some(false)),
            ("VOICE_COMPLETED", true, None),
        ] {
            let line = event(event_type, is_final);
            let interim = !is_final && event_type.starts_with("TEXT_");
            assert_eq!(
                EndUserMessagingSms::is_interim(&line),
                interim,
                "{event_type}"
            );
            let report = read_event(&line);
            assert_eq!(
                report.as_ref().map(|r| r.delivered),
                expected,
                "{event_type}"
            );
            if expected == Some(false) {
                let reason = report.unwrap().provider_response;
                assert!(reason.starts_with(event_type), "{reason}");
            }
        }
    }

    #[test]
    fn parts_and_price_are_read() {
        let three = SUCCESSFUL
            .replace(r#""totalMessageParts":1"#, r#""totalMessageParts":3"#)
            .replace("0.09582", "0.02445");
        let r = read_event(&three).unwrap();
        assert_eq!(r.parts, 3);
        assert!((r.price_usd - 0.02445).abs() < 1e-12);
    }

    #[test]
    fn anything_else_is_not_a_report() {
        for line in [
            "",
            "{}",
            r#"{"eventType":"TEXT_DELIVERED","isFinal":true,"messageId":""}"#,
            r#"{"eventType":"TEXT_DELIVERED","isFinal":true,"messageId":"m","totalMessagePrice":-1}"#,
            // SNS's delivery status log is not End User Messaging's.
            r#"{"notification":{"messageId":"m"},"delivery":{},"status":"SUCCESS"}"#,
        ] {
            assert_eq!(read_event(line), None, "{line}");
        }
    }
}
