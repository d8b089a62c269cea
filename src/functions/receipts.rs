//! The receipts function: CloudWatch Logs subscription events (the SMS provider's
//! delivery status log) in, each line's receipt recorded (see `service::receipts`).

use aws_lambda_events::event::cloudwatch_logs::LogsEvent;
use lambda_http::lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};
use tracing::{Instrument, info, info_span};

use crate::ports::{DeliveryLog, SmsProvider};
use crate::service::receipts::{Receipts, ReceiptsReport};

/// The `messageType` of the events CloudWatch Logs sends to check a subscription's
/// destination (its lines are not delivery statuses, and not malformed ones either).
const CONTROL_MESSAGE: &str = "CONTROL_MESSAGE";

pub struct ReceiptsFunction<L, P> {
    receipts: Receipts<L, P>,
}

impl<L: DeliveryLog, P: SmsProvider> ReceiptsFunction<L, P> {
    pub fn new(receipts: Receipts<L, P>) -> Self {
        ReceiptsFunction { receipts }
    }

    pub async fn handle(&self, event: LambdaEvent<LogsEvent>) -> Result<Value, Error> {
        let span = info_span!("receipts", request_id = %event.context.request_id);
        if event.payload.aws_logs.data.message_type == CONTROL_MESSAGE {
            // CloudWatch Logs checking that the function is reachable: no receipts in it.
            span.in_scope(|| info!("CloudWatch Logs control message: nothing to record"));
            return Ok(json!({"control_message": true}));
        }
        let lines: Vec<&str> = event
            .payload
            .aws_logs
            .data
            .log_events
            .iter()
            .map(|e| e.message.as_str())
            .collect();
        let mut report = ReceiptsReport::default();
        let outcome = self
            .receipts
            .record(&lines, &mut report)
            .instrument(span)
            .await;
        // What was recorded counts now, even when the batch fails part way: delivered
        // again, those receipts are duplicates and count nothing a second time.
        report.metrics().emit();
        outcome?;
        Ok(report.to_json())
    }
}

/// The log lines of a batch the receipts function failed at every try, from the message
/// Lambda's on-failure destination holds (the invocation record, the event under
/// `requestPayload`); `None` when the message is not such a record.
pub fn failed_batch_lines(message: &str) -> Option<Vec<String>> {
    let record: Value = serde_json::from_str(message).ok()?;
    // From text: the log data's decoder borrows the string, which a `Value` cannot lend.
    let event: LogsEvent = serde_json::from_str(&record.get("requestPayload")?.to_string()).ok()?;
    if event.aws_logs.data.message_type == CONTROL_MESSAGE {
        return Some(Vec::new());
    }
    Some(
        event
            .aws_logs
            .data
            .log_events
            .into_iter()
            .map(|e| e.message)
            .collect(),
    )
}
