//! The Lambda function that puts the outbox's events on the bus (the table's stream).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    smsreg::wiring::serve_events().await
}
