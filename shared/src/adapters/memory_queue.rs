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

use crate::adapters::sqs::MAX_DELAY;
use crate::ports::{EnrichmentJob, EnrichmentQueue, QueueError};

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
        let visible_at = Instant::now() + delay.min(MAX_DELAY);
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
mod tests {
    use super::*;
    use crate::ports::JobKind;

    const LONG: Duration = Duration::from_secs(60);
    /// The bound on every wait in these tests: reaching it means the behaviour under test failed.
    const BOUND: Duration = Duration::from_secs(5);

    fn job(call_id: &str) -> EnrichmentJob {
        EnrichmentJob {
            call_id: call_id.into(),
            attempt: 1,
            kind: JobKind::Enrich,
        }
    }

    #[tokio::test]
    async fn a_delayed_message_is_invisible_until_its_delay_passes() {
        let q = MemoryQueue::default();
        q.schedule(&job("c-1"), Duration::from_millis(300))
            .await
            .unwrap();
        let sent = Instant::now();

        assert!(
            q.receive(10, Duration::ZERO, LONG).await.is_empty(),
            "visible before its delay"
        );
        let got = q.receive(10, BOUND, LONG).await;
        let waited = sent.elapsed();

        assert_eq!(got.len(), 1);
        assert!(
            waited >= Duration::from_millis(290),
            "delivered after {waited:?}, before the 300 ms delay"
        );
        assert!(
            waited < BOUND,
            "the long poll did not wake when the message came due"
        );
        let body: EnrichmentJob = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(body, job("c-1"));
        assert_eq!(got[0].receive_count, 1);
    }

    #[tokio::test]
    async fn a_long_poll_on_an_empty_queue_waits_then_answers_empty() {
        let q = MemoryQueue::default();
        let start = Instant::now();
        assert!(q
            .receive(10, Duration::from_millis(200), LONG)
            .await
            .is_empty());
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "returned after {:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_waiting_receive_wakes_when_a_message_is_sent() {
        let q = std::sync::Arc::new(MemoryQueue::default());
        let receiver = tokio::spawn({
            let q = q.clone();
            async move { q.receive(10, Duration::from_secs(30), LONG).await }
        });
        tokio::time::timeout(BOUND, async {
            while q.waiting_receivers() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the receive never started waiting");

        let start = Instant::now();
        let id = q.send("hello", Duration::ZERO);
        let got = tokio::time::timeout(BOUND, receiver)
            .await
            .expect("the waiting receive was not woken")
            .unwrap();
        assert!(start.elapsed() < BOUND);
        assert_eq!(
            got.iter()
                .map(|d| d.message_id.as_str())
                .collect::<Vec<_>>(),
            [id.as_str()]
        );
        assert_eq!(q.waiting_receivers(), 0);
    }

    #[tokio::test]
    async fn a_received_message_is_hidden_then_redelivered_with_a_higher_count() {
        let q = MemoryQueue::default();
        let id = q.send("body", Duration::ZERO);

        let first = q
            .receive(10, Duration::ZERO, Duration::from_millis(200))
            .await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].receive_count, 1);
        assert!(
            q.receive(10, Duration::ZERO, LONG).await.is_empty(),
            "visible during its visibility timeout"
        );

        let second = q.receive(10, BOUND, LONG).await;
        assert_eq!(
            second.len(),
            1,
            "not redelivered after the visibility timeout"
        );
        assert_eq!(second[0].message_id, id);
        assert_eq!(second[0].receive_count, 2);
        assert_ne!(second[0].receipt, first[0].receipt);

        assert!(
            !q.delete(&first[0].receipt),
            "a stale receipt deleted the message"
        );
        assert_eq!(q.len(), 1);
        assert!(q.delete(&second[0].receipt));
        assert!(q.is_empty());
        assert!(!q.delete(&second[0].receipt), "deleted twice");
    }

    #[tokio::test]
    async fn a_batch_holds_at_most_max_messages_oldest_first() {
        let q = MemoryQueue::default();
        let ids: Vec<String> = (0..5)
            .map(|i| q.send(format!("m{i}"), Duration::ZERO))
            .collect();
        let a = q.receive(3, Duration::ZERO, LONG).await;
        let b = q.receive(3, Duration::ZERO, LONG).await;
        let got: Vec<&str> = a.iter().chain(&b).map(|d| d.message_id.as_str()).collect();
        assert_eq!(a.len(), 3);
        assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(q.receive(0, Duration::ZERO, LONG).await.is_empty());
    }

    #[tokio::test]
    async fn the_receive_that_would_exceed_max_receive_count_dead_letters_the_message() {
        let q = MemoryQueue::new(2);
        let id = q.send("poison", Duration::ZERO);

        // Visibility 0: visible again at once, so each receive delivers it again.
        for count in 1..=2 {
            let got = q.receive(10, Duration::ZERO, Duration::ZERO).await;
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].receive_count, count);
        }
        assert_eq!(q.dlq_len(), 0);
        assert!(
            q.receive(10, Duration::ZERO, Duration::ZERO)
                .await
                .is_empty(),
            "delivered a third time"
        );
        assert_eq!(q.dlq_len(), 1);
        assert!(q.is_empty());

        let dead = q.drain_dlq();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (
                dead[0].message_id.as_str(),
                dead[0].body.as_str(),
                dead[0].receive_count
            ),
            (id.as_str(), "poison", 2)
        );
        assert_eq!(q.dlq_len(), 0);
    }

    #[tokio::test]
    async fn redrive_moves_dead_letters_back_with_a_fresh_count() {
        let q = MemoryQueue::new(1);
        q.send("m", Duration::ZERO);
        q.receive(10, Duration::ZERO, Duration::ZERO).await;
        assert!(q
            .receive(10, Duration::ZERO, Duration::ZERO)
            .await
            .is_empty());
        assert_eq!(q.dlq_len(), 1);

        assert_eq!(q.redrive_dlq(), 1);
        assert_eq!(q.dlq_len(), 0);
        let got = q.receive(10, Duration::ZERO, LONG).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count, 1);
    }

    #[tokio::test]
    async fn release_makes_a_received_message_visible_now() {
        let q = MemoryQueue::default();
        q.send("m", Duration::ZERO);
        let first = q.receive(10, Duration::ZERO, LONG).await;
        assert!(q.receive(10, Duration::ZERO, LONG).await.is_empty());

        assert!(q.release(&first[0].receipt));
        let again = q.receive(10, Duration::ZERO, LONG).await;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);

        assert!(!q.release("no-such-receipt"));
        assert!(
            !q.release(&first[0].receipt),
            "a stale receipt changed the visibility"
        );
        assert!(q.receive(10, Duration::ZERO, LONG).await.is_empty());
    }

    #[tokio::test]
    async fn change_visibility_extends_the_hiding() {
        let q = MemoryQueue::default();
        q.send("m", Duration::ZERO);
        let first = q.receive(10, Duration::ZERO, Duration::ZERO).await;
        assert!(q.change_visibility(&first[0].receipt, LONG));
        assert!(q
            .receive(10, Duration::from_millis(100), LONG)
            .await
            .is_empty());
    }

    #[tokio::test]
    async fn snapshot_and_restore_keep_every_message_and_its_remaining_delay() {
        let q = MemoryQueue::new(1);
        let dead = q.send("dead", Duration::ZERO);
        q.receive(10, Duration::ZERO, Duration::ZERO).await;
        assert!(q
            .receive(10, Duration::ZERO, Duration::ZERO)
            .await
            .is_empty());
        let visible = q.send("visible", Duration::ZERO);
        let delayed = q.send("delayed", LONG);
        assert_eq!((q.len(), q.dlq_len()), (2, 1));

        let snapshot = q.snapshot();
        let json = serde_json::to_string(&snapshot).unwrap();
        let restored = MemoryQueue::new(1);
        assert_eq!(restored.restore(serde_json::from_str(&json).unwrap()), 2);
        assert_eq!((restored.len(), restored.dlq_len()), (2, 1));

        let again = restored.snapshot();
        let by_id = |s: &QueueSnapshot, id: &str| {
            s.messages
                .iter()
                .find(|m| m.message_id == id)
                .cloned()
                .unwrap()
        };
        assert_eq!(by_id(&again, &visible).delay_ms, 0);
        let (before, after) = (
            by_id(&snapshot, &delayed).delay_ms,
            by_id(&again, &delayed).delay_ms,
        );
        assert!(
            before > 59_000 && after <= before && after > before - 1_000,
            "delay {before} ms became {after} ms"
        );
        assert_eq!(
            by_id(&again, &delayed).sent_at,
            by_id(&snapshot, &delayed).sent_at
        );
        assert_eq!(again.dead_letters[0].message_id, dead);

        let got = restored.receive(10, Duration::ZERO, LONG).await;
        assert_eq!(
            got.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(),
            ["visible"],
            "the delay was lost"
        );
        assert_eq!(got[0].message_id, visible);

        // Restoring the same snapshot again adds nothing twice.
        assert_eq!(restored.restore(snapshot), 0);
        assert_eq!(restored.len(), 2);
    }

    #[tokio::test]
    async fn save_and_load_round_trip_through_a_file() {
        let dir = std::env::temp_dir().join(format!("ringback-queue-{}", uuid::Uuid::new_v4()));
        let path = dir.join("queue.json");
        let q = MemoryQueue::default();
        q.send("a", Duration::ZERO);
        q.send("b", LONG);
        assert_eq!(q.save(&path).unwrap(), 2);

        let loaded = MemoryQueue::default();
        assert_eq!(loaded.load(&path).unwrap(), 2);
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.load(&dir.join("missing.json")).unwrap(), 0);

        std::fs::write(&path, b"not json").unwrap();
        let err = loaded.load(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
