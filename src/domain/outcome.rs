//! Per-number outcomes and the response that gathers them.

use serde::Serialize;

use super::encoding::{Encoding, measure};

/// What happened to one number of a request; each lands in exactly one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteOutcome {
    /// Invitation recorded and every SMS accepted (E.164).
    Success(String),
    /// Failed the phone rules (as the client sent it).
    InvalidFormat(String),
    /// Registered, or held by another project's live invitation (E.164).
    InUse(String),
    /// Could not be recorded or sent; left as it was (E.164).
    Error(String),
    /// The number opted out (replied STOP): nothing recorded or sent (E.164).
    OptedOut(String),
}

/// The response body of a create-invitations request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegistrationReport {
    pub success_numbers: Vec<String>,
    pub invalid_format_numbers: Vec<String>,
    pub numbers_in_use: Vec<String>,
    pub error_numbers: Vec<String>,
    pub opted_out_numbers: Vec<String>,
    /// The request's batch, when any invitation was queued: its progress is at
    /// `.../sms_user_registration/batches/{batch_id}/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// What will be sent for the queued numbers, when any was queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsSummary>,
}

/// What a request's queued SMS cost on the air: SMS, their parts (as carriers bill and
/// pace them) and the encoding (UCS-2 when any of them is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmsSummary {
    pub messages: usize,
    pub parts: usize,
    pub encoding: Encoding,
}

impl SmsSummary {
    /// The summary of `texts` (every SMS queued), `None` when there are none.
    pub fn of<'a>(texts: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut summary: Option<SmsSummary> = None;
        for text in texts {
            let size = measure(text);
            let sum = summary.get_or_insert(SmsSummary {
                messages: 0,
                parts: 0,
                encoding: Encoding::Gsm7,
            });
            sum.messages += 1;
            sum.parts += size.parts;
            if size.encoding == Encoding::Ucs2 {
                sum.encoding = Encoding::Ucs2;
            }
        }
        summary
    }
}

impl FromIterator<InviteOutcome> for RegistrationReport {
    fn from_iter<T: IntoIterator<Item = InviteOutcome>>(outcomes: T) -> Self {
        let mut report = RegistrationReport::default();
        for outcome in outcomes {
            match outcome {
                InviteOutcome::Success(n) => report.success_numbers.push(n),
                InviteOutcome::InvalidFormat(n) => report.invalid_format_numbers.push(n),
                InviteOutcome::InUse(n) => report.numbers_in_use.push(n),
                InviteOutcome::Error(n) => report.error_numbers.push(n),
                InviteOutcome::OptedOut(n) => report.opted_out_numbers.push(n),
            }
        }
        report
    }
}

/// The response body of a reinstall request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReinstallReport {
    pub success_numbers: Vec<String>,
    pub invalid_format_numbers: Vec<String>,
    pub error_numbers: Vec<String>,
    pub opted_out_numbers: Vec<String>,
    /// What will be sent for the queued numbers, when any was queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsSummary>,
}

impl FromIterator<InviteOutcome> for ReinstallReport {
    fn from_iter<T: IntoIterator<Item = InviteOutcome>>(outcomes: T) -> Self {
        let mut report = ReinstallReport::default();
        for outcome in outcomes {
            match outcome {
                InviteOutcome::Success(n) => report.success_numbers.push(n),
                InviteOutcome::InvalidFormat(n) => report.invalid_format_numbers.push(n),
                InviteOutcome::InUse(n) | InviteOutcome::Error(n) => report.error_numbers.push(n),
                InviteOutcome::OptedOut(n) => report.opted_out_numbers.push(n),
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_gathered_in_request_order() {
        let report: RegistrationReport = [
            InviteOutcome::Success("+1".into()),
            InviteOutcome::InUse("+2".into()),
            InviteOutcome::Success("+3".into()),
            InviteOutcome::InvalidFormat("x".into()),
            InviteOutcome::Error("+4".into()),
            InviteOutcome::OptedOut("+5".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(report.success_numbers, ["+1", "+3"]);
        assert_eq!(report.numbers_in_use, ["+2"]);
        assert_eq!(report.invalid_format_numbers, ["x"]);
        assert_eq!(report.error_numbers, ["+4"]);
        assert_eq!(report.opted_out_numbers, ["+5"]);
        assert_eq!(
            serde_json::to_string(&RegistrationReport::default()).unwrap(),
            r#"{"success_numbers":[],"invalid_format_numbers":[],"numbers_in_use":[],"error_numbers":[],"opted_out_numbers":[]}"#
        );
    }
}
