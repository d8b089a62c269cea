//! The Lambda function serving the registration API.

use lambda_http::{Error, service_fn};
use smsreg::config::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Off the first request, not into init: see `warm_up`. Nothing waits for this thread.
    std::thread::spawn(smsreg::domain::phone::warm_up);
    smsreg::telemetry::init();
    let api = smsreg::wiring::aws_api(Config::from_env()?).await?;
    lambda_http::run(service_fn(|request| async {
        Ok::<_, Error>(api.handle(request).await)
    }))
    .await
}
