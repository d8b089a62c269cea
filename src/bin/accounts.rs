//! The Lambda function that finishes worker accounts (the accounts queue).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    smsreg::wiring::serve_accounts().await
}
