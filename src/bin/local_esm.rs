//! `smsreg-local-esm`: feeds the sender from the emulator's send queue, as Lambda's SQS
//! event source mapping does on AWS. For local runs and tests only; never deployed.

#[tokio::main]
async fn main() {
    smsreg::tools::local_esm::main().await
}
