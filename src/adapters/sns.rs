//! SNS as the SMS provider: one `Publish` to the phone number per SMS,
//! `CheckIfPhoneNumberIsOptedOut` for its opt-out list, and its SMS delivery status log
//! (`sns/<region>/<account>/DirectPublishToPhoneNumber[/Failure]` in CloudWatch Logs, one
//! JSON line per SMS) read into delivery reports.

use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use serde::Deserialize;

use crate::domain::PhoneNumber;
use crate::domain::receipt::DeliveryReport;
use crate::ports::{Outgoing, SmsError, SmsFailure, SmsProvider};

/// SNS answers `CheckIfPhoneNumberIsOptedOut` at most 50 times a second per account.
const OPT_OUT_CHECKS_PER_SECOND: u32 = 50;

#[derive(Debug, Clone)]
pub struct SnsSms {
    client: Client,
    sender_id: Option<String>,
    origination_number: Option<String>,
}

pub(crate) fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("a message attribute with a data type")
}

impl SnsSms {
    pub fn new(
        client: Client,
        sender_id: Option<String>,
        origination_number: Option<String>,
    ) -> Self {
        SnsSms {
            client,
            sender_id,
            origination_number,
        }
    }
}

/// SNS's codes for a request it will refuse however often it is sent (a message over
/// 1600 bytes, say): `InvalidParameter` and `InvalidParameterValue`'s `ParameterValueInvalid`.
const INVALID_REQUEST_CODES: [&str; 2] = ["InvalidParameter", "ParameterValueInvalid"];

/// What an SNS failure means for the SMS: refused for the rate, refused for good (the
/// request itself is invalid: retrying only delays the failure, 8 attempts over 11
/// minutes), refused, or unknown (no answer, or an answer that could not be read, after
/// SNS may have taken it).
fn classify<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> SmsError {
    let code = crate::adapters::error_code(error);
    let failure = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            SmsFailure::Unknown
        }
        _ if code.starts_with("Throttl") => SmsFailure::Throttled,
        SdkError::ServiceError(_) if INVALID_REQUEST_CODES.contains(&code.as_str()) => {
            SmsFailure::Refused
        }
        _ => SmsFailure::Failed,
    };
    SmsError::new(failure, code)
}

impl SmsProvider for SnsSms {
    fn opt_out_checks_per_second(&self) -> Option<u32> {
        Some(OPT_OUT_CHECKS_PER_SECOND)
    }

    /// SNS takes neither a price cap nor a context.
    async fn send(&self, sms: &Outgoing<'_>) -> Result<String, SmsError> {
        let mut publish = self
            .client
            .publish()
            .phone_number(sms.to.as_str())
            .message(sms.text)
            .message_attributes("AWS.SNS.SMS.SMSType", string_attribute("Transactional"));
        if let Some(id) = &self.sender_id {
            publish = publish.message_attributes("AWS.SNS.SMS.SenderID", string_attribute(id));
        }
        if let Some(number) = &self.origination_number {
            publish = publish
                .message_attributes("AWS.MM.SMS.OriginationNumber", string_attribute(number));
        }
        publish
            .send()
            .await
            .map(|out| out.message_id.unwrap_or_default())
            .map_err(|error| classify(&error))
    }

    async fn is_opted_out(&self, to: &PhoneNumber) -> Result<bool, SmsError> {
        self.client
            .check_if_phone_number_is_opted_out()
            .phone_number(to.as_str())
            .send()
            .await
            .map(|out| out.is_opted_out())
            .map_err(|error| classify(&error))
    }

    fn read_report(line: &str) -> Option<DeliveryReport> {
        read_delivery_status(line)
    }
}

#[derive(Deserialize)]
struct Line {
    notification: Notification,
    delivery: Delivery,
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    message_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivery {
    #[serde(default)]
    provider_response: String,
    #[serde(default, rename = "priceInUSD")]
    price_in_usd: f64,
    #[serde(default)]
    dwell_time_ms: u64,
    #[serde(default = "one_part")]
    number_of_message_parts: u64,
}

/// A line without `numberOfMessageParts` was one part.
fn one_part() -> u64 {
    1
}

/// A line of the delivery status log, or `None` when it is not a delivery status this
/// service can read.
pub fn read_delivery_status(line: &str) -> Option<DeliveryReport> {
    let line: Line = serde_json::from_str(line).ok()?;
    let delivered = match line.status.as_str() {
        "SUCCESS" => true,
        "FAILURE" => false,
        _ => return None,
    };
    if line.notification.message_id.is_empty()
        || !line.delivery.price_in_usd.is_finite()
        || line.delivery.price_in_usd < 0.0
    {
        return None;
    }
    Some(DeliveryReport {
        message_id: line.notification.message_id,
        delivered,
        provider_response: line.delivery.provider_response,
        price_usd: line.delivery.price_in_usd,
        dwell_ms: line.delivery.dwell_time_ms,
        parts: line.delivery.number_of_message_parts.max(1),
    })
}

/// Makes SNS log each SMS's delivery status to CloudWatch Logs, writing with `role` and
/// keeping `success_sampling` percent of the successes (`smsreg-admin sms-settings`): an
/// account setting of the region, which a stack cannot make. The error is SNS's code.
pub async fn log_delivery_status(
    client: &Client,
    role: &str,
    success_sampling: u8,
) -> Result<(), String> {
    client
        .set_sms_attributes()
        .attributes("DeliveryStatusIAMRole", role)
        .attributes(
            "DeliveryStatusSuccessSamplingRate",
            success_sampling.to_string(),
        )
        .send()
        .await
        .map_err(|e| crate::adapters::error_code(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As AWS documents the log's lines.
    const DELIVERED: &str = r#"{"notification":{"messageId":"34d9b400-c6dd-5444-820d-fbeb0f1f54cf","timestamp":"2026-11-24 10:00:01.123"},"delivery":{"phoneCarrier":"My Phone Carrier","mnc":270,"numberOfMessageParts":1,"destination":"+16175551234","priceInUSD":0.00581,"smsType":"Transactional","mcc":310,"providerResponse":"Message has been accepted by phone carrier","dwellTimeMs":599,"dwellTimeMsUntilDeviceAck":1344},"status":"SUCCESS"}"#;
    const FAILED: &str = r#"{"notification":{"messageId":"1077de42-a3e2-5e5b-8f2e-1f5bd7e0c8e5","timestamp":"2026-11-24 10:00:02.000"},"delivery":{"mnc":0,"numberOfMessageParts":1,"destination":"+16175555512","priceInUSD":0.0,"smsType":"Transactional","mcc":0,"providerResponse":"Unknown error attempting to reach phone","dwellTimeMs":1420},"status":"FAILURE"}"#;

    #[test]
    fn delivered_and_failed_lines_are_read() {
        let r = read_delivery_status(DELIVERED).unwrap();
        assert_eq!(r.message_id, "34d9b400-c6dd-5444-820d-fbeb0f1f54cf");
        assert!(r.delivered);
        assert_eq!(
            r.provider_response,
            "Message has been accepted by phone carrier"
        );
        assert!((r.price_usd - 0.00581).abs() < 1e-12);
        assert_eq!(r.dwell_ms, 599);
        let r = read_delivery_status(FAILED).unwrap();
        assert!(!r.delivered);
        assert_eq!(r.price_usd, 0.0);
    }

    #[test]
    fn the_parts_an_sms_went_as_are_read_and_one_when_unsaid() {
        let three = DELIVERED.replace(r#""numberOfMessageParts":1"#, r#""numberOfMessageParts":3"#);
        assert_eq!(read_delivery_status(&three).unwrap().parts, 3);
        assert_eq!(read_delivery_status(DELIVERED).unwrap().parts, 1);
        let unsaid = DELIVERED.replace(r#""numberOfMessageParts":1,"#, "");
        assert_eq!(read_delivery_status(&unsaid).unwrap().parts, 1);
    }

    #[test]
    fn anything_else_is_not_a_receipt() {
        for line in [
            "",
            "not json",
            "{}",
            r#"{"notification":{"messageId":""},"delivery":{},"status":"SUCCESS"}"#,
            r#"{"notification":{"messageId":"m"},"delivery":{},"status":"PENDING"}"#,
            r#"{"notification":{"messageId":"m"},"delivery":{"priceInUSD":-1},"status":"SUCCESS"}"#,
        ] {
            assert_eq!(read_delivery_status(line), None, "{line}");
        }
    }
}
