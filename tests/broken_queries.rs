//! Queries the migration broke: a column dropped under a query that reads
//! it is named, with its error and the step after which it began to fail,
//! and fails the run; a query the migration left alone is not named.

use crate::common::{Sandbox, heavy, rehearse};

const SCENARIO: &str = r#"name = "drop-column"
seed = 5

[[table]]
name = "items"
rows = 5000
ddl = """
CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL, price_cents int NOT NULL);
"""

[workload]
pool_size = 4
pool_timeout = "1s"

[[workload.query]]
name = "get_price"
sql = "SELECT price_cents FROM items WHERE id = $1"
params = [{ key_of = "items" }]
rate = 50

[[workload.query]]
name = "get_name"
sql = "SELECT name FROM items WHERE id = $1"
params = [{ key_of = "items" }]
rate = 50

# A weekly job, not part of the load: run once after the migration.
[[workload.check]]
name = "weekly_revenue"
sql = "SELECT sum(price_cents) FROM items WHERE id > $1"
params = [{ int = [0, 10] }]

[[workload.check]]
name = "weekly_count"
sql = "SELECT count(*) FROM items"

# Broken before the migration already: not the migration's doing.
[[workload.check]]
name = "weekly_legacy"
sql = "SELECT sum(legacy_cents) FROM items"

[timeline]
migrate_at = "2s"
cooldown = "2s"
max_duration = "30s"

[[strategy]]
name = "contract"
steps = [
  { name = "add note", sql = "ALTER TABLE items ADD COLUMN note text" },
  { name = "drop price", sql = "ALTER TABLE items DROP COLUMN price_cents" },
]

[thresholds]
max_error_rate = 1.0   # every failure allowed: what fails here is the broken query
max_p99 = "5s"
"#;

#[test]
fn a_query_reading_a_dropped_column_is_named_as_broken_by_the_step_that_dropped_it() {
    let _heavy = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("drop.toml", SCENARIO);
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &[]);
    let r = report.unwrap_or_else(|| panic!("no report: {stderr}"));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let broken = r["broken"].as_array().unwrap();
    let names: Vec<&str> = broken.iter().map(|b| b["query"].as_str().unwrap()).collect();
    assert_eq!(names, ["get_price", "weekly_revenue"], "only what reads the column: {broken:?}");
    let b = &broken[0];
    assert_eq!(b["query"], "get_price");
    assert_eq!(b["sqlstate"], "42703", "undefined column: {b}");
    assert!(b["message"].as_str().unwrap().contains("price_cents"), "{b}");
    assert_eq!(b["after_step"]["index"], 2, "{b}");
    assert_eq!(b["after_step"]["name"], "drop price");
    let errors = b["errors"].as_u64().unwrap();
    let failed = r["phases"]["after"]["queries"]["get_price"]["errors"].as_u64().unwrap();
    assert!(errors >= failed && failed > 0, "every request after the drop failed so: {errors} vs {failed}");
    let step2 = r["migration"]["steps"][1]["started_s"].as_f64().unwrap();
    assert!(b["first_s"].as_f64().unwrap() >= step2, "{b}");
    // The weekly job broke too, found before its week is out.
    let weekly = &broken[1];
    assert_eq!((weekly["sqlstate"].as_str(), weekly["after_step"]["index"].as_u64()), (Some("42703"), Some(2)));
    let checks = r["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    assert!(checks[1]["error"].is_null(), "the count still runs: {checks:?}");
    assert_eq!(checks[2]["error"]["sqlstate"], "42703", "{checks:?}");
    assert_eq!(checks[2]["planned_before"], false, "{checks:?}");
    let violations = r["verdict"]["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(violations.iter().all(|v| v["threshold"] == "max_broken_queries"), "{violations:?}");
    assert!(stdout.contains("BROKEN BY THE MIGRATION") && stdout.contains("after step 2 (drop price)"), "{stdout}");
    // The other query never failed.
    assert_eq!(r["phases"]["after"]["queries"]["get_name"]["errors"], 0);
    sandbox.assert_clean();

    // Allowed two broken queries, the same run passes.
    let allowed = SCENARIO.replace("max_error_rate = 1.0", "max_error_rate = 1.0\nmax_broken_queries = 2");
    let path = sandbox.write("allowed.toml", &allowed);
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(report.unwrap()["broken"].as_array().unwrap().len(), 2);
}

/// An index a query uses, dropped: the query's plan goes from an index
/// scan to a sequential scan, and the report shows both, with costs.
#[test]
fn a_dropped_index_turns_the_plan_of_the_query_that_used_it_into_a_sequential_scan() {
    let _heavy = heavy();
    let sandbox = Sandbox::new();
    let toml = r#"name = "drop-index"
seed = 5

[[table]]
name = "items"
rows = 20000
ddl = """
CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  sku bigint NOT NULL, name text NOT NULL);
CREATE INDEX items_sku_idx ON items (sku);
"""
columns = { sku = { int = [1, 1000000] } }

[workload]
pool_size = 4
pool_timeout = "1s"

[[workload.query]]
name = "by_sku"
sql = "SELECT * FROM items WHERE sku = $1"
params = [{ int = [1, 1000000] }]
rate = 20

[[workload.query]]
name = "by_id"
sql = "SELECT * FROM items WHERE id = $1"
params = [{ key_of = "items" }]
rate = 20

[timeline]
migrate_at = "1s"
cooldown = "1s"
max_duration = "30s"

[[strategy]]
name = "drop"
steps = [{ sql = "DROP INDEX items_sku_idx" }]

[thresholds]
max_p99 = "5s"
"#;
    let path = sandbox.write("drop-index.toml", toml);
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &[]);
    let r = report.unwrap_or_else(|| panic!("no report: {stderr}"));
    assert_eq!(code, 0, "a slower plan is not a threshold here\n{stdout}\n{stderr}");
    let plans = &r["plans"];
    assert_eq!(plans["checked"], 2);
    let changed = plans["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "only the query that used the index: {changed:?}");
    let c = &changed[0];
    assert_eq!(c["query"], "by_sku");
    let before = c["before"]["nodes"].to_string();
    let after = c["after"]["nodes"].to_string();
    assert!(before.contains("using items_sku_idx on items"), "{before}");
    assert!(after.contains("Seq Scan on items") && !after.contains("items_sku_idx"), "{after}");
    assert_eq!(c["indexes_lost"], serde_json::json!(["items_sku_idx"]));
    assert_eq!(c["new_seq_scans"], serde_json::json!(["items"]));
    assert!(c["after"]["cost"].as_f64().unwrap() > c["before"]["cost"].as_f64().unwrap(), "{c}");
    assert!(stdout.contains("PLANS") && stdout.contains("now reads items by a sequential scan"), "{stdout}");
    sandbox.assert_clean();
}
