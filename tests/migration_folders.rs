//! Migration folders of every runner, rehearsed as their runner runs them:
//! which statements share a transaction (and hold its locks to its end),
//! each format's way out of a transaction, and `CREATE INDEX CONCURRENTLY`
//! failing where the runner would fail it (SQLSTATE 25001). The fixtures
//! are in `tests/fixtures/migrations/` (see its README).

use serde_json::Value;

use crate::common::{Sandbox, heavy, rehearse, repo};

/// A scenario whose strategy is the folder's migrations from `from` on;
/// the migrations before build `accounts`, filled with 2,000 rows.
fn scenario(dir: &str, format: &str, from: &str) -> String {
    let dir = repo(&format!("tests/fixtures/migrations/{dir}"));
    format!(
        r#"name = "folder"
seed = 1
rows = {{ accounts = 2000 }}

[workload]
pool_size = 4
pool_timeout = "1s"

[[workload.query]]
name = "get_account"
sql = "SELECT * FROM accounts WHERE id = $1"
params = [{{ key_of = "accounts" }}]
rate = 50

[timeline]
migrate_at = "1s"
cooldown = "500ms"
max_duration = "30s"

[[strategy]]
name = "candidate"
migrations = {{ dir = "{}", format = "{format}", from = "{from}" }}

[thresholds]
max_error_rate = 0.5
"#,
        dir.display()
    )
}

fn run(dir: &str, format: &str, from: &str) -> (i32, Value, String) {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &scenario(dir, format, from));
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &[]);
    sandbox.assert_clean();
    (code, report.unwrap_or(Value::Null), format!("{stdout}\n{stderr}"))
}

/// Each step as (file, transaction kind), and the error of the last.
fn steps(r: &Value) -> Vec<(String, String)> {
    r["migration"]["steps"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|s| (s["file"].as_str().unwrap_or("").to_string(), s["transaction"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn expect(r: &Value, out: &str, want: &[(&str, &str)]) {
    let got = steps(r);
    let got: Vec<(&str, &str)> = got.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
    assert_eq!(got, want, "{out}");
    // Each step is named after its file and line, and its first keyword.
    for s in r["migration"]["steps"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let prefix = format!("{}:{} ", s["file"].as_str().unwrap(), s["line"]);
        assert!(name.starts_with(&prefix), "{name} starts with {prefix}");
    }
}

/// The migration failed at its last step with 25001, as the runner would.
fn failed_concurrently(code: i32, r: &Value, out: &str) {
    assert_eq!(code, 1, "{out}");
    assert_eq!(r["migration"]["outcome"], "failed", "{out}");
    let last = r["migration"]["steps"].as_array().unwrap().last().unwrap();
    assert_eq!(last["error"]["sqlstate"], "25001", "{out}");
    assert!(last["sql"].as_str().unwrap().contains("CONCURRENTLY"), "{out}");
}

/// The statements of the first shared transaction hold their locks until
/// its last statement ends.
fn held_to_the_end(r: &Value, out: &str) {
    let steps = r["migration"]["steps"].as_array().unwrap();
    let first: Vec<&Value> = steps.iter().filter(|s| s["transaction_id"] == 1).collect();
    assert!(first.len() >= 2, "{out}");
    let end = first.last().unwrap()["ended_s"].as_f64().unwrap();
    for s in &first {
        assert_eq!(s["held_until_s"].as_f64(), Some(end), "{out}");
    }
    let alter = first[0];
    assert!(
        alter["locks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["relation"] == "accounts" && l["mode"] == "AccessExclusiveLock"),
        "{out}"
    );
}

#[test]
fn plain_files_run_statement_by_statement_as_psql_runs_them() {
    let (code, r, out) = run("plain", "auto", "002");
    let (f2, f3, f4) = ("002_add_status.sql", "003_index_email.sql", "004_add_plan.sql");
    expect(&r, &out, &[(f2, "own"), (f2, "own"), (f3, "none"), (f4, "shared"), (f4, "shared"), (f4, "shared")]);
    failed_concurrently(code, &r, &out);
    assert!(out.contains("detected as plain"), "{out}");
}

#[test]
fn sqlx_runs_each_file_in_a_transaction_unless_it_starts_with_no_transaction() {
    let (code, r, out) = run("sqlx/migrations", "auto", "20240102000000");
    let (f2, f3, f4) =
        ("20240102000000_add_status.sql", "20240103000000_index_email.up.sql", "20240104000000_index_created.sql");
    expect(&r, &out, &[(f2, "shared"), (f2, "shared"), (f3, "none"), (f4, "shared")]);
    failed_concurrently(code, &r, &out);
    held_to_the_end(&r, &out);
    assert!(out.contains("detected as sqlx"), "{out}");
}

#[test]
fn refinery_has_no_way_out_of_its_transaction() {
    let (code, r, out) = run("refinery", "auto", "2");
    expect(
        &r,
        &out,
        &[("V2__add_status.sql", "shared"), ("V2__add_status.sql", "shared"), ("V3__index_email.sql", "shared")],
    );
    failed_concurrently(code, &r, &out);
    assert!(out.contains("detected as refinery"), "{out}");
}

#[test]
fn flyway_runs_a_concurrent_build_outside_a_transaction_and_repeatables_last() {
    let (code, r, out) = run("flyway", "auto", "1.1");
    let (v11, v2, v3) = ("V1_1__add_status.sql", "V2__index_email.sql", "V3__add_plan.sql");
    expect(
        &r,
        &out,
        &[(v11, "shared"), (v11, "shared"), (v2, "none"), (v3, "own"), (v3, "own"), ("R__views.sql", "shared")],
    );
    assert_eq!(code, 0, "{out}");
    held_to_the_end(&r, &out);
}

#[test]
fn flyway_refuses_a_script_that_mixes_both_kinds_before_anything_runs() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &scenario("flyway-mixed", "flyway", "2"));
    let out = sandbox.run(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("V2__add_plan.sql:1:1") && err.contains("Flyway refuses"), "{err}");
}

#[test]
fn golang_migrate_sends_a_file_as_one_string_one_implicit_transaction() {
    let (code, r, out) = run("golang-migrate/migrations", "auto", "2");
    let (f2, f3, f4) = ("000002_add_status.up.sql", "000003_index_email.up.sql", "000004_add_plan.up.sql");
    expect(&r, &out, &[(f2, "implicit"), (f3, "none"), (f4, "implicit")]);
    failed_concurrently(code, &r, &out);
    assert!(out.contains("detected as golang-migrate"), "{out}");
}

#[test]
fn goose_splits_statements_itself_and_honours_no_transaction() {
    let (code, r, out) = run("goose", "auto", "20240102000000");
    let (f2, f3, f4) =
        ("20240102000000_add_status.sql", "20240103000000_index_email.sql", "20240104000000_add_plan.sql");
    expect(
        &r,
        &out,
        &[(f2, "shared"), (f2, "shared"), (f2, "shared"), (f3, "none"), (f3, "none"), (f4, "shared"), (f4, "shared")],
    );
    failed_concurrently(code, &r, &out);
    held_to_the_end(&r, &out);
    // The function between StatementBegin and StatementEnd is one step.
    let function = &r["migration"]["steps"][1];
    assert!(function["name"].as_str().unwrap().ends_with(":4 CREATE FUNCTION"), "{out}");
    assert!(function["sql"].as_str().unwrap().contains("RETURN NEW;"), "{out}");
}

#[test]
fn dbmate_runs_the_up_section_in_a_transaction_unless_transaction_false() {
    let (code, r, out) = run("dbmate", "auto", "20240102000000");
    let (f2, f3, f4) =
        ("20240102000000_add_status.sql", "20240103000000_index_email.sql", "20240104000000_add_plan.sql");
    expect(&r, &out, &[(f2, "shared"), (f2, "shared"), (f3, "none"), (f4, "shared"), (f4, "shared")]);
    failed_concurrently(code, &r, &out);
    // The down section is not run.
    assert!(!r["migration"]["steps"].to_string().contains("DROP COLUMN"), "{out}");
}

#[test]
fn diesel_reads_run_in_transaction_from_metadata_toml() {
    let (code, r, out) = run("diesel", "auto", "2024-01-02-000000");
    let (f2, f3, f4) = (
        "2024-01-02-000000_add_status/up.sql",
        "2024-01-03-000000_index_email/up.sql",
        "2024-01-04-000000_add_plan/up.sql",
    );
    expect(&r, &out, &[(f2, "shared"), (f2, "shared"), (f3, "none"), (f4, "shared")]);
    failed_concurrently(code, &r, &out);
}

#[test]
fn prisma_sends_a_script_as_one_string() {
    let (code, r, out) = run("prisma/migrations", "auto", "20240102000000");
    let (f2, f3, f4) = (
        "20240102000000_add_status/migration.sql",
        "20240103000000_index_email/migration.sql",
        "20240104000000_add_plan/migration.sql",
    );
    expect(&r, &out, &[(f2, "implicit"), (f3, "none"), (f4, "implicit")]);
    failed_concurrently(code, &r, &out);
}

#[test]
fn atlas_runs_each_file_in_a_transaction_unless_txmode_none() {
    let (code, r, out) = run("atlas", "auto", "20240102000000");
    let (f2, f3, f4) =
        ("20240102000000_add_status.sql", "20240103000000_index_email.sql", "20240104000000_index_created.sql");
    expect(&r, &out, &[(f2, "shared"), (f2, "shared"), (f3, "none"), (f4, "shared")]);
    failed_concurrently(code, &r, &out);
    assert!(out.contains("detected as atlas"), "{out}");
}
