//! SMS mobile worker registration: bulk invitations by SMS, served from AWS Lambda.
//!
//! The layers, inside out: `domain` (pure rules, no AWS types), `ports` (the traits the
//! service needs), `service` (the use cases), `adapters` (DynamoDB, SNS, in-memory) and
//! `http` (API Gateway requests in, JSON responses out).

pub mod adapters;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod inbound;
pub mod local_esm;
pub mod metrics;
pub mod ports;
pub mod receipts;
pub mod sender;
pub mod service;
pub mod telemetry;
pub mod wiring;
