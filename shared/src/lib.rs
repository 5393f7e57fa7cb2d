//! ringback: Vapi phone calls in, complete and durable call records out.
//!
//! - [`domain`]: the pure core (call records, outcome rules, merging, the state machine);
//! - [`vapi`]: reading Vapi's payloads at the edge, webhook authentication, the REST client;
//! - [`ports`]: the small traits the services need (store, queue, Vapi, persistence, clock);
//! - [`adapters`]: their real implementations (DynamoDB, SQS, in-process queue);
//! - [`service`]: the use cases (ingest a webhook, show a call, enrich, start, clean up);
//! - [`search`]: finding calls: durable summaries beside the records, listed through indexes;
//! - [`stats`]: how the system is doing, from counters and indexes, never a scan;
//! - [`api`]: HTTP in and out, shared by the Lambda functions and the local runner;
//! - [`config`], [`telemetry`], [`metrics`]: typed configuration, JSON tracing, EMF metrics.

pub mod adapters;
pub mod api;
pub mod config;
pub mod domain;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod metrics;
pub mod ports;
pub mod search;
pub mod service;
pub mod stats;
pub mod telemetry;
pub mod vapi;
pub mod wiring;
