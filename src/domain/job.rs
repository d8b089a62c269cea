//! Send jobs: what the API and the replies function put on the send queue, one per
//! invitation or message, and the sender takes off it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PhoneNumber;
use super::invitation::Token;

/// One job of the send queue: the SMS for one phone, in order.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsJob {
    /// Random; names the job's progress record (messages) and its log lines.
    pub id: String,
    /// The project the SMS are sent for.
    pub domain: String,
    /// Parsed once, when the job is read.
    pub phone: PhoneNumber,
    pub texts: Vec<String>,
    #[serde(flatten)]
    pub kind: JobKind,
    /// When its SMS may go: not before `not_before` (a create request's `send_at`, seconds
    /// since the epoch), and only while `window` is open in the worker's time zones.
    /// Neither: at once (answers to replies).
    #[serde(default, skip_serializing_if = "Schedule::is_now")]
    pub schedule: Schedule,
    /// The project's price cap per part in USD (`put-domain --max-price-per-part`), for
    /// providers that take one: a dearer SMS is refused, not billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_per_part: Option<String>,
}

/// When a job's SMS may go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<super::window::SendWindow>,
}

impl Schedule {
    /// Not before `not_before`, within `window` (`Any`: no window, kept as none).
    pub fn new(not_before: Option<u64>, window: super::window::SendWindow) -> Self {
        Schedule {
            not_before,
            window: Some(window).filter(|w| *w != super::window::SendWindow::Any),
        }
    }

    /// At once: no `send_at`, no window.
    pub fn is_now(&self) -> bool {
        self.not_before.is_none() && self.window.is_none()
    }

    /// The moment (seconds since the epoch) before which an SMS to `phone` is held, asked
    /// at `now`; `None`: it may go now.
    pub fn hold_until(&self, phone: &PhoneNumber, now: u64) -> Option<u64> {
        self.window
            .unwrap_or(super::window::SendWindow::Any)
            .hold_until(phone, self.not_before, now)
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// An invitation's SMS: sent only while the number's record is still this invitation
    /// (same token), queued or pending and unexpired. Progress is kept on the invitation.
    Invitation {
        token: String,
        /// When the invitation was made: the day its daily count is given back to.
        created_at: u64,
        /// The record the claim replaced, put back if every attempt fails (store-specific).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<Value>,
        /// The request's batch, whose progress counts the invitation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_id: Option<String>,
    },
    /// Any other SMS (a reply's answer, a reinstall link). Progress is kept on a record of
    /// the job.
    Message,
}

impl SmsJob {
    pub fn new_id() -> String {
        Token::generate().as_str().to_owned()
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            JobKind::Invitation { .. } => "invitation",
            JobKind::Message => "message",
        }
    }

    /// The phone masked for logs.
    pub fn masked_phone(&self) -> super::phone::Masked<'_> {
        self.phone.masked()
    }
}

/// Jobs hold phone numbers, tokens and SMS texts: `{:?}` shows none of them.
impl std::fmt::Debug for SmsJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsJob")
            .field("id", &self.id)
            .field("kind", &self.kind_name())
            .field("phone", &self.masked_phone().to_string())
            .field("texts", &self.texts.len())
            .finish_non_exhaustive()
    }
}

/// The delay before attempt `receive_count + 1` of a job whose send failed: 5 s, doubling,
/// at most 15 minutes (SQS's largest visibility change that is still a short wait).
pub fn retry_delay_seconds(receive_count: u32) -> u32 {
    let doubling = receive_count.saturating_sub(1).min(8);
    (5u32 << doubling).min(900)
}

/// The wait of a job held because the SMS provider cannot send for now (the account's spend
/// limit), at its `receive_count`-th receive: 15 minutes, doubling, at most 6 hours. A
/// raised limit is used within minutes at first; a limit left for days keeps the job on
/// the queue for about 11 days of its 50 receives (the queue keeps it 14), not failed.
pub fn suspended_delay_seconds(receive_count: u32) -> u32 {
    let doubling = receive_count.saturating_sub(1).min(5);
    (900u32 << doubling).min(6 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_held_for_the_spend_limit_waits_longer_each_time_and_outlives_its_receives() {
        let waits: Vec<u32> = (1..=7).map(suspended_delay_seconds).collect();
        assert_eq!(waits, [900, 1800, 3600, 7200, 14_400, 21_600, 21_600]);
        // The stack's 50 receives: about 11 days, within the queue's 14 days.
        let total: u64 = (1..50).map(|n| u64::from(suspended_delay_seconds(n))).sum();
        assert!(total > 10 * 86_400 && total < 14 * 86_400, "{total}");
    }

    fn job() -> SmsJob {
        SmsJob {
            id: "j1".into(),
            domain: "demo".into(),
            phone: PhoneNumber::parse("+16175551234").unwrap(),
            texts: vec!["secret link https://x/a/demo/register/tok".into()],
            kind: JobKind::Invitation {
                token: "tok".into(),
                created_at: 7,
                previous: None,
                batch_id: None,
            },
            schedule: Schedule::default(),
            max_price_per_part: Some("0.05".into()),
        }
    }

    #[test]
    fn a_job_survives_the_round_trip_through_json() {
        let text = serde_json::to_string(&job()).unwrap();
        assert!(text.contains(r#""kind":"invitation""#), "{text}");
        assert_eq!(serde_json::from_str::<SmsJob>(&text).unwrap(), job());
        let message = SmsJob {
            kind: JobKind::Message,
            ..job()
        };
        let text = serde_json::to_string(&message).unwrap();
        assert_eq!(serde_json::from_str::<SmsJob>(&text).unwrap(), message);
    }

    #[test]
    fn debug_shows_no_number_token_or_text() {
        let shown = format!("{:?}", job());
        assert!(!shown.contains("5551234") && !shown.contains("tok") && !shown.contains("secret"));
        assert!(shown.contains("+1617***1234"), "{shown}");
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_fifteen_minutes() {
        let delays: Vec<u32> = (1..=10).map(retry_delay_seconds).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 900, 900]);
    }
}
