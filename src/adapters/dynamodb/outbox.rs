//! The outbox: each event the organisation hears of, written as an item in the same
//! transaction as the change it reports, and read back from the table's stream.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::item::*;
use super::{DynamoStore, store_error};
use crate::domain::event::{DetailType, OrgEvent};
use crate::ports::StoreError;

/// The `kind` of outbox items, which the event source mapping's filter selects.
pub const OUTBOX_KIND: &str = "outbox";
/// The `kind` of a request's batch item, whose changes the mapping's filter also selects
/// (a batch's completion).
pub const BATCH_KIND: &str = "batch";
/// How long an outbox item stays in the table once written: as long as a batch that failed
/// every try may wait in the dead-letter queue (14 days) for `replay-events`.
pub const OUTBOX_DAYS: u64 = 14;
const OUTBOX_SK: &str = "OUTBOX";

fn outbox_pk(event_id: &str) -> String {
    format!("OUTBOX#{event_id}")
}

/// The outbox item of `event`.
pub fn outbox_item(event: &OrgEvent) -> Item {
    Item::from([
        (PK.into(), s(outbox_pk(&event.event_id))),
        (SK.into(), s(OUTBOX_SK)),
        ("kind".into(), s(OUTBOX_KIND)),
        ("event_id".into(), s(&event.event_id)),
        ("detail_type".into(), s(event.detail_type.as_str())),
        ("detail".into(), s(event.detail.to_string())),
        ("at".into(), n(event.at)),
        (TTL.into(), n(event.at + OUTBOX_DAYS * 86_400)),
    ])
}

/// The event of an outbox item, `None` for any other item.
pub fn event_of_item(item: &Item) -> Option<OrgEvent> {
    if opt_s(item, "kind").as_deref() != Some(OUTBOX_KIND) {
        return None;
    }
    Some(OrgEvent {
        event_id: opt_s(item, "event_id")?,
        detail_type: DetailType::parse(&opt_s(item, "detail_type")?)?,
        at: opt_n(item, "at").ok()??,
        detail: serde_json::from_str(&opt_s(item, "detail")?).ok()?,
    })
}

/// The string, number and string-set attributes of an item as a stream record carries it.
fn plain_item(image: &serde_dynamo::Item) -> Item {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    image
        .iter()
        .filter_map(|(name, value)| match value {
            serde_dynamo::AttributeValue::S(v) => Some((name.clone(), s(v))),
            serde_dynamo::AttributeValue::N(v) => Some((name.clone(), A::N(v.clone()))),
            serde_dynamo::AttributeValue::Ss(v) => Some((name.clone(), A::Ss(v.clone()))),
            _ => None,
        })
        .collect()
}

/// The event of an outbox item as a stream record carries it (its `NewImage`), `None` for
/// any other item.
pub fn event_of_stream_image(image: &serde_dynamo::Item) -> Option<OrgEvent> {
    event_of_item(&plain_item(image))
}

/// The invitations a batch item lists (those whose job reached the queue), when its
/// request recorded it, and how many of them are settled.
fn batch_settlement(item: &Item) -> Option<(usize, usize)> {
    if opt_s(item, "kind").as_deref() != Some(BATCH_KIND) {
        return None;
    }
    let set = |name: &str| match item.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::Ss(v)) => v.clone(),
        _ => Vec::new(),
    };
    let queued = set("queued");
    let settled = set("settled");
    let done = queued.iter().filter(|t| settled.contains(t)).count();
    Some((queued.len(), done))
}

fn is_complete(item: &Item) -> bool {
    batch_settlement(item).is_some_and(|(queued, done)| queued > 0 && done >= queued)
}

/// The `Batch Completed` event of a change of a batch item, when that change is the one
/// that settled its last invitation (the old image not complete, the new one complete);
/// `None` for any other change. The batch item's own record is the outbox here: its
/// counts move in the transactions of many functions, none of which knows it is the last.
pub fn batch_completion(
    new: &serde_dynamo::Item,
    old: &serde_dynamo::Item,
    at: u64,
) -> Option<OrgEvent> {
    let (new, old) = (plain_item(new), plain_item(old));
    if !is_complete(&new) || is_complete(&old) {
        return None;
    }
    let batch_id = opt_s(&new, PK)?.strip_prefix("BATCH#")?.to_owned();
    let project = opt_s(&new, "domain")?;
    let count = |name: &str| opt_n(&new, name).ok().flatten().unwrap_or(0);
    let counts = serde_json::json!({
        "queued": count("queued_count"),
        "sent": count("sent"),
        "send_failed": count("send_failed"),
        "opted_out": count("opted_out"),
    });
    Some(OrgEvent::batch_completed(&project, &batch_id, counts, at))
}

impl DynamoStore {
    /// The outbox items written between `from` and `to` (seconds since the epoch), by a
    /// scan: for `replay-events` once the stream no longer has them, never for a function.
    pub async fn outbox_between(&self, from: u64, to: u64) -> Result<Vec<OrgEvent>, StoreError> {
        let mut events = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(self.table())
                .filter_expression("kind = :kind AND #at BETWEEN :from AND :to")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":kind", s(OUTBOX_KIND))
                .expression_attribute_values(":from", n(from))
                .expression_attribute_values(":to", n(to))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            events.extend(page.items().iter().filter_map(event_of_item));
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(events);
            }
        }
    }

    /// `event`'s outbox item, as part of the transaction that makes its change. Written
    /// once: a retry that finds it (its answer lost) is refused, with the change it came
    /// with.
    pub(crate) fn outbox_put(&self, event: &OrgEvent) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(outbox_item(event)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("put has its required fields");
        TransactWriteItem::builder().put(put).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> OrgEvent {
        OrgEvent {
            event_id: "0123abcd".into(),
            detail_type: DetailType::WorkerOptedOut,
            at: 1_800_000_000,
            detail: json!({ "event_id": "0123abcd", "phone_number": "+16175551234" }),
        }
    }

    #[test]
    fn an_outbox_item_reads_back_as_its_event() {
        assert_eq!(event_of_item(&outbox_item(&event())), Some(event()));
    }

    #[test]
    fn other_items_are_no_events() {
        let mut item = outbox_item(&event());
        item.insert("kind".into(), s("invitation"));
        assert_eq!(event_of_item(&item), None);
        let mut item = outbox_item(&event());
        item.insert("detail".into(), s("{not json"));
        assert_eq!(event_of_item(&item), None);
    }

    fn batch_image(queued: &[&str], settled: &[&str]) -> serde_dynamo::Item {
        let mut image = json!({
            "pk": {"S": "BATCH#b1"}, "sk": {"S": "BATCH"}, "kind": {"S": "batch"},
            "domain": {"S": "demo"}, "queued_count": {"N": queued.len().to_string()},
            "sent": {"N": "1"},
        });
        if !queued.is_empty() {
            image["queued"] = json!({ "SS": queued });
        }
        if !settled.is_empty() {
            image["settled"] = json!({ "SS": settled });
        }
        serde_json::from_value(image).unwrap()
    }

    #[test]
    fn a_batch_completes_on_the_change_that_settles_its_last_invitation_only() {
        let none = serde_dynamo::Item::from(std::collections::HashMap::new());
        let half = batch_image(&["t1", "t2"], &["t1"]);
        let full = batch_image(&["t1", "t2"], &["t1", "t2"]);
        let event = batch_completion(&full, &half, 5).expect("completed");
        assert_eq!(event.detail_type, DetailType::BatchCompleted);
        assert_eq!(event.detail["batch_id"], json!("b1"));
        assert_eq!(event.detail["project"], json!("demo"));
        assert_eq!(event.detail["counts"]["queued"], json!(2));
        // A later change (a receipt) of a complete batch: no second event.
        assert_eq!(batch_completion(&full, &full, 6), None);
        assert_eq!(batch_completion(&half, &none, 6), None);
        // Settled before its request recorded it: complete when the record comes.
        let unrecorded = batch_image(&[], &["t1"]);
        assert_eq!(batch_completion(&unrecorded, &none, 6), None);
        assert!(batch_completion(&batch_image(&["t1"], &["t1"]), &unrecorded, 7).is_some());
    }

    #[test]
    fn a_stream_image_of_an_outbox_item_reads_as_its_event() {
        let image: serde_dynamo::Item = serde_json::from_value(json!({
            "pk": {"S": "OUTBOX#0123abcd"},
            "sk": {"S": "OUTBOX"},
            "kind": {"S": "outbox"},
            "event_id": {"S": "0123abcd"},
            "detail_type": {"S": "Worker Opted Out"},
            "detail": {"S": "{\"event_id\":\"0123abcd\",\"phone_number\":\"+16175551234\"}"},
            "at": {"N": "1800000000"},
            "ttl": {"N": "1801209600"}
        }))
        .unwrap();
        assert_eq!(event_of_stream_image(&image), Some(event()));
    }
}
