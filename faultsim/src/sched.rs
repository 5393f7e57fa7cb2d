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
        matches!(self, Op::VapiGet | Op::VapiPost | Op::VapiList)
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
}

/// A port call let through its gate: the fault it meets, and the task's turn, held until the
/// call is done (drop it then). A task that runs calls at once (`tokio::join!`) takes them one
/// turn at a time, so it is parked at one gate at most and the world always knows whether it
/// runs; which of its calls goes first is its own poll order, the same every replay.
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
