//! The Lambda function serving the registration API.

// One thread: Lambda gives an instance one request at a time, and a request's AWS calls
// overlap as tasks on it. A second worker only added wake-ups between threads (1 ms more
// CPU at a cold start, docs/PERFORMANCE.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    smsreg::wiring::serve_api().await
}
