//! What a provider's delivery report says of one SMS, in the service's own words: the
//! SMS provider's adapter reads its format into this (see `ports::sms`).

/// One SMS's delivery report.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryReport {
    /// The provider's id of the SMS, as its send answered.
    pub message_id: String,
    pub delivered: bool,
    /// The carrier's or the provider's words (`Message has been accepted by phone
    /// carrier`, ...).
    pub provider_response: String,
    pub price_usd: f64,
    pub dwell_ms: u64,
}
