//! The Lambda function recording SMS delivery receipts (a CloudWatch Logs subscription on
//! the SMS provider's delivery status log).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    smsreg::wiring::serve_receipts().await
}
