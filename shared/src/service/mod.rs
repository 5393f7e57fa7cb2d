//! The use cases, written against the ports: each is what one Lambda function (and the local
//! runner's matching route or worker) does.

pub mod cleanup;
mod deadlines;
pub mod enrichment;
pub mod erase;
pub mod initiate;
mod owed;
pub mod placed;
pub mod push;
pub mod reconcile;
pub mod redeliver;
pub mod replay;
pub mod revive;
pub mod status;
pub mod webhook;

pub use deadlines::deadline_for;

/// How often a use case re-reads and retries after losing a conditional write to a concurrent one.
pub(crate) const WRITE_RETRIES: usize = 8;

/// Saves a finished call's provider row and interaction log. A transient failure is returned for
/// the caller to retry. A permanent one (the tables refuse the call even in its most compact
/// form, which fitting makes unexpected) cannot be retried away: it is logged, counted, noted on
/// the record, and the record settles regardless, keeping everything for its TTL.
pub(crate) async fn persist(
    sink: &dyn crate::ports::ResultSink,
    record: &mut crate::domain::CallRecord,
    metrics: &crate::metrics::Metrics,
) -> Result<(), crate::ports::SinkError> {
    match sink.save(&record.result).await {
        Ok(_) => {
            record.book.persist_error = None;
            record.book.rows_stale = false;
            Ok(())
        }
        Err(e) if e.permanent => {
            tracing::error!(call_id = %record.result.call_id, error = %e, "the tables refused this call's rows");
            metrics.count("PersistRefused", 1, &[]);
            record.book.persist_error = Some(e.message);
            record.book.rows_stale = false;
            Ok(())
        }
        Err(e) => Err(e),
    }
}
