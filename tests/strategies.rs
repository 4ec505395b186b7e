//! The three strategies of `add-column-default`, rehearsed at a small scale
//! on the local backend, judged by what was measured.

use serde_json::Value;

use crate::common::{Sandbox, heavy, rehearse, repo};

const SCALE: &str = "0.05";

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn run(strategy: &str) -> (i32, Value, Sandbox) {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let scenario = repo("scenarios/add-column-default.toml");
    let (code, stdout, stderr, report) = rehearse(&sandbox, &scenario, &["--strategy", strategy, "--scale", SCALE]);
    let report = report.unwrap_or_else(|| panic!("no report (exit {code})\n{stdout}\n{stderr}"));
    // Whatever the outcome, the throwaway server and its directory are gone.
    sandbox.assert_clean();
    (code, report, sandbox)
}

/// The report's start and end of the interfering report, in seconds.
fn report_window(r: &Value) -> (f64, f64) {
    let i = &r["timeline"]["interference"][0];
    (f(&i["started_s"]), f(&i["ended_s"]))
}

#[test]
fn naive_waits_behind_the_report_and_stalls_reads_and_fills_the_pool() {
    let (code, r, _s) = run("naive");
    assert_eq!(code, 1, "the outage fails the thresholds");
    assert_eq!(r["migration"]["outcome"], "ok");
    let step = &r["migration"]["steps"][0];
    assert_eq!(step["locks"][0]["relation"], "orders");
    assert_eq!(step["locks"][0]["mode"], "AccessExclusiveLock");
    assert_eq!(step["attempts"], 1);
    assert_eq!(step["rewrote"].as_array().unwrap().len(), 0, "a constant default needs no rewrite on PG11+");

    // The migration started while the report ran and waited until it ended.
    let (_, report_end) = report_window(&r);
    let remaining_ms = (report_end - f(&r["migration"]["started_s"])) * 1000.0;
    let waited = f(&step["lock_wait_ms"]);
    assert!(remaining_ms > 5000.0, "the report outlived the migration's start by {remaining_ms}ms");
    assert!(waited >= 0.9 * remaining_ms, "lock wait {waited}ms vs the report's remaining {remaining_ms}ms");

    // Reads stalled behind it: p99 far above baseline, as long as the wait.
    let base = f(&r["phases"]["baseline"]["queries"]["get_order"]["p99_ms"]);
    let during = f(&r["phases"]["during"]["queries"]["get_order"]["p99_ms"]);
    assert!(during > 100.0 * base && during > 0.8 * remaining_ms, "read p99 {base}ms → {during}ms");

    // Who blocked whom: the workload behind the migration, the migration
    // behind the report.
    let edges = r["locks"]["blocking"].as_array().unwrap();
    assert!(edges.iter().any(|e| e["waiter"] == "migration" && e["blocker"] == "interference cs-report"));
    assert!(edges.iter().any(|e| e["waiter"] == "workload" && e["blocker"] == "migration"));
    assert!(f(&r["locks"]["workload_longest_wait_ms"]) > 0.8 * remaining_ms);

    // The pool filled and requests failed like 504s.
    assert_eq!(r["pool"]["max_in_use"], r["pool"]["size"]);
    assert!(r["pool"]["timeouts"].as_u64().unwrap() > 100);
    assert_eq!(r["verdict"]["pass"], false);
    let violated: Vec<&str> =
        r["verdict"]["violations"].as_array().unwrap().iter().map(|v| v["threshold"].as_str().unwrap()).collect();
    assert!(violated.contains(&"max_lock_wait") && violated.contains(&"max_p99"), "{violated:?}");
}

#[test]
fn lock_timeout_retry_bounds_every_stall_near_its_lock_timeout() {
    let (code, r, _s) = run("lock-timeout-retry");
    assert_eq!(code, 1, "2 s stalls still break a 1 s threshold");
    assert_eq!(r["migration"]["outcome"], "ok");
    let step = &r["migration"]["steps"][0];
    let attempts = step["attempts"].as_u64().unwrap();
    assert!(attempts >= 3, "it retried while the report held the lock: {attempts} attempts");
    // No workload request waited much beyond the 2 s lock_timeout...
    let longest = f(&r["locks"]["workload_longest_wait_ms"]);
    assert!((1500.0..2400.0).contains(&longest), "longest workload lock wait {longest}ms");
    let max_read = f(&r["phases"]["during"]["queries"]["get_order"]["max_ms"]);
    assert!(max_read < 2600.0, "slowest read during the migration {max_read}ms");
    // ...so the pool never gave a request up.
    assert_eq!(r["pool"]["timeouts"], 0);
}

#[test]
fn expand_backfill_passes_its_thresholds() {
    let (code, r, _s) = run("expand-backfill");
    assert_eq!(r["verdict"]["pass"], true, "{}", r["verdict"]);
    assert_eq!(code, 0);
    let steps = r["migration"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 7);
    let backfill = &steps[2];
    assert!(backfill["batches"].as_u64().unwrap() >= 10);
    assert!(backfill["rows"].as_u64().unwrap() >= 100_000, "every row backfilled");
    // Every batch is in the series, in order, and their rows add up.
    let series = backfill["batches_series"].as_array().unwrap();
    assert_eq!(series.len() as u64, backfill["batches"].as_u64().unwrap());
    assert_eq!(series.iter().map(|b| b["rows"].as_u64().unwrap()).sum::<u64>(), backfill["rows"].as_u64().unwrap());
    assert!(series.windows(2).all(|w| f(&w[1]["at_s"]) >= f(&w[0]["at_s"]) + f(&w[0]["duration_ms"]) / 1000.0 - 1e-6));
    assert_eq!(series.last().unwrap()["rows"], 0, "the last batch found nothing left");
    assert!(backfill.get("progress").is_none(), "a finished step has no estimate");
    assert!(backfill["locks"].as_array().unwrap().iter().all(|l| l["mode"] != "AccessExclusiveLock"));
    assert_eq!(steps[4]["locks"][0]["mode"], "ShareUpdateExclusiveLock", "VALIDATE does not block writes");
    assert!(f(&r["locks"]["workload_longest_wait_ms"]) < 300.0);
}
