//! `faultsim`: run the fault simulation.
//!
//!   faultsim --seed N                 one run; on a broken promise, its trace
//!   faultsim --seeds N [--from S]     N runs from seed S (default 0), a summary
//!   faultsim --soak N                 the same, over every core, with runs/s
//!
//! Exit status 1 when any run broke a promise; each such run is listed with its seed. Runs of many
//! seeds say on stderr how far they are, about every 10 s, and name a broken seed as it happens.

use std::time::Instant;

fn usage() -> ! {
    eprintln!(
        "usage: faultsim --seed N | --seeds N [--from S] [--threads T] | --soak N [--from S]"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| -> Option<u64> {
        let i = args.iter().position(|a| a == name)?;
        Some(
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage()),
        )
    };
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        usage();
    }
    if let Some(seed) = arg("--seed") {
        let r = ringback_faultsim::run(seed);
        for line in &r.trace {
            println!("{line}");
        }
        summary(&[r], 0.0);
        return;
    }
    let (count, soak) = match (arg("--seeds"), arg("--soak")) {
        (Some(n), None) => (n, false),
        (None, Some(n)) => (n, true),
        _ => usage(),
    };
    let from = arg("--from").unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = arg("--threads").map_or(if soak { cores } else { 1 }, |t| t as usize);
    let started = Instant::now();
    // A long run says how far it is (stderr, about every 10 s), and names a broken seed at once.
    let last = std::sync::Mutex::new(Instant::now());
    let broken = std::sync::atomic::AtomicU64::new(0);
    let reports = ringback_faultsim::run_many_with(from, count, threads, |r, done| {
        if !r.violations.is_empty() {
            broken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            eprintln!("seed {} broke a promise: {}", r.seed, r.violations[0]);
        }
        let mut last = last.lock().unwrap();
        if last.elapsed().as_secs() >= 10 || done == count {
            *last = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            let left = secs / done as f64 * (count - done) as f64;
            eprintln!(
                "  {done}/{count} runs, {} broke a promise, {secs:.0} s, about {left:.0} s left",
                broken.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
    });
    summary(&reports, started.elapsed().as_secs_f64());
}

fn summary(reports: &[ringback_faultsim::Report], secs: f64) {
    let broken: Vec<_> = reports
        .iter()
        .filter(|r| !r.violations.is_empty())
        .collect();
    let tasks: u64 = reports.iter().map(|r| r.tasks).sum();
    let crashes: u64 = reports.iter().map(|r| r.crashes).sum();
    let calls: usize = reports.iter().map(|r| r.calls).sum();
    let hours: f64 = reports.iter().map(|r| r.virtual_ms as f64).sum::<f64>() / 3.6e6;
    let replays: u64 = reports.iter().map(|r| r.operated.0).sum();
    let redeliveries: u64 = reports.iter().map(|r| r.operated.1).sum();
    println!(
        "runs: {}   calls: {calls}   tasks: {tasks} ({crashes} died)   virtual time: {hours:.1} h",
        reports.len()
    );
    let expired: u64 = reports.iter().map(|r| r.expired).sum();
    let erased: u64 = reports.iter().map(|r| r.erased).sum();
    println!("operator replays: {replays}   redeliveries: {redeliveries}   erases: {erased}");
    println!("records expired before their call settled (revived by the cleanup): {expired}");
    let redriven: u64 = reports.iter().map(|r| r.recovery_redrives).sum();
    println!("jobs redriven from the dead-letter queue at recovery: {redriven}");
    if secs > 0.0 {
        println!(
            "wall time: {secs:.1} s   runs/s: {:.1}",
            reports.len() as f64 / secs
        );
    }
    let totals = ringback_faultsim::totals(reports);
    let all: u32 = totals.values().sum();
    println!("faults injected: {all}");
    for ((op, fault), n) in &totals {
        println!(
            "  {:<14} {:<13} {n}",
            format!("{op:?}"),
            format!("{fault:?}")
        );
    }
    println!("runs that broke a promise: {}", broken.len());
    for r in &broken {
        for v in &r.violations {
            println!("  seed {}: {v}", r.seed);
        }
    }
    if !broken.is_empty() {
        println!(
            "replay one with: cargo run -p ringback-faultsim --release -- --seed {}",
            broken[0].seed
        );
        std::process::exit(1);
    }
}
