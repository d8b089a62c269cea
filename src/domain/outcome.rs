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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsSummary {
    pub messages: usize,
    pub parts: usize,
    pub encoding: Encoding,
    /// When the first and the last SMS are expected to go (RFC 3339; see `SendEstimate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_at: Option<String>,
}

/// When a request's jobs are expected to go: each at its moment (now, or when it is held
/// until), in the order of those moments, each taking its parts' slots of the
/// deployment's pace. An estimate: it knows nothing of jobs already queued before them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendEstimate {
    /// Seconds since the epoch.
    pub first_at: u64,
    pub last_at: u64,
}

impl SendEstimate {
    /// `jobs`: each job's moment (seconds since the epoch) and parts; `interval_us`: the
    /// pace's spacing of one part. `None` for no job.
    pub fn of(mut jobs: Vec<(u64, usize)>, interval_us: u64) -> Option<Self> {
        jobs.sort_unstable();
        let first_at = jobs.first()?.0;
        // The next free slot, in microseconds.
        let mut free_us = 0u64;
        let mut last_us = 0u64;
        for (at, parts) in jobs {
            let start = free_us.max(at.saturating_mul(1_000_000));
            // Leaves at the last of its slots (see `Pacer::wait_turn`).
            last_us = start + interval_us * (parts.max(1) as u64 - 1);
            free_us = start + interval_us * parts.max(1) as u64;
        }
        Some(SendEstimate {
            first_at,
            last_at: last_us / 1_000_000,
        })
    }
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
                first_at: None,
                last_at: None,
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
    fn the_estimate_takes_each_job_at_its_moment_and_its_parts_at_the_pace() {
        const SECOND: u64 = 1_000_000;
        assert_eq!(SendEstimate::of(vec![], SECOND), None);
        // At one part a second: 3 one-part jobs now leave at 0, 1 and 2 s; a 2-part job
        // held until 100 s leaves at its second slot, 101 s.
        let estimate = SendEstimate::of(vec![(100, 2), (0, 1), (0, 1), (0, 1)], SECOND);
        assert_eq!(
            estimate,
            Some(SendEstimate {
                first_at: 0,
                last_at: 101
            })
        );
        // Jobs at one moment queue behind each other: 10 jobs of 3 parts, 30 slots.
        let estimate = SendEstimate::of(vec![(50, 3); 10], SECOND).unwrap();
        assert_eq!((estimate.first_at, estimate.last_at), (50, 50 + 29));
    }

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
