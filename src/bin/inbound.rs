//! The Lambda function handling workers' SMS replies (an SNS subscription).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    smsreg::wiring::serve_replies().await
}
