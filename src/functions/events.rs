//! The events function: the table's stream (outbox items, from the event source mapping)
//! in, each event put on the bus, the records not published out (`batchItemFailures`).

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_http::lambda_runtime::{Error, LambdaEvent};
use tracing::{Instrument, info, info_span, warn};

use crate::adapters::dynamodb::outbox::{batch_completion, event_of_stream_image};
use crate::metrics::Metrics;
use crate::ports::EventBus;
use crate::service::publish::Publisher;

/// The events function: publishes the outbox.
pub struct EventsFunction<B> {
    publisher: Publisher<B>,
}

impl<B: EventBus> EventsFunction<B> {
    pub fn new(publisher: Publisher<B>) -> Self {
        EventsFunction { publisher }
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<StreamEvent>,
    ) -> Result<DynamoDbEventResponse, Error> {
        let span = info_span!("events", request_id = %event.context.request_id);
        Ok(self.handle_records(&event.payload).instrument(span).await)
    }

    /// Puts `events` on the bus (`replay-events`, for outbox items read from the table).
    pub async fn publish(&self, events: &[crate::domain::event::OrgEvent]) -> Vec<bool> {
        self.publisher.publish(events).await
    }

    /// Publishes the outbox items the batch inserted, and the completion of a request's
    /// batch (the change of its item that settled its last invitation); any other record
    /// (a removal by TTL, an item of another kind: a mapping's filter can be changed) is
    /// passed over. The records whose event the bus did not take are reported, so that
    /// the mapping hands them (and those after them on their shard) over again.
    pub async fn handle_records(&self, batch: &StreamEvent) -> DynamoDbEventResponse {
        let mut events = Vec::new();
        let mut sequence_numbers = Vec::new();
        let mut ignored = 0;
        for record in &batch.records {
            let change = &record.change;
            let at = change.approximate_creation_date_time.timestamp().max(0) as u64;
            let event = match record.event_name.as_str() {
                "INSERT" => event_of_stream_image(&change.new_image)
                    .or_else(|| batch_completion(&change.new_image, &change.old_image, at)),
                "MODIFY" => batch_completion(&change.new_image, &change.old_image, at),
                _ => None,
            };
            match event {
                Some(event) => {
                    events.push(event);
                    sequence_numbers.push(record.change.sequence_number.clone());
                }
                None => ignored += 1,
            }
        }
        let taken = self.publisher.publish(&events).await;
        let mut response = DynamoDbEventResponse::default();
        for (taken, sequence_number) in taken.iter().zip(sequence_numbers) {
            if !taken {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = sequence_number;
                response.batch_item_failures.push(failure);
            }
        }
        let failed = response.batch_item_failures.len();
        if failed > 0 {
            warn!(
                failed,
                "events not published; their records are handed back"
            );
        }
        Metrics::new("events")
            .count("EventsPublished", events.len() - failed)
            .count("EventsNotPublished", failed)
            .count("StreamRecordsIgnored", ignored)
            .emit();
        info!(
            published = events.len() - failed,
            failed, ignored, "stream batch handled"
        );
        response
    }
}
