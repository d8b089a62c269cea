//! Delivery receipts: each line of the SMS provider's delivery reports, read by the
//! provider's adapter, recorded once on its SMS, its invitation, its batch and its day.

use std::marker::PhantomData;
use std::sync::Arc;

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::metrics::{Metrics, Unit};
use crate::ports::{Clock, DeliveryLog, ReceiptOutcome, SmsProvider, StoreError};

/// The receipts use case: the store's delivery log, and the provider whose reports it
/// reads (no client of it: reading a report is local).
pub struct Receipts<L, P> {
    store: L,
    clock: Arc<dyn Clock>,
    provider: PhantomData<fn() -> P>,
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
    /// A report that is not final yet (End User Messaging's interim events): skipped, the
    /// final one will be recorded.
    pub not_final: usize,
    pub price_usd: f64,
}

impl<L: DeliveryLog, P: SmsProvider> Receipts<L, P> {
    pub fn new(store: L, clock: Arc<dyn Clock>) -> Self {
        Receipts {
            store,
            clock,
            provider: PhantomData,
        }
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
            let Some(receipt) = P::read_report(line) else {
                if P::is_interim(line) {
                    report.not_final += 1;
                    continue;
                }
                // Never the line itself: it holds the phone number.
                warn!(bytes = line.len(), "not a delivery status line; skipped");
                report.malformed += 1;
                continue;
            };
            match self
                .store
                .record_receipt(&receipt, self.clock.now())
                .await?
            {
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
            not_final = report.not_final,
            "receipts recorded"
        );
        Ok(())
    }
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
            "not_final": self.not_final,
        })
    }

    /// The batch's metrics (EMF).
    pub fn metrics(&self) -> Metrics {
        Metrics::new("receipts")
            .count("ReceiptsDelivered", self.delivered)
            .count("ReceiptsFailed", self.failed)
            .count("ReceiptsUnknown", self.unknown)
            .count("ReceiptsMalformed", self.malformed)
            .count("ReceiptsNotFinal", self.not_final)
            .value("SmsPriceUSD", Unit::None, self.price_usd)
    }
}
