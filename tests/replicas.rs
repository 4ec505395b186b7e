//! Hot standbys the harness starts itself: reads routed to them, their
//! replay lag measured and judged, the requests they cancel for a conflict
//! with recovery counted, and nothing of them left behind.

use crate::common::{Sandbox, heavy, rehearse};

/// A table, a read on the replica and a write on the primary, and a
/// migration; `settings`, `thresholds` and the migration's step vary.
pub(crate) fn scenario(settings: &str, step: &str, thresholds: &str) -> String {
    format!(
        r#"name = "replicas"
seed = 3

[postgres]
settings = {{ {settings} }}

[replica]
count = 1

[[table]]
name = "items"
rows = 20000
ddl = """
CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL, price_cents int NOT NULL);
"""

[workload]
pool_size = 6
pool_timeout = "2s"

[[workload.query]]
name = "read_item"
sql = "SELECT * FROM items WHERE id = $1"
params = [{{ key_of = "items" }}]
rate = 40
target = "replica"

[[workload.query]]
name = "report"
sql = "SELECT count(*) FROM items, pg_sleep(1.5)"
clients = 2
target = "replica"

[[workload.query]]
name = "add_item"
sql = "INSERT INTO items (name, price_cents) VALUES ($1, $2)"
params = ["name", {{ int = [1, 1000] }}]
rate = 20

[timeline]
migrate_at = "3s"
cooldown = "3s"
max_duration = "1m"

[[strategy]]
name = "only"
steps = [{{ sql = "{step}" }}]

[thresholds]
{thresholds}
"#
    )
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The replica's lag in time is how stale its data is: a standby told to
/// apply each commit 2 s late (`recovery_min_apply_delay`, which a primary
/// ignores) lags about 2 s, and fails a 1 s `max_replica_lag`; without the
/// delay the same run passes (its standby cancels what would hold replay
/// up; see the next test). Margins are wide: the figure is good to one
/// sampling interval (100 ms), and a loaded 2-core machine adds to it.
#[test]
fn a_standby_started_by_the_harness_serves_the_reads_and_its_lag_is_measured_and_judged() {
    let _heavy = heavy();
    let sandbox = Sandbox::new();
    let step = "ALTER TABLE items ADD COLUMN note text";
    let delayed = sandbox
        .write("delayed.toml", &scenario(r#"recovery_min_apply_delay = "2s""#, step, r#"max_replica_lag = "1s""#));
    let (code, stdout, stderr, report) = rehearse(&sandbox, &delayed, &[]);
    let r = report.unwrap_or_else(|| panic!("no report: {stderr}"));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let replica = r["workload"]["replica"].as_str().expect("a replica");
    assert!(replica.starts_with("postgres://postgres@127.0.0.1:"), "{replica}");
    assert_ne!(replica, r["postgres"]["target"].as_str().unwrap(), "the replica is a server of its own");
    let lag = &r["replication"]["replicas"][0];
    assert!(f(&lag["samples"]) >= 30.0, "{lag}");
    let max = f(&lag["max_lag_ms"]);
    assert!((1_500.0..6_000.0).contains(&max), "a 2 s apply delay lags about 2 s: {max} ms");
    let violations = r["verdict"]["violations"].as_array().unwrap();
    let v = violations.iter().find(|v| v["threshold"] == "max_replica_lag").expect("max_replica_lag fails");
    assert_eq!(f(&v["measured"]), max);
    assert_eq!(f(&v["limit"]), 1000.0);
    assert!(stdout.contains("REPLICAS") && stdout.contains("max_replica_lag"), "{stdout}");
    // The reads went to the replica, and none failed. (The migration is one
    // quick statement: its phase is too short to hold a request.)
    for phase in ["baseline", "after"] {
        let q = &r["phases"][phase]["queries"]["read_item"];
        assert!(f(&q["count"]) > 0.0 && f(&q["errors"]) == 0.0, "{phase}: {q}");
    }
    sandbox.assert_clean();

    // Without the delay. The migration's lock, replayed, would wait for the
    // replica's 1.5 s report (and the replica lag with it) for up to
    // max_standby_streaming_delay: at 100 ms the standby cancels the report
    // instead.
    let prompt = sandbox
        .write("prompt.toml", &scenario(r#"max_standby_streaming_delay = "100ms""#, step, r#"max_replica_lag = "1s""#));
    let (code, stdout, stderr, report) = rehearse(&sandbox, &prompt, &[]);
    let r = report.unwrap_or_else(|| panic!("no report: {stderr}"));
    let lag = &r["replication"]["replicas"][0];
    assert!(f(&lag["max_lag_ms"]) < 1_000.0, "{lag}");
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let phases: Vec<&str> = lag["phases"].as_array().unwrap().iter().map(|p| p["phase"].as_str().unwrap()).collect();
    // Each phase that held a sample (the migration's few milliseconds
    // may hold none).
    assert!(phases.starts_with(&["baseline"]) && phases.ends_with(&["after"]), "{phases:?}");
    sandbox.assert_clean();
}

/// An ACCESS EXCLUSIVE lock replayed on the standby conflicts with the
/// reads running there: after `max_standby_streaming_delay` the standby
/// cancels them, and the report counts them as recovery conflicts, apart
/// from other failures.
#[test]
fn requests_a_standby_cancels_for_a_conflict_with_recovery_are_counted_per_phase() {
    let _heavy = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write(
        "conflict.toml",
        &scenario(
            r#"max_standby_streaming_delay = "100ms""#,
            "ALTER TABLE items ADD COLUMN note text",
            "max_error_rate = 0.5",
        ),
    );
    let (_, stdout, stderr, report) = rehearse(&sandbox, &path, &[]);
    let r = report.unwrap_or_else(|| panic!("no report: {stderr}"));
    let conflicts: f64 = r["replication"]["conflicts"].as_array().unwrap().iter().map(|c| f(&c["requests"])).sum();
    assert!(conflicts >= 1.0, "{}\n{stdout}", r["replication"]);
    let kinds: f64 = ["baseline", "during", "after"]
        .iter()
        .filter_map(|p| r["phases"][p]["queries"]["report"]["error_kinds"]["recovery_conflict"].as_f64())
        .sum();
    assert_eq!(kinds, conflicts, "each conflict is one of the report query's errors");
    assert!(stdout.contains("conflict with recovery"), "{stdout}");
    sandbox.assert_clean();
}

/// Replicas are started beside a server the harness starts; for a server
/// the user names, the harness says how to name its replica instead.
#[test]
fn replicas_of_a_server_the_user_names_are_refused_with_a_way_out() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("url.toml", &scenario(r#"max_connections = "100""#, "SELECT 1", "max_p99 = \"5s\""));
    // Refused before any connection: the server named here does not exist.
    let out = sandbox.run(&["run", path.to_str().unwrap(), "--quiet", "--url", "postgres://nobody@127.0.0.1:1/none"]);
    let stderr = crate::common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--replica-url"), "{stderr}");
    let out = sandbox.run(&["run", path.to_str().unwrap(), "--quiet", "--replicas", "9"]);
    assert_eq!(out.status.code(), Some(2), "{}", crate::common::text(&out.stderr));
}
