//! No scenario file: a migration file and a schema dump are enough. The
//! derived scenario (reads, updates and inserts on the tables the migration
//! touches, and a long transaction across the migration's start) is judged
//! against the default thresholds, and says so.

use serde_json::Value;

use crate::common::{Sandbox, heavy, repo, text};

fn fixture(name: &str) -> String {
    repo(&format!("tests/fixtures/zero-config/{name}")).display().to_string()
}

#[test]
fn init_writes_the_scenario_that_run_would_derive_and_it_checks() {
    let sandbox = Sandbox::new();
    let (m, schema) = (fixture("add_status_v2.sql"), fixture("schema.sql"));
    let out = sandbox.run(&["init", "--migration", &m, "--schema", &schema, "--rows", "orders=40_000_000"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let toml = text(&out.stdout);
    // The touched table at the size asked, and its parent (by foreign key)
    // at the default parent size, so that its keys exist.
    assert!(toml.contains(r#"rows = { "customers" = 10000, "orders" = 40000000 }"#), "{toml}");
    for q in ["read_orders", "update_orders", "insert_orders", "long-transaction"] {
        assert!(toml.contains(q), "{q} in {toml}");
    }
    assert!(
        toml.contains("INSERT INTO orders (customer_id, status"),
        "the identity key is left to its default: {toml}"
    );
    assert!(!toml.contains("\n[thresholds]"), "judged against the defaults: {toml}");
    let path = sandbox.write("scenario.toml", &toml);
    let check = sandbox.run(&["check", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
}

#[test]
fn a_table_without_an_integer_key_still_gets_reads_and_writes() {
    // rule_segments has no primary key, only a unique key over text and a
    // foreign key over two text columns (as Flipt's does).
    let sandbox = Sandbox::new();
    let m = sandbox.write("m.sql", "ALTER TABLE rule_segments ADD COLUMN weight int;\n");
    let schema = crate::common::repo("tests/fixtures/keys_and_types.sql");
    let out = sandbox.run(&["init", "--migration", m.to_str().unwrap(), "--schema", schema.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let toml = text(&out.stdout);
    assert!(toml.contains("SELECT * FROM rule_segments LIMIT 1"), "{toml}");
    assert!(
        toml.contains("WHERE ctid = (SELECT ctid FROM rule_segments OFFSET floor(random() * 1000)::int LIMIT 1)"),
        "{toml}"
    );
    let path = sandbox.write("scenario.toml", &toml);
    let check = sandbox.run(&["check", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
}

#[test]
fn without_a_schema_there_is_nothing_to_derive_and_the_error_says_what_to_give() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["run", "--migration", &fixture("add_status_v2.sql"), "--backend", "local"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--schema dump.sql"), "{}", text(&out.stderr));
}

#[test]
fn a_migration_file_and_a_dump_reproduce_the_outage_with_no_scenario_file() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let json = sandbox.path().join("report.json");
    let (m, schema) = (fixture("add_status_v2.sql"), fixture("schema.sql"));
    let args = ["run", "--migration", &m, "--schema", &schema, "--rows", "orders=200000"];
    let out = sandbox.run(&[&args[..], &["--backend", "local", "--json", json.to_str().unwrap()]].concat());
    let stderr = text(&out.stderr);
    sandbox.assert_clean();
    // The ALTER TABLE, due at 10 s, queues behind the long transaction
    // until its end at 20 s, and every request on orders queues behind it:
    // about 10 s, far past the default 1 s limit, whatever the machine's
    // speed.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no scenario file") && stderr.contains("[[interference]]"), "{stderr}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["thresholds"]["defaults"], true);
    let violations = r["verdict"]["violations"].as_array().unwrap();
    assert!(violations.iter().any(|v| v["threshold"] == "max_lock_wait"), "{violations:?}");
    assert!(r["locks"]["workload_longest_wait_ms"].as_f64().unwrap() > 3000.0, "{}", r["locks"]);
    let step = &r["migration"]["steps"][0];
    assert_eq!(step["name"], "add_status_v2.sql:2 ALTER TABLE");
    assert_eq!(step["line"], 2);
    assert!(text(&out.stdout).contains("judged against the default thresholds"), "{}", text(&out.stdout));
}

#[test]
fn a_prisma_folder_of_mixed_case_tables_with_seed_rows_and_a_dropped_table_rehearses() {
    // Prisma's quoted PascalCase tables, an array of an enum, a seed row
    // (a data migration's INSERT), and a table a later migration drops
    // with the foreign key to it, and a column it renames.
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let json = sandbox.path().join("report.json");
    let dir = fixture("prisma");
    let args = ["run", "--migrations", &dir, "--rows", "Post=5000", "--rows", "User=1000"];
    let out = sandbox.run(&[&args[..], &["--backend", "local", "--quiet", "--json", json.to_str().unwrap()]].concat());
    let stderr = text(&out.stderr);
    sandbox.assert_clean();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect(&stderr)).unwrap();
    let tables: Vec<(&str, u64)> = r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["rows"].as_u64().unwrap()))
        .collect();
    assert_eq!(tables, [("User", 1000), ("Post", 5000)], "{stderr}");
    assert_eq!(r["migration"]["outcome"], "ok", "{stderr}");
    // The derived reads name the table as Prisma spells it, and succeed.
    let read = &r["phases"]["baseline"]["queries"]["read_Post"];
    assert!(read["count"].as_u64().unwrap() > 100 && read["errors"] == 0, "{read}");
    // The verdict is the machine's to give (a short SHARE lock on a busy
    // machine may stretch a write's p99); what this test holds is that the
    // folder is rehearsed, not refused as bad input (2) or failed (3).
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stderr}");
    // The seed row was replaced by the generated ones: no key collides.
    assert!(!stderr.contains("23505"), "{stderr}");
}
