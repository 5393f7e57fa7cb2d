//! Recovery, checked once the run is quiet: a job redriven from the dead-letter queue right after
//! an outage ends (the failed or killed worker's claim perhaps still running) finishes its call
//! within one enrichment delay plus one visibility timeout (or the claim lease, where that is
//! longer), when Vapi has the call's complete data by then. Before, the dead worker's claim made the redriven job look like a duplicate and
//! it was deleted unseen; the call then waited for the cleanup's re-drive.
//!
//! A call one of whose jobs reached the dead-letter queue *after* the redrive (a job still being
//! retried when the outage ended, whose last receive had failed in it) is not held to the bound:
//! its live chain was out of the redrive's reach, and the cleanup's re-drive finishes it (every
//! call settling is checked on its own).

use std::collections::BTreeMap;

use crate::clock::SECOND;
use crate::vapi::Call;
use crate::world::World;

impl World {
    pub(crate) fn check_recovery(&mut self, calls: &BTreeMap<String, Call>) {
        let timing = &self.services.enrichment.timing;
        let longest_delay = timing
            .enrichment_delays
            .iter()
            .max()
            .copied()
            .unwrap_or_default();
        // Where the lease outlives the visibility timeout, a killed worker's claim holds a
        // redriven job off until it ends (deferred, not dropped).
        // Every send of this run arrives `jitter` late (a slow SQS), a deferred copy included.
        let (visibility, jitter, dead_lettered) = {
            let sqs = self.sqs.lock().unwrap();
            (sqs.visibility, sqs.jitter, sqs.dead_lettered.clone())
        };
        let dead_after = |id: &str, redriven: crate::clock::Ms| {
            dead_lettered.iter().any(|(body, at)| {
                *at > redriven && crate::sqs::chain_call(body).is_some_and(|call| call == id)
            })
        };
        let lease = timing.claim_lease.as_millis() as crate::clock::Ms;
        let bound = longest_delay.as_millis() as crate::clock::Ms + visibility.max(lease) + jitter;
        for (id, redriven) in self.recovery_redrives.clone() {
            let ready = calls.get(&id).and_then(|c| c.plan.complete_at());
            if ready.is_none_or(|r| r > redriven) {
                continue; // Vapi's data was not complete yet: the chain has more to wait for.
            }
            if dead_after(&id, redriven) {
                continue;
            }
            let Some(seen) = self.watch.calls.get(&id) else {
                continue;
            };
            if seen.replayed {
                continue; // re-settled on purpose, later
            }
            let settled = seen
                .settled_at
                .as_deref()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                .map(|t| self.clock.ms_of(t));
            match settled {
                Some(at) if at <= redriven + bound => {}
                other => self.violation(format!(
                    "call {id}: its job, redriven at {:.0}s after recovery, did not finish it within {:.0}s (settled at {:?})",
                    redriven as f64 / 1e3,
                    bound as f64 / 1e3,
                    other.map(|t| t / SECOND)
                )),
            }
        }
    }
}
