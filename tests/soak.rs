//! `rehearse soak`: every scenario × strategy of a directory rehearsed at
//! least once, cycles repeated while time is left, one summary (JSON,
//! Markdown, one JUnit testcase per scenario × strategy), exit 1 when a run
//! failed; and an interrupted soak leaves its summary so far.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Sandbox, heavy, repo, text};

/// A load-only scenario beside `items.toml`: no strategy, so one run of
/// its load per cycle.
const LOAD_ONLY: &str = r#"name = "load-only"
seed = 3

[[table]]
name = "notes"
rows = 1000
ddl = "CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);"

[workload]
pool_size = 2
pool_timeout = "2s"

[[workload.query]]
name = "get_note"
sql = "SELECT * FROM notes WHERE id = $1"
params = [{ key_of = "notes" }]
rate = 20

[timeline]
duration = "2s"
"#;

/// A directory of two scenarios: items (two strategies, one failing) and
/// a load-only one.
fn suite(sandbox: &Sandbox) -> String {
    let dir = sandbox.path().join("suite");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(repo("tests/fixtures/ci/scenarios/items.toml"), dir.join("items.toml")).unwrap();
    std::fs::write(dir.join("load-only.toml"), LOAD_ONLY).unwrap();
    std::fs::write(dir.join("README.md"), "not a scenario").unwrap();
    dir.display().to_string()
}

#[test]
fn a_soak_cycles_every_scenario_and_strategy_and_sums_them_up() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let dir = suite(&sandbox);
    let started = Instant::now();
    let out = sandbox.run(&[
        "soak",
        &dir,
        "--duration",
        "12s",
        "--backend",
        "local",
        "--quiet",
        "--json",
        "soak.json",
        "--markdown",
        "soak.md",
        "--junit",
        "soak.xml",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "lock-and-wait fails: {stderr}");
    let soak: Value =
        serde_json::from_str(&std::fs::read_to_string(sandbox.path().join("soak.json")).unwrap()).unwrap();
    let s = &soak["soak"];
    assert_eq!(s["complete"], true);
    assert_eq!(s["planned"].as_array().unwrap().len(), 3, "{s}");
    let (runs, cycles) = (s["runs"].as_u64().unwrap(), s["cycles"].as_u64().unwrap());
    assert!(cycles >= 1 && runs >= 3 * cycles, "{s}");
    // After the first cycle, a run starts only while time is left: the
    // soak ends within one cycle of its duration.
    assert!(s["elapsed_s"].as_f64().unwrap() >= 12.0 || cycles == 1, "{s}");
    assert!(started.elapsed() < Duration::from_secs(120), "bounded by the duration, not running on");
    let entries = s["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let total: u64 = entries.iter().map(|e| e["runs"].as_u64().unwrap()).sum();
    assert_eq!(total, runs);
    for e in entries {
        let (runs, passes) = (e["runs"].as_u64().unwrap(), e["passes"].as_u64().unwrap());
        let failing = e["strategy"] == "lock-and-wait";
        assert_eq!(passes, if failing { 0 } else { runs }, "{e}");
        let lock_wait =
            e["figures"].as_array().unwrap().iter().find(|f| f["figure"] == "workload_lock_wait_ms").unwrap();
        assert_eq!(lock_wait["n"].as_u64(), Some(runs), "every run's figure is in the spread");
        if failing {
            // The lock is held 1.5 s; reads wait about that long each run.
            assert!(lock_wait["min"].as_f64().unwrap() > 1000.0, "{lock_wait}");
            assert!(e["failures"][0]["messages"][0].as_str().unwrap().contains("p99"), "{e}");
        }
    }
    let junit = std::fs::read_to_string(sandbox.path().join("soak.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 3, "{junit}");
    assert_eq!(junit.matches("<failure ").count(), 1, "{junit}");
    assert!(junit.contains("name=\"load only\""), "{junit}");
    let md = std::fs::read_to_string(sandbox.path().join("soak.md")).unwrap();
    assert!(md.starts_with(rehearse::report::SOAK_MARKER) && md.len() < rehearse::report::MARKDOWN_LIMIT, "{md}");
    assert!(md.contains("| ❌ | items · lock-and-wait |"), "{md}");
    sandbox.assert_clean();
}

#[test]
fn an_interrupted_soak_leaves_its_summary_so_far_and_nothing_else() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let dir = suite(&sandbox);
    let summary = sandbox.path().join("soak.json");
    let mut child = sandbox
        .command(&["soak", &dir, "--duration", "10m", "--backend", "local", "--quiet", "--json", "soak.json"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for two runs to be written (generous: a run takes a few
    // seconds here, more on a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(120);
    let runs = |v: &Value| v["soak"]["runs"].as_u64().unwrap_or(0);
    loop {
        let read = std::fs::read_to_string(&summary).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if read.as_ref().is_some_and(|v| runs(v) >= 2) {
            break;
        }
        assert!(Instant::now() < deadline, "no summary written after two runs");
        std::thread::sleep(Duration::from_millis(200));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(v["soak"]["complete"], false, "an interrupted soak is not complete");
    assert!(runs(&v) >= 2);
    sandbox.assert_clean();
}

#[test]
fn a_soak_of_nothing_or_of_a_bad_scenario_is_bad_input() {
    let sandbox = Sandbox::new();
    let empty = sandbox.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = sandbox.run(&["soak", empty.to_str().unwrap(), "--duration", "1m"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no scenario (*.toml) in this directory"), "{}", text(&out.stderr));
    let bad = sandbox.write("bad.toml", "name = \"bad\"\nseed = \"x\"\n");
    let out = sandbox.run(&["soak", bad.to_str().unwrap(), "--duration", "1m"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bad.toml:2:"), "{}", text(&out.stderr));
    let out = sandbox.run(&["soak", bad.to_str().unwrap(), "--duration", "0s"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
