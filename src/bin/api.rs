//! The Lambda function serving the registration API.

use lambda_http::{Error, service_fn};
use smsreg::config::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsreg::telemetry::init();
    let api = smsreg::wiring::aws_api(Config::from_env()?).await;
    lambda_http::run(service_fn(|request| async {
        Ok::<_, Error>(api.handle(request).await)
    }))
    .await
}
