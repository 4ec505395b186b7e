//! A step with a short lock_timeout behind autovacuum, on a real server:
//! autovacuum is cancelled by a lock request only once that request has
//! waited `deadlock_timeout`, so a step that gives up sooner retries
//! behind the whole VACUUM, and the report says why. The same step with
//! `deadlock_timeout` set below its lock_timeout cancels the VACUUM and
//! goes through.

use serde_json::Value;

use crate::common::{Sandbox, heavy, rehearse, small_scenario};

/// The scenario: autovacuum wakes every second, and on `items` it starts
/// after 100 dead rows and sleeps 100 ms after every page it touches, so
/// that a VACUUM of `items` holds its lock for several seconds. The migration
/// updates every row, waits for autovacuum to start (a backend reports
/// its dead rows at the end of a transaction at least a second after its
/// last report, hence two sleeps), then alters the
/// table with a 100 ms lock_timeout: `short` as is, `cancel` with
/// `deadlock_timeout` below it in its own transaction.
fn scenario() -> String {
    // Slow on `items` alone: a slow VACUUM of every table would keep
    // autovacuum's three workers on the catalogs.
    let slow = "WITH (autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1, \
                autovacuum_vacuum_threshold = 100, autovacuum_vacuum_scale_factor = 0)";
    let settings = "[postgres]\nsettings = { autovacuum_naptime = \"1s\" }\n\n[[table]]";
    let steps = |alter: &str| {
        format!(
            "steps = [{{ sql = \"UPDATE items SET price_cents = price_cents + 1\" }},\n  \
             {{ sql = \"SELECT pg_sleep(1.5)\" }},\n  {{ sql = \"SELECT pg_sleep(3)\" }},\n  \
             {{ name = \"alter\", sql = \"{alter}\", lock_timeout = \"100ms\", retries = 12, backoff = \"200ms\" }}]"
        )
    };
    let base = small_scenario("SELECT * FROM items WHERE id = $1", "SELECT 1")
        .replacen("[[table]]", settings, 1)
        .replace("rows = 2000", "rows = 20000")
        .replace("price_cents int NOT NULL);", &format!("price_cents int NOT NULL) {slow};"))
        .replace("max_duration = \"30s\"", "max_duration = \"60s\"");
    let only = "[[strategy]]\nname = \"only\"\nsteps = [{ sql = \"SELECT 1\" }]";
    let both = format!(
        "[[strategy]]\nname = \"short\"\n{}\n\n[[strategy]]\nname = \"cancel\"\n{}",
        steps("ALTER TABLE items ADD COLUMN note text"),
        steps("SET LOCAL deadlock_timeout = '10ms'; ALTER TABLE items ADD COLUMN note text"),
    );
    base.replace(only, &both)
}

fn alter_step(r: &Value) -> &Value {
    &r["migration"]["steps"][3]
}

fn autovacuum_warnings(r: &Value) -> Vec<String> {
    let all = r["warnings"].as_array().unwrap();
    all.iter().filter_map(Value::as_str).filter(|w| w.contains("autovacuum")).map(str::to_string).collect()
}

#[test]
fn a_lock_timeout_below_deadlock_timeout_retries_behind_autovacuum_and_the_report_says_why() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &scenario());

    let (_, stdout, stderr, r) = rehearse(&sandbox, &path, &["--strategy", "short"]);
    let r: Value = r.unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    let step = alter_step(&r);
    // The VACUUM sleeps 100 ms a page over some 200 pages: it outlasts
    // the step's 13 attempts (about 4 s) by seconds.
    assert!(step["attempts"].as_u64().unwrap() > 1, "{step}");
    let edges = r["locks"]["blocking"].as_array().unwrap();
    assert!(
        edges.iter().any(|e| e["waiter"] == "migration" && e["blocker"] == "autovacuum worker"),
        "the observer saw the step wait behind autovacuum: {edges:?}"
    );
    let warnings = autovacuum_warnings(&r);
    assert_eq!(warnings.len(), 1, "{:?}", r["warnings"]);
    let w = &warnings[0];
    assert!(w.starts_with("step 4 (alter) retried behind autovacuum (`autovacuum: VACUUM"), "{w}");
    assert!(w.contains("deadlock_timeout (1.00s)") && w.contains("lock_timeout (100ms)"), "{w}");
    assert!(stdout.contains("retried behind autovacuum") || stderr.contains("retried behind autovacuum"), "{stdout}");

    // The advice holds: the same step, its deadlock check at 10 ms,
    // cancels the VACUUM on its first attempt or soon after, and the
    // report has nothing to say about it.
    let (_, stdout, stderr, r) = rehearse(&sandbox, &path, &["--strategy", "cancel"]);
    let r: Value = r.unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    let step = alter_step(&r);
    assert!(step["error"].is_null(), "{step}");
    assert!(step["attempts"].as_u64().unwrap() <= 3, "{step}");
    assert_eq!(autovacuum_warnings(&r), Vec::<String>::new());
    sandbox.assert_clean();
}
