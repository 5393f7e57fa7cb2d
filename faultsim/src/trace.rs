//! The run's trace: one line per event, fault and notable step, in virtual time, printed with the
//! seed when an invariant breaks so the run can be read and replayed.

use std::sync::{Arc, Mutex};

use crate::clock::SimClock;
use crate::sched::TASK;

#[derive(Clone)]
pub struct Trace {
    lines: Arc<Mutex<Vec<String>>>,
    clock: Arc<SimClock>,
}

impl Trace {
    pub fn new(clock: Arc<SimClock>) -> Self {
        Self {
            lines: Arc::default(),
            clock,
        }
    }

    pub fn note(&self, line: impl AsRef<str>) {
        let t = self.clock.ms() as f64 / 1000.0;
        let task = TASK
            .try_with(|t| format!("task {t:>3}"))
            .unwrap_or_else(|_| "world   ".into());
        self.lines
            .lock()
            .unwrap()
            .push(format!("{t:>9.3}s {task}  {}", line.as_ref()));
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}
