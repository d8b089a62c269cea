//! Opt-outs: one item per number that replied STOP, beside its registration record
//! (`PHONE#<e164>` / `OPTOUT`), so a batch of numbers is checked with one `BatchGetItem`.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::{Delete, KeysAndAttributes, Put, TransactWriteItem, Update};

use super::item::*;
use super::{DynamoStore, store_error};
use crate::domain::PhoneNumber;
use crate::domain::event::OrgEvent;
use crate::domain::invitation::RegistrationStatus;
use crate::ports::{InvitationStore, OptOuts, StoreError};

const OPT_OUT_SK: &str = "OPTOUT";
/// Rounds of `BatchGetItem` for the keys DynamoDB leaves unprocessed (throttled).
const LOOKUP_ROUNDS: usize = 4;

fn key(phone: &str) -> Item {
    Item::from([(PK.into(), s(phone_pk(phone))), (SK.into(), s(OPT_OUT_SK))])
}

impl OptOuts for DynamoStore {
    async fn opt_out(&self, phone: &PhoneNumber, now: u64, cause: &str) -> Result<(), StoreError> {
        let record = self.find(phone).await?;
        let mut item = key(phone.as_str());
        item.insert("kind".into(), s("opt_out"));
        item.insert("opted_out_at".into(), n(now));
        // The first time is kept, and told once: its event comes with it, and a number
        // already opted out changes nothing and tells nothing.
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("put has its required fields");
        let event = OrgEvent::opt_change(
            phone,
            true,
            cause,
            record.as_ref().map(|r| r.domain.as_str()),
            now,
        );
        self.transact_or_fail(vec![
            TransactWriteItem::builder().put(put).build(),
            self.outbox_put(&event),
        ])
        .await?;
        // The open invitation, if any, shows it; a registered one stays registered.
        let Some(record) = record else {
            return Ok(());
        };
        if !record.status.is_open() {
            return Ok(());
        }
        let mark = Update::builder()
            .table_name(self.table())
            .key(PK, s(phone_pk(phone.as_str())))
            .key(SK, s(REGISTRATION_SK))
            .update_expression(
                "SET #status = :opted_out, gsi3pk = :in_opted_out, opted_out_at = :now \
                 REMOVE lease_until, lease_owner",
            )
            .condition_expression("#token = :token AND (#status = :queued OR #status = :pending)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_values(":token", s(record.token.as_str()))
            .expression_attribute_values(":opted_out", s("opted_out"))
            .expression_attribute_values(
                ":in_opted_out",
                s(status_pk(&record.domain, RegistrationStatus::OptedOut)),
            )
            .expression_attribute_values(":queued", s("queued"))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":now", n(now))
            .build()
            .expect("update has its required fields");
        // The invitation's state and its count in the batch, together.
        let mut items = vec![TransactWriteItem::builder().update(mark).build()];
        if let Some(batch) = &record.batch_id {
            // Settled in its batch only while queued: a sent one was settled by its SMS.
            items.push(match record.status {
                RegistrationStatus::Queued => {
                    self.settle_in_batch_item(batch, Some("opted_out"), record.token.as_str())
                }
                _ => self.count_in_batch_item(batch, "opted_out"),
            });
        }
        self.transact_or_fail(items).await?;
        Ok(())
    }

    async fn opt_in(&self, phone: &PhoneNumber, now: u64, cause: &str) -> Result<(), StoreError> {
        let project = self.find(phone).await?.map(|r| r.domain);
        // Only a number that had opted out opts back in, and is told so once.
        let delete = Delete::builder()
            .table_name(self.table())
            .set_key(Some(key(phone.as_str())))
            .condition_expression("attribute_exists(pk)")
            .build()
            .expect("delete has its required fields");
        let event = OrgEvent::opt_change(phone, false, cause, project.as_deref(), now);
        self.transact_or_fail(vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.outbox_put(&event),
        ])
        .await?;
        Ok(())
    }

    async fn opted_out(&self, phones: &[PhoneNumber]) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        let distinct: HashSet<&str> = phones.iter().map(PhoneNumber::as_str).collect();
        if distinct.is_empty() {
            return Ok(found);
        }
        let mut pending = KeysAndAttributes::builder()
            .set_keys(Some(distinct.into_iter().map(key).collect()))
            .consistent_read(true)
            .projection_expression("pk")
            .build()
            .map_err(|_| StoreError::Malformed("opt-out lookup".into()))?;
        for _ in 0..LOOKUP_ROUNDS {
            let out = self
                .client
                .batch_get_item()
                .request_items(self.table(), pending)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            for item in out
                .responses()
                .and_then(|r| r.get(self.table()))
                .into_iter()
                .flatten()
            {
                if let Some(phone) = opt_s(item, PK).and_then(|pk| phone_of_pk(&pk)) {
                    found.insert(phone);
                }
            }
            let mut unprocessed: HashMap<String, KeysAndAttributes> =
                out.unprocessed_keys.unwrap_or_default();
            match unprocessed.remove(self.table()) {
                Some(rest) if !rest.keys().is_empty() => pending = rest,
                _ => return Ok(found),
            }
        }
        Err(StoreError::Unavailable {
            code: "UnprocessedKeys".into(),
        })
    }
}

fn phone_of_pk(pk: &str) -> Option<String> {
    let probe = phone_pk("");
    pk.strip_prefix(probe.as_str()).map(str::to_owned)
}
