//! `rehearse compare`: the reset gives every run the loaded data back, the
//! strategies run interleaved on one load, the safest that passed is
//! marked, and the summary renders as the snapshot shows.

use rehearse::postgres::{BackendChoice, Pristine, Role, connect};
use rehearse::rehearsal::{RunOn, RunOptions};
use rehearse::report::{CompareRun, ResetInfo, Spread, render_comparison, summarize};
use rehearse::scenario::{self, LoadOptions};
use serde_json::Value;
use tokio_postgres::Client;

use crate::common::{Sandbox, heavy, small_scenario, text};
use crate::report_render::{judge, naive};

/// What must come back after a reset: row counts, a checksum of every
/// row, the indexes, and the planner's statistics.
async fn fingerprint(c: &Client) -> Vec<String> {
    let one = |sql: &'static str| async move {
        let row = c.query_one(sql, &[]).await.unwrap();
        row.get::<_, Option<String>>(0).unwrap_or_default()
    };
    vec![
        one("SELECT count(*)::text FROM items").await,
        one("SELECT md5(string_agg(i::text, ',' ORDER BY id)) FROM items i").await,
        one("SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY 1) FROM pg_index WHERE indrelid = 'items'::regclass").await,
        one("SELECT count(*)::text FROM pg_statistic WHERE starelid = 'items'::regclass").await,
        one("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum > 0 AND NOT attisdropped").await,
    ]
}

#[test]
fn a_reset_gives_back_the_database_as_loaded() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let toml = small_scenario("SELECT name FROM items WHERE id = $1", "SELECT 1");
        let s = scenario::parse(std::path::Path::new("small.toml"), toml, &LoadOptions { scale: 5.0 }).unwrap();
        let on = RunOn { choice: BackendChoice::Local, why: "the test's".into() };
        let opts = RunOptions {
            reuse_existing: false,
            keep_tables: false,
            observe_interval: std::time::Duration::from_millis(20),
            replica_url: None,
            replicas: None,
            load_streams: 1,
            progress: false,
            rollback: false,
        };
        let strategy = &s.strategies[0];
        let prepared = rehearse::setup::prepare(&s, &on, &opts, &[strategy]).await.unwrap();
        let loaded = {
            let c = connect(&prepared.config, &Role::Harness).await.unwrap();
            fingerprint(&c).await
        };
        assert_eq!(loaded[0], "10000", "the scaled row count");

        let (pristine, _) = Pristine::keep(&prepared.config, prepared.version.version_num).await.unwrap();
        for round in 0..2 {
            pristine.restore().await.unwrap();
            let c = connect(&prepared.config, &Role::Harness).await.unwrap();
            assert_eq!(fingerprint(&c).await, loaded, "after reset {round}");
            // What a migration does to the copy: rows rewritten, a column
            // added, a table emptied, an index dropped.
            c.batch_execute(
                "UPDATE items SET price_cents = price_cents + 1 WHERE id % 3 = 0;
                 ALTER TABLE items ADD COLUMN status text DEFAULT 'x';
                 CREATE TABLE items_new AS SELECT * FROM items;
                 DELETE FROM items WHERE id > 100",
            )
            .await
            .unwrap();
            assert_ne!(fingerprint(&c).await, loaded);
            // A session left open: the reset ends it.
            std::mem::forget(c);
        }
        pristine.restore().await.unwrap();
        let c = connect(&prepared.config, &Role::Harness).await.unwrap();
        assert_eq!(fingerprint(&c).await, loaded);
        let gone: i64 =
            c.query_one("SELECT count(*) FROM pg_class WHERE relname = 'items_new'", &[]).await.unwrap().get(0);
        assert_eq!(gone, 0, "what a run created is gone");
        let allowed: bool = c
            .query_one("SELECT datallowconn FROM pg_database WHERE datname = 'rehearse_pristine'", &[])
            .await
            .unwrap()
            .get(0);
        assert!(!allowed, "the kept database takes no sessions");
        drop((c, pristine));
        let _ = prepared.finish().await;
    });
}

/// Two strategies: one holds an ACCESS EXCLUSIVE lock for 1.5 s, which the
/// 500 ms p99 limit fails; the other adds a column (which a second run
/// could not do again without the reset).
fn two_strategies() -> String {
    small_scenario(
        "SELECT name FROM items WHERE id = $1",
        "LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5)",
    )
    .replace("name = \"only\"", "name = \"holds-lock\"")
    .replace("max_p99 = \"5s\"", "max_p99 = \"500ms\"")
        + "\n[[strategy]]\nname = \"adds-column\"\nsteps = [{ sql = \"ALTER TABLE items ADD COLUMN status text\" }]\n"
}

#[test]
fn compare_interleaves_the_strategies_on_one_load_and_marks_the_safest() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("two.toml", &two_strategies());
    let json = sandbox.path().join("c.json");
    let args = ["compare", path.to_str().unwrap(), "--backend", "local", "--repeat", "2", "--quiet"];
    let out = sandbox.run(&[&args[..], &["--json", json.to_str().unwrap()]].concat());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "a strategy passed every run\n{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let c = &v["comparison"];

    // Interleaved: round 1 in the scenario's order, round 2 rotated.
    let order: Vec<(String, u64)> = c["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["strategy"].as_str().unwrap().to_string(), r["position"].as_u64().unwrap()))
        .collect();
    let want = [("holds-lock", 1), ("adds-column", 2), ("adds-column", 1), ("holds-lock", 2)];
    assert_eq!(order, want.map(|(s, p)| (s.to_string(), p)).to_vec());
    assert_eq!(v["reports"].as_array().unwrap().len(), 4);

    // The column was added twice: each run started from the load.
    let by = |name: &str| c["strategies"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    assert_eq!(by("adds-column")["outcomes"], serde_json::json!(["ok", "ok"]));
    assert_eq!(by("adds-column")["passed"], serde_json::json!([true, true]));
    assert_eq!(by("holds-lock")["passed"], serde_json::json!([false, false]));
    let held = &by("holds-lock")["p99_ms"]["get_item"]["during"];
    assert!(held["min"].as_f64().unwrap() > 500.0, "reads waited behind the lock: {held}");
    assert_eq!(c["safest"], "adds-column");
    assert!(stdout.contains("✓ safest"), "{stdout}");

    // The reset and the load, both measured; one reset per run.
    assert_eq!(c["reset"]["reset_s"]["n"], 4);
    assert!(c["reset"]["load_s"].as_f64().unwrap() > 0.0);
    assert!(c["order"]["assessed"].as_bool().unwrap());
    sandbox.assert_clean();
}

#[test]
fn compare_exits_1_when_no_strategy_passes_and_2_on_a_named_server() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("two.toml", &two_strategies());
    let p = path.to_str().unwrap();
    let formats = ["--markdown", "c.md", "--junit", "c.xml"];
    let out = sandbox
        .run(&[&["compare", p, "--backend", "local", "--strategies", "holds-lock", "--quiet"], &formats[..]].concat());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("no strategy passed every run"), "{stdout}");
    assert!(stdout.contains("position bias: not assessed"), "{stdout}");
    // The comparison's runs in the formats of `run`: the Markdown one table
    // of them, the JUnit a testsuite per run.
    let md = std::fs::read_to_string(sandbox.path().join("c.md")).unwrap();
    assert!(md.starts_with(rehearse::report::MARKDOWN_MARKER), "{md}");
    assert!(md.contains("strategy holds-lock") && md.contains("❌ FAIL"), "{md}");
    let junit = std::fs::read_to_string(sandbox.path().join("c.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), 1, "{junit}");

    let out = sandbox.run(&["compare", p, "--url", "postgres://someone@127.0.0.1:1/db", "--quiet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("only on a server it started"), "{}", text(&out.stderr));
    let out = sandbox.run(&["compare", p, "--backend", "local", "--strategies", "nope", "--quiet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no strategy `nope`"), "{}", text(&out.stderr));
    sandbox.assert_clean();
}

/// The outage and its safe rewrite, two runs each, as `summarize` sees them.
#[test]
fn terminal_summary_of_a_comparison() {
    let mut reports = Vec::new();
    let mut runs = Vec::new();
    for round in 1..=2 {
        for (position, name) in [(1, "naive"), (2, "expand-backfill")] {
            let name = if round == 2 { ["expand-backfill", "naive"][position - 1] } else { name };
            let mut r = naive();
            r.strategy = Some(name.into());
            let m = r.migration.as_mut().unwrap();
            if name == "expand-backfill" {
                m.lock_wait_ms = 40.0 + round as f64;
                m.total_ms = 12_000.0 + 100.0 * round as f64;
                r.locks.workload_longest_wait_ms = 95.0 + round as f64;
                r.locks.max_waiting = 3;
                r.pool.full_seconds = 0.0;
                r.pool.timeouts = 0;
                for (_, q) in r.phases.during.queries.0.iter_mut().chain(r.phases.after.queries.0.iter_mut()) {
                    q.p99_ms = Some(90.0 + round as f64);
                    q.max_ms = Some(99.0);
                    q.errors = 0;
                    q.error_kinds.clear();
                }
            } else {
                m.total_ms += 10.0 * round as f64;
            }
            r.verdict = judge(&r);
            runs.push(CompareRun {
                strategy: name.into(),
                round,
                position,
                reset_s: 0.2 + 0.01 * position as f64,
                report: reports.len(),
            });
            reports.push(r);
        }
    }
    let reset = ResetInfo {
        method: "a file copy".into(),
        load_s: 51.0,
        keep_s: 0.02,
        reset_s: Spread::of(runs.iter().map(|r| r.reset_s)),
        load_over_reset: Some(51.0 / 0.21),
    };
    let names = ["naive".to_string(), "expand-backfill".to_string()];
    let c = summarize("add-column-default", &names, 2, runs, &reports, reset);
    assert_eq!(c.safest.as_deref(), Some("expand-backfill"));
    assert!(c.order.assessed);
    insta::assert_snapshot!("comparison", render_comparison(&c, &reports));
}

/// A report holds ACCESS SHARE on `items` from 0.5 s to 2.5 s; the step
/// needs ACCESS EXCLUSIVE, tries once, and gives up after its lock_timeout.
fn contended() -> String {
    small_scenario("SELECT name FROM items WHERE id = $1", "ALTER TABLE items ADD COLUMN c int")
        .replace(
            "[timeline]",
            "[[interference]]\nname = \"report\"\nat = \"500ms\"\nsql = \"SELECT count(*) FROM items, pg_sleep(2)\"\n\n[timeline]",
        )
        .replace(
            "steps = [{ sql = \"ALTER TABLE items ADD COLUMN c int\" }]",
            "steps = [{ sql = \"ALTER TABLE items ADD COLUMN c int\", lock_timeout = \"1s\" }]",
        )
}

/// `rehearse tune` of strategy `only` with `knob` set to `values`, which
/// must recommend one (exit 0): its stdout and JSON.
fn tune(sandbox: &Sandbox, path: &std::path::Path, knob: &str, values: &str) -> (String, Value) {
    let json = sandbox.path().join("t.json");
    let p = path.to_str().unwrap();
    let j = json.to_str().unwrap();
    let out =
        sandbox.run(&["tune", p, "--backend", "local", "--strategy", "only", knob, values, "--quiet", "--json", j]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    (stdout, serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap())
}

#[test]
fn tune_tries_each_lock_timeout_under_the_same_contention() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("contended.toml", &contended());
    let (stdout, v) = tune(&sandbox, &path, "--lock-timeout", "50ms,5s");
    let trials = v["tuning"]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    // 50 ms: the report outlasts it, the step fails. 5 s: it waits the
    // report out and completes.
    assert_eq!(trials[0]["lock_timeout_ms"], 50.0);
    assert_eq!(trials[0]["success_rate"], 0.0, "{}", trials[0]);
    assert_eq!(trials[1]["success_rate"], 1.0, "{}", trials[1]);
    let waited = v["reports"][1]["migration"]["steps"][0]["lock_wait_ms"].as_f64().unwrap();
    assert!(waited > 1000.0, "the 5 s variant waited the report out: {waited} ms");
    assert_eq!(v["tuning"]["recommended"], "only lock_timeout=5.00s");
    assert!(stdout.contains("recommended: only lock_timeout=5.00s"), "{stdout}");
    sandbox.assert_clean();
}

/// `tune --batch`: the backfill's `LIMIT` set to each value, each variant
/// walking every row in as many batches as that size makes, and the
/// recommendation the fastest backfill of those that passed, by the
/// report's own figures (which one is faster is the machine's business).
#[test]
fn tune_tries_each_batch_size_of_a_repeated_step() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let scenario = small_scenario("SELECT name FROM items WHERE id = $1", "SELECT 1").replace(
        "steps = [{ sql = \"SELECT 1\" }]",
        r#"steps = [
  { sql = "ALTER TABLE items ADD COLUMN flag int" },
  { sql = "UPDATE items SET flag = 1 WHERE id IN (SELECT id FROM items WHERE flag IS NULL LIMIT 10) -- LIMIT 7", repeat = true },
]"#,
    );
    let path = sandbox.write("batches.toml", &scenario);
    let (_, v) = tune(&sandbox, &path, "--batch", "100,1000");
    let trials = v["tuning"]["trials"].as_array().unwrap();
    let names: Vec<&str> = trials.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["only batch=100", "only batch=1000"]);
    assert_eq!(trials[0]["batch_rows"], 100);
    for (rows, name) in [(100u64, names[0]), (1000, names[1])] {
        let report = v["reports"].as_array().unwrap().iter().find(|r| r["strategy"] == name).unwrap();
        let fill = &report["migration"]["steps"][1];
        assert!(fill["rows"].as_u64().unwrap() >= 2000, "every row filled: {fill}");
        // 2,000 rows (and the few inserted meanwhile) in full batches, then
        // the short or empty one that ends the walk.
        let batches = fill["batches"].as_u64().unwrap();
        assert!((2000 / rows..=2000 / rows + 3).contains(&batches), "{name}: {batches} batches");
        assert!(fill["sql"].as_str().unwrap().contains(&format!("LIMIT {rows})")), "{fill}");
    }
    let speed = |t: &Value| t["backfill_rows_per_s"]["median"].as_f64().unwrap();
    let fastest = if speed(&trials[0]) >= speed(&trials[1]) { names[0] } else { names[1] };
    assert_eq!(v["tuning"]["recommended"], fastest, "{}", v["tuning"]);
    sandbox.assert_clean();
}
