//! Virtual time: the world moves it from event to event; every service and the store read it.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use ringback::ports::Clock;

/// Milliseconds since the start of a run.
pub type Ms = i64;

pub const SECOND: Ms = 1000;
pub const MINUTE: Ms = 60 * SECOND;

/// The run's clock: `start` plus the milliseconds the world has reached.
#[derive(Debug)]
pub struct SimClock {
    start: DateTime<Utc>,
    now: AtomicI64,
}

impl SimClock {
    pub fn new() -> Self {
        Self {
            start: DateTime::parse_from_rfc3339("2026-03-02T15:00:00Z")
                .expect("a valid start")
                .with_timezone(&Utc),
            now: AtomicI64::new(0),
        }
    }

    pub fn ms(&self) -> Ms {
        self.now.load(Ordering::SeqCst)
    }

    /// Moves forward to `t` (never back).
    pub fn advance_to(&self, t: Ms) {
        self.now.fetch_max(t, Ordering::SeqCst);
    }

    pub fn at(&self, t: Ms) -> DateTime<Utc> {
        self.start + chrono::Duration::milliseconds(t)
    }

    /// The run time of an instant (for Vapi's filters and timestamps read back).
    pub fn ms_of(&self, t: DateTime<Utc>) -> Ms {
        (t - self.start).num_milliseconds()
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        self.at(self.ms())
    }
}
