//! Rebuilding a call's record from its kept webhooks, through today's rules: what an operator's
//! replay does after a bug fix. The rebuilt record is a function of what the initiator knew (kept
//! from the current record) and the kept deliveries alone, so replaying twice gives the same
//! record as replaying once.

use super::{apply_webhook, CallRecord, CallSnapshot, DataStatus, EventKey};

/// One kept delivery, read at the edge.
#[derive(Debug, Clone)]
pub struct KeptEvent {
    pub snapshot: CallSnapshot,
    pub key: EventKey,
    /// When ringback received it (ISO-8601): the time it is applied at.
    pub received_at: String,
}

/// The record `call_id` gets from `events` (oldest first), on top of what the client's request
/// said (`prior`'s provider, request, correlation ids, callback URL and creation time). It is
/// left `partial` with its enrichment chain owned, ready for a fresh enrichment attempt:
/// number `fetch_attempts + 1`, so a job of the old chain still in flight is stale.
pub fn rebuild(
    call_id: &str,
    prior: Option<&CallRecord>,
    events: &[KeptEvent],
    now: &str,
) -> CallRecord {
    let created = prior
        .map(|p| p.result.created_at.clone())
        .or_else(|| events.first().map(|e| e.received_at.clone()))
        .unwrap_or_else(|| now.to_owned());
    let mut rec = CallRecord::new(call_id, &created);
    if let Some(p) = prior {
        let (r, from) = (&mut rec.result, &p.result);
        r.provider = from.provider.clone();
        r.request = from.request.clone();
        r.provider_id = from.provider_id.clone();
        r.service_request_id = from.service_request_id.clone();
        r.callback_url = from.callback_url.clone();
        r.call_method = from.call_method;
        r.fetch_attempts = from.fetch_attempts;
    }
    for e in events {
        rec = apply_webhook(Some(rec), &e.snapshot, &e.key, &e.received_at).record;
    }
    rec.result.data_status = DataStatus::Partial;
    rec.result.updated_at = now.to_owned();
    rec.book.enrichment_scheduled = true;
    // A fresh chain: the whole attempt budget, however many the first chain used.
    rec.book.chain_start = rec.result.fetch_attempts;
    rec.book.claimed_by = None;
    rec.book.claim_until = None;
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CallStatus, Outcome};

    fn report(at: &str, transcript: &str) -> KeptEvent {
        KeptEvent {
            snapshot: CallSnapshot {
                call_id: "c1".into(),
                call_status: Some(CallStatus::Ended),
                ended_reason: Some("customer-ended-call".into()),
                transcript: Some(transcript.into()),
                ..CallSnapshot::default()
            },
            key: EventKey::end_of_call_report(),
            received_at: at.into(),
        }
    }

    #[test]
    fn a_wrong_record_is_rebuilt_from_its_events_and_keeps_the_request() {
        let mut wrong = CallRecord::new("c1", "2026-12-03T10:00:00.000Z");
        wrong.result.status = Some(Outcome::Error);
        wrong.result.transcript = Some("garbage".into());
        wrong.result.provider.name = Some("Acme".into());
        wrong.result.callback_url = Some("https://x.example/h".into());
        wrong.result.fetch_attempts = 3;
        wrong.result.data_status = DataStatus::Complete;
        let events = [report("2026-12-03T10:05:00.000Z", "AI: hi\nUser: hello")];
        let now = "2026-12-03T11:00:00.000Z";
        let r = rebuild("c1", Some(&wrong), &events, now);
        assert_eq!(r.result.status, Some(Outcome::Completed));
        assert_eq!(r.result.transcript.as_deref(), Some("AI: hi\nUser: hello"));
        assert_eq!(r.result.provider.name.as_deref(), Some("Acme"));
        assert_eq!(
            r.result.callback_url.as_deref(),
            Some("https://x.example/h")
        );
        assert_eq!(r.result.created_at, "2026-12-03T10:00:00.000Z");
        assert_eq!(
            r.result.webhook_received_at.as_deref(),
            Some("2026-12-03T10:05:00.000Z")
        );
        assert_eq!(r.result.data_status, DataStatus::Partial);
        assert_eq!(r.result.fetch_attempts, 3, "the next attempt is 4");
        assert_eq!(r.book.chain_start, 3, "and it is the new chain's first");
        assert!(r.book.enrichment_scheduled);
    }

    #[test]
    fn replaying_twice_rebuilds_the_same_record() {
        let events = [
            report("2026-12-03T10:05:00.000Z", "AI: hi"),
            report("2026-12-03T10:05:09.000Z", "AI: hi"),
        ];
        let now = "2026-12-03T11:00:00.000Z";
        let once = rebuild("c1", None, &events, now);
        let twice = rebuild("c1", Some(&once), &events, now);
        assert_eq!(once, twice);
        assert_eq!(once.result.created_at, "2026-12-03T10:05:00.000Z");
    }
}
