//! `rehearse generate`: the data alone. On a throwaway server it prints how
//! to connect and keeps the server until Ctrl-C; on a named server it
//! leaves the tables there and exits.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rehearse::postgres::{LocalCluster, Role, Server, connect};

use crate::common::{Sandbox, heavy, small_scenario, start_generate, text};

const QUERY: &str = "SELECT * FROM items WHERE id = $1";

#[test]
fn generate_keeps_a_local_server_until_ctrl_c() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &small_scenario(QUERY, "SELECT 1"));
    let (mut child, url, printed) = start_generate(&sandbox, &path);
    assert!(printed.iter().any(|l| l.starts_with("items: 2000 rows")), "{printed:?}");

    // The data is there, and the server keeps running for the user.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let rows: i64 = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.query_one("SELECT count(*) FROM items", &[]).await.unwrap().get(0)
    });
    assert_eq!(rows, 2000);
    assert!(child.try_wait().unwrap().is_none(), "the server is held until Ctrl-C");

    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    sandbox.assert_clean();
}

#[test]
fn generate_leaves_its_tables_on_a_named_server() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(LocalCluster::start(&[])).unwrap();
    let url = cluster.connect_url();
    let password = cluster.password();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &small_scenario(QUERY, "SELECT 1"));
    let out = sandbox.run(&["generate", path.to_str().unwrap(), "--url", &url, "--quiet", "--json", "g.json"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stdout.contains(password) && !stderr.contains(password));
    assert!(!stderr.contains("load:") && !stderr.contains("index builds"), "--quiet shows no progress: {stderr}");
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sandbox.path().join("g.json")).unwrap()).unwrap();
    assert_eq!(g["backend"], "url");
    assert_eq!(g["tables"][0]["rows"], 2000);

    let rows: i64 = rt.block_on(async {
        let c = connect(cluster.config(), &Role::Other("user".into())).await.unwrap();
        c.query_one("SELECT count(*) FROM items", &[]).await.unwrap().get(0)
    });
    assert_eq!(rows, 2000, "the generated table stays on the named server");
}

/// Without `--quiet`, and with stderr not a terminal (a CI log), the load
/// prints plain progress lines, and on a named server says that its index
/// builds' settings are its own sessions' only: the server's stay as they
/// were.
#[test]
fn generate_on_a_named_server_shows_progress_and_leaves_its_settings() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(LocalCluster::start(&[])).unwrap();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &small_scenario(QUERY, "SELECT 1"));
    let out = sandbox.run(&["generate", path.to_str().unwrap(), "--url", &cluster.connect_url()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let said = |needle: &str| stderr.lines().any(|l| l.contains(needle));
    assert!(said("index builds:") && said("the server's configuration is unchanged"), "{stderr}");
    assert!(said("load: items: building 1 index") && said("load: items: loaded in"), "{stderr}");
    let settings: (String, String) = rt.block_on(async {
        let c = connect(cluster.config(), &Role::Other("user".into())).await.unwrap();
        let row = c
            .query_one(
                "SELECT current_setting('maintenance_work_mem'), current_setting('max_parallel_maintenance_workers')",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    });
    assert_eq!(settings, ("64MB".to_string(), "2".to_string()), "the server's own defaults, untouched");
}

/// A step that fails unless the server's `wal_level` is `wanted`.
fn wal_level_is(wanted: &str) -> String {
    format!(
        "DO $$ BEGIN IF current_setting('wal_level') <> '{wanted}' THEN \
         RAISE EXCEPTION 'wal_level is %', current_setting('wal_level'); END IF; END $$"
    )
}

/// A local server loads under `wal_level = minimal` (its heap and index
/// builds then skip the WAL) and is restarted before anything is measured:
/// the rehearsal's migration runs under the WAL production has (`replica`),
/// and a scenario that sets the WAL itself keeps it through the load too.
#[test]
fn the_load_skips_the_wal_and_the_rehearsal_runs_under_the_scenarios() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &small_scenario(QUERY, &wal_level_is("replica")));
    let (code, _, stderr, report) = crate::common::rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 0, "the migration ran under wal_level = replica: {stderr}");
    assert_eq!(report.unwrap()["migration"]["outcome"], "ok");

    let own = format!(
        "{}\n[postgres]\nsettings = {{ wal_level = \"logical\" }}\n",
        small_scenario(QUERY, &wal_level_is("logical"))
    );
    let path = sandbox.write("logical.toml", &own);
    let (code, _, stderr, _) = crate::common::rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 0, "the scenario's own wal_level holds: {stderr}");

    // generate says how it loaded, and hands over the server as configured.
    let path = sandbox.write("g.toml", &small_scenario(QUERY, "SELECT 1"));
    let mut child = sandbox
        .command(&["generate", path.to_str().unwrap(), "--backend", "local"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let url = lines.find_map(|l| l.ok().filter(|l| l.starts_with("postgres://"))).expect("a connection string");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let level: String = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.query_one("SHOW wal_level", &[]).await.unwrap().get(0)
    });
    assert_eq!(level, "replica");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(stderr.contains("loaded with wal_level=minimal, max_wal_senders=0, fsync=off, then restarted"), "{stderr}");
    sandbox.assert_clean();
}
