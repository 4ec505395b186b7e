//! Faults are faults: the server killed under a run (in the baseline,
//! during the migration, during a CPU-bound statement that outlives its
//! postmaster) gives exit 3, "the server stopped" and when, a partial
//! report of the phases measured so far, and no process left behind.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::common::{Sandbox, heavy, small_scenario};

const QUERY: &str = "SELECT * FROM items WHERE id = $1";

/// What a killed run left: its exit code, its stderr, its JSON report, and
/// how long it took to end after the kill.
struct Killed {
    code: Option<i32>,
    stderr: Vec<String>,
    report: Option<Value>,
    ended_after: Duration,
}

/// Runs `toml`, waits for a stderr line holding `moment`, then `delay`,
/// then SIGKILLs the cluster's postmaster.
fn kill_postmaster_at(sandbox: &Sandbox, toml: &str, moment: &str, delay: Duration) -> Killed {
    let path = sandbox.write("s.toml", toml);
    let json = sandbox.path().join("r.json");
    let mut child = sandbox
        .command(&["run", path.to_str().unwrap(), "--backend", "local", "--json", json.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !lines.iter().any(|l: &String| l.contains(moment)) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("never saw `{moment}`: {lines:#?}");
            }
        }
    }
    std::thread::sleep(delay);
    let dirs = sandbox.leftover_dirs();
    let pid_file = std::fs::read_to_string(dirs[0].join("data/postmaster.pid")).unwrap();
    let postmaster: i32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
    kill(Pid::from_raw(postmaster), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    // Bounded: a run that hangs fails here rather than hanging the suite.
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if killed.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("the run did not end within 90 s of the kill: {lines:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ended_after = killed.elapsed();
    lines.extend(rx.try_iter());
    let report = std::fs::read_to_string(&json).ok().map(|t| serde_json::from_str(&t).unwrap());
    Killed { code: status.code(), stderr: lines, report, ended_after }
}

fn scenario(step: &str, migrate_at: &str) -> String {
    small_scenario(QUERY, step)
        .replace("migrate_at = \"1s\"", &format!("migrate_at = \"{migrate_at}\""))
        .replace("max_duration = \"30s\"", "max_duration = \"5m\"")
}

/// The checks every killed run must pass; returns its report.
fn assert_a_fault(k: &Killed, sandbox: &Sandbox) -> Value {
    let all = k.stderr.join("\n");
    assert_eq!(k.code, Some(3), "{all}");
    assert!(all.contains("the server failed"), "{all}");
    // The margin: the watch looks every 250 ms, then requests in flight get
    // a second, the interference and observer a few; 30 s holds on a
    // loaded runner.
    assert!(k.ended_after < Duration::from_secs(30), "ended {:?} after the kill", k.ended_after);
    sandbox.assert_clean();
    let r = k.report.clone().expect("a partial report");
    assert_eq!(r["fault"]["kind"], "server_stopped", "{}", r["fault"]);
    assert_eq!(r["verdict"]["pass"], false);
    assert_eq!(r["verdict"]["violations"][0]["threshold"], "server");
    r
}

#[test]
fn the_postmaster_killed_in_the_baseline_is_a_fault_with_a_partial_report() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let toml = scenario("ALTER TABLE items ADD COLUMN note text", "60s");
    let k = kill_postmaster_at(&sandbox, &toml, "load started", Duration::from_millis(1500));
    let r = assert_a_fault(&k, &sandbox);
    assert_eq!(r["fault"]["phase"], "baseline");
    assert!(r["migration"].is_null(), "the migration never started");
    let at = r["fault"]["at_s"].as_f64().unwrap();
    assert!((1.0..15.0).contains(&at), "noticed soon after the kill: {at}");
    // The baseline measured up to the fault.
    let baseline = &r["phases"]["baseline"];
    assert!(baseline["queries"]["get_item"]["count"].as_u64().unwrap() >= 40, "{baseline}");
    assert!((baseline["end_s"].as_f64().unwrap() - at).abs() < 0.01, "{baseline}");
}

#[test]
fn the_postmaster_killed_during_the_migration_is_a_fault_not_a_failed_migration() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let toml = scenario("SELECT pg_sleep(60)", "1s");
    let k = kill_postmaster_at(&sandbox, &toml, "migration `only` started", Duration::from_millis(1000));
    let r = assert_a_fault(&k, &sandbox);
    assert_eq!(r["fault"]["during_migration"], true, "{}", r["fault"]);
    assert_eq!(r["migration"]["outcome"], "interrupted");
    assert!(r["phases"]["baseline"]["queries"]["get_item"]["count"].as_u64().unwrap() >= 40);
}

#[test]
fn a_cpu_bound_statement_that_outlives_its_postmaster_is_ended_too() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    // Never ends, and never looks whether its postmaster lives; its cancel
    // would go through the postmaster.
    let toml = scenario("DO $$ BEGIN LOOP PERFORM 1; END LOOP; END $$", "1s");
    let k = kill_postmaster_at(&sandbox, &toml, "migration `only` started", Duration::from_millis(1000));
    let r = assert_a_fault(&k, &sandbox);
    assert_eq!(r["migration"]["outcome"], "interrupted");
    let error = r["migration"]["steps"][0]["error"]["message"].as_str().unwrap().to_string();
    assert!(error.contains("the server stopped"), "{error}");
}

/// A tmpfs of `mb` megabytes, mounted for the test and unmounted after;
/// `None` where this process may not mount (not root, no CAP_SYS_ADMIN).
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(mb: u64) -> Option<SmallDisk> {
        let dir = tempfile::Builder::new().prefix("rehearse-test-disk-").tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}M,mode=0755"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_load_the_disk_cannot_hold_stops_before_it_starts() {
    let _turn = heavy();
    let Some(disk) = SmallDisk::mount(200) else {
        eprintln!("skipped: this process cannot mount a tmpfs to stand for a small disk");
        return;
    };
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &small_scenario(QUERY, "SELECT 1").replace("rows = 2000", "rows = 5000000"));
    let started = Instant::now();
    let out = sandbox
        .command(&["run", path.to_str().unwrap(), "--backend", "local", "--quiet"])
        .env("TMPDIR", disk.0.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("the tables need about") && stderr.contains("free"), "{stderr}");
    // Stopped before the load, not after filling the disk (5M rows would
    // take far longer than this margin).
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    let left: Vec<_> = std::fs::read_dir(disk.0.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "the cluster directory is gone: {left:?}");
}
