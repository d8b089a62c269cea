//! One module per Lambda function: each translates its `aws_lambda_events` type to a
//! service call and the answer back, and nothing more.

pub mod accounts;
pub mod api;
pub mod events;
pub mod receipts;
pub mod replies;
pub mod sender;
