//! The deployment's event bus (EventBridge), in virtual time: it takes an entry, or during the
//! storm fails, loses its answer after taking it, or its caller dies around the call. Entries are
//! made by the real adapter's [`detail`] (cut to fit), and one past EventBridge's 256 KB entry
//! limit is refused as EventBridge refuses it. It remembers every entry it took, so the checker
//! can hold ringback to "each settled call's event reaches the bus, with committed data".

use std::sync::Mutex;

use async_trait::async_trait;
use ringback::adapters::eventbridge::detail;
use ringback::domain::push::CallEvent;
use ringback::ports::EventBus;
use serde_json::Value;

use crate::sched::{Fault, Gates, Op};

/// What EventBridge takes in one entry.
const ENTRY_LIMIT: usize = 256 * 1024;

pub struct BusModel {
    pub gates: Gates,
    /// Every entry's `Detail` the bus took.
    pub log: Mutex<Vec<Value>>,
}

impl BusModel {
    fn take(&self, detail: &str) {
        let entry = serde_json::from_str(detail).expect("a detail is JSON");
        self.log.lock().unwrap().push(entry);
    }
}

#[async_trait]
impl EventBus for BusModel {
    async fn publish(&self, event: &CallEvent) -> Result<(), String> {
        let detail = detail(event);
        let passage = self.gates.gate(Op::BusPublish).await;
        let fault = passage.fault;
        if detail.len() > ENTRY_LIMIT {
            return Err("EventBridge refused the entry: too large".into());
        }
        match fault {
            None | Some(Fault::Slow) => {
                self.take(&detail);
                Ok(())
            }
            Some(Fault::Crash) => self.gates.die().await,
            Some(Fault::LandCrash) => {
                self.take(&detail);
                self.gates.die().await
            }
            Some(Fault::LoseAnswer) => {
                self.take(&detail);
                Err("EventBridge did not answer in time".into())
            }
            Some(_) => Err("EventBridge PutEvents answered 500".into()),
        }
    }
}
