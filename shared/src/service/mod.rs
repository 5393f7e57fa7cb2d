//! The use cases, written against the ports: each is what one Lambda function (and the local
//! runner's matching route or worker) does.

pub mod cleanup;
mod deadlines;
pub mod enrichment;
pub mod initiate;
pub mod status;
pub mod webhook;

pub use deadlines::deadline_for;

/// How often a use case re-reads and retries after losing a conditional write to a concurrent one.
pub(crate) const WRITE_RETRIES: usize = 8;
