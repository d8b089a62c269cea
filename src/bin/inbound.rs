//! The Lambda function handling workers' SMS replies (an SNS subscription).

use aws_lambda_events::event::sns::SnsEvent;
use lambda_http::lambda_runtime::{self, Error, LambdaEvent, service_fn};
use smsreg::config::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsreg::telemetry::init();
    let inbound = smsreg::wiring::aws_replies(Config::from_env()?).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SnsEvent>| {
        inbound.handle(event)
    }))
    .await
}
