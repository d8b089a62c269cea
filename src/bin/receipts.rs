//! The Lambda function recording SMS delivery receipts (a CloudWatch Logs subscription on
//! SNS's delivery status log).

use aws_lambda_events::event::cloudwatch_logs::LogsEvent;
use lambda_http::lambda_runtime::{self, Error, LambdaEvent, service_fn};
use smsreg::config::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsreg::telemetry::init();
    let receipts = smsreg::wiring::aws_receipts(Config::from_env()?).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<LogsEvent>| {
        receipts.handle(event)
    }))
    .await
}
