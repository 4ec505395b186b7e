//! The ledger of acknowledged writes: a table swapped in by copy and
//! rename loses what the application wrote during the copy, and the report
//! counts exactly the rows the old table holds and the new one lacks; the
//! swap with a trigger loses none.

use rehearse::postgres::{LocalCluster, Role, Server, connect};

use crate::common::{Sandbox, heavy, rehearse, repo};

/// The example's unsafe swap on a server the test holds, so that it can
/// look at both tables afterwards; with a table no key identifies.
const UNSAFE: &str = r#"name = "swap-unsafe"
seed = 3

[[table]]
name = "events"
rows = 300000
ddl = """
CREATE TABLE events (id bigserial PRIMARY KEY, account_id bigint NOT NULL,
  kind text NOT NULL, amount_cents bigint NOT NULL, created_at timestamptz NOT NULL);
"""

[[table]]
name = "audit"
rows = 10
ddl = "CREATE TABLE audit (at timestamptz, what text)"

[workload]
pool_size = 8
pool_timeout = "2s"

[[workload.query]]
name = "record_event"
sql = "INSERT INTO events (account_id, kind, amount_cents, created_at) VALUES ($1, 'credit', $2, now())"
params = [{ int = [1, 20000] }, { int = [100, 50000] }]
rate = 300

[[workload.query]]
name = "correct_amount"
sql = "UPDATE events SET amount_cents = $1 WHERE id = $2"
params = [{ int = [100, 50000] }, { int = [1, 300000] }]
rate = 200

[[workload.query]]
name = "audit"
sql = "INSERT INTO audit VALUES (now(), $1)"
params = [{ one_of = ["login", "logout"] }]
rate = 10

[timeline]
migrate_at = "2s"
cooldown = "2s"
max_duration = "1m"

[[strategy]]
name = "swap-unsafe"
steps = [
  { name = "create copy", sql = "CREATE TABLE events_new (LIKE events INCLUDING DEFAULTS)" },
  { name = "copy rows", sql = "INSERT INTO events_new SELECT * FROM events" },
  { name = "primary key", sql = "ALTER TABLE events_new ADD PRIMARY KEY (id)" },
  { name = "swap", sql = "ALTER TABLE events RENAME TO events_old; ALTER TABLE events_new RENAME TO events", lock_timeout = "100ms", retries = 50 },
]

[thresholds]
max_lock_wait = "2s"
max_error_rate = 0.05
"#;

#[test]
fn the_unsafe_swap_loses_exactly_the_writes_left_in_the_old_table() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(LocalCluster::start(&[])).unwrap();
    let user = rt.block_on(connect(cluster.config(), &Role::Other("user".into()))).unwrap();
    rt.block_on(user.batch_execute(
        "CREATE TABLE events (id bigserial PRIMARY KEY, account_id bigint NOT NULL, kind text NOT NULL,
           amount_cents bigint NOT NULL, created_at timestamptz NOT NULL);
         INSERT INTO events (account_id, kind, amount_cents, created_at)
           SELECT g % 20000 + 1, 'credit', g, now() FROM generate_series(1, 300000) g;
         CREATE TABLE audit (at timestamptz, what text);
         ANALYZE events;",
    ))
    .unwrap();
    let sandbox = Sandbox::new();
    let path = sandbox.write("swap.toml", UNSAFE);
    let url = cluster.connect_url();
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &["--url", &url, "--reuse-existing"]);
    let r = report.unwrap_or_else(|| panic!("no report: {stderr}"));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let l = &r["ledger"];
    assert_eq!(l["errors"], serde_json::json!([]), "{l}");

    // What the test can see: rows the old table has and the new one lacks.
    let count = |sql: &str| -> i64 { rt.block_on(user.query_one(sql, &[])).unwrap().get(0) };
    let missing =
        count("SELECT count(*) FROM events_old o WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = o.id)");
    let differing =
        count("SELECT count(*) FROM events_old o JOIN events e USING (id) WHERE o.amount_cents <> e.amount_cents");
    assert!(missing > 0, "the copy missed some inserts: {stdout}");
    assert_eq!(l["lost"].as_i64(), Some(missing), "{l}\n{stdout}");
    let inserts = &l["queries"][0];
    assert_eq!((inserts["query"].as_str(), inserts["lost"].as_i64()), (Some("record_event"), Some(missing)));
    // Each example names a row the new table lacks.
    for e in inserts["examples"].as_array().unwrap() {
        let id: i64 = e.as_str().unwrap().strip_prefix("lost id=").unwrap().parse().unwrap();
        assert_eq!(count(&format!("SELECT count(*) FROM events WHERE id = {id}")), 0, "{e}");
        assert_eq!(count(&format!("SELECT count(*) FROM events_old WHERE id = {id}")), 1, "{e}");
    }
    // Updates left in the old table: altered, unless a later update after
    // the swap wrote the row again (then it differs, and nothing is lost).
    let altered = l["altered"].as_i64().unwrap();
    assert!(altered > 0 && altered <= differing, "altered {altered}, differing {differing}");
    // The copy's rows came from a snapshot older than those writes: none is
    // excused as the migration's own change.
    assert_eq!(l["changed_by_migration"].as_u64(), Some(0), "{l}");
    assert!(l["writes"].as_u64().unwrap() > 500, "{l}");
    let untracked = l["untracked"].as_array().unwrap();
    assert_eq!(untracked.len(), 1, "{untracked:?}");
    assert_eq!(untracked[0]["query"], "audit");
    assert!(untracked[0]["reason"].as_str().unwrap().contains("no primary key"), "{untracked:?}");
    let failed: Vec<&str> =
        r["verdict"]["violations"].as_array().unwrap().iter().filter_map(|v| v["threshold"].as_str()).collect();
    assert!(failed.contains(&"max_lost_writes"), "{failed:?}");
    assert!(stdout.contains("WRITES") && stdout.contains("lost id="), "{stdout}");
}

#[test]
fn the_swap_with_a_trigger_loses_no_write() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = repo("scenarios/table-swap.toml");
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &["--strategy", "swap-with-trigger"]);
    let r = report.unwrap_or_else(|| panic!("no report: {stderr}"));
    let l = &r["ledger"];
    assert_eq!((l["lost"].as_u64(), l["altered"].as_u64()), (Some(0), Some(0)), "{l}");
    assert!(l["writes"].as_u64().unwrap() > 1000, "{l}");
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

/// A migration that recasts a column the workload writes
/// (`timestamp` → `timestamptz`) changes how its values print, so their
/// digests cannot match: the rows are checked for presence, and the report
/// says so instead of calling every write altered.
const RECAST: &str = r#"name = "recast"
seed = 4

[[table]]
name = "visits"
rows = 5000
ddl = """
CREATE TABLE visits (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  page text NOT NULL, seen_at timestamp NOT NULL);
"""

[workload]
pool_size = 4
pool_timeout = "2s"

[[workload.query]]
name = "visit"
sql = "INSERT INTO visits (page, seen_at) VALUES ($1, now())"
params = [{ one_of = ["/", "/cart", "/pay"] }]
rate = 100

[[workload.query]]
name = "forget"
sql = "DELETE FROM visits WHERE id = $1"
params = [{ int = [1, 5000] }]
rate = 50

[timeline]
migrate_at = "2s"
cooldown = "2s"
max_duration = "1m"

[[strategy]]
name = "recast"
steps = [{ sql = "ALTER TABLE visits ALTER COLUMN seen_at TYPE timestamptz" }]

[thresholds]
max_lock_wait = "5s"
max_error_rate = 0.5
"#;

#[test]
fn a_column_recast_by_the_migration_is_checked_for_presence_and_said_so() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("recast.toml", RECAST);
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &[]);
    let r = report.unwrap_or_else(|| panic!("no report: {stderr}"));
    let l = &r["ledger"];
    assert_eq!((l["lost"].as_u64(), l["altered"].as_u64()), (Some(0), Some(0)), "{l}");
    let notes = l["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{l}");
    let note = notes[0].as_str().unwrap();
    assert!(note.starts_with("visit #1") && note.contains("seen_at changed type"), "{note}");
    // Deletes are followed too: the rows they removed are still gone.
    let forget = l["queries"].as_array().unwrap().iter().find(|q| q["query"] == "forget").unwrap();
    assert_eq!(forget["kind"], "delete");
    assert!(forget["writes"].as_u64().unwrap() > 20, "{forget}");
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}

/// A data migration that changes, in place, values the workload wrote
/// (cents to hundredths of a cent): the rows it changed are reported as
/// changed by the migration, not as altered writes, and nothing fails.
const DATA_MIGRATION: &str = r#"name = "rescale"
seed = 5

[workload]
pool_size = 4
pool_timeout = "5s"

[[workload.query]]
name = "add_price"
sql = "INSERT INTO prices (cents, src) VALUES ($1, 'app')"
params = [{ int = [1, 99] }]
rate = 100

[[workload.query]]
name = "set_price"
sql = "UPDATE prices SET cents = $1, src = 'app' WHERE id = $2"
params = [{ int = [1, 99] }, { int = [1, 20000] }]
rate = 100

[timeline]
migrate_at = "2s"
cooldown = "2s"
max_duration = "1m"

[[strategy]]
name = "rescale"
steps = [{ sql = "UPDATE prices SET cents = cents * 100" }]

[thresholds]
max_lock_wait = "5s"
max_error_rate = 0.0
"#;

#[test]
fn a_data_migration_changing_written_values_is_not_a_lost_write() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(LocalCluster::start(&[])).unwrap();
    let user = rt.block_on(connect(cluster.config(), &Role::Other("user".into()))).unwrap();
    rt.block_on(user.batch_execute(
        "CREATE TABLE prices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, cents bigint NOT NULL, src text NOT NULL);
         INSERT INTO prices (cents, src) SELECT g % 99 + 1, 'seed' FROM generate_series(1, 20000) g;
         ANALYZE prices;",
    ))
    .unwrap();
    let sandbox = Sandbox::new();
    let path = sandbox.write("rescale.toml", DATA_MIGRATION);
    let url = cluster.connect_url();
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &["--url", &url, "--reuse-existing"]);
    let r = report.unwrap_or_else(|| panic!("no report: {stderr}"));
    let l = &r["ledger"];
    assert_eq!((l["lost"].as_u64(), l["altered"].as_u64()), (Some(0), Some(0)), "{l}\n{stdout}");
    // The rows the workload wrote before the migration, which it then
    // multiplied (the workload writes 1..99, never a multiple of 100).
    let count = |sql: &str| -> i64 { rt.block_on(user.query_one(sql, &[])).unwrap().get(0) };
    let rescaled = count("SELECT count(*) FROM prices WHERE src = 'app' AND cents % 100 = 0");
    assert!(rescaled > 50, "the baseline's writes were rescaled: {rescaled}");
    assert_eq!(l["changed_by_migration"].as_i64(), Some(rescaled), "{l}");
    assert!(stdout.contains("changed on purpose, not counted"), "{stdout}");
    assert_eq!(code, 0, "{stdout}\n{stderr}");
}
