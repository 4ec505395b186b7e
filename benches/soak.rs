//! Memory of a soak's summary over a long soak: two real reports (a run
//! of `tests/fixtures/ci/scenarios/items.toml` per strategy, one passing,
//! one failing, on the local backend) folded as 11 scenario × strategy
//! entries, cycle after cycle, as `rehearse soak` folds them. Prints the
//! process's resident memory and the summary's JSON size after the first
//! cycle (the reference, measured in the same run) and after 1,000 and
//! 10,000 cycles, with their ratios to it: flat means about 1.
//!
//! `cargo bench --bench soak`

use std::process::Command;
use std::time::Instant;

use rehearse::report::{Planned, Report, SoakSummary};

const COMBOS: usize = 11;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
}

/// A real report of `strategy`.
fn report(dir: &std::path::Path, strategy: &str) -> Report {
    let json = dir.join(format!("{strategy}.json"));
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ci/scenarios/items.toml");
    let status = Command::new(env!("CARGO_BIN_EXE_rehearse"))
        .args(["run", scenario, "--strategy", strategy, "--backend", "local", "--quiet", "--json"])
        .arg(&json)
        .env("TMPDIR", dir)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run rehearse");
    assert!(status.code().is_some_and(|c| c <= 1), "the rehearsal ran");
    rehearse::report::read_reports(&json).expect("its report").remove(0)
}

fn main() {
    let dir = tempfile::Builder::new().prefix("rehearse-bench-").tempdir().expect("a directory");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let reports = [report(dir.path(), "index-concurrently"), report(dir.path(), "lock-and-wait")];
    let combos: Vec<Report> = (0..COMBOS)
        .map(|i| {
            let mut r = reports[i % 2].clone();
            r.strategy = Some(format!("strategy-{i}"));
            r
        })
        .collect();
    let mut summary = SoakSummary {
        planned: combos
            .iter()
            .map(|r| Planned { file: "suite.toml".into(), scenario: r.scenario.clone(), strategy: r.strategy.clone() })
            .collect(),
        ..Default::default()
    };
    let cycle = |summary: &mut SoakSummary| {
        for r in &combos {
            summary.add("suite.toml", r, 0.0, 3.0);
        }
    };
    cycle(&mut summary);
    let (rss0, json0) = (rss_mib(), summary.to_json().len());
    println!("after    1 cycle  ({:>7} runs): RSS {rss0:6.1} MiB, summary {json0:>7} bytes (reference)", summary.runs);
    let started = Instant::now();
    for target in [1_000u64, 10_000] {
        while summary.runs < target * COMBOS as u64 {
            cycle(&mut summary);
        }
        let (rss, json) = (rss_mib(), summary.to_json().len());
        println!(
            "after {target:>5} cycles ({:>7} runs): RSS {rss:6.1} MiB ({:.2}× the reference), summary {json:>7} bytes ({:.2}×)",
            summary.runs,
            rss / rss0,
            json as f64 / json0 as f64
        );
    }
    let per = started.elapsed().as_secs_f64() * 1e6 / summary.runs as f64;
    println!("folding a report into the summary: {per:.1} µs per run (a rehearsal takes seconds)");
}
