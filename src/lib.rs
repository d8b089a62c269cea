//! SMS mobile worker registration: bulk invitations by SMS, served from AWS Lambda.
//!
//! The layers, inside out: `domain` (pure rules, no AWS types), `ports` (the traits the
//! service needs), `service` (the use cases), `adapters` (DynamoDB, SQS, SNS, in-memory),
//! `functions` (one per Lambda function: its event in, a service call, its answer out) and
//! `tools` (the admin CLI, the local event source mapping). `wiring` builds each function
//! from the adapters it uses. See docs/architecture.md.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod functions;
pub mod metrics;
pub mod ports;
pub mod service;
pub mod telemetry;
pub mod tools;
pub mod wiring;
