//! Tools that run beside the functions, never deployed as one: the admin CLI and, for
//! local runs, the stand-in for Lambda's SQS event source mapping.

pub mod admin;
pub mod local_esm;
pub mod local_stream;
pub mod replay_events;
