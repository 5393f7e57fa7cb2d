//! ringback's fault simulation: the whole pipeline under a seeded schedule of faults, checked
//! against the two promises (a call is never placed twice; nothing a call produced is lost).
//!
//! One run ([`run`]) builds ringback's real services (initiate, webhook ingest, call status,
//! enrichment with its watchdog, the cleanup) over the real DynamoDB adapters on an embedded
//! dynoxide reached through the AWS SDK over loopback. Every port sits behind a fault injector:
//! the store (a write that fails before landing, one that lands and loses its answer or meets its
//! own condition on the SDK's retry, a failed read, latency), the queue (a send that fails, one
//! that lands and reports failure; duplicate, late, out-of-order, dead-lettered and redriven
//! deliveries), Vapi (5xx, 429, no connection, a `POST /call` that places the call and then fails,
//! slow answers, analysis that lands after the chain's last attempt, dropped, doubled and late
//! webhooks, oversized and awkward data), the events table, the client's receiver and the event
//! bus (failures, lost answers, outages), and the process itself (a handler's future dropped at
//! any port call, before or after it lands, then the work redelivered as SQS or Vapi would).
//! The call index runs as deployed (each summary in its record's transaction), another
//! deployment places calls on the same number, and operators replay settled calls and
//! redeliver their events while late webhooks, the enrichment and the cleanup race them.
//! Time is virtual and the generator is seeded: `faultsim --seed N` replays a run exactly.

mod actors;
mod bus;
mod check;
mod check_erase;
mod check_events;
mod check_listing;
mod check_recovery;
mod clients;
pub mod clock;
mod inject;
mod receiver;
pub mod rng;
pub mod sched;
mod sqs;
mod trace;
mod vapi;
mod world;

use std::collections::BTreeMap;

pub use check::{settle_bound, LEARN_BOUND};
use clock::Ms;
use sched::{Fault, Op};
use world::World;

/// What one run did and found.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub violations: Vec<String>,
    pub faults: BTreeMap<(Op, Fault), u32>,
    pub tasks: u64,
    pub crashes: u64,
    pub calls: usize,
    /// Operator actions started: replays, redeliveries.
    pub operated: (u64, u64),
    /// Calls whose record expired before they settled (each then had to be revived).
    pub expired: u64,
    /// Calls erased (their erase answered 200).
    pub erased: u64,
    /// Enrichment and watchdog jobs redriven from the dead-letter queue at recovery.
    pub recovery_redrives: u64,
    /// Virtual time the run covered.
    pub virtual_ms: Ms,
    /// The trace, kept only for a run that broke a promise.
    pub trace: Vec<String>,
}

/// One run of seed `seed`, on its own single-threaded runtime (so it replays exactly).
pub fn run(seed: u64) -> Report {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run_async(seed))
}

async fn run_async(seed: u64) -> Report {
    let mut world = World::new(seed).await;
    // Far past every bound: a run stops as soon as nothing is left to happen.
    let limit = world.storm.storm_end + 6 * 60 * clock::MINUTE;
    // Steps at one virtual instant: a part that keeps rescheduling itself without time moving
    // (a queue nobody drains) would otherwise hang the run instead of failing it.
    let mut same_instant = 0u32;
    while let Some((&(t, _), _)) = world.events.first_key_value() {
        if t > limit {
            break;
        }
        same_instant = if t > world.clock.ms() {
            0
        } else {
            same_instant + 1
        };
        if same_instant > 10_000 {
            world.violation(format!(
                "the run never moves past {t} ms: something reschedules itself at once"
            ));
            break;
        }
        world.clock.advance_to(t);
        let mut due = Vec::new();
        while let Some(entry) = world.events.first_entry() {
            if entry.key().0 > world.clock.ms() {
                break;
            }
            due.push(entry.remove());
        }
        let specs: Vec<_> = due.into_iter().flat_map(|e| world.start(e)).collect();
        for (kind, out, faults) in world.run_tasks(specs).await {
            world.finish(kind, out, faults);
        }
        world.settle_batches();
        world.collect();
        if world.quiet() {
            break;
        }
    }
    world.check().await;
    let trace = if world.violations.is_empty() {
        Vec::new()
    } else {
        world.trace.lines()
    };
    Report {
        seed,
        violations: world.violations.clone(),
        faults: world.faults.clone(),
        tasks: world.tasks,
        crashes: world.crashes,
        calls: world.watch.calls.len(),
        operated: world.operated,
        expired: world.expired,
        erased: world.erased.len() as u64,
        recovery_redrives: world.recovery_redrives.len() as u64,
        virtual_ms: world.clock.ms(),
        trace,
    }
}

/// Seeds `from..from + count`, over `threads` threads; each run is independent.
pub fn run_many(from: u64, count: u64, threads: usize) -> Vec<Report> {
    run_many_with(from, count, threads, |_, _| {})
}

/// [`run_many`], telling `progress` of each finished run (its report, and how many are done).
pub fn run_many_with(
    from: u64,
    count: u64,
    threads: usize,
    progress: impl Fn(&Report, u64) + Sync,
) -> Vec<Report> {
    let next = std::sync::atomic::AtomicU64::new(from);
    let reports = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if seed >= from + count {
                    break;
                }
                let r = run(seed);
                let mut all = reports.lock().unwrap();
                progress(&r, all.len() as u64 + 1);
                all.push(r);
            });
        }
    });
    let mut all = reports.into_inner().unwrap();
    all.sort_by_key(|r| r.seed);
    all
}

/// Fault counts summed over runs, by kind of fault and port call.
pub fn totals(reports: &[Report]) -> BTreeMap<(Op, Fault), u32> {
    let mut t = BTreeMap::new();
    for r in reports {
        for (k, n) in &r.faults {
            *t.entry(*k).or_default() += n;
        }
    }
    t
}
