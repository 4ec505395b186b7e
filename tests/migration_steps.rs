//! The step runner on a small table: rewrites, steps that cannot run in a
//! transaction, `max_duration`, and parameter types checked up front.

use serde_json::Value;

use crate::common::{Sandbox, heavy, position_of, rehearse, small_scenario};

const QUERY: &str = "SELECT * FROM items WHERE id = $1";

fn run(toml: &str) -> (i32, Value, String) {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", toml);
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &[]);
    sandbox.assert_clean();
    (code, report.unwrap_or(Value::Null), format!("{stdout}\n{stderr}"))
}

#[test]
fn a_table_rewrite_is_detected_from_relfilenodes() {
    let (code, r, out) = run(&small_scenario(QUERY, "ALTER TABLE items ALTER COLUMN price_cents TYPE bigint"));
    assert_eq!(code, 0, "{out}");
    let step = &r["migration"]["steps"][0];
    let rewrote: Vec<&str> = step["rewrote"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(rewrote.contains(&"items") && rewrote.contains(&"items_pkey"), "{rewrote:?}");
    let locks = step["locks"].as_array().unwrap();
    assert!(locks.contains(&serde_json::json!({"relation": "items", "mode": "AccessExclusiveLock"})), "{locks:?}");
    // The old index and TOAST table went with the rewrite; their locks are
    // named as they were before it.
    let named: Vec<&str> = locks.iter().map(|l| l["relation"].as_str().unwrap()).collect();
    assert!(named.contains(&"items (TOAST)"), "{named:?}");
    assert!(!named.iter().any(|n| n.starts_with("dropped relation")), "{named:?}");
}

#[test]
fn a_concurrent_index_runs_outside_a_transaction_with_its_locks_sampled() {
    // Enough rows that the build takes longer than a sampling period.
    let toml = small_scenario(QUERY, "CREATE INDEX CONCURRENTLY items_name ON items (name)")
        .replace("rows = 2000", "rows = 100000");
    let (code, r, out) = run(&toml);
    assert_eq!(code, 0, "{out}");
    let step = &r["migration"]["steps"][0];
    assert_eq!(step["transactional"], false);
    assert!(step["error"].is_null());
    let locks = step["locks"].as_array().unwrap();
    assert!(locks.iter().any(|l| l["relation"] == "items" && l["mode"] == "ShareUpdateExclusiveLock"), "{locks:?}");
}

#[test]
fn a_migration_past_max_duration_is_cancelled_and_reported() {
    let toml = small_scenario(QUERY, "SELECT pg_sleep(30)").replace("max_duration = \"30s\"", "max_duration = \"1s\"");
    let (code, r, out) = run(&toml);
    assert_eq!(code, 1, "{out}");
    assert_eq!(r["migration"]["outcome"], "cancelled");
    let total = r["migration"]["total_ms"].as_f64().unwrap();
    assert!((1000.0..3000.0).contains(&total), "cancelled near max_duration, after {total}ms");
    assert_eq!(r["migration"]["steps"][0]["error"]["sqlstate"], "57014");
}

#[test]
fn a_parameter_of_the_wrong_type_is_bad_input_before_the_load_starts() {
    let toml = small_scenario(QUERY, "SELECT 1").replace("{ key_of = \"items\" }", "\"email\"");
    let (code, _, out) = run(&toml);
    assert_eq!(code, 2, "{out}");
    let (line, col) = position_of(&toml, "\"email\"", 0);
    assert!(out.contains(&format!(":{line}:{col}: query `get_item`, parameter $1")), "{out}");
    assert!(out.contains("as int8"), "{out}");
}
