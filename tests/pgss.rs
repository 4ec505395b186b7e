//! A workload replayed from `pg_stat_statements`: exported (as the README
//! says) from a pgbench run of its own, on a server with the extension, it
//! is replayed at the exported rates, its keys bound to the tables' keys.

use std::process::Command;

use rehearse::postgres::{LocalCluster, Role, Server, connect, server_program};
use rehearse::scenario::{self, GenSpec, QuerySpec};
use serde_json::Value;

use crate::common::{Sandbox, heavy, text};

/// The export command of the README, as one query.
const EXPORT: &str = "COPY (SELECT queryid, calls, query, extract(epoch FROM now() - i.stats_reset) AS window_s \
     FROM pg_stat_statements s, pg_stat_statements_info i \
     WHERE s.toplevel AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) \
     TO STDOUT WITH (FORMAT csv, HEADER)";

fn run(program: &str, cluster: &LocalCluster, args: &[&str]) -> String {
    let port = cluster.config().get_ports()[0].to_string();
    let out = Command::new(server_program(program).expect("next to the server binaries"))
        .args(args)
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "postgres"])
        .env("PGPASSWORD", cluster.password())
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Runs `pgbench -b tpcb-like` at 100 transactions/s on a server with
/// pg_stat_statements; returns the schema pgbench made and the export.
fn export() -> (String, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let settings = [("shared_preload_libraries".to_string(), "pg_stat_statements".to_string())];
    let cluster = rt.block_on(LocalCluster::start(&settings)).unwrap();
    run("pgbench", &cluster, &["-i", "-s", "1", "-q"]);
    let schema = run("pg_dump", &cluster, &["--schema-only", "--no-owner", "--no-privileges"]);
    rt.block_on(async {
        let c = connect(cluster.config(), &Role::Harness).await.unwrap();
        c.batch_execute("CREATE EXTENSION pg_stat_statements; SELECT pg_stat_statements_reset()").await.unwrap();
    });
    run("pgbench", &cluster, &["-b", "tpcb-like", "-R", "100", "-T", "5", "-c", "2"]);
    let csv = rt.block_on(async {
        use futures_util::TryStreamExt;
        let c = connect(cluster.config(), &Role::Harness).await.unwrap();
        let chunks: Vec<bytes::Bytes> = c.copy_out(EXPORT).await.unwrap().try_collect().await.unwrap();
        String::from_utf8(chunks.concat()).unwrap()
    });
    (schema, csv)
}

fn scenario_text() -> String {
    r#"name = "replay"
seed = 1
schema = "schema.sql"
rows = { pgbench_accounts = 100000, pgbench_branches = 1, pgbench_tellers = 10, pgbench_history = 0 }

[workload]
pool_size = 10
pool_timeout = "2s"
from = "pgss.csv"

[timeline]
duration = "8s"

[thresholds]
max_p99 = "5s"
"#
    .to_string()
}

fn query<'a>(queries: &'a [QuerySpec], starts: &str) -> &'a QuerySpec {
    queries.iter().find(|q| q.statements[0].text.starts_with(starts)).unwrap_or_else(|| panic!("no query {starts}"))
}

fn kinds(q: &QuerySpec) -> Vec<String> {
    q.params
        .iter()
        .map(|p| match &p.spec.kind {
            GenSpec::KeyOf { table, .. } => format!("key of {table}"),
            GenSpec::Any => "any".into(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_pgbench_export_is_replayed_at_its_rates_with_its_keys_bound() {
    let _turn = heavy();
    let (schema, csv) = export();
    let sandbox = Sandbox::new();
    sandbox.write("schema.sql", &schema);
    sandbox.write("pgss.csv", &csv);
    let path = sandbox.write("s.toml", &scenario_text());

    // The parameters, as the scenario binds them.
    let s = scenario::load(&path, &Default::default()).unwrap();
    let q = &s.workload.queries;
    let key = |t: &str| format!("key of {t}");
    assert_eq!(kinds(query(q, "UPDATE pgbench_accounts")), ["any".to_string(), key("pgbench_accounts")]);
    assert_eq!(kinds(query(q, "SELECT abalance")), [key("pgbench_accounts")]);
    assert_eq!(kinds(query(q, "UPDATE pgbench_tellers")), ["any".to_string(), key("pgbench_tellers")]);
    assert_eq!(kinds(query(q, "UPDATE pgbench_branches")), ["any".to_string(), key("pgbench_branches")]);
    assert_eq!(kinds(query(q, "INSERT INTO pgbench_history")), ["any"; 4]);
    // Beside them, pgbench's own one-off queries (its count of branches)
    // and the export's reset: real entries, replayed at their rates too.
    assert!(!q.iter().any(|x| x.statements[0].text.starts_with("BEGIN") || x.statements[0].text.starts_with("END")));
    assert!(s.workload.notes.iter().any(|n| n.contains("utility statement")), "{:?}", s.workload.notes);

    // The rates replayed, against the rates exported.
    let json = sandbox.path().join("r.json");
    let out = sandbox.run(&[
        "run",
        path.to_str().unwrap(),
        "--backend",
        "local",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
    sandbox.assert_clean();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let baseline = &r["phases"]["baseline"];
    let seconds = baseline["seconds"]
        .as_f64()
        .unwrap_or_else(|| baseline["end_s"].as_f64().unwrap() - baseline["start_s"].as_f64().unwrap());
    for spec in q {
        let exported = reader
            .records()
            .map(|r| r.unwrap())
            .find(|rec| rec[2] == spec.statements[0].text)
            .map(|rec| rec[1].parse::<f64>().unwrap() / rec[3].parse::<f64>().unwrap())
            .unwrap();
        reader = csv::Reader::from_reader(csv.as_bytes());
        let count = baseline["queries"][&spec.name]["count"].as_f64().unwrap();
        let replayed = count / seconds;
        // A rate is measured to 5% only over enough requests: pgbench's
        // one-off queries come due once or twice in the whole run.
        if exported * seconds < 200.0 {
            continue;
        }
        eprintln!("{}: replayed {replayed:.2}/s, exported {exported:.2}/s", spec.name);
        assert!(
            (replayed / exported - 1.0).abs() < 0.05,
            "{}: replayed {replayed:.1}/s, exported {exported:.1}/s",
            spec.name
        );
        let info =
            r["workload"]["queries"].as_array().unwrap().iter().find(|i| i["name"] == spec.name.as_str()).unwrap();
        assert!(info["source"].as_str().unwrap().starts_with("pg_stat_statements queryid"), "{info}");
    }
}
