//! A CDC consumer: a logical slot read at a set pace while a migration
//! rewrites a table; the consumer falls behind, and the report says by how
//! much and how much WAL the slot held back.

use crate::common::{Sandbox, heavy, rehearse};

fn scenario(plugin: &str) -> String {
    format!(
        r#"name = "cdc"
seed = 9

[cdc]
slot = "{plugin}"
rate = 2000              # changes per second, as a connector's pace

[[table]]
name = "items"
rows = 30000
ddl = """
CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL, price_cents int NOT NULL);
"""

[workload]
pool_size = 4
pool_timeout = "1s"

[[workload.query]]
name = "add_item"
sql = "INSERT INTO items (name, price_cents) VALUES ($1, $2)"
params = ["name", {{ int = [1, 1000] }}]
rate = 50

[timeline]
migrate_at = "2s"
cooldown = "4s"
max_duration = "1m"

[[strategy]]
name = "rewrite"
steps = [{{ sql = "UPDATE items SET price_cents = price_cents + 1" }}]

[thresholds]
max_p99 = "5s"
"#
    )
}

/// 30,000 updated rows in one transaction take a 2,000-changes/s consumer
/// about 15 s: at the end of a 4 s cooldown it is still behind, and the
/// slot holds the WAL it has not confirmed. (Wide margins: the figures
/// move with the machine's speed, never by 10×.)
#[test]
fn a_cdc_slot_read_at_a_connectors_pace_falls_behind_a_rewrite_and_says_by_how_much() {
    let _heavy = heavy();
    let sandbox = Sandbox::new();
    for plugin in ["test_decoding", "pgoutput"] {
        let path = sandbox.write("cdc.toml", &scenario(plugin));
        let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &[]);
        let r = report.unwrap_or_else(|| panic!("{plugin}: no report: {stderr}"));
        assert_eq!(code, 0, "{plugin}\n{stdout}\n{stderr}");
        let cdc = &r["cdc"];
        assert_eq!(cdc["plugin"], plugin);
        let changes = cdc["stats"]["changes"].as_u64().unwrap();
        // The baseline's inserts went through; the rewrite, 15 s of work at
        // this pace, had not by the end.
        assert!(changes > 0, "{plugin}: the consumer read the baseline's inserts: {cdc}");
        assert!(changes < 30_000, "{plugin}: and not the whole rewrite within the run: {cdc}");
        let lag = &cdc["lag"];
        assert!(lag["max_lag_bytes"].as_u64().unwrap() > 1 << 20, "{plugin}: {lag}");
        assert!(lag["max_lag_ms"].as_f64().unwrap() > 1_000.0, "{plugin}: {lag}");
        assert!(cdc["stats"]["max_retained_bytes"].as_u64().unwrap() > 1 << 20, "{plugin}: {cdc}");
        assert!(r.get("replication").is_none(), "the slot is not a replica");
        assert!(stdout.contains("CDC  slot rehearse_cdc"), "{stdout}");
        // The WAL the server wrote while the rewrite ran.
        let step_wal = r["migration"]["steps"][0]["wal_bytes"].as_u64().unwrap();
        assert!(step_wal > 1 << 20, "{plugin}: {step_wal}");
        let during = r["wal"]["phases"].as_array().unwrap().iter().find(|p| p["phase"] == "during").cloned();
        assert!(during.is_some_and(|p| p["bytes"].as_u64().unwrap() > 1 << 20), "{}", r["wal"]);
        sandbox.assert_clean();
    }
}
