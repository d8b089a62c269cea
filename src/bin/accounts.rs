//! The Lambda function that finishes worker accounts (the accounts queue).
// The function's future nests the SDK clients' futures deeper than the default limit.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    smsreg::wiring::serve_accounts().await
}
