//! The `Idempotency-Key` protocol: a request sent again with the same key and body gets
//! the first answer, never a second run (that would text every number again).

use tracing::{info, warn};

use super::RegistrationService;
use crate::ports::{IdempotencyBegin, JobQueue, Store, StoredResponse};

/// How long the answer to an `Idempotency-Key` is replayed.
pub const IDEMPOTENCY_WINDOW_SECONDS: u64 = 24 * 3600;
/// How long a running request holds its key: past the function's timeout. After it, a
/// run that stored no answer is known to have died, and its key answers 409 (unknown).
pub const IDEMPOTENCY_LEASE_SECONDS: u64 = 120;
/// Tries at storing a request's answer (or forgetting its key), and the pause between.
const STORE_ANSWER_TRIES: u32 = 3;
const STORE_ANSWER_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Why a keyed request was not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyError {
    #[error("the idempotency record is unavailable")]
    Unavailable,
    /// The key was used with another request.
    #[error("the key was used with another request")]
    Mismatch,
    /// The first request with this key is still running.
    #[error("the first request with this key is still running")]
    InProgress,
    /// The first request with this key stopped without storing its answer: some of its
    /// numbers may have been invited.
    #[error("the first request with this key ended without an answer")]
    Unknown,
}

/// What a keyed request came to.
#[derive(Debug)]
pub enum Once<T> {
    /// Run now: its answer.
    Ran(T),
    /// Run before: the answer it gave then.
    Replay(StoredResponse),
}

impl<St: Store, Q: JobQueue> RegistrationService<St, Q> {
    /// Runs `run` once per `key` and `request_hash` in `domain` (the hash covers the
    /// endpoint and the body), within [`IDEMPOTENCY_WINDOW_SECONDS`]; `stored` says what
    /// of its answer is kept for a replay. An answer of 5xx or 429 (failed as a whole, or
    /// turned away for now) keeps no key: the same request may be sent again.
    pub async fn once<T>(
        &self,
        domain: &str,
        key: &str,
        request_hash: &str,
        run: impl Future<Output = T>,
        stored: impl FnOnce(&T) -> StoredResponse,
    ) -> Result<Once<T>, IdempotencyError> {
        let begun = self
            .store
            .begin(
                domain,
                key,
                request_hash,
                self.clock.now(),
                IDEMPOTENCY_LEASE_SECONDS,
                IDEMPOTENCY_WINDOW_SECONDS,
            )
            .await
            .map_err(|error| {
                warn!(%error, "idempotency record unavailable");
                IdempotencyError::Unavailable
            })?;
        let lease = match begun {
            IdempotencyBegin::Proceed { lease } => lease,
            IdempotencyBegin::Replay(stored) => {
                info!(status = stored.status, "replaying the stored response");
                return Ok(Once::Replay(stored));
            }
            IdempotencyBegin::Mismatch => return Err(IdempotencyError::Mismatch),
            IdempotencyBegin::InProgress => return Err(IdempotencyError::InProgress),
            IdempotencyBegin::Unknown => return Err(IdempotencyError::Unknown),
        };
        let answer = run.await;
        let kept = stored(&answer);
        let forget = kept.status >= 500 || kept.status == 429;
        for attempt in 1..=STORE_ANSWER_TRIES {
            let outcome = if forget {
                self.store.abandon(domain, key, &lease).await
            } else {
                self.store.complete(domain, key, &lease, &kept).await
            };
            match outcome {
                Ok(()) => break,
                // A retry of this key gets 409: in progress, then unknown once the lease
                // has run out. The request is never run twice.
                Err(error) if attempt == STORE_ANSWER_TRIES => {
                    warn!(%error, "could not record the idempotent response")
                }
                Err(_) => tokio::time::sleep(STORE_ANSWER_PAUSE * attempt).await,
            }
        }
        Ok(Once::Ran(answer))
    }
}
