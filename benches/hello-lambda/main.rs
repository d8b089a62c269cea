//! The yardstick of benchmark 3: a hello-world `lambda_http` function, as `cargo lambda new`
//! writes one (the default tracing subscriber, one handler answering 200 with a small JSON
//! body), built with the workspace's release profile and the project's `lambda_http` (same
//! version; its own features, `tracing` included). `scripts/bench` builds it (`cargo build
//! --release -p hello-lambda`) and the cold-start benchmark starts it exactly as it starts
//! `smsreg-api`. Never deployed.

use lambda_http::{Body, Error, Request, Response, service_fn, tracing};

async fn hello(_request: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"message":"hello"}"#))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    lambda_http::run(service_fn(hello)).await
}
