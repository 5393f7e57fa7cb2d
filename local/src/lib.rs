//! `ringback-local`: the whole system on one machine, with no AWS and no Vapi account (api.md §7).
//! The same handlers and services as the Lambda functions run behind one HTTP server; the
//! embedded DynamoDB-compatible store, the in-process delay queue and the Vapi simulator stand in
//! for the cloud unless `AWS_ENDPOINT_URL*` / `VAPI_BASE_URL` point elsewhere.

mod console;
mod durability;
pub mod esm;
mod http;
pub mod options;
mod queue;
mod queue_counts;
pub mod receiver;
mod reference;
mod storage;
mod system;
mod workers;

pub use options::LocalOptions;
pub use queue::{LocalQueue, QueueRole};
pub use storage::{sdk_config, InProcess};
pub use system::System;
