//! The organisation's events put on an EventBridge bus (`PutEvents`).

use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::domain::event::{OrgEvent, SOURCE};
use crate::ports::{BusError, EventBus};

/// The bus named by `EVENT_BUS_NAME` (a name or an ARN; `default` is the account's).
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: String) -> Self {
        EventBridgeBus { client, bus_name }
    }
}

/// An entry's size as EventBridge counts it towards a put's 256 KB: its time (14 bytes),
/// source, detail type and detail, in UTF-8.
pub fn entry_size(event: &OrgEvent) -> usize {
    14 + SOURCE.len() + event.detail_type.as_str().len() + event.detail.to_string().len()
}

impl EventBus for EventBridgeBus {
    async fn put(&self, events: &[&OrgEvent]) -> Result<Vec<Result<(), BusError>>, BusError> {
        let entries = events
            .iter()
            .map(|event| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus_name)
                    .source(SOURCE)
                    .detail_type(event.detail_type.as_str())
                    .detail(event.detail.to_string())
                    .time(DateTime::from_secs(event.at as i64))
                    .build()
            })
            .collect();
        let answer = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|error| BusError {
                code: super::error_code(&error),
            })?;
        // One result per entry, in order; an entry without one was not taken.
        let results = answer.entries();
        Ok((0..events.len())
            .map(|i| match results.get(i) {
                Some(r) if r.error_code().is_none() && r.event_id().is_some() => Ok(()),
                Some(r) => Err(BusError {
                    code: r.error_code().unwrap_or("NoEventId").to_owned(),
                }),
                None => Err(BusError {
                    code: "NoResult".into(),
                }),
            })
            .collect())
    }

    fn entry_size(event: &OrgEvent) -> usize {
        entry_size(event)
    }
}
