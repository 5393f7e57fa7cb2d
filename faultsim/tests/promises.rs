//! The fault simulation in CI: a few hundred seeded fault schedules through the whole pipeline,
//! every promise checked after each (see `faultsim/src/check.rs`). A failure prints the seed and
//! the broken promise; `cargo run -p ringback-faultsim --release -- --seed N` replays it with its
//! trace. `--soak N` runs many more.

/// Seeds run on every test run; a long soak runs tens of thousands (README).
const SEEDS: u64 = 300;

#[test]
fn the_promises_hold_under_seeded_fault_schedules() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    let reports = ringback_faultsim::run_many(0, SEEDS, threads);
    let faults: u32 = ringback_faultsim::totals(&reports).values().sum();
    let crashes: u64 = reports.iter().map(|r| r.crashes).sum();
    println!(
        "{} runs, {} calls, {faults} faults injected, {crashes} handlers dropped mid-flight",
        reports.len(),
        reports.iter().map(|r| r.calls).sum::<usize>()
    );
    // The schedules are not trivially calm: the injectors really fire, on the newest surface too.
    assert!(
        faults > 1000 && crashes > 50,
        "{faults} faults, {crashes} crashes"
    );
    let bus_faults: u32 = ringback_faultsim::totals(&reports)
        .iter()
        .filter(|((op, _), _)| *op == ringback_faultsim::sched::Op::BusPublish)
        .map(|(_, n)| n)
        .sum();
    let replays: u64 = reports.iter().map(|r| r.operated.0).sum();
    let redeliveries: u64 = reports.iter().map(|r| r.operated.1).sum();
    assert!(
        bus_faults > 20 && replays > 20 && redeliveries > 20,
        "bus faults {bus_faults}, replays {replays}, redeliveries {redeliveries}"
    );
    // The index the cleanup's revival reads fails too, and jobs are redriven at recovery.
    let index_faults: u32 = ringback_faultsim::totals(&reports)
        .iter()
        .filter(|((op, _), _)| *op == ringback_faultsim::sched::Op::IndexQuery)
        .map(|(_, n)| n)
        .sum();
    let redriven: u64 = reports.iter().map(|r| r.recovery_redrives).sum();
    assert!(
        index_faults > 20 && redriven > 20,
        "index query faults {index_faults}, jobs redriven at recovery {redriven}"
    );
    let broken: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.violations
                .iter()
                .map(move |v| format!("seed {}: {v}", r.seed))
        })
        .collect();
    assert!(
        broken.is_empty(),
        "{} broken promises (replay with `cargo run -p ringback-faultsim --release -- --seed N`):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn a_seed_replays_exactly() {
    let (a, b) = (ringback_faultsim::run(42), ringback_faultsim::run(42));
    assert_eq!(a.faults, b.faults);
    assert_eq!(
        (a.tasks, a.crashes, a.virtual_ms),
        (b.tasks, b.crashes, b.virtual_ms)
    );
}
