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
    /// The carrier parts the SMS went as (SNS's `numberOfMessageParts`).
    pub parts: u64,
}

/// The counter a receipt moves, in its day's and its batch's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Delivered,
    DeliveryFailed,
}

impl Counter {
    /// The counter's name, as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Delivered => "delivered",
            Counter::DeliveryFailed => "delivery_failed",
        }
    }
}

/// What recording one receipt changes, besides the SMS's own record: the same rule for
/// every store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effects<'a> {
    /// Moved in the SMS's day, always.
    pub counter: Counter,
    /// Parts delivered, added to the day's `parts_delivered` and, for an invitation's SMS
    /// (any of them), its batch's.
    pub parts_delivered: u64,
    /// The batch whose `parts_delivered` grows: every SMS of its invitations.
    pub parts_batch: Option<&'a str>,
    /// The batch whose count moves too: an invitation's first SMS only (its later SMS,
    /// the install link, do not judge the invitation).
    pub batch: Option<&'a str>,
    /// The invitation (by token) that shows the receipt, if it is still that invitation
    /// and shows none yet: an invitation's first SMS only.
    pub invitation: Option<&'a str>,
    /// The invitation (by token) whose `parts_delivered` grows, if it is still that
    /// invitation: any of its SMS.
    pub parts_invitation: Option<&'a str>,
}

impl DeliveryReport {
    /// What this report changes, for SMS `part` (from 0) of its job, sent for the
    /// invitation `token` of `batch` (none for other SMS).
    pub fn effects<'a>(
        &self,
        part: usize,
        token: Option<&'a str>,
        batch: Option<&'a str>,
    ) -> Effects<'a> {
        let first = part == 0;
        Effects {
            parts_delivered: if self.delivered { self.parts } else { 0 },
            parts_batch: batch.filter(|_| token.is_some()),
            counter: if self.delivered {
                Counter::Delivered
            } else {
                Counter::DeliveryFailed
            },
            batch: batch.filter(|_| first && token.is_some()),
            invitation: token.filter(|_| first),
            parts_invitation: token,
        }
    }

    /// What an invitation keeps of the report of its first SMS, recorded at `now`.
    pub fn on_invitation(&self, now: u64) -> super::invitation::Delivery {
        super::invitation::Delivery {
            delivered: self.delivered,
            detail: self.provider_response.clone(),
            price_usd: self.price_usd,
            at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(delivered: bool) -> DeliveryReport {
        DeliveryReport {
            message_id: "m".into(),
            delivered,
            provider_response: "ok".into(),
            price_usd: 0.0065,
            dwell_ms: 10,
            parts: 2,
        }
    }

    #[test]
    fn only_an_invitations_first_sms_judges_it_and_its_batch() {
        let first = report(true).effects(0, Some("t"), Some("b"));
        assert_eq!(
            first,
            Effects {
                counter: Counter::Delivered,
                parts_delivered: 2,
                parts_batch: Some("b"),
                batch: Some("b"),
                invitation: Some("t"),
                parts_invitation: Some("t"),
            }
        );
        let second = report(false).effects(1, Some("t"), Some("b"));
        assert_eq!(
            second,
            Effects {
                counter: Counter::DeliveryFailed,
                parts_delivered: 0,
                parts_batch: Some("b"),
                batch: None,
                invitation: None,
                parts_invitation: Some("t"),
            }
        );
        // A message (a reply's answer): its day only.
        let message = report(true).effects(0, None, None);
        assert_eq!(
            (message.batch, message.invitation, message.parts_invitation),
            (None, None, None)
        );
        assert_eq!(message.counter.name(), "delivered");
    }
}
