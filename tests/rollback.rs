//! `--rollback`: the candidate's up, then its down under the same load,
//! each judged as a migration of its own. The down of the fixture waits
//! behind a long read (an interference started after the up), and every
//! request on the table queues behind it: the rollback is the finding.

use serde_json::Value;

use crate::common::{Sandbox, heavy, rehearse, repo};

/// The fixture folder from `from` on; a long read of `accounts` starts
/// 1 s after the migration, once the up (two statements on 2,000 rows)
/// is done, and holds its lock for 3 s: the rollback, due 2 s after the
/// up, waits behind it for about 2 s, twice the 1 s limit.
fn scenario(from: &str) -> String {
    let dir = repo("tests/fixtures/migrations/rollback");
    format!(
        r#"name = "rollback"
seed = 1
rows = {{ accounts = 2000 }}

[workload]
pool_size = 4
pool_timeout = "10s"

[[workload.query]]
name = "get_account"
sql = "SELECT * FROM accounts WHERE id = $1"
params = [{{ key_of = "accounts" }}]
rate = 50

[[interference]]
name = "report"
at = "2s"
sql = "SELECT count(*) FROM accounts, pg_sleep(3)"

[timeline]
migrate_at = "1s"
cooldown = "2s"
max_duration = "30s"

[[strategy]]
name = "candidate"
migrations = {{ dir = "{}", format = "dbmate", from = "{from}" }}

[thresholds]
max_lock_wait = "1s"
"#,
        dir.display()
    )
}

fn run(from: &str, extra: &[&str]) -> (i32, Value, String) {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &scenario(from));
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, extra);
    sandbox.assert_clean();
    (code, report.unwrap_or(Value::Null), format!("{stdout}\n{stderr}"))
}

#[test]
fn a_rollback_that_queues_the_load_behind_it_fails_the_run_after_an_up_that_passed() {
    let (code, r, out) = run("20240103000000", &["--rollback"]);
    assert_eq!(code, 1, "{out}");
    // The up was quick and harmless; the down ran after it, in dbmate's
    // one transaction, and waited behind the report.
    let up = &r["migration"];
    assert_eq!(up["outcome"], "ok", "{out}");
    let back = &r["rollback"];
    assert_eq!(back["outcome"], "ok", "{out}");
    let steps = back["steps"].as_array().unwrap();
    let named: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        named,
        ["20240103000000_add_status.sql:6 DROP INDEX", "20240103000000_add_status.sql:7 ALTER TABLE"],
        "{out}"
    );
    assert!(steps.iter().all(|s| s["transaction"] == "shared" && s["transaction_id"] == 1), "{out}");
    assert!(back["started_s"].as_f64().unwrap() >= up["ended_s"].as_f64().unwrap() + 1.9, "{out}");
    assert!(steps[0]["lock_wait_ms"].as_f64().unwrap() > 1000.0, "{out}");
    // The phases follow the two migrations; the requests that queued
    // behind the rollback count against it.
    let phases = &r["phases"];
    assert_eq!(phases["rollback"]["start_s"], back["started_s"], "{out}");
    assert_eq!(phases["after_rollback"]["start_s"], back["ended_s"], "{out}");
    let max = phases["rollback"]["queries"]["get_account"]["max_ms"].as_f64().unwrap();
    assert!(max > 1000.0, "{out}");
    let violations = r["verdict"]["violations"].as_array().unwrap();
    let wait = violations.iter().find(|v| v["threshold"] == "max_lock_wait").expect("a lock-wait violation");
    assert!(wait["message"].as_str().unwrap().contains("during the rollback"), "{out}");
    assert!(out.contains("ROLLBACK  ok"), "{out}");
}

#[test]
fn without_the_flag_the_down_is_not_rehearsed() {
    let (code, r, out) = run("20240103000000", &[]);
    // The long read starts after the up and delays nothing.
    assert_eq!(code, 0, "{out}");
    assert!(r.get("rollback").is_none(), "{out}");
    assert!(r["phases"].get("rollback").is_none(), "{out}");
}

#[test]
fn a_candidate_without_a_down_part_is_refused_before_anything_starts() {
    let (code, _, out) = run("20240102000000", &["--rollback"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--rollback: 20240102000000_add_plan.sql has no down part"), "{out}");
}

#[test]
fn a_strategys_own_rollback_steps_run_and_a_failing_one_fails_the_run() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let step = "ALTER TABLE items ADD COLUMN note text";
    // The down names a column the up did not add: it fails on the server.
    let toml = crate::common::small_scenario("SELECT * FROM items WHERE id = $1", step)
        .replace("[thresholds]", "rollback = [{ sql = \"ALTER TABLE items DROP COLUMN notes\" }]\n\n[thresholds]");
    let path = sandbox.write("s.toml", &toml);
    let (code, stdout, stderr, r) = rehearse(&sandbox, &path, &["--rollback"]);
    sandbox.assert_clean();
    let (r, out) = (r.unwrap_or(Value::Null), format!("{stdout}\n{stderr}"));
    assert_eq!(code, 1, "{out}");
    assert_eq!(r["migration"]["outcome"], "ok", "{out}");
    assert_eq!(r["rollback"]["outcome"], "failed", "{out}");
    assert_eq!(r["rollback"]["steps"][0]["error"]["sqlstate"], "42703", "{out}");
    let checks: Vec<&str> =
        r["verdict"]["violations"].as_array().unwrap().iter().map(|v| v["threshold"].as_str().unwrap()).collect();
    assert_eq!(checks, ["rollback"], "{out}");
}
