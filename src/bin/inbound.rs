//! The Lambda function handling workers' SMS replies (an SNS subscription).

use lambda_http::lambda_runtime::{self, Error, LambdaEvent, service_fn};
use serde_json::Value;
use smsreg::config::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsreg::telemetry::init();
    let inbound = smsreg::wiring::aws_inbound(Config::from_env()?).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        inbound.handle(event)
    }))
    .await
}
