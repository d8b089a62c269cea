//! The outbox: each event the organisation hears of, written as an item in the same
//! transaction as the change it reports, and read back from the table's stream.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::DynamoStore;
use super::item::*;
use crate::domain::event::{DetailType, OrgEvent};

/// The `kind` of outbox items, which the event source mapping's filter selects.
pub const OUTBOX_KIND: &str = "outbox";
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

/// The event of an item as a stream record carries it (its `NewImage`), `None` for any
/// other item.
pub fn event_of_stream_image(image: &serde_dynamo::Item) -> Option<OrgEvent> {
    // The string and number attributes an outbox item is made of.
    let item: HashMap<String, aws_sdk_dynamodb::types::AttributeValue> = image
        .iter()
        .filter_map(|(name, value)| match value {
            serde_dynamo::AttributeValue::S(v) => Some((name.clone(), s(v))),
            serde_dynamo::AttributeValue::N(v) => Some((
                name.clone(),
                aws_sdk_dynamodb::types::AttributeValue::N(v.clone()),
            )),
            _ => None,
        })
        .collect();
    event_of_item(&item)
}

impl DynamoStore {
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
