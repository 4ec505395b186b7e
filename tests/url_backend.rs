//! `--backend url`: a server the user names. The harness never prints its
//! password, never touches a table it did not create unless told to, and
//! takes back only what it created. The "user's server" here is a cluster
//! the test starts itself.

use rehearse::postgres::{LocalCluster, Role, Server, connect};
use tokio_postgres::Client;

use crate::common::{Sandbox, heavy, rehearse, small_scenario, text};

async fn tables(c: &Client) -> Vec<String> {
    c.query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_named_server_is_used_without_leaking_its_password_or_its_tables() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(LocalCluster::start(&[])).unwrap();
    let port = cluster.config().get_ports()[0];
    let url = cluster.connect_url();
    let password = cluster.password();
    let user = rt.block_on(connect(cluster.config(), &Role::Other("user".into()))).unwrap();
    rt.block_on(user.batch_execute("CREATE TABLE precious (id int); INSERT INTO precious VALUES (1)")).unwrap();

    let sandbox = Sandbox::new();
    let path = sandbox.write(
        "s.toml",
        &small_scenario("SELECT * FROM items WHERE id = $1", "ALTER TABLE items ADD COLUMN note text"),
    );

    // A normal run: its tables come and go, the user's stay, no password.
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &["--url", &url]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let r = report.unwrap();
    assert_eq!(r["postgres"]["backend"], "url");
    assert_eq!(r["postgres"]["target"], format!("postgres://postgres@127.0.0.1:{port}/postgres"));
    for text in [&stdout, &stderr, &r.to_string()] {
        assert!(!text.contains(password), "password printed:\n{text}");
    }
    assert_eq!(rt.block_on(tables(&user)), ["precious"], "the harness dropped what it created, and only that");
    // The clean-up ends every session of the run and waits for each; its
    // own ends as the harness exits, and its backend leaves the server a
    // moment later (ten seconds cover a loaded runner).
    let ours = || -> i64 {
        let q = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'rehearse@%'";
        rt.block_on(user.query_one(q, &[])).unwrap().get(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ours() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(ours(), 0, "the harness's sessions are gone");

    // A table of the same name exists: refused, untouched.
    rt.block_on(user.batch_execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, name text, price_cents int); \
         INSERT INTO items SELECT g, 'x', 1 FROM generate_series(1, 2000) g",
    ))
    .unwrap();
    let (code, _, stderr, _) = rehearse(&sandbox, &path, &["--url", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("table `items` already exists") && stderr.contains("--reuse-existing"), "{stderr}");
    assert!(!stderr.contains(password));
    let columns: i64 = rt
        .block_on(user.query_one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'items'", &[]))
        .unwrap()
        .get(0);
    assert_eq!(columns, 3, "the existing table was not touched");

    // With --reuse-existing the rehearsal runs against it as it is, and
    // leaves it in place (the harness did not create it).
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &["--url", &url, "--reuse-existing"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(report.unwrap()["tables"][0]["reused"], true);
    assert_eq!(rt.block_on(tables(&user)), ["items", "precious"]);

    // A server that does not answer is an environment failure.
    let (code, _, stderr, _) =
        rehearse(&sandbox, &path, &["--url", &format!("postgres://postgres:{password}@127.0.0.1:1/x")]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot connect to postgres://postgres@127.0.0.1:1/x") && !stderr.contains(password),
        "{stderr}"
    );
    drop(user);
    drop(cluster);
}

/// Starts a rehearsal on `url`, waits for its load, and SIGKILLs the
/// harness: nothing in it can clean up.
fn kill_a_run_on(sandbox: &Sandbox, path: &std::path::Path, url: &str) {
    use std::io::{BufRead, BufReader};
    let mut child = sandbox
        .command(&["run", path.to_str().unwrap(), "--url", url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.map_while(Result::ok) {
        if line.contains("load started") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_run_killed_on_a_named_server_is_cleaned_by_clean_url_and_nothing_else_is() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(LocalCluster::start(&[])).unwrap();
    let url = cluster.connect_url();
    let target = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.config().get_ports()[0]);
    let user = rt.block_on(connect(cluster.config(), &Role::Other("user".into()))).unwrap();
    rt.block_on(user.batch_execute("CREATE TABLE precious (id int)")).unwrap();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &small_scenario("SELECT * FROM items WHERE id = $1", "SELECT 1"));

    kill_a_run_on(&sandbox, &path, &url);
    assert_eq!(rt.block_on(tables(&user)), ["items", "precious"], "the killed run left its table");
    // The next run is refused, and told how to clean up.
    let (code, _, stderr, _) = rehearse(&sandbox, &path, &["--url", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("`rehearse clean --url {target}` drops it")), "{stderr}");
    // `clean` alone names what is left where, and touches nothing there.
    let out = sandbox.run(&["clean"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("left items on") && stdout.contains(&format!("rehearse clean --url {target}")), "{stdout}");
    assert_eq!(rt.block_on(tables(&user)).len(), 2);
    // `clean --url` drops it, and only it.
    let out = sandbox.run(&["clean", "--url", &url]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("dropped table items"), "{stdout}");
    assert_eq!(rt.block_on(tables(&user)), ["precious"]);
    assert!(text(&sandbox.run(&["clean", "--url", &url]).stdout).contains("nothing to clean"));

    // A table the user made again under the same name, after a kill, is
    // not the run's: it stays.
    kill_a_run_on(&sandbox, &path, &url);
    rt.block_on(user.batch_execute("DROP TABLE items; CREATE TABLE items (mine int)")).unwrap();
    let out = sandbox.run(&["clean", "--url", &url]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("is not the one the harness created"), "{}", text(&out.stdout));
    assert_eq!(rt.block_on(tables(&user)), ["items", "precious"]);
    drop(user);
}
