//! An SQS standard queue with its dead-letter queue, in virtual time, and the queue port that
//! sends into it (the enrichment queue and the push queue are one each). Semantics as SQS and Lambda's event source mapping have them: a
//! message hides for its delay, then for the visibility timeout on each receive; a receive past
//! `maxReceiveCount` moves it to the dead-letter queue; a redrive brings it back under a new id.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ringback::ports::{EnrichmentJob, EnrichmentQueue, QueueError, MAX_QUEUE_DELAY};

use crate::clock::{Ms, SimClock, SECOND};
use crate::sched::{Fault, Gates, Op};
use crate::trace::Trace;

/// The call whose enrichment chain a message carries (an enrich or watchdog job); `None` for any
/// other message (persist, push) or a body that is no job.
pub fn chain_call(body: &str) -> Option<String> {
    use ringback::ports::JobKind;
    ringback::service::enrichment::parse_job(body)
        .ok()
        .filter(|j| matches!(j.kind, JobKind::Enrich | JobKind::Watchdog))
        .map(|j| j.call_id)
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub visible_at: Ms,
    pub receives: u32,
}

#[derive(Debug)]
pub struct Sqs {
    pub queue: Vec<Message>,
    pub dead: Vec<Message>,
    /// Every move to the dead-letter queue: the body, and when.
    pub dead_lettered: Vec<(String, Ms)>,
    /// The deployed queue's settings (template.yaml).
    pub visibility: Ms,
    pub max_receive: u32,
    next_id: u64,
    /// Extra delay some sends get (0 when calm): messages arrive late and out of order.
    pub jitter: Ms,
    /// Message ids start with it, so a trace tells the queues apart.
    prefix: &'static str,
}

impl Sqs {
    pub fn new() -> Self {
        Self::named("m")
    }

    pub fn named(prefix: &'static str) -> Self {
        Self {
            prefix,
            queue: Vec::new(),
            dead: Vec::new(),
            dead_lettered: Vec::new(),
            visibility: 180 * SECOND,
            max_receive: 5,
            next_id: 1,
            jitter: 0,
        }
    }

    fn new_id(&mut self) -> String {
        let id = format!("{}{}", self.prefix, self.next_id);
        self.next_id += 1;
        id
    }

    pub fn send(&mut self, body: String, delay: Ms, now: Ms) -> String {
        let id = self.new_id();
        self.queue.push(Message {
            id: id.clone(),
            body,
            visible_at: now + delay,
            receives: 0,
        });
        id
    }

    pub fn next_visible(&self) -> Option<Ms> {
        self.queue.iter().map(|m| m.visible_at).min()
    }

    /// Up to `max` visible messages, oldest due first: each hidden for the visibility timeout and
    /// counted; one that would pass `maxReceiveCount` moves to the dead-letter queue instead.
    pub fn receive(&mut self, now: Ms, max: usize) -> Vec<Message> {
        let mut due: Vec<usize> = (0..self.queue.len())
            .filter(|&i| self.queue[i].visible_at <= now)
            .collect();
        due.sort_by_key(|&i| (self.queue[i].visible_at, self.queue[i].id.clone()));
        let mut out = Vec::new();
        let mut to_dead = Vec::new();
        for i in due {
            if out.len() == max {
                break;
            }
            let m = &mut self.queue[i];
            if m.receives >= self.max_receive {
                to_dead.push(i);
                continue;
            }
            m.receives += 1;
            m.visible_at = now + self.visibility;
            out.push(m.clone());
        }
        to_dead.sort_unstable_by(|a, b| b.cmp(a));
        for i in to_dead {
            let m = self.queue.remove(i);
            self.dead_lettered.push((m.body.clone(), now));
            self.dead.push(m);
        }
        out
    }

    pub fn delete(&mut self, id: &str) {
        self.queue.retain(|m| m.id != id);
    }

    /// An operator's redrive: every dead letter back on the queue, each under a new message id.
    pub fn redrive(&mut self, now: Ms) -> usize {
        let dead = std::mem::take(&mut self.dead);
        let n = dead.len();
        for m in dead {
            self.send(m.body, 0, now);
        }
        n
    }
}

impl Default for Sqs {
    fn default() -> Self {
        Self::new()
    }
}

/// The enrichment queue port: `SendMessage` into [`Sqs`], failing on schedule.
pub struct QueuePort {
    pub sqs: Arc<Mutex<Sqs>>,
    pub gates: Gates,
    pub clock: Arc<SimClock>,
    pub trace: Trace,
}

impl QueuePort {
    fn send(&self, job: &EnrichmentJob, delay: Duration) {
        let delay = delay.min(MAX_QUEUE_DELAY).as_millis() as Ms;
        let body = serde_json::to_string(job).expect("a job serialises");
        let now = self.clock.ms();
        let mut sqs = self.sqs.lock().unwrap();
        let delay = delay + sqs.jitter;
        let id = sqs.send(body, delay, now);
        self.trace.note(format!(
            "sqs: {id} = {:?} #{} for {}{}, visible in {:.1}s",
            job.kind,
            job.attempt,
            job.call_id,
            job.event_id
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
            delay as f64 / 1000.0
        ));
    }
}

#[async_trait]
impl EnrichmentQueue for QueuePort {
    async fn schedule(&self, job: &EnrichmentJob, delay: Duration) -> Result<(), QueueError> {
        match self.gates.gate(Op::QueueSend).await.fault {
            None | Some(Fault::Slow) => {
                self.send(job, delay);
                Ok(())
            }
            Some(Fault::Crash) => self.gates.die().await,
            Some(Fault::LandCrash) => {
                self.send(job, delay);
                self.gates.die().await
            }
            Some(Fault::LoseAnswer | Fault::LandConflict) => {
                self.send(job, delay);
                Err(QueueError(
                    "injected: the answer to SendMessage was lost".into(),
                ))
            }
            Some(_) => Err(QueueError("injected: SendMessage failed".into())),
        }
    }
}

/// The queues' depths as `GET /stats` reads them (SQS `GetQueueAttributes`), failing on schedule.
pub struct QueueGaugePort {
    pub sqs: Arc<Mutex<Sqs>>,
    pub gates: Gates,
    pub clock: Arc<SimClock>,
}

#[async_trait]
impl ringback::stats::QueueGauge for QueueGaugePort {
    async fn depths(&self) -> Result<ringback::stats::QueueDepths, String> {
        match self.gates.gate(Op::QueueDepth).await.fault {
            None | Some(Fault::Slow) => {}
            Some(Fault::Crash | Fault::LandCrash) => self.gates.die().await,
            Some(f) => return Err(format!("injected: GetQueueAttributes met {f:?}")),
        }
        let now = self.clock.ms();
        let sqs = self.sqs.lock().unwrap();
        let (ready, later): (Vec<&Message>, Vec<&Message>) =
            sqs.queue.iter().partition(|m| m.visible_at <= now);
        let depth = |visible: usize, delayed: usize| ringback::stats::QueueDepth {
            visible: visible as u64,
            in_flight: 0,
            delayed: delayed as u64,
        };
        Ok(ringback::stats::QueueDepths {
            enrichment: depth(ready.len(), later.len()),
            dead_letter: depth(sqs.dead.len(), 0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_visibility_dead_letters_and_redrive() {
        let mut q = Sqs::new();
        let id = q.send("job".into(), 3 * SECOND, 0);
        assert!(q.receive(2 * SECOND, 10).is_empty(), "hidden by its delay");
        for n in 1..=5 {
            let now = 3 * SECOND + (n - 1) * q.visibility;
            let got = q.receive(now, 10);
            assert_eq!((got.len(), got[0].receives), (1, n as u32));
            assert!(q.receive(now + 1, 10).is_empty(), "hidden while in flight");
        }
        // The sixth receive would pass maxReceiveCount: dead-lettered instead.
        assert!(q.receive(3 * SECOND + 5 * q.visibility, 10).is_empty());
        assert_eq!((q.queue.len(), q.dead.len()), (0, 1));
        assert_eq!(q.redrive(10_000_000), 1);
        let again = q.receive(10_000_000, 10);
        assert_eq!(again[0].receives, 1);
        assert_ne!(again[0].id, id, "a redriven message has a new id");
    }
}
