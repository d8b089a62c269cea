//! The receipts function's entry point: CloudWatch Logs subscription events (SNS's SMS
//! delivery status log) in; each SMS's receipt recorded on its invitation, its batch and
//! its project's day.

use std::sync::Arc;

use aws_lambda_events::event::cloudwatch_logs::LogsEvent;
use lambda_http::lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};
use tracing::{Instrument, info, info_span, warn};

use crate::domain::receipt::Receipt;
use crate::metrics::{Metrics, Unit};
use crate::ports::{Clock, DeliveryLog, ReceiptOutcome, StoreError};

/// The `messageType` of the events CloudWatch Logs sends to check a subscription's
/// destination (its lines are not delivery statuses, and not malformed ones either).
const CONTROL_MESSAGE: &str = "CONTROL_MESSAGE";

pub struct Receipts<L> {
    pub log: L,
    pub clock: Arc<dyn Clock>,
}

/// What a batch of log lines came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceiptsReport {
    pub delivered: usize,
    pub failed: usize,
    pub duplicate: usize,
    /// No SMS of this service has that message id (another sender of the account, or an
    /// SMS whose id could not be kept).
    pub unknown: usize,
    /// Not a delivery status line: skipped.
    pub malformed: usize,
    pub price_usd: f64,
}

impl<L: DeliveryLog> Receipts<L> {
    pub fn new(log: L, clock: Arc<dyn Clock>) -> Self {
        Receipts { log, clock }
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
        let outcome = self.record(&lines, &mut report).instrument(span).await;
        // What was recorded counts now, even when the batch fails part way: delivered
        // again, those receipts are duplicates and count nothing a second time.
        report.metrics().emit();
        outcome?;
        Ok(report.to_json())
    }

    /// Records each line's receipt. A store failure fails the whole batch, so that Lambda
    /// delivers it again: the receipts already recorded are then found so, and counted
    /// once.
    pub async fn record(
        &self,
        lines: &[&str],
        report: &mut ReceiptsReport,
    ) -> Result<(), StoreError> {
        for line in lines {
            let Some(receipt) = Receipt::parse(line) else {
                // Never the line itself: it holds the phone number.
                warn!(bytes = line.len(), "not a delivery status line; skipped");
                report.malformed += 1;
                continue;
            };
            match self.log.record_receipt(&receipt, self.clock.now()).await? {
                ReceiptOutcome::Recorded => {
                    if receipt.delivered {
                        report.delivered += 1;
                    } else {
                        report.failed += 1;
                    }
                    report.price_usd += receipt.price_usd;
                }
                ReceiptOutcome::Duplicate => report.duplicate += 1,
                ReceiptOutcome::Unknown => report.unknown += 1,
            }
        }
        info!(
            delivered = report.delivered,
            failed = report.failed,
            duplicate = report.duplicate,
            unknown = report.unknown,
            malformed = report.malformed,
            "receipts recorded"
        );
        Ok(())
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

impl ReceiptsReport {
    /// The report as the function answers it.
    pub fn to_json(&self) -> Value {
        json!({
            "delivered": self.delivered,
            "failed": self.failed,
            "duplicate": self.duplicate,
            "unknown": self.unknown,
            "malformed": self.malformed,
        })
    }

    /// The batch's metrics (EMF).
    pub fn metrics(&self) -> Metrics {
        Metrics::new("receipts")
            .count("ReceiptsDelivered", self.delivered)
            .count("ReceiptsFailed", self.failed)
            .count("ReceiptsUnknown", self.unknown)
            .count("ReceiptsMalformed", self.malformed)
            .value("SmsPriceUSD", Unit::None, self.price_usd)
    }
}
