//! Lock waits that add up, on a real server: the migration queues behind a
//! report that runs as a parallel query (a leader and two workers, all of
//! which hold its lock). The migration's wait is one wait, counted once,
//! as wall-clock time no longer than its step.

use serde_json::Value;

use crate::common::{Sandbox, heavy, rehearse, small_scenario};

const QUERY: &str = "SELECT * FROM items WHERE id = $1";

#[test]
fn a_wait_behind_a_parallel_report_is_one_wait_no_longer_than_its_step() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    // The report: a parallel scan that sleeps a millisecond a row, about
    // 12,000 ms of sleep shared by three processes.
    let report = "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; \
                  SET max_parallel_workers_per_gather = 2; \
                  SELECT count(*) FROM items WHERE pg_sleep(0.001) IS NOT NULL";
    let toml = small_scenario(QUERY, "ALTER TABLE items ADD COLUMN note text")
        .replace("rows = 2000", "rows = 12000")
        .replace("migrate_at = \"1s\"", "migrate_at = \"1500ms\"")
        .replace(
            "[timeline]",
            &format!("[[interference]]\nname = \"report\"\nat = \"500ms\"\nsql = \"{report}\"\n\n[timeline]"),
        );
    let path = sandbox.write("s.toml", &toml);
    let (code, stdout, stderr, r) = rehearse(&sandbox, &path, &[]);
    let r: Value = r.unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    // The workload stalls behind the queue: the thresholds may fail.
    assert!(code == 0 || code == 1, "{stdout}\n{stderr}");
    let step = &r["migration"]["steps"][0];
    let (wait, duration) = (step["lock_wait_ms"].as_f64().unwrap(), step["duration_ms"].as_f64().unwrap());
    assert!(wait <= duration, "waited {wait} ms in a step of {duration} ms");
    // It did wait for the report: most of its step. (The report runs for
    // about four seconds from 0.5 s; the step starts at 1.5 s.)
    assert!(wait >= 500.0 && wait >= duration * 0.5, "{wait} of {duration}");
    let m = &r["migration"];
    assert!(m["lock_wait_ms"].as_f64().unwrap() <= m["total_ms"].as_f64().unwrap());
    let edges = r["locks"]["blocking"].as_array().unwrap();
    let behind_report =
        edges.iter().find(|e| e["waiter"] == "migration" && e["blocker"] == "interference report").expect("{edges:?}");
    assert_eq!(behind_report["max_waiters"], 1, "one migration, however many processes the report has: {edges:?}");
    assert!(behind_report["max_blockers"].as_u64().unwrap() >= 2, "the report ran as a parallel query: {edges:?}");
    let longest = behind_report["longest_wait_ms"].as_f64().unwrap();
    assert!(
        longest <= duration,
        "the longest wait behind the report, {longest} ms, in a step of {duration} ms: {edges:?}"
    );
    sandbox.assert_clean();
}
