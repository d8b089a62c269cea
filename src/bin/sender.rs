//! The Lambda function that sends the queued SMS (an SQS event source mapping).

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::lambda_runtime::{self, Error, LambdaEvent, service_fn};
use smsreg::config::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsreg::telemetry::init();
    let sender = smsreg::wiring::aws_sender(Config::from_env()?).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        sender.handle(event)
    }))
    .await
}
