//! The long fuzz run: a million mutated scenarios (`REHEARSE_FUZZ_CASES`)
//! through the validator and the generators (see `tests/fuzz_engine.rs`),
//! on every CPU, each thread from a seed of its own. Prints the count, the
//! rate, any panic with its input, and the slowest case.

#[path = "../tests/fuzz_engine.rs"]
#[allow(dead_code)]
mod fuzz_engine;

use std::time::Instant;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("fuzz: benchmark");
        return;
    }
    let cases: u64 = std::env::var("REHEARSE_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = fuzz_engine::seeds(repo);
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("schema.sql"), "CREATE TABLE t (id int PRIMARY KEY);").expect("write");
    let started = Instant::now();
    // The hook is global: silence it once, for every thread.
    std::panic::set_hook(Box::new(|_| {}));
    let found: Vec<fuzz_engine::Findings> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..threads)
            .map(|t| {
                let (seeds, dir) = (&seeds, dir.path());
                let share = cases / threads + u64::from(t < cases % threads);
                s.spawn(move || fuzz_engine::run(seeds, share, 1000 + t, dir, false))
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("a fuzz thread")).collect()
    });
    let _ = std::panic::take_hook();
    let secs = started.elapsed().as_secs_f64();
    let total: u64 = found.iter().map(|f| f.cases).sum();
    let accepted: u64 = found.iter().map(|f| f.accepted).sum();
    let panics: u64 = found.iter().map(|f| f.panic_count).sum();
    println!(
        "fuzz: {total} cases in {secs:.0} s ({:.0}/s on {threads} threads), {accepted} accepted and generated, {panics} panics",
        total as f64 / secs
    );
    for (message, input) in found.iter().flat_map(|f| f.panics.iter()) {
        println!("--- panic: {message}\n{input}\n---");
    }
    let slowest = found.iter().map(|f| &f.slowest).max_by_key(|s| s.0).expect("a thread");
    println!("slowest case: {:.1} ms", slowest.0.as_secs_f64() * 1000.0);
    if panics > 0 {
        std::process::exit(1);
    }
}
