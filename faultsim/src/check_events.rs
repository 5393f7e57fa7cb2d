//! The promises about events, checked at the end of a run: what the client's receiver got over
//! HTTP and what the deployment's event bus took carry committed states, tell how each call
//! ended, and include every settled call's settling event under one id.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::vapi::Call;
use crate::world::World;

/// Events by id: the first copy's body, and whether any copy was taken.
type ById = BTreeMap<String, (Value, bool)>;

impl World {
    pub(crate) fn check_pushes(&mut self, calls: &BTreeMap<String, Call>) {
        let verifier =
            standardwebhooks::Webhook::new(crate::world::CALLBACK_SECRET).expect("a valid secret");
        let log = self.receiver.log.lock().unwrap().clone();
        let mut by_id = ById::new();
        for r in &log {
            let header = |name: &str| {
                r.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let id = header("webhook-id");
            // The receiver's clock is virtual: verify the signature at the time it was made.
            let ts: i64 = header("webhook-timestamp").parse().unwrap_or_default();
            let sig = verifier.sign(&id, ts, &r.body).unwrap_or_default();
            if sig != header("webhook-signature") {
                self.violation(format!("event {id}: its signature does not verify"));
            }
            let event: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            if event["id"] != id.as_str() {
                self.violation(format!("event {id}: the body says id {}", event["id"]));
            }
            self.take_event("receiver", &mut by_id, id, event, r.accepted);
        }
        let owed = |c: &Call| c.metadata["callbackUrl"].as_str().is_some();
        self.check_settling("receiver", &by_id, calls, owed);
    }

    pub(crate) fn check_bus(&mut self, calls: &BTreeMap<String, Call>) {
        let Some(bus) = self.bus.clone() else { return };
        let log = bus.log.lock().unwrap().clone();
        let mut by_id = ById::new();
        for event in log {
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            self.take_event("bus", &mut by_id, id, event, true);
        }
        self.check_settling("bus", &by_id, calls, |_| true);
    }

    /// One copy of an event: it must carry a state the record committed, a settling event must
    /// say how that record ended, and every copy under one id must be the same.
    fn take_event(&mut self, to: &str, by_id: &mut ById, id: String, event: Value, taken: bool) {
        let lifetime = self.committed.lock().unwrap().holds(&event["data"]);
        let Some(lifetime) = lifetime else {
            self.violation(format!(
                "{to}: event {id} ({}) carries data the record never committed (dataStatus {}, updatedAt {})",
                event["type"], event["data"]["dataStatus"], event["data"]["updatedAt"]
            ));
            return;
        };
        // A settled record stays settled as it is: its settling event tells how it ended.
        // (A record that expired and was made again by a late webhook is another record.)
        let call_id = event["data"]["callId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let last = self
            .committed
            .lock()
            .unwrap()
            .last
            .get(&(call_id, lifetime))
            .cloned();
        let ended = match event["type"].as_str() {
            Some("call.completed") => Some("complete"),
            Some("call.failed") => Some("fetch_failed"),
            _ => None,
        };
        if let (Some(ended), Some(last)) = (ended, last) {
            if ended != last {
                self.violation(format!(
                    "{to}: event {id} says {}, but the call ended {last}",
                    event["type"]
                ));
            }
        }
        match by_id.get_mut(&id) {
            Some((first, accepted)) => {
                if *first != event {
                    self.violation(format!("{to}: event {id} came with two different bodies"));
                }
                *accepted |= taken;
            }
            None => {
                by_id.insert(id, (event, taken));
            }
        }
    }

    /// Each settled call `owed` an event has its settling event taken, under one id.
    fn check_settling(
        &mut self,
        to: &str,
        by_id: &ById,
        calls: &BTreeMap<String, Call>,
        owed: impl Fn(&Call) -> bool,
    ) {
        for (id, seen) in self.watch.calls.clone() {
            let Some(call) = calls.get(&id) else { continue };
            if seen.terminal.is_none() || !owed(call) {
                continue;
            }
            let settling: Vec<(&String, bool)> = by_id
                .iter()
                .filter(|(_, (e, _))| {
                    e["data"]["callId"] == id.as_str()
                        && matches!(e["type"].as_str(), Some("call.completed" | "call.failed"))
                })
                .map(|(eid, (_, accepted))| (eid, *accepted))
                .collect();
            if !settling.iter().any(|(_, accepted)| *accepted) {
                self.violation(format!(
                    "{to}: call {id} settled {:?}, but its event never arrived ({} tries seen)",
                    seen.data_status,
                    settling.len()
                ));
            }
            // Whatever came last (late data, a replay's corrected record) reaches them too.
            let newest = by_id.values().any(|(e, taken)| {
                *taken
                    && e["data"]["callId"] == id.as_str()
                    && self.committed.lock().unwrap().is_newest(&e["data"])
            });
            if !newest {
                self.violation(format!(
                    "{to}: call {id}: no event carries the record's last committed state"
                ));
            }
            let kinds: std::collections::BTreeSet<&str> = settling
                .iter()
                .filter_map(|(eid, _)| by_id[*eid].0["type"].as_str())
                .collect();
            if settling.len() > kinds.len() {
                self.violation(format!(
                    "{to}: call {id}: one settling event went out under {} ids",
                    settling.len()
                ));
            }
        }
    }
}
