//! The Lambda function serving the registration API.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    smsreg::wiring::serve_api().await
}
