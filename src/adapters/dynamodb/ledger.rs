//! The sender's record of each job in the table: a lease against two deliveries of one job
//! sending at once, and per SMS that it went out. An invitation's job keeps both on the
//! invitation (`lease_until`, `sent_parts`, `last_sms_at`, in ms); any other job on an
//! item of its own (`JOB#id`), kept four days (SQS's retention).

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::item::*;
use super::write::Transacted;
use super::{DynamoStore, store_error};
use crate::domain::RegistrationStatus;
use crate::domain::event::{InvitationRef, OrgEvent};
use crate::domain::job::{JobKind, SmsJob};
use crate::domain::time::utc_day;
use crate::ports::{RateSlots, SendLedger, SendStart, SentSms, SlotTake, StoreError};

const JOB_SK: &str = "JOB";
/// How long a message job's record is kept: as long as SQS keeps the job.
const JOB_RECORD_SECONDS: u64 = 4 * 86_400;

fn job_pk(id: &str) -> String {
    format!("JOB#{id}")
}

/// Why an invitation's job is not wanted, from the record as it is (the domain's rule,
/// then whether every SMS already went out); `Busy` when it is wanted but leased.
fn why_not_wanted(job: &SmsJob, token: &str, record: Option<&Item>, now_s: u64) -> SendStart {
    let Some(record) = record else {
        return SendStart::Drop("released");
    };
    let refusal = match registration_from_item(record) {
        Ok(invitation) => invitation.refuses_job(token, now_s),
        Err(_) => Some("malformed record"),
    };
    if let Some(why) = refusal {
        return SendStart::Drop(why);
    }
    if sent_parts(record) >= job.texts.len() {
        return SendStart::Drop("already sent");
    }
    SendStart::Busy
}

fn sent_parts(record: &Item) -> usize {
    opt_n(record, "sent_parts").ok().flatten().unwrap_or(0) as usize
}

impl DynamoStore {
    fn job_update(&self, job: &SmsJob) -> UpdateItemFluentBuilder {
        let update = self.client.update_item().table_name(self.table());
        match &job.kind {
            JobKind::Invitation { token, .. } => update
                .key(PK, s(phone_pk(job.phone.as_str())))
                .key(SK, s(REGISTRATION_SK))
                .expression_attribute_names("#token", TOKEN)
                .expression_attribute_values(":token", s(token)),
            JobKind::Message => update.key(PK, s(job_pk(&job.id))).key(SK, s(JOB_SK)),
        }
    }

    /// The record of a job as a refused write brought it back, or as it is now.
    async fn job_record(
        &self,
        job: &SmsJob,
        refused: Option<&Item>,
    ) -> Result<Option<Item>, StoreError> {
        let (pk, sk) = job_key(job);
        self.refused_item(refused, pk, sk).await
    }
}

/// The delivery holds the lease and `sent_parts` is `part`: the SMS before it went out,
/// this one not yet. (A retry of this very write is refused, and knows it by `sent_by`.)
fn at_part(part: usize) -> &'static str {
    if part == 0 {
        "lease_owner = :me AND attribute_not_exists(sent_parts)"
    } else {
        "lease_owner = :me AND sent_parts = :part"
    }
}

impl SendLedger for DynamoStore {
    async fn begin_send(
        &self,
        job: &SmsJob,
        delivery: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<SendStart, StoreError> {
        let now_s = now_ms / 1000;
        let free = "(attribute_not_exists(lease_until) OR lease_until <= :now_ms OR \
                    lease_owner = :me) AND \
                    (attribute_not_exists(sent_parts) OR sent_parts < :parts)";
        let mut update = self
            .job_update(job)
            .expression_attribute_values(":me", s(delivery))
            .expression_attribute_values(":until", n(now_ms + lease_ms))
            .expression_attribute_values(":now_ms", n(now_ms))
            .expression_attribute_values(":parts", n(job.texts.len() as u64))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = match &job.kind {
            JobKind::Invitation { .. } => update
                // The sender took it: its job is on the queue, whatever the API recorded.
                .update_expression(
                    "SET lease_until = :until, lease_owner = :me, \
                     enqueued_at = if_not_exists(enqueued_at, :now_s)",
                )
                .condition_expression(format!(
                    "#token = :token AND (#status = :queued OR #status = :pending) AND \
                     expires_at > :now_s AND {free}"
                ))
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":queued", s("queued"))
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":now_s", n(now_s)),
            JobKind::Message => update
                .update_expression(
                    "SET lease_until = :until, lease_owner = :me, #ttl = if_not_exists(#ttl, :ttl)",
                )
                .condition_expression(free)
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":ttl", n(now_s + JOB_RECORD_SECONDS)),
        };
        let refused = match update.send().await {
            Ok(out) => {
                let record = out.attributes.unwrap_or_default();
                return Ok(SendStart::Go {
                    sent: sent_parts(&record),
                    last_sms_ms: opt_n(&record, "last_sms_at")?,
                });
            }
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refusal)) => {
                    refusal.item().cloned()
                }
                _ => return Err(store_error(&error)),
            },
        };
        let record = self.job_record(job, refused.as_ref()).await?;
        Ok(match &job.kind {
            JobKind::Invitation { token, .. } => why_not_wanted(job, token, record.as_ref(), now_s),
            JobKind::Message => match record {
                Some(r) if sent_parts(&r) >= job.texts.len() => SendStart::Drop("already sent"),
                _ => SendStart::Busy,
            },
        })
    }

    async fn record_sent(
        &self,
        job: &SmsJob,
        delivery: &str,
        part: usize,
        now_ms: u64,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        let last = part + 1 >= job.texts.len();
        let end_lease = if last {
            " REMOVE lease_until, lease_owner"
        } else {
            ""
        };
        let (pk, sk) = job_key(job);
        let mut update = Update::builder()
            .table_name(self.table())
            .key(PK, s(pk))
            .key(SK, s(sk))
            .expression_attribute_values(":me", s(delivery))
            .expression_attribute_values(":next", n(part as u64 + 1))
            .expression_attribute_values(":now_ms", n(now_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if part > 0 {
            update = update.expression_attribute_values(":part", n(part as u64));
        }
        let sms = SentSms::of(job, part, now_ms, message_id);
        // `sent_by`: a retry that finds this very write applied knows it as its own.
        update = match &job.kind {
            JobKind::Invitation { token, .. } => update
                .update_expression(format!(
                    "SET sent_parts = :next, last_sms_at = :now_ms, sent_by = :me, \
                     #status = :pending, gsi3pk = :in_pending, \
                     sent_at = if_not_exists(sent_at, :now_s) \
                     ADD parts_sent :sms_parts{end_lease}"
                ))
                .expression_attribute_values(":sms_parts", n(sms.sms_parts as u64))
                // Never over a registration made meanwhile, nor a newer invitation.
                .condition_expression(format!(
                    "#token = :token AND (#status = :queued OR #status = :pending) AND {}",
                    at_part(part)
                ))
                .expression_attribute_names("#token", TOKEN)
                .expression_attribute_values(":token", s(token))
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":queued", s("queued"))
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(
                    ":in_pending",
                    s(status_pk(&job.domain, RegistrationStatus::Pending)),
                )
                .expression_attribute_values(":now_s", n(now_ms / 1000)),
            JobKind::Message => update
                .update_expression(format!(
                    "SET sent_parts = :next, last_sms_at = :now_ms, sent_by = :me{end_lease}"
                ))
                .condition_expression(at_part(part)),
        };
        // The SMS, its message id (for its receipt) and the counts it moves, all or
        // nothing: a retried delivery never counts an SMS twice, nor one not recorded.
        let mut items = vec![
            TransactWriteItem::builder()
                .update(update.build().expect("update has its required fields"))
                .build(),
            self.sms_item(&sms),
            self.count_sms_sent_item(&sms),
        ];
        if sms.token.is_some()
            && let Some(batch) = &sms.batch_id
        {
            items.push(self.count_sent_in_batch_item(batch, &sms));
        }
        Ok(match self.transact_or_fail(items).await? {
            Transacted::Written => true,
            // Refused: unless the record shows this very write (its answer lost, and the
            // retry's token no longer known), the job is no longer ours to send.
            Transacted::Refused(old) => old.first().and_then(Option::as_ref).is_some_and(|r| {
                opt_s(r, "sent_by").as_deref() == Some(delivery) && sent_parts(r) > part
            }),
            Transacted::Busy => unreachable!("transact_or_fail never answers Busy"),
        })
    }

    async fn end_send(
        &self,
        job: &SmsJob,
        delivery: &str,
        failed: bool,
    ) -> Result<u32, StoreError> {
        // `released_by`: a retry that finds this very write applied knows it as its own,
        // and reads the failures it counted.
        let expression = if failed {
            "SET released_by = :me ADD send_failures :one REMOVE lease_until, lease_owner"
        } else {
            "SET released_by = :me REMOVE lease_until, lease_owner"
        };
        let mut update = self
            .job_update(job)
            .update_expression(expression)
            .expression_attribute_values(":me", s(delivery))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if failed {
            update = update.expression_attribute_values(":one", n(1));
        }
        let update = match job.kind {
            JobKind::Invitation { .. } => {
                update.condition_expression("#token = :token AND lease_owner = :me")
            }
            JobKind::Message => update.condition_expression("lease_owner = :me"),
        };
        let record = match update.send().await {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refusal)) => {
                    match self.job_record(job, refusal.item()).await? {
                        Some(r) if opt_s(&r, "released_by").as_deref() == Some(delivery) => r,
                        // The lease was lost to another delivery: nothing of ours to end.
                        _ => return Ok(0),
                    }
                }
                _ => return Err(store_error(&error)),
            },
        };
        Ok(opt_n(&record, "send_failures")?.unwrap_or(0) as u32)
    }

    async fn settle_dropped(&self, job: &SmsJob) -> Result<(), StoreError> {
        let JobKind::Invitation {
            token,
            batch_id: Some(batch),
            ..
        } = &job.kind
        else {
            return Ok(());
        };
        self.transact_or_fail(vec![self.settle_in_batch_item(batch, None, token)])
            .await?;
        Ok(())
    }

    async fn fail_job(&self, job: &SmsJob, reason: &str, now: u64) -> Result<bool, StoreError> {
        let JobKind::Invitation {
            token,
            previous,
            batch_id,
            created_at,
        } = &job.kind
        else {
            return Ok(false);
        };
        // The invitation it replaced is put back when the worker holds a link from it
        // (sent, unexpired); otherwise this one stays, `failed`, which frees the number.
        let restore = previous.as_ref().and_then(item_from_json).filter(|p| {
            crate::domain::invitation::restorable(
                opt_s(p, "status")
                    .as_deref()
                    .and_then(RegistrationStatus::parse),
                opt_n(p, "expires_at").ok().flatten().unwrap_or(0),
                now,
            )
        });
        // Only while queued: once the first SMS went out the worker holds the link, and a
        // later SMS failing (the install link) does not take it away.
        let still_queued = "#token = :token AND #status = :queued";
        let change = match restore {
            Some(previous) => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(self.table())
                        .set_item(Some(previous))
                        .condition_expression(still_queued)
                        .expression_attribute_names("#token", TOKEN)
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":token", s(token))
                        .expression_attribute_values(":queued", s("queued"))
                        .build()
                        .expect("put has its required fields"),
                )
                .build(),
            None => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(self.table())
                        .key(PK, s(phone_pk(job.phone.as_str())))
                        .key(SK, s(REGISTRATION_SK))
                        .update_expression(
                            "SET #status = :failed, gsi3pk = :in_failed, \
                             failure_reason = :reason, failed_at = :now \
                             REMOVE lease_until, lease_owner",
                        )
                        .condition_expression(still_queued)
                        .expression_attribute_names("#token", TOKEN)
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":token", s(token))
                        .expression_attribute_values(":queued", s("queued"))
                        .expression_attribute_values(":failed", s("failed"))
                        .expression_attribute_values(
                            ":in_failed",
                            s(status_pk(&job.domain, RegistrationStatus::Failed)),
                        )
                        .expression_attribute_values(":reason", s(reason))
                        .expression_attribute_values(":now", n(now))
                        .build()
                        .expect("update has its required fields"),
                )
                .build(),
        };
        // The failure, its count in the batch and the day's invitation given back, all or
        // nothing: counted once, whatever the answers did on the way.
        let mut items = vec![
            change,
            self.add_to_usage_item(&job.domain, &utc_day(*created_at), "invitations", -1),
        ];
        if let Some(batch) = batch_id {
            items.push(self.settle_in_batch_item(batch, Some("send_failed"), token));
        }
        let invitation = InvitationRef {
            project: &job.domain,
            token,
            batch_id: batch_id.as_deref(),
            phone: &job.phone,
        };
        items.push(self.outbox_put(&OrgEvent::invitation_failed(invitation, reason, now)));
        Ok(matches!(
            self.transact_or_fail(items).await?,
            Transacted::Written
        ))
    }
}

/// The record of a job: its invitation, or its own item.
fn job_key(job: &SmsJob) -> (String, &'static str) {
    match job.kind {
        JobKind::Invitation { .. } => (phone_pk(job.phone.as_str()), REGISTRATION_SK),
        JobKind::Message => (job_pk(&job.id), JOB_SK),
    }
}

/// The one item per pace (`RATE#sms`, ...) every sender instance takes its slots from.
const RATE_SK: &str = "RATE";

impl RateSlots for DynamoStore {
    async fn take_slot(
        &self,
        name: &str,
        expected: Option<u64>,
        next: u64,
    ) -> Result<SlotTake, StoreError> {
        let rate_pk = format!("RATE#{name}");
        // `taken_by`: a retry that finds this very write applied (its answer lost) takes
        // the slot as its own, rather than as moved by another instance.
        let me = SmsJob::new_id();
        let update = self
            .client
            .update_item()
            .table_name(self.table())
            .key(PK, s(&rate_pk))
            .key(SK, s(RATE_SK))
            .update_expression("SET next_us = :next, taken_by = :me")
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":me", s(&me))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let update = match expected {
            None => update.condition_expression("attribute_not_exists(next_us)"),
            Some(expected) => update
                .condition_expression("next_us = :expected")
                .expression_attribute_values(":expected", n(expected)),
        };
        match update.send().await {
            Ok(_) => Ok(SlotTake::Taken),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refusal)) => {
                    let current = self.refused_item(refusal.item(), rate_pk, RATE_SK).await?;
                    let Some(current) = current else {
                        return Ok(SlotTake::Moved(None));
                    };
                    if opt_s(&current, "taken_by").as_deref() == Some(me.as_str()) {
                        return Ok(SlotTake::Taken);
                    }
                    Ok(SlotTake::Moved(opt_n(&current, "next_us")?))
                }
                _ => Err(store_error(&error)),
            },
        }
    }
}
