//! `replay-receipts` and `replay-events`: what a function failed at every try, from its
//! on-failure queue.

use super::context::{Admin, Failure, failed};
use crate::adapters::dynamodb::DynamoStore;
use crate::service::receipts::{Receipts, ReceiptsReport};

impl Admin {
    /// `smsreg-admin replay-receipts`: records every failed log batch waiting on
    /// `queue_url`, deleting each once recorded, and prints what they came to. A message
    /// that is no failed batch stays on the queue.
    pub(super) async fn replay_receipts(&self, queue_url: String) -> Result<(), Failure> {
        let queue_url = queue_url.as_str();
        let sqs = aws_sdk_sqs::Client::new(&self.aws);
        let receipts: Receipts<DynamoStore, crate::wiring::DeployedSms> =
            Receipts::new(self.store.clone(), self.clock.clone());
        let mut report = ReceiptsReport::default();
        let (mut batches, mut kept) = (0, 0);
        loop {
            let messages = crate::tools::receive_failed(&sqs, queue_url)
                .await
                .map_err(failed)?;
            if messages.is_empty() {
                break;
            }
            for message in messages {
                let Some(lines) = message
                    .body()
                    .and_then(crate::functions::receipts::failed_batch_lines)
                else {
                    eprintln!(
                        "smsreg-admin: message {} is not a failed log batch: left on the queue",
                        message.message_id().unwrap_or("?")
                    );
                    kept += 1;
                    continue;
                };
                let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
                receipts.record(&lines, &mut report).await.map_err(failed)?;
                crate::tools::delete_replayed(&sqs, queue_url, &message, "recorded")
                    .await
                    .map_err(failed)?;
                batches += 1;
            }
        }
        let mut line = report.to_json();
        line["batches"] = batches.into();
        line["left_on_queue"] = kept.into();
        println!("{line}");
        Ok(())
    }

    /// `smsreg-admin replay-events` (`tools::replay_events`).
    pub(super) async fn replay_events(&self, queue_url: String) -> Result<(), Failure> {
        crate::tools::replay_events::replay(&self.aws, &self.config, &queue_url)
            .await
            .map_err(failed)
    }
}
