//! The second yardstick of benchmark 3: the hello-world function of `benches/hello-lambda`,
//! reading one DynamoDB item before it answers, with the SDK as its documentation sets it
//! up (the default configuration from the environment, one client made in init). It is what
//! any function that calls AWS pays at its start: the SDK's client, its HTTPS client with
//! the system's root certificates, and the first call's connection (over HTTPS, a TLS
//! handshake). Built and started as `hello-lambda` is. Never deployed.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Error, Request, Response, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = std::env::var("TABLE_NAME")?;
    lambda_http::run(service_fn(|_request: Request| {
        let (client, table) = (&client, &table);
        async move {
            client
                .get_item()
                .table_name(table)
                .key("pk", AttributeValue::S("hello".into()))
                .send()
                .await?;
            Ok::<_, Error>(
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::from(r#"{"message":"hello"}"#))?,
            )
        }
    }))
    .await
}
