//! The ledger's memory over a long run: `rehearse run` writing 1,000 rows/s
//! for 30 minutes, its resident memory sampled from `/proc/PID/status`
//! every 10 s, beside the reference measured at the same time: the same
//! binary, the same load, on a table with no key (so the ledger records
//! nothing). Both processes run side by side, each with its own throwaway
//! server, so they share the machine's state.
//!
//! `cargo bench --bench ledger` prints, every minute, each process's RSS
//! and their ratio; at the end, each one's growth from the first minute to
//! the last, and the ledger's figures from the report (rows recorded,
//! bytes on disk, time to check them).
//!
//! Environment: REHEARSE_BENCH_MINUTES (default 30), REHEARSE_BENCH_RATE
//! (default 1000 writes/s).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// A load-only scenario: `rate` inserts/s into `writes`, keyed or not.
fn scenario(keyed: bool, rate: u64, minutes: u64) -> String {
    let key = if keyed { "id bigserial PRIMARY KEY" } else { "id bigint" };
    format!(
        r#"name = "ledger-memory"
seed = 1
[[table]]
name = "writes"
rows = 1000
ddl = "CREATE TABLE writes ({key}, account bigint NOT NULL, amount bigint NOT NULL, note text NOT NULL)"
[workload]
pool_size = 8
pool_timeout = "2s"
[[workload.query]]
name = "write"
sql = "INSERT INTO writes (account, amount, note) VALUES ($1, $2, $3)"
params = [{{ int = [1, 100000] }}, {{ int = [1, 1000000] }}, "words"]
rate = {rate}
[timeline]
duration = "{minutes}m"
"#
    )
}

/// Resident memory of `pid` in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn start(dir: &Path, name: &str, text: &str) -> Child {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write the scenario");
    let json = dir.join(format!("{name}.json"));
    Command::new(env!("CARGO_BIN_EXE_rehearse"))
        .args(["run", path.to_str().unwrap(), "--backend", "local", "--quiet", "--json", json.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rehearse")
}

fn main() {
    let minutes: u64 = env_or("REHEARSE_BENCH_MINUTES", 30);
    let rate: u64 = env_or("REHEARSE_BENCH_RATE", 1000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    println!("ledger memory: {rate} writes/s for {minutes} min, RSS every 10 s; reference: the same load, unkeyed");
    let mut ledger = start(dir.path(), "ledger", &scenario(true, rate, minutes));
    let mut reference = start(dir.path(), "reference", &scenario(false, rate, minutes));
    let started = Instant::now();
    let mut samples: Vec<(f64, f64, f64)> = Vec::new();
    loop {
        std::thread::sleep(Duration::from_secs(10));
        let (a, b) = (rss_mib(ledger.id()), rss_mib(reference.id()));
        let (Some(a), Some(b)) = (a, b) else { break };
        if ledger.try_wait().ok().flatten().is_some() || reference.try_wait().ok().flatten().is_some() {
            break;
        }
        let t = started.elapsed().as_secs_f64();
        samples.push((t, a, b));
        if samples.len() % 6 == 0 {
            println!("  {:>5.0}s  ledger {a:>7.1} MiB  reference {b:>7.1} MiB  ratio {:.2}", t, a / b);
        }
    }
    let ok = ledger.wait().map(|s| s.code()).ok().flatten();
    let reference_ok = reference.wait().map(|s| s.code()).ok().flatten();
    assert!(
        samples.len() > 6 && ok.is_some_and(|c| c < 2) && reference_ok.is_some_and(|c| c < 2),
        "a run failed: ledger exit {ok:?}, reference exit {reference_ok:?}, {} samples",
        samples.len()
    );
    // After the first minute (the load's warm-up: pools, buffers,
    // per-second series) to the last sample.
    let warm: Vec<_> = samples.iter().filter(|s| s.0 >= 60.0).collect();
    if let (Some(first), Some(last)) = (warm.first(), warm.last()) {
        let peak_a = warm.iter().map(|s| s.1).fold(0.0, f64::max);
        let peak_b = warm.iter().map(|s| s.2).fold(0.0, f64::max);
        println!(
            "growth from {:.0}s to {:.0}s: ledger {:+.1} MiB ({:.1} → {:.1}, peak {peak_a:.1}), reference {:+.1} MiB \
             ({:.1} → {:.1}, peak {peak_b:.1}); ratio at the end {:.2}",
            first.0,
            last.0,
            last.1 - first.1,
            first.1,
            last.1,
            last.2 - first.2,
            first.2,
            last.2,
            last.1 / last.2
        );
    }
    let report = std::fs::read_to_string(dir.path().join("ledger.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&report).unwrap_or_default();
    let l = &v["ledger"];
    println!(
        "ledger: {} rows recorded, {} keys checked, {} lost, {} MiB on disk, checked in {:.1} s (exit {ok:?})",
        l["writes"],
        l["keys"],
        l["lost"],
        l["file_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        l["verify_ms"].as_f64().unwrap_or(0.0) / 1000.0
    );
}
