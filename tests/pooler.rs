//! PgBouncer in the path (`[pooler]`): the workload's connections go
//! through a PgBouncer the harness starts, in transaction mode, so that a
//! migration's lock queue fills PgBouncer's server connections and the
//! application's requests wait in PgBouncer; the report shows that wait
//! beside the server's lock waits, and nothing is left behind.

use crate::common::{Sandbox, heavy, rehearse};

/// add-column-default's outage, small: a report holds the table's lock,
/// the ALTER queues behind it, every query queues behind the ALTER.
const SCENARIO: &str = r#"name = "pooled-outage"
seed = 9

[[table]]
name = "orders"
rows = 20000
ddl = """
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  status text NOT NULL, total_cents bigint NOT NULL);
"""

[workload]
pool_size = 30
pool_timeout = "10s"

[pooler]
kind = "pgbouncer"
mode = "transaction"
pool_size = 5

[[workload.query]]
name = "get_order"
sql = "SELECT * FROM orders WHERE id = $1"
params = [{ key_of = "orders" }]
rate = 100

# A transaction with a statement_timeout: set for the transaction only,
# since the next transaction may get another server connection.
[[workload.query]]
name = "pay_order"
transaction = ["UPDATE orders SET status = 'paid' WHERE id = $1", "SELECT total_cents FROM orders WHERE id = $1"]
statement_timeout = "20s"
params = [{ key_of = "orders" }]
rate = 20

[[interference]]
name = "report"
at = "1s"
sql = "SELECT count(*) FROM orders, pg_sleep(4)"

[timeline]
migrate_at = "2s"
cooldown = "2s"
max_duration = "1m"

[[strategy]]
name = "naive"
steps = [{ sql = "ALTER TABLE orders ADD COLUMN note text DEFAULT 'x' NOT NULL" }]

[thresholds]
max_lock_wait = "1s"
max_error_rate = 0.5
"#;

#[test]
fn a_lock_queue_behind_pgbouncer_shows_as_clients_waiting_in_it() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("pooled.toml", SCENARIO);
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &[]);
    let r = report.unwrap_or_else(|| panic!("no report: {stderr}"));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let p = &r["pooler"];
    assert_eq!((p["mode"].as_str(), p["pool_size"].as_u64()), (Some("transaction"), Some(5)), "{p}");
    assert!(p["version"].as_str().unwrap().starts_with("PgBouncer"), "{p}");
    // The ALTER waits ~3 s behind the report; the 5 server connections
    // fill with queries queued behind it, and the other clients wait in
    // PgBouncer. Wide margins: a loaded machine samples late.
    let during = &p["phases"][1];
    assert_eq!(during["phase"], "during");
    assert!(during["max_waiting_clients"].as_u64().unwrap() >= 3, "{p}");
    assert!(during["max_wait_ms"].as_f64().unwrap() > 1000.0, "{p}");
    assert_eq!(during["max_servers_active"].as_u64(), Some(5), "{p}");
    // The server side: no more workload sessions wait on the lock than
    // PgBouncer has server connections.
    let most = r["locks"]["max_waiting"].as_u64().unwrap();
    assert!((2..=5 + 2).contains(&most), "sessions waiting at once: {most}\n{stdout}");
    // Requests through it succeed before and after: unnamed statements,
    // and the transaction's own statement_timeout.
    for q in ["get_order", "pay_order"] {
        let base = &r["phases"]["baseline"]["queries"][q];
        assert!(base["count"].as_u64().unwrap() > 10 && base["errors"] == 0, "{q}: {base}");
        let after = &r["phases"]["after"]["queries"][q];
        assert!(after["count"].as_u64().unwrap() > 10, "{q}: {after}");
    }
    assert_eq!(r["ledger"]["lost"], 0, "{}", r["ledger"]);
    assert!(stdout.contains("POOLER") && stdout.contains("clients waiting"), "{stdout}");
    sandbox.assert_clean();
}
