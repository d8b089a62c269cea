//! What reached the phones: one item per SMS SNS accepted (`MSG#<message id>` / `MSG`),
//! found again by the message id its delivery receipt names; the counts of each batch
//! (`BATCH#<id>` / `BATCH`) and of each project's day (`USAGE#<domain>` / `DAY#<day>`).

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::item::*;
use super::write::Transacted;
use super::{DynamoStore, usage_expiry};
use crate::domain::RegistrationRecord;
use crate::domain::time::utc_day;
use crate::ports::{BatchProgress, DayUsage, DeliveryLog, ReceiptOutcome, SentSms, StoreError};

const MSG_SK: &str = "MSG";
/// How long an SMS's item waits for its receipt (SNS logs them within minutes).
const MSG_DAYS: u64 = 30;
/// How long a project's day of counts is kept (`smsreg-admin usage`).
pub const USAGE_DAYS: u64 = 400;

fn msg_pk(message_id: &str) -> String {
    format!("MSG#{message_id}")
}

impl DynamoStore {
    /// Adds one to a counter of a batch, as part of a transaction: counted exactly when
    /// what the transaction records is.
    pub(crate) fn count_in_batch_item(&self, batch_id: &str, counter: &str) -> TransactWriteItem {
        self.batch_item(batch_id, Some(counter), None)
    }

    /// Adds one to each of `counters` of a batch, as part of a transaction (which may
    /// change an item only once).
    pub(crate) fn count_all_in_batch_item(
        &self,
        batch_id: &str,
        counters: &[&str],
    ) -> TransactWriteItem {
        let mut update = Update::builder()
            .table_name(self.table())
            .key(PK, s(batch_pk(batch_id)))
            .key(SK, s(BATCH_SK))
            .expression_attribute_values(":one", n(1));
        let mut adds = Vec::new();
        for (i, counter) in counters.iter().enumerate() {
            adds.push(format!("#c{i} :one"));
            update = update.expression_attribute_names(format!("#c{i}"), *counter);
        }
        let update = update
            .update_expression(format!("ADD {}", adds.join(", ")))
            .build()
            .expect("update has its required fields");
        TransactWriteItem::builder().update(update).build()
    }

    /// Adds one to a counter of a batch (if any) and settles the invitation `token` in it,
    /// as part of a transaction. An invitation is settled once its fate is known (its first
    /// SMS sent, failed, opted out, or its job dropped unsent); a batch whose invitations
    /// are all settled is complete, which its stream record tells the events function. A
    /// set, so that settling twice (a job delivered twice) counts once.
    pub(crate) fn settle_in_batch_item(
        &self,
        batch_id: &str,
        counter: Option<&str>,
        token: &str,
    ) -> TransactWriteItem {
        self.batch_item(batch_id, counter, Some(token))
    }

    /// The update of a batch's item: one more `counter`, `settles` added to `settled`.
    fn batch_item(
        &self,
        batch_id: &str,
        counter: Option<&str>,
        settles: Option<&str>,
    ) -> TransactWriteItem {
        let mut adds = Vec::new();
        let mut update = Update::builder()
            .table_name(self.table())
            .key(PK, s(batch_pk(batch_id)))
            .key(SK, s(BATCH_SK));
        if let Some(counter) = counter {
            adds.push("#counter :one");
            update = update
                .expression_attribute_names("#counter", counter)
                .expression_attribute_values(":one", n(1));
        }
        if let Some(token) = settles {
            adds.push("settled :token");
            update = update
                .expression_attribute_values(":token", AttributeValue::Ss(vec![token.to_owned()]));
        }
        let update = update
            .update_expression(format!("ADD {}", adds.join(", ")))
            .build()
            .expect("update has its required fields");
        TransactWriteItem::builder().update(update).build()
    }

    /// Adds `by` to a counter of a project's day, as part of a transaction.
    pub(crate) fn add_to_usage_item(
        &self,
        domain: &str,
        day: &str,
        counter: &str,
        by: i64,
    ) -> TransactWriteItem {
        let (pk, sk) = Self::usage_key(domain, day);
        let update = Update::builder()
            .table_name(self.table())
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression("ADD #counter :by SET #ttl = if_not_exists(#ttl, :ttl)")
            .expression_attribute_names("#counter", counter)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
            .expression_attribute_values(":ttl", n(usage_expiry(day)))
            .build()
            .expect("update has its required fields");
        TransactWriteItem::builder().update(update).build()
    }

    /// An SMS SNS accepted, kept under its message id for its receipt.
    pub(crate) fn sms_item(&self, sms: &SentSms) -> TransactWriteItem {
        let day = utc_day(sms.sent_at);
        let mut item = Item::from([
            (PK.into(), s(msg_pk(&sms.message_id))),
            (SK.into(), s(MSG_SK)),
            ("kind".into(), s("sms")),
            ("domain".into(), s(&sms.domain)),
            ("phone".into(), s(&sms.phone)),
            ("part".into(), n(sms.part as u64)),
            ("sent_at".into(), n(sms.sent_at)),
            ("day".into(), s(&day)),
            (TTL.into(), n(sms.sent_at + MSG_DAYS * 86_400)),
        ]);
        if let Some(token) = &sms.token {
            item.insert("token".into(), s(token));
        }
        if let Some(batch) = &sms.batch_id {
            item.insert("batch_id".into(), s(batch));
        }
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .build()
            .expect("put has its required fields");
        TransactWriteItem::builder().put(put).build()
    }

    /// A receipt in its batch's counts: `counter` (for an invitation's first SMS) and the
    /// parts delivered.
    fn receipt_in_batch_item(
        &self,
        batch_id: &str,
        counter: Option<&str>,
        parts_delivered: u64,
    ) -> TransactWriteItem {
        let mut update = Update::builder()
            .table_name(self.table())
            .key(PK, s(batch_pk(batch_id)))
            .key(SK, s(BATCH_SK))
            .expression_attribute_values(":parts", n(parts_delivered));
        update = match counter {
            Some(counter) => update
                .update_expression("ADD #counter :one, parts_delivered :parts")
                .expression_attribute_names("#counter", counter)
                .expression_attribute_values(":one", n(1)),
            None => update.update_expression("ADD parts_delivered :parts"),
        };
        TransactWriteItem::builder()
            .update(update.build().expect("update has its required fields"))
            .build()
    }

    /// The day's `sms_sent` and `parts_sent`, moved by one SMS.
    pub(crate) fn count_sms_sent_item(&self, sms: &SentSms) -> TransactWriteItem {
        let day = utc_day(sms.sent_at);
        let (pk, sk) = Self::usage_key(&sms.domain, &day);
        let update = Update::builder()
            .table_name(self.table())
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression(
                "ADD sms_sent :one, parts_sent :parts SET #ttl = if_not_exists(#ttl, :ttl)",
            )
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":parts", n(sms.sms_parts as u64))
            .expression_attribute_values(":ttl", n(usage_expiry(&day)))
            .build()
            .expect("update has its required fields");
        TransactWriteItem::builder().update(update).build()
    }

    /// An invitation's SMS in its batch's counts: its parts, and for its first SMS the
    /// invitation's `sent`.
    pub(crate) fn count_sent_in_batch_item(
        &self,
        batch_id: &str,
        sms: &SentSms,
    ) -> TransactWriteItem {
        // An invitation's first SMS settles it in its batch (see `settle_in_batch_item`).
        let settles = sms.token.as_deref().filter(|_| sms.part == 0);
        let expression = match (sms.part, settles) {
            (0, Some(_)) => "ADD sent :one, parts_sent :parts, settled :token",
            (0, None) => "ADD sent :one, parts_sent :parts",
            _ => "ADD parts_sent :parts",
        };
        let mut update = Update::builder()
            .table_name(self.table())
            .key(PK, s(batch_pk(batch_id)))
            .key(SK, s(BATCH_SK))
            .update_expression(expression)
            .expression_attribute_values(":parts", n(sms.sms_parts as u64));
        if sms.part == 0 {
            update = update.expression_attribute_values(":one", n(1));
        }
        if let Some(token) = settles {
            update = update
                .expression_attribute_values(":token", AttributeValue::Ss(vec![token.to_owned()]));
        }
        TransactWriteItem::builder()
            .update(update.build().expect("update has its required fields"))
            .build()
    }

    fn usage_key(domain: &str, day: &str) -> (String, String) {
        (usage_pk(domain), day_sk(day))
    }
}

impl DeliveryLog for DynamoStore {
    async fn record_receipt(
        &self,
        receipt: &crate::domain::receipt::DeliveryReport,
        now: u64,
    ) -> Result<ReceiptOutcome, StoreError> {
        let Some(sms) = self.item(msg_pk(&receipt.message_id), MSG_SK).await? else {
            return Ok(ReceiptOutcome::Unknown);
        };
        if sms.contains_key("delivery") {
            return Ok(ReceiptOutcome::Duplicate);
        }
        let state = if receipt.delivered {
            "delivered"
        } else {
            "failed"
        };
        let part = usize::try_from(get_n(&sms, "part")?).unwrap_or(usize::MAX);
        let (token, batch) = (opt_s(&sms, "token"), opt_s(&sms, "batch_id"));
        let effects = receipt.effects(part, token.as_deref(), batch.as_deref());
        let counter = effects.counter.name();
        let mark = Update::builder()
            .table_name(self.table())
            .key(PK, s(msg_pk(&receipt.message_id)))
            .key(SK, s(MSG_SK))
            .update_expression(
                "SET delivery = :state, provider_response = :detail, price_usd = :price, \
                 dwell_ms = :dwell, receipt_at = :now",
            )
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(delivery)")
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":detail", s(&receipt.provider_response))
            .expression_attribute_values(":price", usd(receipt.price_usd))
            .expression_attribute_values(":dwell", n(receipt.dwell_ms))
            .expression_attribute_values(":now", n(now))
            .build()
            .expect("update has its required fields");
        let day = get_s(&sms, "day")?;
        let (pk, sk) = Self::usage_key(&get_s(&sms, "domain")?, &day);
        let usage = Update::builder()
            .table_name(self.table())
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression(
                "ADD #counter :one, price_usd :price, parts_delivered :parts \
                 SET #ttl = if_not_exists(#ttl, :ttl)",
            )
            .expression_attribute_names("#counter", counter)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":price", usd(receipt.price_usd))
            .expression_attribute_values(":parts", n(effects.parts_delivered))
            .expression_attribute_values(":ttl", n(usage_expiry(&day)))
            .build()
            .expect("update has its required fields");
        // The receipt and the counts it moves, all or nothing: a log batch delivered
        // again finds the receipt recorded and counts nothing twice.
        let mut items = vec![
            TransactWriteItem::builder().update(mark).build(),
            TransactWriteItem::builder().update(usage).build(),
        ];
        if let Some(batch) = effects.parts_batch {
            // One update of the batch's item: a transaction changes an item once.
            let counter = effects.batch.map(|_| counter);
            if counter.is_some() || effects.parts_delivered > 0 {
                items.push(self.receipt_in_batch_item(batch, counter, effects.parts_delivered));
            }
        }
        // The invitation shows its first SMS's receipt, under the same condition as the
        // counts: if it is still the same invitation, and only once; and it counts the
        // parts delivered of every one of its SMS.
        let on_invitation = effects
            .parts_invitation
            .map(|token| {
                let update = Update::builder()
                    .table_name(self.table())
                    .key(PK, s(phone_pk(&get_s(&sms, "phone")?)))
                    .key(SK, s(REGISTRATION_SK))
                    .expression_attribute_names("#token", TOKEN)
                    .expression_attribute_values(":token", s(token))
                    .expression_attribute_values(":parts", n(effects.parts_delivered));
                let update = if effects.invitation.is_some() {
                    update
                        .update_expression(
                            "SET delivery = :state, delivery_detail = :detail, \
                             delivery_price_usd = :price, delivery_at = :now \
                             ADD parts_delivered :parts",
                        )
                        .condition_expression("#token = :token AND attribute_not_exists(delivery)")
                        .expression_attribute_values(":state", s(state))
                        .expression_attribute_values(":detail", s(&receipt.provider_response))
                        .expression_attribute_values(":price", usd(receipt.price_usd))
                        .expression_attribute_values(":now", n(now))
                } else {
                    update
                        .update_expression("ADD parts_delivered :parts")
                        .condition_expression("#token = :token")
                };
                let update = update.build().expect("update has its required fields");
                Ok::<_, StoreError>(TransactWriteItem::builder().update(update).build())
            })
            .transpose()?;
        let counts_only = items.clone();
        if let Some(item) = on_invitation {
            items.push(item);
        }
        let with_invitation = items.len() > counts_only.len();
        let mut outcome = self.transact_or_fail(items).await?;
        if with_invitation
            && !outcome.refused_at(0)
            && let Transacted::Refused(_) = outcome
        {
            // The invitation was replaced, or already shows a receipt: the counts alone.
            outcome = self.transact_or_fail(counts_only).await?;
        }
        Ok(match outcome {
            Transacted::Written => ReceiptOutcome::Recorded,
            _ => ReceiptOutcome::Duplicate,
        })
    }

    async fn mark_opened(
        &self,
        invitation: &RegistrationRecord,
        now: u64,
    ) -> Result<(), StoreError> {
        let update = Update::builder()
            .table_name(self.table())
            .key(PK, s(phone_pk(invitation.phone.as_str())))
            .key(SK, s(REGISTRATION_SK))
            .update_expression("SET opened_at = :now")
            .condition_expression("#token = :token AND attribute_not_exists(opened_at)")
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_values(":token", s(invitation.token.as_str()))
            .expression_attribute_values(":now", n(now))
            .build()
            .expect("update has its required fields");
        // The first opening and its count in the batch, together.
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if let Some(batch) = &invitation.batch_id {
            items.push(self.count_in_batch_item(batch, "opened"));
        }
        self.transact_or_fail(items).await?;
        Ok(())
    }

    async fn batch_progress(&self, batch_id: &str) -> Result<Option<BatchProgress>, StoreError> {
        let Some(item) = self.item(batch_pk(batch_id), BATCH_SK).await? else {
            return Ok(None);
        };
        let count = |name: &str| opt_n(&item, name).map(Option::unwrap_or_default);
        let Some(domain) = opt_s(&item, "domain") else {
            // Only counts, no record of the request (it failed before recording it).
            return Ok(None);
        };
        Ok(Some(BatchProgress {
            domain,
            batch_id: batch_id.to_owned(),
            queued: count("queued_count")?,
            scheduled: count("scheduled_count")?,
            sent: count("sent")?,
            delivered: count("delivered")?,
            delivery_failed: count("delivery_failed")?,
            send_failed: count("send_failed")?,
            opted_out: count("opted_out")?,
            opened: count("opened")?,
            registered: count("registered")?,
            accounts_created: count("accounts_created")?,
            accounts_failed: count("accounts_failed")?,
            parts_sent: count("parts_sent")?,
            parts_delivered: count("parts_delivered")?,
        }))
    }

    async fn day_usage(&self, domain: &str, day: &str) -> Result<DayUsage, StoreError> {
        let (pk, sk) = Self::usage_key(domain, day);
        let Some(item) = self.item(pk, &sk).await? else {
            return Ok(DayUsage::default());
        };
        let count = |name: &str| opt_n(&item, name).map(Option::unwrap_or_default);
        Ok(DayUsage {
            invitations: count("invitations")?,
            sms_sent: count("sms_sent")?,
            parts_sent: count("parts_sent")?,
            delivered: count("delivered")?,
            delivery_failed: count("delivery_failed")?,
            parts_delivered: count("parts_delivered")?,
            price_usd: opt_usd(&item, "price_usd"),
        })
    }
}
