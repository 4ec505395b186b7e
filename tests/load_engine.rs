//! The load engine: load-only runs on a pgbench database through
//! `--backend url`, closed loops with think time, read-modify-write
//! transactions that really commit, ramps and Poisson arrivals that keep
//! their rate, timeouts and failures counted by kind, the live line, and
//! the scenario checks of the new keys.

use std::process::Command;

use rehearse::postgres::{LocalCluster, Role, Server, connect, server_program};
use serde_json::Value;

use crate::common::{Sandbox, heavy, position_of, rehearse, text};
use crate::scenario_files::check;

/// Counts of the per-second series of `query`, in order.
fn series_counts(r: &Value, query: &str) -> Vec<u64> {
    r["series"][query].as_array().unwrap().iter().map(|p| p["count"].as_u64().unwrap()).collect()
}

fn baseline<'a>(r: &'a Value, query: &str) -> &'a Value {
    &r["phases"]["baseline"]["queries"][query]
}

#[test]
fn a_load_only_scenario_runs_on_a_pgbench_database_through_a_url() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(LocalCluster::start(&[])).unwrap();
    let port = cluster.config().get_ports()[0].to_string();
    let pgbench = server_program("pgbench").unwrap();
    let init = Command::new(pgbench)
        .args(["-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", &port, "-U", "postgres", "postgres"])
        .env("PGPASSWORD", cluster.password())
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init.stderr));

    let sandbox = Sandbox::new();
    let path = sandbox.write(
        "select.toml",
        r#"name = "pgbench-select"
[workload]
pool_size = 4
pool_timeout = "2s"

[[workload.query]]
name = "select_abalance"
sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
params = [{ int = [1, 100000] }]
clients = 4

[[workload.query]]
name = "paced"
sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
params = [{ int = [1, 100000] }]
rate = 200

[[workload.query]]
name = "on_replica"
sql = "SELECT n FROM only_on_the_replica WHERE n = $1"
params = [{ int = [1, 10] }]
rate = 20
target = "replica"

[timeline]
duration = "3s"
"#,
    );
    // The "replica": a second server, holding a table the primary lacks,
    // so a query routed wrong fails to prepare.
    let replica = rt.block_on(LocalCluster::start(&[])).unwrap();
    let r_client = rt.block_on(connect(replica.config(), &Role::Other("setup".into()))).unwrap();
    rt.block_on(r_client.batch_execute("CREATE TABLE only_on_the_replica AS SELECT generate_series(1, 10) AS n"))
        .unwrap();
    let replica_url = replica.connect_url();
    let hidden = replica.password();
    let url = cluster.connect_url();
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &["--url", &url, "--replica-url", &replica_url]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let r = report.unwrap();
    assert!(r["strategy"].is_null() && r["migration"].is_null(), "a load-only run has no migration");
    assert_eq!(r["timeline"]["duration_s"], 3.0);
    assert!(r["timeline"]["migrate_at_s"].is_null());
    assert_eq!(r["tables"].as_array().unwrap().len(), 0, "no tables of its own");
    let closed = baseline(&r, "select_abalance");
    assert_eq!(closed["errors"], 0);
    assert!(closed["count"].as_u64().unwrap() > 1000, "4 clients without think time: {closed}");
    // The whole run is the baseline phase.
    for phase in ["during", "after"] {
        assert_eq!(r["phases"][phase]["queries"]["select_abalance"]["count"], 0, "{phase}");
        assert_eq!(r["phases"][phase]["seconds"], 0.0);
    }
    let seconds = r["phases"]["baseline"]["seconds"].as_f64().unwrap();
    assert!((2.9..3.5).contains(&seconds), "{seconds}");
    let paced = baseline(&r, "paced")["count"].as_u64().unwrap();
    assert!((590..=610).contains(&paced), "200/s for 3 s: {paced}");
    assert_eq!(r["workload"]["queries"][0]["loop"], "closed");
    assert_eq!(r["workload"]["queries"][0]["clients"], 4);
    assert_eq!(r["workload"]["queries"][1]["loop"], "open");
    assert!(stdout.contains("load only, no migration"), "{stdout}");
    let on_replica = baseline(&r, "on_replica");
    assert_eq!(on_replica["errors"], 0, "{on_replica}");
    assert!((60..=61).contains(&on_replica["count"].as_u64().unwrap()), "20/s for 3 s: {on_replica}");
    assert_eq!(r["workload"]["queries"][2]["target"], "replica");
    let shown = r["workload"]["replica"].as_str().unwrap();
    assert!(shown.ends_with(&format!("{}/postgres", replica.config().get_ports()[0])), "{shown}");
    assert!(!r.to_string().contains(hidden) && !stderr.contains(hidden), "replica password printed");

    // The pgbench tables are the user's: used, never dropped.
    let c = rt.block_on(connect(cluster.config(), &Role::Other("check".into()))).unwrap();
    let rows: i64 = rt.block_on(c.query_one("SELECT count(*) FROM pgbench_accounts", &[])).unwrap().get(0);
    assert_eq!(rows, 100_000);
}

const SHAPES: &str = r#"name = "shapes"
seed = 3

[[table]]
name = "accounts"
rows = 100
ddl = "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)"
columns = { id = { sequence = 1 }, balance = { value = 0 } }

[workload]
pool_size = 12
pool_timeout = "2s"

# read-modify-write: one transaction per request
[[workload.query]]
name = "deposit"
transaction = ["SELECT balance FROM accounts WHERE id = $1 FOR UPDATE",
               "UPDATE accounts SET balance = balance + 1 WHERE id = $1"]
params = [{ int = [1, 100] }]
clients = 2
think_time = "20ms"

[[workload.query]]
name = "ramped"
sql = "SELECT balance FROM accounts WHERE id = $1"
params = [{ int = [1, 100] }]
ramp = [{ at = "0s", rate = 20 }, { at = "4s", rate = 180 }]

[[workload.query]]
name = "poisson"
sql = "SELECT balance FROM accounts WHERE id = $1"
params = [{ int = [1, 100] }]
rate = 150
arrival = "poisson"

[[workload.query]]
name = "server_timeout"
sql = "SELECT pg_sleep(0.3)"
rate = 4
statement_timeout = "50ms"

[[workload.query]]
name = "client_timeout"
sql = "SELECT pg_sleep(0.3)"
rate = 4
timeout = "50ms"

[[workload.query]]
name = "divide"
sql = "SELECT 1 / ($1::int - $1::int)"
params = [{ int = [1, 9] }]
rate = 4

[timeline]
duration = "6s"

# The failing queries fail on purpose: only latency is judged here.
[thresholds]
max_p99 = "5s"
"#;

#[test]
fn shapes_of_load_transactions_timeouts_and_the_live_line() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(LocalCluster::start(&[])).unwrap();
    let url = cluster.connect_url();
    let sandbox = Sandbox::new();
    let path = sandbox.write("shapes.toml", SHAPES);
    let json = sandbox.path().join("r.json");
    // Not quiet: the live line goes to stderr, every 5 s when it is not a
    // terminal.
    let out =
        sandbox.run(&["run", path.to_str().unwrap(), "--url", &url, "--keep-tables", "--json", json.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    // Every committed deposit added 1: the transactions really ran whole.
    let deposit = baseline(&r, "deposit");
    assert_eq!(deposit["errors"], 0, "{deposit}");
    let deposits = deposit["count"].as_u64().unwrap();
    // 2 clients, each a request every ≥ 20 ms: at most 100 per second.
    assert!((50..=600).contains(&deposits), "{deposits}");
    let c = rt.block_on(connect(cluster.config(), &Role::Other("check".into()))).unwrap();
    let sum: i64 = rt.block_on(c.query_one("SELECT sum(balance)::int8 FROM accounts", &[])).unwrap().get(0);
    assert_eq!(sum as u64, deposits, "one increment per successful transaction");

    // The ramp: 20/s rising by 40/s each second to 180/s at 4 s, then
    // steady: each second holds the integral of its rate.
    let ramp = series_counts(&r, "ramped");
    for (second, want) in [(0, 40), (1, 80), (2, 120), (3, 160), (4, 180)] {
        assert!(ramp[second].abs_diff(want) <= 2, "second {second}: {ramp:?}");
    }
    // Poisson: the rate holds on average, and seconds differ.
    let poisson = baseline(&r, "poisson")["count"].as_u64().unwrap();
    assert!((780..=1020).contains(&poisson), "150/s for 6 s: {poisson}");
    let per_second = series_counts(&r, "poisson");
    assert!(per_second.windows(2).any(|w| w[0] != w[1]), "{per_second:?}");

    // Failures by kind; their latency apart from the successes'.
    let kinds = |q: &str| baseline(&r, q)["error_kinds"].clone();
    let st = baseline(&r, "server_timeout");
    assert_eq!(st["errors"], st["count"], "{st}");
    assert_eq!(kinds("server_timeout")["statement_timeout"], st["count"]);
    assert!(st["p50_ms"].is_null(), "no success");
    let failed_p99 = st["failed_p99_ms"].as_f64().unwrap();
    assert!((40.0..250.0).contains(&failed_p99), "{failed_p99}");
    let ct = baseline(&r, "client_timeout");
    assert_eq!(kinds("client_timeout")["client_timeout"], ct["count"], "{ct}");
    let failed_max = ct["failed_max_ms"].as_f64().unwrap();
    assert!((45.0..150.0).contains(&failed_max), "the client gave up at 50 ms: {failed_max}");
    assert_eq!(kinds("divide")["sqlstate_22012"], baseline(&r, "divide")["count"]);
    assert_eq!(r["workload"]["queries"][0]["statements"], 2);
    assert_eq!(r["workload"]["queries"][3]["statement_timeout_ms"], 50.0);

    // The live line, printed at 5 s.
    let live = stderr.lines().find(|l| l.starts_with("[load 5s]")).unwrap_or_else(|| panic!("no live line:\n{stderr}"));
    for part in ["completed/s", "p99 ", "failures ", "waiting on locks ", "pool "] {
        assert!(live.contains(part), "{part} missing from {live}");
    }
    assert!(live.ends_with("/12"), "pool in use of 12: {live}");
}

#[test]
fn the_new_keys_are_checked_where_they_are_written() {
    let cases: [(&str, &str, &str, &str); 7] = [
        ("clients = 2\nrate = 5", "[[workload.query]]", "exactly one of `rate`", "rate and clients"),
        ("rate = 5\nthink_time = \"5ms\"", "\"5ms\"", "closed-loop", "think time on an open loop"),
        ("clients = 2\narrival = \"poisson\"", "\"poisson\"", "open-loop", "arrival on a closed loop"),
        ("rate = 5\narrival = \"bursty\"", "\"bursty\"", "unknown arrival", "unknown arrival"),
        (
            "ramp = [{ at = \"2s\", rate = 5 }, { at = \"1s\", rate = 9 }]",
            "{ at = \"1s\"",
            "increasing",
            "ramp out of order",
        ),
        ("rate = 5\ntarget = \"replica\"\nsql2 = 1", "sql2", "unknown field", "unknown key"),
        ("rate = 5\ntimeout = \"0s\"", "\"0s\"", "more than 0", "zero timeout"),
    ];
    for (keys, at, message, what) in cases {
        let toml = format!(
            "name = \"t\"\n[workload]\npool_size = 1\npool_timeout = \"1s\"\n[[workload.query]]\nname = \"q\"\nsql = \"SELECT 1\"\n{keys}\n[timeline]\nduration = \"1s\"\n"
        );
        let (code, stderr, path, _s) = check(&toml);
        assert_eq!(code, 2, "{what}: {stderr}");
        assert!(stderr.contains(message), "{what}: {stderr}");
        let (line, col) = position_of(&toml, at, 0);
        let want = format!("{}:{line}:{col}:", path.display());
        assert!(stderr.contains(&want), "{what}: expected {want} in {stderr}");
    }

    let writes = "name = \"t\"\n[workload]\npool_size = 1\npool_timeout = \"1s\"\n[[workload.query]]\nname = \"w\"\nsql = \"UPDATE t SET a = 1\"\nrate = 1\ntarget = \"replica\"\n[timeline]\nduration = \"1s\"\n";
    let (code, stderr, _, _s) = check(writes);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot run on a replica"), "{stderr}");

    let base = "name = \"t\"\n[workload]\npool_size = 1\npool_timeout = \"1s\"\n[[workload.query]]\nname = \"q\"\nsql = \"SELECT 1\"\nrate = 1\n";
    let (code, stderr, _, _s) = check(&format!("{base}[timeline]\nmigrate_at = \"1s\"\n"));
    assert_eq!(code, 2);
    assert!(stderr.contains("needs a migration") && stderr.contains("duration"), "{stderr}");
    let (code, stderr, _, _s) = check(&format!(
        "{base}[timeline]\nduration = \"5s\"\n[[strategy]]\nname = \"s\"\nsteps = [{{ sql = \"SELECT 1\" }}]\n"
    ));
    assert_eq!(code, 2);
    assert!(stderr.contains("duration is for load-only"), "{stderr}");
    let (code, stderr, _, _s) = check(&format!("{base}[timeline]\n"));
    assert_eq!(code, 2);
    assert!(stderr.contains("needs `duration`"), "{stderr}");
}
