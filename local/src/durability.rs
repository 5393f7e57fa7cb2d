//! Group commit for the embedded store.
//!
//! The store runs SQLite in WAL mode with `synchronous = NORMAL`: when it answers a write, the commit
//! is in the WAL file (in the kernel's cache), so it survives the process dying but not yet the
//! machine. A request that acknowledges data to its caller (a webhook, a new call) then waits for
//! [`GroupSync::durable`]: one `fdatasync` of the WAL that *started after* the request's writes were
//! answered. Requests that arrive together share one sync, so durability costs one sync per batch
//! instead of one per write under the store's single lock (which capped new webhooks at ~900/s).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Shared by every request of one runner; cheap to clone.
#[derive(Clone)]
pub struct GroupSync(Option<Arc<Inner>>);

struct Inner {
    wal: PathBuf,
    state: Mutex<State>,
    done: watch::Sender<Done>,
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
}

impl GroupSync {
    /// Syncs `wal` (the store's `*.db-wal`; it need not exist yet: no WAL, nothing to sync).
    pub fn new(wal: PathBuf) -> Self {
        Self(Some(Arc::new(Inner {
            wal,
            state: Mutex::default(),
            done: watch::channel(Done::default()).0,
        })))
    }

    /// For stores that are durable when they answer (DynamoDB) or never (in memory).
    pub fn none() -> Self {
        Self(None)
    }

    /// Returns once everything this task's writes put in the store is on disk.
    pub async fn durable(&self) -> Result<(), String> {
        let Some(inner) = &self.0 else {
            return Ok(());
        };
        let mut done = inner.done.subscribe();
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
            let wal = self.wal.clone();
            let result = tokio::task::spawn_blocking(move || sync_file(&wal))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            self.state.lock().expect("sync state").running = false;
            self.done.send_modify(|d| match result {
                Ok(()) => d.synced = d.synced.max(number),
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

    #[tokio::test]
    async fn concurrent_requests_share_syncs_and_each_waits_for_one_that_started_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("x.db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let sync = GroupSync::new(wal);
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
        // A later request is not answered by the syncs that finished before it came.
        sync.durable().await.unwrap();
        assert!(inner.state.lock().unwrap().started > started);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_the_requests_waiting_for_it() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be opened for writing: the sync fails, and so does the request.
        let sync = GroupSync::new(dir.path().to_path_buf());
        let err = sync.durable().await.unwrap_err();
        assert!(err.contains("cannot open"), "{err}");
    }

    #[tokio::test]
    async fn no_wal_yet_means_nothing_to_sync() {
        let dir = tempfile::tempdir().unwrap();
        GroupSync::new(dir.path().join("absent.db-wal"))
            .durable()
            .await
            .unwrap();
        GroupSync::none().durable().await.unwrap();
    }
}
