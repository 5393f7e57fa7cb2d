//! The local runner's in-process delay queue, with the semantics of an SQS standard queue and its
//! redrive policy, so the enrichment consumer behaves locally as it does behind Lambda's event
//! source mapping:
//!
//! - a message is invisible until its delay has passed (capped at 900 s, like `DelaySeconds`);
//! - a receive hides it for the visibility timeout, counts the receive and hands out a fresh
//!   receipt handle; only the latest receipt deletes it or changes its visibility;
//! - the receive that would exceed `max_receive_count` moves it to the dead-letter queue instead;
//! - a receive long-polls: it waits for a send or for the next message to come due, never spins;
//! - [`MemoryQueue::snapshot`] / [`MemoryQueue::restore`] (and [`MemoryQueue::save`] /
//!   [`MemoryQueue::load`]) carry every message, with its remaining delay, across a restart.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ports::{EnrichmentJob, EnrichmentQueue, QueueError, MAX_QUEUE_DELAY};

/// Receives before a message is dead-lettered, as in the deployed redrive policy.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// The longest a message can be hidden by a visibility timeout (12 h, as in SQS); also the bound
/// on a long poll and on a restored delay.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: String,
    /// Deletes the message or changes its visibility until the next receive replaces it.
    pub receipt: String,
    pub body: String,
    /// 1 on the first delivery (SQS `ApproximateReceiveCount`).
    pub receive_count: u32,
    pub sent_at: DateTime<Utc>,
}

/// A message at rest: in a [`QueueSnapshot`] or in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedMessage {
    pub message_id: String,
    pub body: String,
    /// Deliveries so far.
    pub receive_count: u32,
    pub sent_at: DateTime<Utc>,
    /// Milliseconds until the message becomes visible (its delay, or what is left of a visibility
    /// timeout); 0 when it is visible now.
    #[serde(default)]
    pub delay_ms: u64,
}

/// Every message of a [`MemoryQueue`], serialisable (the local runner's `queue.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueSnapshot {
    pub saved_at: Option<DateTime<Utc>>,
    pub messages: Vec<QueuedMessage>,
    #[serde(default)]
    pub dead_letters: Vec<QueuedMessage>,
}

#[derive(Debug)]
struct Entry {
    body: String,
    receive_count: u32,
    sent_at: DateTime<Utc>,
    /// The entry's key in `Inner::due`.
    due: (Instant, u64),
    receipt: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// (visible at, insertion sequence) → message id: the next visible message is the first key.
    due: BTreeMap<(Instant, u64), String>,
    /// Latest receipt → message id.
    receipts: HashMap<String, String>,
    dead_letters: Vec<QueuedMessage>,
    next_seq: u64,
}

impl Inner {
    fn key(&mut self, at: Instant) -> (Instant, u64) {
        self.next_seq += 1;
        (at, self.next_seq)
    }

    fn insert(
        &mut self,
        message_id: String,
        body: String,
        receive_count: u32,
        sent_at: DateTime<Utc>,
        visible_at: Instant,
    ) {
        let due = self.key(visible_at);
        self.due.insert(due, message_id.clone());
        self.entries.insert(
            message_id,
            Entry {
                body,
                receive_count,
                sent_at,
                due,
                receipt: None,
            },
        );
    }

    /// Takes up to `max` visible messages, hides them for `visibility`, and dead-letters the ones
    /// that have used up their receives.
    fn take_visible(
        &mut self,
        max: usize,
        visibility: Duration,
        max_receive_count: u32,
        now: Instant,
    ) -> Vec<Delivery> {
        let mut batch = Vec::new();
        // Messages re-inserted below get a later sequence, so this bound never returns one twice.
        let bound = (now, self.next_seq);
        while batch.len() < max {
            let Some((&key, id)) = self.due.range(..=bound).next() else {
                break;
            };
            let id = id.clone();
            self.due.remove(&key);
            let Some(mut entry) = self.entries.remove(&id) else {
                continue;
            };
            if let Some(old) = entry.receipt.take() {
                self.receipts.remove(&old);
            }
            if entry.receive_count >= max_receive_count {
                tracing::warn!(message_id = %id, receive_count = entry.receive_count, "message moved to the dead-letter queue");
                self.dead_letters.push(QueuedMessage {
                    message_id: id,
                    body: entry.body,
                    receive_count: entry.receive_count,
                    sent_at: entry.sent_at,
                    delay_ms: 0,
                });
                continue;
            }
            entry.receive_count += 1;
            let receipt = uuid::Uuid::new_v4().to_string();
            entry.receipt = Some(receipt.clone());
            entry.due = self.key(now + visibility);
            self.due.insert(entry.due, id.clone());
            self.receipts.insert(receipt.clone(), id.clone());
            batch.push(Delivery {
                message_id: id.clone(),
                receipt,
                body: entry.body.clone(),
                receive_count: entry.receive_count,
                sent_at: entry.sent_at,
            });
            self.entries.insert(id, entry);
        }
        batch
    }

    fn next_due(&self) -> Option<Instant> {
        self.due.keys().next().map(|(at, _)| *at)
    }
}

/// The in-process delay queue (see the module documentation). Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MemoryQueue {
    inner: Mutex<Inner>,
    changed: Notify,
    max_receive_count: u32,
    waiting: AtomicUsize,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RECEIVE_COUNT)
    }
}

impl MemoryQueue {
    /// A queue whose messages are dead-lettered on the receive after `max_receive_count` (at least 1).
    pub fn new(max_receive_count: u32) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
            max_receive_count: max_receive_count.max(1),
            waiting: AtomicUsize::new(0),
        }
    }

    pub fn max_receive_count(&self) -> u32 {
        self.max_receive_count
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The lock is never held across an await or a panic-prone call; a poisoned lock still
        // holds consistent data.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `body`, visible after `delay` (capped at 900 s). Returns the message id.
    pub fn send(&self, body: impl Into<String>, delay: Duration) -> String {
        let message_id = uuid::Uuid::new_v4().to_string();
        let visible_at = Instant::now() + delay.min(MAX_QUEUE_DELAY);
        self.lock()
            .insert(message_id.clone(), body.into(), 0, Utc::now(), visible_at);
        self.changed.notify_waiters();
        message_id
    }

    /// Up to `max` visible messages, each hidden for `visibility` from now. Waits up to `wait` for
    /// one to arrive or come due; an empty batch means none did.
    pub async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Vec<Delivery> {
        if max == 0 {
            return Vec::new();
        }
        let deadline = Instant::now() + wait.min(MAX_VISIBILITY);
        let visibility = visibility.min(MAX_VISIBILITY);
        loop {
            // Registered before the state is read, so a send in between is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();

            let next_due = {
                let mut inner = self.lock();
                let batch =
                    inner.take_visible(max, visibility, self.max_receive_count, Instant::now());
                if !batch.is_empty() {
                    return batch;
                }
                inner.next_due()
            };
            if Instant::now() >= deadline {
                return Vec::new();
            }
            let wake = next_due.map_or(deadline, |due| due.min(deadline));
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let _waiting = WaitingGuard(&self.waiting);
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Deletes the message last received with `receipt`. `false` when the receipt is unknown or
    /// stale (the message was received again since, or is gone).
    pub fn delete(&self, receipt: &str) -> bool {
        let mut inner = self.lock();
        let Some(id) = inner.receipts.remove(receipt) else {
            return false;
        };
        if let Some(entry) = inner.entries.remove(&id) {
            inner.due.remove(&entry.due);
        }
        true
    }

    /// Hides the message received with `receipt` for `timeout` from now (`ChangeMessageVisibility`,
    /// capped at 12 h).
    /// `false` when the receipt is unknown or stale.
    pub fn change_visibility(&self, receipt: &str, timeout: Duration) -> bool {
        {
            let mut inner = self.lock();
            let Some(id) = inner.receipts.get(receipt).cloned() else {
                return false;
            };
            let key = inner.key(Instant::now() + timeout.min(MAX_VISIBILITY));
            let Some(entry) = inner.entries.get_mut(&id) else {
                return false;
            };
            let old = std::mem::replace(&mut entry.due, key);
            inner.due.remove(&old);
            inner.due.insert(key, id);
        }
        self.changed.notify_waiters();
        true
    }

    /// Makes the message received with `receipt` visible again now (visibility timeout 0).
    pub fn release(&self, receipt: &str) -> bool {
        self.change_visibility(receipt, Duration::ZERO)
    }

    /// Messages in the queue: delayed, visible and in flight (not the dead letters).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dlq_len(&self) -> usize {
        self.lock().dead_letters.len()
    }

    /// Takes every dead letter out of the dead-letter queue, oldest first.
    pub fn drain_dlq(&self) -> Vec<QueuedMessage> {
        std::mem::take(&mut self.lock().dead_letters)
    }

    /// Moves every dead letter back to the queue, visible now with a receive count of 0 (the
    /// operator's redrive). Returns how many moved.
    pub fn redrive_dlq(&self) -> usize {
        let moved = {
            let mut inner = self.lock();
            let dead = std::mem::take(&mut inner.dead_letters);
            let now = Instant::now();
            let moved = dead.len();
            for m in dead {
                inner.insert(m.message_id, m.body, 0, m.sent_at, now);
            }
            moved
        };
        self.changed.notify_waiters();
        moved
    }

    /// Receivers currently parked in a long poll (a gauge for logs and tests).
    pub fn waiting_receivers(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Every message with the time left until it is visible, and the dead letters. Receipts are not
    /// kept: a message in flight stays hidden for what is left of its visibility timeout, then is
    /// delivered again, as SQS would after a consumer restart.
    pub fn snapshot(&self) -> QueueSnapshot {
        let inner = self.lock();
        let now = Instant::now();
        let mut messages: Vec<(&(Instant, u64), QueuedMessage)> = inner
            .entries
            .iter()
            .map(|(id, e)| {
                let delay = e.due.0.saturating_duration_since(now);
                let message = QueuedMessage {
                    message_id: id.clone(),
                    body: e.body.clone(),
                    receive_count: e.receive_count,
                    sent_at: e.sent_at,
                    delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                };
                (&e.due, message)
            })
            .collect();
        messages.sort_by(|a, b| a.0.cmp(b.0));
        QueueSnapshot {
            saved_at: Some(Utc::now()),
            messages: messages.into_iter().map(|(_, m)| m).collect(),
            dead_letters: inner.dead_letters.clone(),
        }
    }

    /// Adds a snapshot's messages (each visible after its remaining delay) and dead letters. A
    /// message whose id is already in the queue is skipped. Returns how many messages were added.
    pub fn restore(&self, snapshot: QueueSnapshot) -> usize {
        let added = {
            let mut inner = self.lock();
            let now = Instant::now();
            let mut added = 0;
            for m in snapshot.messages {
                if inner.entries.contains_key(&m.message_id) {
                    continue;
                }
                let delay = Duration::from_millis(m.delay_ms).min(MAX_VISIBILITY);
                inner.insert(
                    m.message_id,
                    m.body,
                    m.receive_count,
                    m.sent_at,
                    now + delay,
                );
                added += 1;
            }
            inner.dead_letters.extend(snapshot.dead_letters);
            added
        };
        self.changed.notify_waiters();
        added
    }

    /// Writes [`Self::snapshot`] to `path` as JSON, atomically (a temporary file renamed over it).
    /// Returns how many messages (dead letters included) were saved.
    pub fn save(&self, path: &Path) -> std::io::Result<usize> {
        let snapshot = self.snapshot();
        let count = snapshot.messages.len() + snapshot.dead_letters.len();
        let json = serde_json::to_vec_pretty(&snapshot).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)?;
        Ok(count)
    }

    /// [`Self::restore`]s the snapshot saved at `path`; a missing file restores nothing. Returns how
    /// many messages were added to the queue.
    pub fn load(&self, path: &Path) -> std::io::Result<usize> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let snapshot: QueueSnapshot = serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        Ok(self.restore(snapshot))
    }
}

struct WaitingGuard<'a>(&'a AtomicUsize);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl EnrichmentQueue for MemoryQueue {
    async fn schedule(&self, job: &EnrichmentJob, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(job)
            .map_err(|e| QueueError(format!("job is not serialisable: {e}")))?;
        let message_id = self.send(body, delay);
        tracing::debug!(call_id = %job.call_id, attempt = job.attempt, kind = ?job.kind, delay_ms = delay.as_millis() as u64, %message_id, "enrichment job queued");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
