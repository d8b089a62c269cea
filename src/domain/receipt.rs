//! SNS's SMS delivery status log: one JSON line per SMS, written to CloudWatch Logs
//! (`sns/<region>/<account>/DirectPublishToPhoneNumber[/Failure]`) once the account's SMS
//! attributes name a delivery-status role.

use serde::Deserialize;

/// What the delivery status log says of one SMS.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub message_id: String,
    pub delivered: bool,
    /// The carrier's or SNS's words (`Message has been accepted by phone carrier`, ...).
    pub provider_response: String,
    pub price_usd: f64,
    pub dwell_ms: u64,
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
}

impl Receipt {
    /// A log line, or `None` when it is not a delivery status this service can read.
    pub fn parse(line: &str) -> Option<Receipt> {
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
        Some(Receipt {
            message_id: line.notification.message_id,
            delivered,
            provider_response: line.delivery.provider_response,
            price_usd: line.delivery.price_in_usd,
            dwell_ms: line.delivery.dwell_time_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As AWS documents the log's lines.
    const DELIVERED: &str = r#"{"notification":{"messageId":"34d9b400-c6dd-5444-820d-fbeb0f1f54cf","timestamp":"2026-11-24 10:00:01.123"},"delivery":{"phoneCarrier":"My Phone Carrier","mnc":270,"numberOfMessageParts":1,"destination":"+16175551234","priceInUSD":0.00581,"smsType":"Transactional","mcc":310,"providerResponse":"Message has been accepted by phone carrier","dwellTimeMs":599,"dwellTimeMsUntilDeviceAck":1344},"status":"SUCCESS"}"#;
    const FAILED: &str = r#"{"notification":{"messageId":"1077de42-a3e2-5e5b-8f2e-1f5bd7e0c8e5","timestamp":"2026-11-24 10:00:02.000"},"delivery":{"mnc":0,"numberOfMessageParts":1,"destination":"+16175555512","priceInUSD":0.0,"smsType":"Transactional","mcc":0,"providerResponse":"Unknown error attempting to reach phone","dwellTimeMs":1420},"status":"FAILURE"}"#;

    #[test]
    fn delivered_and_failed_lines_are_read() {
        let r = Receipt::parse(DELIVERED).unwrap();
        assert_eq!(r.message_id, "34d9b400-c6dd-5444-820d-fbeb0f1f54cf");
        assert!(r.delivered);
        assert_eq!(
            r.provider_response,
            "Message has been accepted by phone carrier"
        );
        assert!((r.price_usd - 0.00581).abs() < 1e-12);
        assert_eq!(r.dwell_ms, 599);
        let r = Receipt::parse(FAILED).unwrap();
        assert!(!r.delivered);
        assert_eq!(r.price_usd, 0.0);
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
            assert_eq!(Receipt::parse(line), None, "{line}");
        }
    }
}
