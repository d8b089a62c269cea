//! The Lambda function that sends the queued SMS (an SQS event source mapping).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    smsreg::wiring::serve_sender().await
}
