//! Group commit for the embedded store.
//!
//! The store runs SQLite in WAL mode with `synchronous = NORMAL`: when it answers a write, the commit
//! is in the WAL file (in the kernel's cache), so it survives the process dying but not yet the
//! machine. A request that acknowledges data to its caller (a webhook, a new call) then waits for
//! [`GroupSync::durable`]: one `fdatasync` of the WAL that *started after* the request's writes were
//! answered. Requests that arrive together share one sync, so durability costs one sync per batch
//! instead of one per write under the store's single lock (which capped new webhooks at ~900/s).
//!
//! The store's client counts the writes the store took ([`GroupSync::note_write`]; a refused
//! condition commits nothing and is not counted); a request finds nothing owed, and waits for no
//! sync, when no write was taken since the last good sync began (a duplicate webhook among other
//! duplicates, say). Counting after the write is answered
//! and reading the count before a sync starts keeps that exact: every write counted is in the WAL
//! before the sync that covers it begins.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Shared by every request of one runner; cheap to clone.
#[derive(Clone)]
pub struct GroupSync(Option<Arc<Inner>>);

struct Inner {
    wal: PathBuf,
    state: Mutex<State>,
    done: watch::Sender<Done>,
    /// Writes the store has answered so far.
    writes: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Syncs started so far; the running one, if any, is number `started`.
    started: u64,
    running: bool,
}

#[derive(Default, Clone)]
struct Done {
    /// The highest sync number that finished well: every write answered before it started is on disk.
    synced: u64,
    /// The last sync that failed, and why.
    failed: Option<(u64, String)>,
    /// The writes counted before the latest good sync began: all of them are on disk.
    covered: u64,
}

impl GroupSync {
    /// Syncs `wal` (the store's `*.db-wal`; it need not exist yet: no WAL, nothing to sync).
    pub fn new(wal: PathBuf) -> Self {
        Self(Some(Arc::new(Inner {
            wal,
            state: Mutex::default(),
            done: watch::channel(Done::default()).0,
            writes: AtomicU64::new(0),
        })))
    }

    /// For stores that are durable when they answer (DynamoDB) or never (in memory).
    pub fn none() -> Self {
        Self(None)
    }

    /// Called by the store's client once the store has taken a write.
    pub fn note_write(&self) {
        if let Some(inner) = &self.0 {
            inner.writes.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The writes counted so far (tests).
    #[cfg(test)]
    pub fn writes_noted(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |i| i.writes.load(Ordering::SeqCst))
    }

    /// Returns once everything this task's writes put in the store is on disk.
    pub async fn durable(&self) -> Result<(), String> {
        let Some(inner) = &self.0 else {
            return Ok(());
        };
        let mut done = inner.done.subscribe();
        // Nothing answered since the last good sync began: everything this request read or wrote
        // is already on disk.
        if done.borrow().covered >= inner.writes.load(Ordering::SeqCst) {
            return Ok(());
        }
        // A sync already running may have started before our writes were answered: we need the next.
        let need = inner.state.lock().expect("sync state").started + 1;
        loop {
            {
                let seen = done.borrow_and_update();
                if seen.synced >= need {
                    return Ok(());
                }
                if let Some((n, why)) = &seen.failed {
                    if *n >= need {
                        return Err(why.clone());
                    }
                }
            }
            inner.clone().start_if_idle();
            // The sync runs in its own task, so a request dropped mid-wait cannot leave the others
            // waiting for a sync nobody finishes.
            if done.changed().await.is_err() {
                return Err("the store closed".into());
            }
        }
    }
}

impl Inner {
    fn start_if_idle(self: Arc<Self>) {
        let number = {
            let mut s = self.state.lock().expect("sync state");
            if s.running {
                return;
            }
            s.running = true;
            s.started += 1;
            s.started
        };
        tokio::spawn(async move {
            // Read before the sync starts: every write counted by now is in the WAL it syncs.
            let counted = self.writes.load(Ordering::SeqCst);
            let wal = self.wal.clone();
            let result = tokio::task::spawn_blocking(move || sync_file(&wal))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            self.state.lock().expect("sync state").running = false;
            self.done.send_modify(|d| match result {
                Ok(()) => {
                    d.synced = d.synced.max(number);
                    d.covered = d.covered.max(counted);
                }
                Err(why) => d.failed = Some((number, why)),
            });
        });
    }
}

fn sync_file(path: &std::path::Path) -> Result<(), String> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => file
            .sync_data()
            .map_err(|e| format!("cannot sync {}: {e}", path.display())),
        // No WAL yet: nothing was written, so nothing is owed.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot open {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GroupSync over a WAL file that exists (kept while the directory guard lives).
    fn with_wal() -> (tempfile::TempDir, GroupSync) {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("x.db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        (dir, GroupSync::new(wal))
    }

    #[tokio::test]
    async fn concurrent_requests_share_syncs_and_each_waits_for_one_that_started_after_it() {
        let (_dir, sync) = with_wal();
        sync.note_write();
        let waits: Vec<_> = (0..64)
            .map(|_| {
                let s = sync.clone();
                tokio::spawn(async move { s.durable().await })
            })
            .collect();
        for w in waits {
            w.await.unwrap().unwrap();
        }
        let inner = sync.0.as_ref().unwrap();
        let started = inner.state.lock().unwrap().started;
        assert!(started >= 1, "at least one sync ran");
        assert!(started < 64, "64 requests shared syncs, yet {started} ran");
        // A later request that wrote is not answered by the syncs that finished before it came.
        sync.note_write();
        sync.durable().await.unwrap();
        assert!(inner.state.lock().unwrap().started > started);
    }

    #[tokio::test]
    async fn a_request_after_no_new_write_waits_for_no_sync() {
        let (_dir, sync) = with_wal();
        let inner = sync.0.as_ref().unwrap();
        let started = || inner.state.lock().unwrap().started;
        sync.durable().await.unwrap();
        assert_eq!(started(), 0, "nothing was written: nothing to sync");
        sync.note_write();
        sync.durable().await.unwrap();
        assert_eq!(started(), 1, "a write is synced before it is acknowledged");
        // Duplicates that read what is already on disk answer at once.
        for _ in 0..3 {
            sync.durable().await.unwrap();
        }
        assert_eq!(started(), 1);
        sync.note_write();
        sync.durable().await.unwrap();
        assert_eq!(started(), 2, "the next write needs a sync of its own");
    }

    #[tokio::test]
    async fn a_failed_sync_fails_the_requests_waiting_for_it() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be opened for writing: the sync fails, and so does the request.
        let sync = GroupSync::new(dir.path().to_path_buf());
        sync.note_write();
        let err = sync.durable().await.unwrap_err();
        assert!(err.contains("cannot open"), "{err}");
        // Still owed: the next request waits for a sync of its own, and is told it failed.
        let err = sync.durable().await.unwrap_err();
        assert!(err.contains("cannot open"), "{err}");
    }

    #[tokio::test]
    async fn no_wal_yet_means_nothing_to_sync() {
        let dir = tempfile::tempdir().unwrap();
        let sync = GroupSync::new(dir.path().join("absent.db-wal"));
        sync.note_write();
        sync.durable().await.unwrap();
        GroupSync::none().durable().await.unwrap();
    }
}
