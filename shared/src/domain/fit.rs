//! Fitting a pushed event into a carrier's size limit (the events table's item, an EventBridge
//! entry). A call's record may hold megabytes (the calls table keeps it in parts); an event must
//! fit one item or one entry, whatever Vapi sent, or the call could never settle.
//!
//! The event is cut in a fixed number of steps, each taken only when the one before did not fit,
//! losing first what a receiver can best do without: the turn-by-turn `messages`, then the
//! transcript, then the analysis, then every free text. The last step keeps only ids, states,
//! times and numbers, which fit any carrier. A cut event says so (`data.truncated = true`): the
//! record (`GET /api/v1/vapi/calls/{id}`) has it all.

use std::borrow::Cow;

use super::push::CallEvent;
use super::{Analysis, Provider, RequestInfo};

/// How much of the event is kept: each step keeps less than the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cut {
    Whole,
    NoMessages,
    NoTranscript,
    NoAnalysis,
    /// Ids, states, times and numbers only.
    Skeleton,
}

const STEPS: [Cut; 5] = [
    Cut::Whole,
    Cut::NoMessages,
    Cut::NoTranscript,
    Cut::NoAnalysis,
    Cut::Skeleton,
];

/// `event` cut at `cut` (cumulatively: each step also takes what the steps before took).
pub fn cut(event: &CallEvent, cut: Cut) -> CallEvent {
    let mut e = event.clone();
    if cut == Cut::Whole {
        return e;
    }
    let d = &mut e.data;
    d.truncated = true;
    d.messages.clear();
    if cut >= Cut::NoTranscript {
        d.transcript = None;
    }
    if cut >= Cut::NoAnalysis {
        d.analysis = Analysis::default();
    }
    if cut >= Cut::Skeleton {
        d.provider = Provider::default();
        d.request = RequestInfo::default();
        d.ended_reason = None;
        d.recording_url = None;
        d.fetch_error = None;
        d.provider_id = None;
        d.service_request_id = None;
        d.callback_url = None;
        // Vapi's times are kept as it sent them: only a timestamp's length is certain to fit.
        for t in [
            &mut d.started_at,
            &mut d.ended_at,
            &mut d.webhook_received_at,
            &mut d.fetched_at,
        ] {
            if t.as_ref().is_some_and(|t| t.len() > 64) {
                *t = None;
            }
        }
    }
    e
}

/// The least-cut form of `event` that `fits` accepts, and the cut taken; the skeleton when none
/// does (it is a few hundred bytes, below any carrier's limit). `fits` is called at most five
/// times.
pub fn fitted(event: &CallEvent, fits: impl Fn(&CallEvent) -> bool) -> (Cow<'_, CallEvent>, Cut) {
    if fits(event) {
        return (Cow::Borrowed(event), Cut::Whole);
    }
    for step in &STEPS[1..STEPS.len() - 1] {
        let slim = cut(event, *step);
        if fits(&slim) {
            return (Cow::Owned(slim), *step);
        }
    }
    (Cow::Owned(cut(event, Cut::Skeleton)), Cut::Skeleton)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::push::EventType;
    use crate::domain::{CallResult, ConversationMessage, DataStatus, Outcome};

    fn big_event() -> CallEvent {
        let mut data = CallResult::new("c1", "2026-12-03T00:00:00.000Z");
        data.data_status = DataStatus::Complete;
        data.status = Some(Outcome::Completed);
        data.transcript = Some("t".repeat(1000));
        data.messages = vec![ConversationMessage {
            role: "bot".into(),
            message: "m".repeat(1000),
            ..Default::default()
        }];
        data.analysis.summary = Some("s".repeat(1000));
        data.provider.name = Some("n".repeat(1000));
        data.cost = Some(0.5);
        CallEvent {
            kind: EventType::Completed,
            id: "evt_1".into(),
            timestamp: "2026-12-03T00:00:00.000Z".into(),
            data,
        }
    }

    fn size(e: &CallEvent) -> usize {
        serde_json::to_vec(e).unwrap().len()
    }

    #[test]
    fn an_event_that_fits_is_kept_whole_and_unmarked() {
        let e = big_event();
        let (got, step) = fitted(&e, |_| true);
        assert_eq!(step, Cut::Whole);
        assert_eq!(*got, e);
        assert!(!serde_json::to_string(&*got).unwrap().contains("truncated"));
    }

    #[test]
    fn each_step_loses_the_least_a_receiver_needs_first() {
        let e = big_event();
        let (got, step) = fitted(&e, |c| size(c) < size(&e) - 500);
        assert_eq!(step, Cut::NoMessages);
        assert!(got.data.messages.is_empty());
        assert_eq!(got.data.transcript, e.data.transcript);
        assert!(got.data.truncated);

        let (got, step) = fitted(&e, |c| c.data.analysis.summary.is_none());
        assert_eq!(step, Cut::NoAnalysis);
        assert_eq!(got.data.transcript, None);
        assert_eq!(got.data.provider.name, e.data.provider.name);
    }

    #[test]
    fn nothing_fitting_ends_at_the_skeleton_after_five_tries() {
        let e = big_event();
        let tries = std::cell::Cell::new(0);
        let (got, step) = fitted(&e, |_| {
            tries.set(tries.get() + 1);
            false
        });
        assert_eq!(step, Cut::Skeleton);
        assert_eq!(tries.get(), 4);
        let d = &got.data;
        assert!(d.truncated);
        assert_eq!(
            (d.call_id.as_str(), d.status, d.cost),
            ("c1", Some(Outcome::Completed), Some(0.5))
        );
        assert_eq!(d.provider.name, None);
        assert!(size(&got) < 1024, "{}", size(&got));
    }
}
