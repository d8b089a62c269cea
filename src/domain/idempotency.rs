//! The `Idempotency-Key` rule every store applies to a key's earlier use.

/// A stored answer to a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What to do with a request carrying an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First use (or the earlier use expired or was abandoned): run it, holding `lease`.
    Proceed { lease: String },
    /// Already answered with the same body: answer the same.
    Replay(StoredResponse),
    /// The key was used with another body.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
    /// The first request with this key stopped without storing its answer (its function
    /// died or timed out): some of its numbers may have been invited. Never run again,
    /// since that would text every number a second time.
    Unknown,
}

/// A key's earlier use, live (not expired), as a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EarlierUse<'a> {
    /// Answered: the answer is replayed.
    Answered(StoredResponse),
    /// Still running under `lease` until `lease_until` (seconds), or stopped unanswered.
    Running { lease: &'a str, lease_until: u64 },
}

/// What a request with `request_hash` does, given the key's live earlier use (with
/// `earlier_hash`): `own_lease` is the lease this request wrote, so that its own write,
/// applied with its answer lost and refused on the SDK's retry, is known as its own.
pub fn verdict(
    request_hash: &str,
    own_lease: &str,
    earlier_hash: &str,
    earlier: EarlierUse<'_>,
    now: u64,
) -> IdempotencyBegin {
    match earlier {
        EarlierUse::Running { lease, .. } if lease == own_lease => IdempotencyBegin::Proceed {
            lease: own_lease.to_owned(),
        },
        _ if earlier_hash != request_hash => IdempotencyBegin::Mismatch,
        EarlierUse::Answered(response) => IdempotencyBegin::Replay(response),
        EarlierUse::Running { lease_until, .. } if lease_until > now => {
            IdempotencyBegin::InProgress
        }
        EarlierUse::Running { .. } => IdempotencyBegin::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(lease: &str, until: u64) -> EarlierUse<'_> {
        EarlierUse::Running {
            lease,
            lease_until: until,
        }
    }

    #[test]
    fn the_earlier_use_decides() {
        let answer = StoredResponse {
            status: 200,
            body: "{}".into(),
        };
        let answered = EarlierUse::Answered(answer.clone());
        assert_eq!(
            verdict("h", "mine", "h", answered.clone(), 10),
            IdempotencyBegin::Replay(answer)
        );
        assert_eq!(
            verdict("h", "mine", "other", answered, 10),
            IdempotencyBegin::Mismatch
        );
        assert_eq!(
            verdict("h", "mine", "h", running("theirs", 11), 10),
            IdempotencyBegin::InProgress
        );
        assert_eq!(
            verdict("h", "mine", "h", running("theirs", 10), 10),
            IdempotencyBegin::Unknown
        );
        // Our own write, its answer lost: ours to go on with, whatever else it says.
        assert_eq!(
            verdict("h", "mine", "h", running("mine", 0), 10),
            IdempotencyBegin::Proceed {
                lease: "mine".into()
            }
        );
    }
}
