//! The deterministic scheduler's half that lives in the tasks. Every port call of a task passes a
//! [`Gates::gate`]: the task parks there until the world lets it go on, and learns what fault its
//! call meets. Only one task runs between gates, so with the seeded generator choosing who goes
//! next and what fails, the same seed replays the same interleaving and the same faults.
//! Code outside a task (the checker reading the tables at the end) passes every gate at once.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex, OwnedMutexGuard};

pub type TaskId = u64;

tokio::task_local! {
    pub static TASK: TaskId;
    /// The task's turn at the gates: see [`Passage`].
    pub static TURN: Arc<Mutex<()>>;
}

/// A port call, as the gate sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    StoreGet,
    StorePut,
    StoreDelete,
    StoreOverdue,
    /// A listing query (the cleanup's revival reads the call index).
    IndexQuery,
    IdemBegin,
    IdemLookup,
    IdemComplete,
    IdemRelease,
    IdemReattempt,
    SinkSave,
    QueueSend,
    VapiGet,
    VapiPost,
    VapiList,
    /// The events table: making an event, reading one, recording an attempt.
    EventPut,
    EventGet,
    EventUpdate,
    /// A pushed event POSTed to the client's receiver.
    CallbackPost,
    /// An event published to the deployment's event bus (EventBridge `PutEvents`).
    BusPublish,
    /// An erase of a call's history in the events table (the mark, then the deletes).
    EventErase,
    /// An erase of a call's texts from its provider row and interaction log.
    SinkErase,
    /// `DELETE /call/{id}` at Vapi.
    VapiDelete,
    /// The counters of calls by state, read for `GET /stats`.
    IndexCount,
    /// The queues' depths, read for `GET /stats`.
    QueueDepth,
    /// The open pushed events, counted for `GET /stats`.
    EventCount,
    /// Not a call: a task whose process dies after its last call landed parks here to be dropped.
    Dying,
}

impl Op {
    pub fn writes(self) -> bool {
        matches!(
            self,
            Op::StorePut
                | Op::StoreDelete
                | Op::IdemBegin
                | Op::IdemComplete
                | Op::IdemRelease
                | Op::IdemReattempt
                | Op::SinkSave
                | Op::QueueSend
                | Op::VapiPost
                | Op::EventPut
                | Op::EventUpdate
                | Op::CallbackPost
                | Op::BusPublish
                | Op::EventErase
                | Op::SinkErase
                | Op::VapiDelete
        )
    }

    /// A write guarded by a condition, so that the SDK's retry of it can fail its own condition.
    pub fn conditional(self) -> bool {
        matches!(
            self,
            Op::StorePut | Op::IdemBegin | Op::IdemComplete | Op::IdemReattempt | Op::EventUpdate
        )
    }

    pub fn is_vapi(self) -> bool {
        matches!(
            self,
            Op::VapiGet | Op::VapiPost | Op::VapiList | Op::VapiDelete
        )
    }
}

/// What a port call meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// It fails before it has any effect: an outage, throttling, a 5xx.
    FailBefore,
    /// It takes effect, then its answer is lost: a timeout or reset on the way back.
    LoseAnswer,
    /// A conditional write takes effect; the SDK's retry of it then fails its own condition.
    LandConflict,
    /// The process dies before the call: the handler's future is dropped at this await point.
    Crash,
    /// The call takes effect, then the process dies.
    LandCrash,
    /// Vapi answers 429.
    RateLimited,
    /// No connection to Vapi could be made.
    Unreachable,
    /// The answer comes, slowly: the clock moves on meanwhile (not a failure).
    Slow,
}

pub(crate) enum Msg {
    Parked {
        task: TaskId,
        op: Op,
        reply: oneshot::Sender<Option<Fault>>,
    },
    Done,
}

/// The gates every injector passes; cheap to clone.
#[derive(Clone)]
pub struct Gates {
    pub(crate) tx: mpsc::UnboundedSender<Msg>,
    /// Picks, per port call, whether it lets the task's other joined calls go first (seeded).
    pub(crate) order: Arc<std::sync::Mutex<crate::rng::Rng>>,
}

/// A port call let through its gate: the fault it meets, and the task's turn, held until the
/// call is done (drop it then). A task that runs calls at once (`tokio::join!`) takes them one
/// turn at a time, so it is parked at one gate at most and the world always knows whether it
/// runs. Which of its calls goes first is the seed's choice: a call may step aside once before
/// taking the turn, so every order of a handler's concurrent requests is explored.
pub struct Passage {
    pub fault: Option<Fault>,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl Gates {
    /// Parks the current task until the world lets it go on; the fault its call meets, if any.
    pub async fn gate(&self, op: Op) -> Passage {
        let (Ok(task), Ok(turn)) = (TASK.try_with(|t| *t), TURN.try_with(Arc::clone)) else {
            return Passage {
                fault: None,
                _turn: None,
            };
        };
        let step_aside = self.order.lock().expect("not poisoned").chance(0.5);
        if step_aside {
            // The task's other joined calls are polled meanwhile: one of them may take the turn.
            tokio::task::yield_now().await;
        }
        let turn = turn.lock_owned().await;
        Passage {
            fault: self.park(task, op).await,
            _turn: Some(turn),
        }
    }

    async fn park(&self, task: TaskId, op: Op) -> Option<Fault> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Msg::Parked { task, op, reply }).is_err() {
            return None;
        }
        answer.await.ok().flatten()
    }

    /// After a call that landed, the process dies: the task parks for the world to drop it.
    /// (It holds its turn already: it parks without taking it again.)
    pub async fn die(&self) -> ! {
        if let Ok(task) = TASK.try_with(|t| *t) {
            self.park(task, Op::Dying).await;
        }
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order in which one task's two joined calls reach the world, for one seed.
    async fn order(seed: u64) -> Vec<Op> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let gates = Gates {
            tx,
            order: Arc::new(std::sync::Mutex::new(crate::rng::Rng::new(seed))),
        };
        let task = tokio::spawn(TASK.scope(
            1,
            TURN.scope(Arc::new(Mutex::new(())), async move {
                let call = |op| {
                    let gates = gates.clone();
                    async move { drop(gates.gate(op).await) }
                };
                tokio::join!(call(Op::QueueSend), call(Op::EventPut));
            }),
        ));
        let mut seen = Vec::new();
        while seen.len() < 2 {
            match rx.recv().await {
                Some(Msg::Parked { op, reply, .. }) => {
                    seen.push(op);
                    let _ = reply.send(None);
                }
                Some(Msg::Done) | None => break,
            }
        }
        task.await.unwrap();
        seen
    }

    #[tokio::test]
    async fn the_seed_chooses_which_joined_call_goes_first_and_replays_its_choice() {
        let mut orders = std::collections::BTreeSet::new();
        for seed in 0..32 {
            let first = order(seed).await;
            assert_eq!(
                first.len(),
                2,
                "seed {seed}: both calls pass, one at a time"
            );
            assert_eq!(order(seed).await, first, "seed {seed} replays its order");
            orders.insert(first);
        }
        assert_eq!(orders.len(), 2, "both orders are explored: {orders:?}");
    }
}
