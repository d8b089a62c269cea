//! In memory: the `IdempotencyStore` port.

use crate::domain::Token;
use crate::ports::{IdempotencyBegin, IdempotencyStore, StoreError, StoredResponse};

use super::*;
use crate::domain::idempotency::{EarlierUse, verdict};

impl IdempotencyStore for MemoryStore {
    async fn begin(
        &self,
        domain: &str,
        key: &str,
        request_hash: &str,
        now: u64,
        lease_for: u64,
        expires_after: u64,
    ) -> Result<IdempotencyBegin, StoreError> {
        let mut state = self.reachable()?;
        let id = (domain.to_owned(), key.to_owned());
        let lease = Token::generate().as_str().to_owned();
        if let Some(existing) = state.idempotency.get(&id)
            && existing.expires_at > now
        {
            let earlier = match &existing.answer {
                Ok(response) => EarlierUse::Answered(response.clone()),
                Err((lease, lease_until)) => EarlierUse::Running {
                    lease,
                    lease_until: *lease_until,
                },
            };
            return Ok(verdict(
                request_hash,
                &lease,
                &existing.request_hash,
                earlier,
                now,
            ));
        }
        state.idempotency.insert(
            id,
            IdempotencyRecord {
                request_hash: request_hash.to_owned(),
                expires_at: now + expires_after,
                answer: Err((lease.clone(), now + lease_for)),
            },
        );
        Ok(IdempotencyBegin::Proceed { lease })
    }

    async fn complete(
        &self,
        domain: &str,
        key: &str,
        lease: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        if let Some(record) = state
            .idempotency
            .get_mut(&(domain.to_owned(), key.to_owned()))
            && matches!(&record.answer, Err((l, _)) if l == lease)
        {
            record.answer = Ok(response.clone());
        }
        Ok(())
    }

    async fn abandon(&self, domain: &str, key: &str, lease: &str) -> Result<(), StoreError> {
        let mut state = self.reachable()?;
        let id = (domain.to_owned(), key.to_owned());
        if matches!(state.idempotency.get(&id), Some(r) if matches!(&r.answer, Err((l, _)) if l == lease))
        {
            state.idempotency.remove(&id);
        }
        Ok(())
    }
}
