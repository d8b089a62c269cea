//! `create-table` and `create-queue`: what a local run needs before anything else (on AWS
//! the stack makes both).

use super::context::{Admin, Failure, failed};

impl Admin {
    /// `smsreg-admin create-table`.
    pub(super) async fn create_table(&self) -> Result<(), Failure> {
        let created = self.store.create_table().await.map_err(failed)?;
        let verb = if created { "created" } else { "already exists" };
        println!("table {} {verb}", self.store.table());
        Ok(())
    }

    /// `smsreg-admin create-queue`.
    pub(super) async fn create_queue(
        &self,
        name: String,
        max_attempts: u32,
        visibility_timeout: u32,
    ) -> Result<(), Failure> {
        let client = aws_sdk_sqs::Client::new(&self.aws);
        let url =
            crate::adapters::sqs::create_queues(&client, &name, max_attempts, visibility_timeout)
                .await
                .map_err(failed)?;
        eprintln!("queue {name} (dead-letter queue {name}-dlq after {max_attempts} receives)");
        println!("{url}");
        Ok(())
    }
}
