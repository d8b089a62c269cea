//! DynamoDB adapter: one table holds projects, apps, API keys and registrations.

mod admin;
mod delivery;
pub mod item;
mod ledger;
mod optout;
mod write;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};

pub use admin::{MarkRegistered, ProjectUpdate};
use item::*;
use tracing::warn;

use crate::domain::invitation::ShownStatus;
use crate::domain::invitation::{ClaimCheck, ClaimRules};
use crate::domain::project::DEFAULT_DAILY_INVITATION_LIMIT;
use crate::domain::worker::Worker;
use crate::domain::{
    ApiKey, Invitation, Plan, Project, RegistrationRecord, RegistrationStatus, Token,
};
use crate::ports::{
    BatchRecord, Claim, DailyQuota, Directory, IdempotencyBegin, IdempotencyStore, InboundLog,
    InvitationPage, InvitationStore, ListQuery, RegisterOutcome, StoreError, StoredResponse,
    WorkerStore,
};

/// Turns an SDK failure into a loggable error.
pub(crate) fn store_error<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> StoreError {
    StoreError::Unavailable {
        code: crate::adapters::error_code(error),
    }
}

/// Condition under which a claim may replace the record of a number: see
/// `RegistrationRecord::claim_check`, which states the same rule in Rust. A stale queued
/// claim is looked at after a refusal, with its batch's record.
const CLAIM_CONDITION: &str = "attribute_not_exists(pk) OR #status = :failed OR \
     #status = :opted_out OR ((#status = :queued OR #status = :pending) AND (#domain = :domain OR expires_at <= :now))";

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// The store over `client`, which is made to retry a plain write that met a
    /// transaction in flight (see [`write`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let config = client
            .config()
            .to_builder()
            .retry_classifier(write::RetryTransactionConflicts)
            .build();
        DynamoStore {
            client: Client::from_conf(config),
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Every item of a partition, through all pages.
    pub(crate) async fn partition(&self, pk: String) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&pk))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

impl Directory for DynamoStore {
    async fn api_keys_of(&self, username: &str) -> Result<Vec<ApiKey>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :key)")
            .expression_attribute_values(":pk", s(user_pk(username)))
            .expression_attribute_values(":key", s("KEY#"))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        out.items().iter().map(key_from_item).collect()
    }

    async fn project(&self, domain: &str) -> Result<Option<Project>, StoreError> {
        let items = self.partition(project_pk(domain)).await?;
        let Some(meta) = items
            .iter()
            .find(|i| opt_s(i, SK).as_deref() == Some(PROJECT_SK))
        else {
            return Ok(None);
        };
        let plan: Plan = get_s(meta, "plan")?
            .parse()
            .map_err(|_| StoreError::Malformed("plan".into()))?;
        let apps = items
            .iter()
            .filter(|i| opt_s(i, SK).is_some_and(|sk| sk.starts_with("APP#")))
            .map(app_from_item)
            .collect::<Result<_, _>>()?;
        let allowed_countries = match meta.get("allowed_countries") {
            Some(AttributeValue::L(codes)) => Some(
                codes
                    .iter()
                    .filter_map(|c| c.as_s().ok().cloned())
                    .collect(),
            ),
            _ => None,
        };
        let daily_invitation_limit = match opt_n(meta, "daily_invitation_limit")? {
            Some(n) => u32::try_from(n)
                .map_err(|_| StoreError::Malformed("daily_invitation_limit".into()))?,
            None => DEFAULT_DAILY_INVITATION_LIMIT,
        };
        Ok(Some(Project {
            name: domain.to_owned(),
            display_name: opt_s(meta, "display_name"),
            plan,
            registration_enabled: get_bool(meta, "registration_enabled"),
            apps,
            allowed_countries,
            daily_invitation_limit,
        }))
    }
}

impl InvitationStore for DynamoStore {
    type Previous = Item;

    async fn claim(
        &self,
        invitation: &Invitation,
        rules: ClaimRules<'_>,
    ) -> Result<Claim<Item>, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(registration_item(invitation)))
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#domain", "domain")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":queued", s("queued"))
            .expression_attribute_values(":failed", s("failed"))
            .expression_attribute_values(":opted_out", s("opted_out"))
            .expression_attribute_values(":domain", s(rules.domain))
            .expression_attribute_values(":now", n(rules.now))
            .return_values(ReturnValue::AllOld)
            // The holder's status comes back with the refusal, for the log, in one call.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let holder = match result {
            Ok(out) => {
                return Ok(Claim::Taken {
                    previous: out.attributes.filter(|item| !item.is_empty()),
                });
            }
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refusal)) => {
                    refusal.item().cloned().filter(|i| !i.is_empty())
                }
                _ => return Err(store_error(&error)),
            },
        };
        // The holder comes back with the refusal (moto may leave it out: read it then).
        let holder = match holder {
            Some(item) => Some(item),
            None => {
                self.item(phone_pk(invitation.phone.as_str()), REGISTRATION_SK)
                    .await?
            }
        };
        let Some(holder) = holder else {
            return Ok(Claim::InUse);
        };
        let record = registration_from_item(&holder)?;
        if record.token == invitation.token {
            // Our own claim: applied, its answer lost, and the SDK's retry refused by it.
            // What it replaced came back with the lost answer only: it counts as nothing
            // (should this claim be undone, the number is freed rather than put back).
            warn!("claim found applied by its own earlier attempt");
            return Ok(Claim::Taken { previous: None });
        }
        tracing::debug!(holder = record.status.as_str(), "claim refused");
        let in_use = match record.claim_check(rules) {
            ClaimCheck::InUse => true,
            // A stale claim made before batches were recorded, or a record that changed
            // between the refusal and the read.
            ClaimCheck::Claimable => false,
            ClaimCheck::UnlessQueued => self.batch_queued(&record).await?,
        };
        if in_use {
            return Ok(Claim::InUse);
        }
        // Taken over, if the record is still the one judged.
        let mut same = "#token = :token AND #status = :status".to_owned();
        if record.enqueued_at.is_none() {
            same.push_str(" AND attribute_not_exists(enqueued_at)");
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(registration_item(invitation)))
            .condition_expression(same)
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(record.token.as_str()))
            .expression_attribute_values(":status", s(record.status.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let ours = match result {
            Ok(_) => true,
            // Refused by our own write (its answer lost), or by someone else's.
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refusal)) => refusal
                    .item()
                    .and_then(|i| opt_s(i, TOKEN))
                    .is_some_and(|t| t == invitation.token.as_str()),
                _ => return Err(store_error(&error)),
            },
        };
        Ok(if ours {
            Claim::Taken {
                previous: Some(holder),
            }
        } else {
            Claim::InUse
        })
    }

    async fn record_batch(&self, batch: &BatchRecord) -> Result<(), StoreError> {
        // An update, not a put: the sender may already count the batch's first SMS. Set,
        // never added, so that a retry after a lost answer changes nothing; in a
        // transaction, as every write to the batch's counters is (see `write`).
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(batch_pk(&batch.id)))
            .key(SK, s(BATCH_SK))
            .expression_attribute_names("#domain", "domain")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":kind", s("batch"))
            .expression_attribute_values(":domain", s(&batch.domain))
            .expression_attribute_values(":at", n(batch.queued_at))
            .expression_attribute_values(":ttl", n(batch.expires_at))
            .expression_attribute_values(":count", n(batch.queued.len() as u64));
        let set = "SET kind = :kind, #domain = :domain, queued_at = :at, #ttl = :ttl, \
                   queued_count = :count";
        update = if batch.queued.is_empty() {
            update.update_expression(set)
        } else {
            update
                .update_expression(format!("{set} ADD queued :tokens"))
                .expression_attribute_values(":tokens", AttributeValue::Ss(batch.queued.clone()))
        };
        let update = update.build().expect("update has its required fields");
        self.transact_or_fail(vec![TransactWriteItem::builder().update(update).build()])
            .await?;
        Ok(())
    }

    fn encode_previous(&self, previous: &Item) -> serde_json::Value {
        item_to_json(previous)
    }

    async fn release(
        &self,
        invitation: &Invitation,
        previous: Option<Item>,
    ) -> Result<(), StoreError> {
        let phone = invitation.phone.as_str();
        let token = s(invitation.token.as_str());
        // Someone else's claim may have replaced ours meanwhile: theirs stays. Ours, once
        // no longer queued (its SMS went out after all, the worker registered), stays too.
        let still_ours = "#token = :token AND #status = :queued";
        match previous {
            Some(previous) => ok_unless_lost(
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(previous))
                    .condition_expression(still_ours)
                    .expression_attribute_names("#token", TOKEN)
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":token", token)
                    .expression_attribute_values(":queued", s("queued"))
                    .send()
                    .await,
            ),
            None => ok_unless_lost(
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key(PK, s(phone_pk(phone)))
                    .key(SK, s(REGISTRATION_SK))
                    .condition_expression(still_ours)
                    .expression_attribute_names("#token", TOKEN)
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":token", token)
                    .expression_attribute_values(":queued", s("queued"))
                    .send()
                    .await,
            ),
        }
    }

    async fn find(
        &self,
        phone: &crate::domain::PhoneNumber,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        self.item(phone_pk(phone.as_str()), REGISTRATION_SK)
            .await?
            .as_ref()
            .map(registration_from_item)
            .transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<InvitationPage, StoreError> {
        match query.status {
            None => self.list_all(query).await,
            Some(status) => self.list_by_status(query, status).await,
        }
    }
}

/// The stored statuses a shown status is made of, and which side of `now` their expiry
/// lies (`Some(true)`: still live, `Some(false)`: expired, `None`: either).
fn status_partitions(status: ShownStatus) -> (&'static [RegistrationStatus], Option<bool>) {
    use RegistrationStatus as S;
    match status {
        ShownStatus::Queued => (&[S::Queued], Some(true)),
        ShownStatus::Pending => (&[S::Pending], Some(true)),
        ShownStatus::Expired => (&[S::Queued, S::Pending], Some(false)),
        ShownStatus::Registered => (&[S::Registered], None),
        ShownStatus::Failed => (&[S::Failed], None),
        ShownStatus::OptedOut => (&[S::OptedOut], None),
    }
}

impl DynamoStore {
    /// A page of every invitation of the project, newest first: one query of the project's
    /// index.
    async fn list_all(&self, query: &ListQuery) -> Result<InvitationPage, StoreError> {
        let partition = invites_pk(&query.domain);
        // A position in the project's own partition: the partition always comes from the
        // project, so no cursor can reach another project's invitations.
        let start = query.after.as_ref().map(|after| {
            Item::from([
                (GSI1_PK.into(), s(&partition)),
                (
                    GSI1_SK.into(),
                    s(format!("{:012}#{}", after.created_at, after.phone)),
                ),
                (PK.into(), s(phone_pk(&after.phone))),
                (SK.into(), s(REGISTRATION_SK)),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INVITES_INDEX)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(&partition))
            .scan_index_forward(false)
            .limit(i32::try_from(query.limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let items = out
            .items()
            .iter()
            .map(registration_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InvitationPage::of(items, has_more(&out.last_evaluated_key)))
    }

    /// A page of the project's invitations in one status, from the status index: one query
    /// per stored status it is made of (two for `expired`), never more, whatever the size
    /// of the project, since the key condition (not a filter) selects what is returned.
    async fn list_by_status(
        &self,
        query: &ListQuery,
        status: ShownStatus,
    ) -> Result<InvitationPage, StoreError> {
        let (stored, live) = status_partitions(status);
        // Expired: `expires_at <= now`; every sort key of an expiry of `now` or before
        // sorts below this one, every later one above.
        let now_key = format!("{:012}#~", query.now);
        let after_key = query
            .after
            .as_ref()
            .map(|after| status_sk(after.expires_at, &after.phone));
        if live == Some(true) && after_key.as_ref().is_some_and(|k| *k < now_key) {
            // The rest of a live listing expired since the last page.
            return Ok(InvitationPage {
                items: Vec::new(),
                next: None,
            });
        }
        let limit = i32::try_from(query.limit).unwrap_or(i32::MAX);
        let queries = stored.iter().map(|&stored_status| {
            let partition = status_pk(&query.domain, stored_status);
            let start = query
                .after
                .as_ref()
                .zip(after_key.as_ref())
                .map(|(after, key)| {
                    Item::from([
                        (GSI3_PK.into(), s(&partition)),
                        (GSI3_SK.into(), s(key)),
                        (PK.into(), s(phone_pk(&after.phone))),
                        (SK.into(), s(REGISTRATION_SK)),
                    ])
                });
            let condition = match live {
                None => "gsi3pk = :pk",
                Some(true) => "gsi3pk = :pk AND gsi3sk > :now",
                Some(false) => "gsi3pk = :pk AND gsi3sk < :now",
            };
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_INDEX)
                .key_condition_expression(condition)
                .expression_attribute_values(":pk", s(partition))
                .scan_index_forward(false)
                .limit(limit)
                .set_exclusive_start_key(start);
            if live.is_some() {
                request = request.expression_attribute_values(":now", s(&now_key));
            }
            request.send()
        });
        let outs = futures::future::try_join_all(queries)
            .await
            .map_err(|e| store_error(&e))?;
        let mut more = false;
        let mut items = Vec::new();
        for out in &outs {
            more |= has_more(&out.last_evaluated_key);
            for item in out.items() {
                items.push(registration_from_item(item)?);
            }
        }
        items.sort_by(|a, b| query.order_of(b).cmp(&query.order_of(a)));
        more |= items.len() > query.limit;
        items.truncate(query.limit);
        Ok(InvitationPage::of(items, more))
    }
}

/// Whether a query stopped before the end of what it selects.
fn has_more(last_evaluated_key: &Option<Item>) -> bool {
    last_evaluated_key.as_ref().is_some_and(|k| !k.is_empty())
}

fn is_condition_failure<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    error.code() == Some("ConditionalCheckFailedException")
}

/// A conditional write: `true` when written, `false` when its condition refused it.
pub(crate) fn written<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(store_error(&e)),
    }
}

/// For writes conditioned on still owning an item (a token, a lease): losing it to a newer
/// write is not an error, there is simply nothing of ours left to change.
pub(crate) fn ok_unless_lost<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<(), StoreError>
where
    E: ProvideErrorMetadata,
{
    written(result).map(|_| ())
}

impl DynamoStore {
    /// One item, read consistently.
    pub(crate) async fn item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&e))?
            .item)
    }

    /// Whether a queued claim's job reached the queue, by its batch's record.
    pub(crate) async fn batch_queued(
        &self,
        record: &RegistrationRecord,
    ) -> Result<bool, StoreError> {
        let Some(batch) = &record.batch_id else {
            return Ok(false);
        };
        let item = self.item(batch_pk(batch), BATCH_SK).await?;
        Ok(item.is_some_and(|batch| match batch.get("queued") {
            Some(AttributeValue::Ss(tokens)) => tokens.iter().any(|t| t == record.token.as_str()),
            _ => false,
        }))
    }
}

impl DailyQuota for DynamoStore {
    async fn reserve(
        &self,
        domain: &str,
        day: &str,
        count: u32,
        limit: u32,
    ) -> Result<bool, StoreError> {
        if count == 0 {
            return Ok(true);
        }
        if count > limit {
            return Ok(false);
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(usage_pk(domain)))
            .key(SK, s(day_sk(day)))
            // One atomic add, refused if it would pass the limit; in a transaction, whose
            // token makes a retry after a lost answer add nothing more.
            .update_expression("ADD invitations :n SET #ttl = if_not_exists(#ttl, :ttl)")
            .condition_expression("attribute_not_exists(invitations) OR invitations <= :room")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":n", n_u32(count))
            .expression_attribute_values(":room", n_u32(limit - count))
            .expression_attribute_values(":ttl", n(usage_expiry(day)))
            .build()
            .expect("update has its required fields");
        Ok(matches!(
            self.transact_or_fail(vec![TransactWriteItem::builder().update(update).build()])
                .await?,
            write::Transacted::Written
        ))
    }

    async fn refund(&self, domain: &str, day: &str, count: u32) -> Result<(), StoreError> {
        if count == 0 {
            return Ok(());
        }
        self.transact_or_fail(vec![self.add_to_usage_item(
            domain,
            day,
            "invitations",
            -i64::from(count),
        )])
        .await?;
        Ok(())
    }
}

fn n_u32(v: u32) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A project's day of counts (`YYYY-MM-DD`) is kept `USAGE_DAYS` for `smsreg-admin usage`,
/// then TTL may drop it.
pub(crate) fn usage_expiry(day: &str) -> u64 {
    crate::domain::time::day_start(day).map_or(0, |start| start + delivery::USAGE_DAYS * 86_400)
}

impl IdempotencyStore for DynamoStore {
    async fn begin(
        &self,
        domain: &str,
        key: &str,
        request_hash: &str,
        now: u64,
        lease_for: u64,
        expires_after: u64,
    ) -> Result<IdempotencyBegin, StoreError> {
        let lease = Token::generate().as_str().to_owned();
        let expires_at = now + expires_after;
        let item = Item::from([
            (PK.into(), s(idempotency_pk(domain))),
            (SK.into(), s(idempotency_sk(key))),
            ("kind".into(), s("idempotency")),
            ("request_hash".into(), s(request_hash)),
            ("state".into(), s("running")),
            ("lease".into(), s(&lease)),
            ("lease_until".into(), n(now + lease_for)),
            ("expires_at".into(), n(expires_at)),
            (TTL.into(), n(expires_at)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Expiry is decided here, by the clock, not by when TTL deletes. A run whose
            // lease ran out is not taken over: its outcome is unknown (see below).
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let existing = match result {
            Ok(_) => return Ok(IdempotencyBegin::Proceed { lease }),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refusal)) => {
                    refusal.item().cloned()
                }
                _ => return Err(store_error(&e)),
            },
        };
        let existing = match existing {
            Some(item) => Some(item),
            None => {
                self.item(idempotency_pk(domain), &idempotency_sk(key))
                    .await?
            }
        };
        let Some(existing) = existing else {
            // Abandoned between the write and the read: the caller may simply retry.
            return Ok(IdempotencyBegin::InProgress);
        };
        if opt_s(&existing, "lease").as_deref() == Some(lease.as_str()) {
            // Our own record: applied, its answer lost, the SDK's retry refused by it.
            return Ok(IdempotencyBegin::Proceed { lease });
        }
        if opt_s(&existing, "request_hash").as_deref() != Some(request_hash) {
            return Ok(IdempotencyBegin::Mismatch);
        }
        if opt_s(&existing, "state").as_deref() == Some("done") {
            let status = get_n(&existing, "status")?;
            return Ok(IdempotencyBegin::Replay(StoredResponse {
                status: u16::try_from(status)
                    .map_err(|_| StoreError::Malformed("status".into()))?,
                body: get_s(&existing, "body")?,
            }));
        }
        if get_n(&existing, "lease_until")? <= now {
            return Ok(IdempotencyBegin::Unknown);
        }
        Ok(IdempotencyBegin::InProgress)
    }

    async fn complete(
        &self,
        domain: &str,
        key: &str,
        lease: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(idempotency_pk(domain)))
            .key(SK, s(idempotency_sk(key)))
            .update_expression("SET #state = :done, #status = :status, body = :body")
            .condition_expression("lease = :lease")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":status", n(u64::from(response.status)))
            .expression_attribute_values(":body", s(&response.body))
            .expression_attribute_values(":lease", s(lease))
            .send()
            .await;
        ok_unless_lost(result)
    }

    async fn abandon(&self, domain: &str, key: &str, lease: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(idempotency_pk(domain)))
            .key(SK, s(idempotency_sk(key)))
            .condition_expression("lease = :lease")
            .expression_attribute_values(":lease", s(lease))
            .send()
            .await;
        ok_unless_lost(result)
    }
}

impl InboundLog for DynamoStore {
    async fn first_time(&self, message_id: &str, now: u64) -> Result<bool, StoreError> {
        // `attempt`: a retry that finds this very write applied (its answer lost) knows it
        // as its own, and the reply is handled rather than skipped as a duplicate.
        let attempt = Token::generate();
        // Kept a week: SNS redeliveries come within hours.
        let item = Item::from([
            (PK.into(), s(format!("INBOUND#{message_id}"))),
            (SK.into(), s("INBOUND")),
            ("kind".into(), s("inbound_sms")),
            ("received_at".into(), n(now)),
            ("attempt".into(), s(attempt.as_str())),
            (TTL.into(), n(now + 7 * 86_400)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let existing = match result {
            Ok(_) => return Ok(true),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refusal)) => {
                    match refusal.item().filter(|i| !i.is_empty()) {
                        Some(item) => Some(item.clone()),
                        None => {
                            self.item(format!("INBOUND#{message_id}"), "INBOUND")
                                .await?
                        }
                    }
                }
                _ => return Err(store_error(&error)),
            },
        };
        Ok(existing.is_some_and(|e| opt_s(&e, "attempt").as_deref() == Some(attempt.as_str())))
    }

    async fn may_answer(
        &self,
        token: &str,
        day: &str,
        message_id: &str,
        cap: usize,
    ) -> Result<bool, StoreError> {
        // One item per invitation and day: the set of replies answered. Adding to a set is
        // idempotent, so a retry after a lost answer (or the same reply again) passes by
        // `contains` and changes nothing.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(format!("ANSWERS#{token}")))
            .key(SK, s(day_sk(day)))
            .update_expression("ADD replies :id SET #ttl = if_not_exists(#ttl, :ttl)")
            .condition_expression(
                "attribute_not_exists(replies) OR size(replies) < :cap OR contains(replies, :reply)",
            )
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":id", AttributeValue::Ss(vec![message_id.to_owned()]))
            .expression_attribute_values(":reply", s(message_id))
            .expression_attribute_values(":cap", n(cap as u64))
            // Needed for its day only.
            .expression_attribute_values(
                ":ttl",
                n(crate::domain::time::day_start(day).unwrap_or(0) + 2 * 86_400),
            )
            .send()
            .await;
        written(result)
    }

    async fn forget(&self, message_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(format!("INBOUND#{message_id}")))
            .key(SK, s("INBOUND"))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }
}

impl WorkerStore for DynamoStore {
    async fn set_phone_type(
        &self,
        invitation: &RegistrationRecord,
        phone_type: crate::domain::invitation::PhoneType,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(phone_pk(invitation.phone.as_str())))
            .key(SK, s(REGISTRATION_SK))
            .update_expression("SET phone_type = :type")
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_values(":type", s(phone_type.as_str()))
            .expression_attribute_values(":token", s(invitation.token.as_str()))
            .send()
            .await;
        ok_unless_lost(result)
    }

    async fn invitation_by_token(
        &self,
        token: &str,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(TOKEN_INDEX)
            .key_condition_expression("#token = :token")
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_values(":token", s(token))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        out.items()
            .iter()
            .find(|item| opt_s(item, SK).as_deref() == Some(REGISTRATION_SK))
            .map(registration_from_item)
            .transpose()
    }

    async fn register(
        &self,
        invitation: &RegistrationRecord,
        worker: &Worker,
    ) -> Result<RegisterOutcome, StoreError> {
        let create_account = Put::builder()
            .table_name(&self.table)
            .set_item(Some(worker_item(worker)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("put has its required fields");
        let complete_invitation = Update::builder()
            .table_name(&self.table)
            .key(PK, s(phone_pk(invitation.phone.as_str())))
            .key(SK, s(REGISTRATION_SK))
            .update_expression(
                "SET #status = :registered, gsi3pk = :in_registered, registered_at = :now, \
                 username = :username REMOVE #ttl",
            )
            .condition_expression(
                "#token = :token AND (#status = :queued OR #status = :pending) AND expires_at > :now",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":registered", s("registered"))
            .expression_attribute_values(
                ":in_registered",
                s(status_pk(&invitation.domain, RegistrationStatus::Registered)),
            )
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":queued", s("queued"))
            .expression_attribute_values(":now", n(worker.registered_at))
            .expression_attribute_values(":username", s(&worker.username))
            .expression_attribute_values(":token", s(invitation.token.as_str()))
            .build()
            .expect("update has its required fields");
        let mut items = vec![
            TransactWriteItem::builder().put(create_account).build(),
            TransactWriteItem::builder()
                .update(complete_invitation)
                .build(),
        ];
        // Counted in its batch in the same transaction: once, exactly.
        if let Some(batch) = &invitation.batch_id {
            items.push(self.count_in_batch_item(batch, "registered"));
        }
        // Only a failed condition says something about the data: on the invitation, it
        // changed; on the account, the username is taken. Cancelled at every try by
        // transactions in flight on the same items: nothing was stored, try again.
        Ok(match self.transact(items).await? {
            write::Transacted::Written => RegisterOutcome::Registered,
            refused if refused.refused_at(1) => RegisterOutcome::InvitationChanged,
            write::Transacted::Refused(_) => RegisterOutcome::UsernameTaken,
            write::Transacted::Busy => RegisterOutcome::TryAgain,
        })
    }
}
