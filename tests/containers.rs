//! The docker backend, for real: the outage reproduced in a container, the
//! image's interface, several servers side by side, and clean-up after a
//! normal run, a failed one, SIGINT, and (with `rehearse clean`) SIGKILL.
//!
//! These tests need a Docker daemon and a Postgres image with the official
//! image's interface (`scripts/build-postgres-image`; `REHEARSE_PG_IMAGE`
//! names it, default `rehearse/postgres:15`). Without them they are
//! skipped, unless `REHEARSE_REQUIRE_DOCKER=1` (as in CI), where a skip
//! is a failure.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::common::{Sandbox, heavy, repo, small_scenario, text};

const QUERY: &str = "SELECT * FROM items WHERE id = $1";

/// The image to test with, or `None` (skip) when Docker or the image is
/// missing and the environment does not require them.
fn image() -> Option<String> {
    let required = std::env::var("REHEARSE_REQUIRE_DOCKER").as_deref() == Ok("1");
    let image = std::env::var("REHEARSE_PG_IMAGE").unwrap_or_else(|_| "rehearse/postgres:15".into());
    let daemon = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    let problem = match daemon {
        Ok(out) if out.status.success() => {
            let present = Command::new("docker").args(["image", "inspect", &image]).output();
            match present {
                Ok(out) if out.status.success() => return Some(image),
                _ => format!("image {image} is missing: build it with scripts/build-postgres-image"),
            }
        }
        Ok(out) => format!("no Docker daemon answers: {}", text(&out.stderr).trim()),
        Err(e) => format!("no docker command: {e}"),
    };
    assert!(!required, "REHEARSE_REQUIRE_DOCKER=1 but {problem}");
    eprintln!("skipped: {problem}");
    None
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Containers (any state) that the harness process `pid` started.
fn containers_of(pid: u32) -> Vec<String> {
    let filter = format!("label=dev.rehearse.pid={pid}");
    docker(&["ps", "-aq", "--filter", &filter]).lines().map(str::to_string).collect()
}

/// Runs the binary to the end: (exit code, stdout, stderr, its pid).
fn run(sandbox: &Sandbox, args: &[&str]) -> (i32, String, String, u32) {
    let child = sandbox.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr), pid)
}

fn json(sandbox: &Sandbox) -> Value {
    let path = sandbox.path().join("r.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn the_outage_is_reproduced_in_a_container_and_the_container_removed() {
    let Some(image) = image() else { return };
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let scenario = repo("scenarios/add-column-default.toml");
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--backend",
        "docker",
        "--pg-image",
        &image,
        "--strategy",
        "naive",
        "--scale",
        "0.05",
        "--json",
        "r.json",
        "--quiet",
    ];
    let (code, stdout, stderr, pid) = run(&sandbox, &args);
    assert_eq!(code, 1, "the outage fails its thresholds\n{stdout}\n{stderr}");
    assert_eq!(containers_of(pid), Vec::<String>::new(), "container left after a failed run");
    sandbox.assert_clean();

    let r = json(&sandbox);
    assert_eq!(r["postgres"]["backend"], "docker");
    assert_eq!(r["postgres"]["image"], image.as_str());
    assert!(r["postgres"]["version"].as_str().unwrap().starts_with("PostgreSQL "));
    assert!(stderr.contains(&format!("backend docker, as --backend docker asks: {image} is present")), "{stderr}");

    // The same outage as on the local backend: the ALTER waits behind the
    // report, the reads queue behind the ALTER, and the pool fills.
    let i = &r["timeline"]["interference"][0];
    let remaining_ms = (f(&i["ended_s"]) - f(&r["migration"]["started_s"])) * 1000.0;
    let waited = f(&r["migration"]["lock_wait_ms"]);
    assert!(remaining_ms > 5000.0 && waited >= 0.9 * remaining_ms, "lock wait {waited}ms of {remaining_ms}ms");
    let edges = r["locks"]["blocking"].as_array().unwrap();
    assert!(edges.iter().any(|e| e["waiter"] == "migration" && e["blocker"] == "interference cs-report"));
    assert!(edges.iter().any(|e| e["waiter"] == "workload" && e["blocker"] == "migration"));
    let base = f(&r["phases"]["baseline"]["queries"]["get_order"]["p99_ms"]);
    let during = f(&r["phases"]["during"]["queries"]["get_order"]["p99_ms"]);
    assert!(during > 0.8 * remaining_ms && during > 20.0 * base, "read p99 {base}ms → {during}ms");
    assert!(f(&r["pool"]["timeouts"]) > 0.0);
    assert_eq!(r["verdict"]["pass"], false);
}

#[test]
fn a_passing_run_and_an_erroring_run_leave_no_container() {
    let Some(image) = image() else { return };
    let _turn = heavy();
    let sandbox = Sandbox::new();
    // The scenario names the image; `auto` (the default) takes Docker.
    let toml = small_scenario(QUERY, "ALTER TABLE items ADD COLUMN note text")
        .replace("seed = 7\n", &format!("seed = 7\n\n[postgres]\nimage = \"{image}\"\n"));
    let path = sandbox.write("s.toml", &toml);
    let (code, stdout, stderr, pid) = run(&sandbox, &["run", path.to_str().unwrap(), "--json", "r.json", "--quiet"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("backend docker: a Docker daemon answers and {image} is present")), "{stderr}");
    let r = json(&sandbox);
    assert_eq!(r["postgres"]["backend"], "docker");
    assert_eq!(r["migration"]["outcome"], "ok");
    assert_eq!(containers_of(pid), Vec::<String>::new(), "container left after a passing run");

    // The server starts, then the workload query fails to prepare.
    let bad = small_scenario("SELECT nope FROM items WHERE id = $1", "SELECT 1");
    let path = sandbox.write("bad.toml", &bad);
    let (code, _, stderr, pid) =
        run(&sandbox, &["run", path.to_str().unwrap(), "--backend", "docker", "--pg-image", &image]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("42703"), "{stderr}");
    assert_eq!(containers_of(pid), Vec::<String>::new(), "container left after an error");

    // A panic while the container runs.
    let path = sandbox.write("ok.toml", &small_scenario(QUERY, "SELECT 1"));
    let child = sandbox
        .command(&["run", path.to_str().unwrap(), "--backend", "docker", "--pg-image", &image, "--quiet"])
        .env("REHEARSE_FAULT", "panic-after-provision")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(101), "a panic exits 101: {}", text(&out.stderr));
    assert_eq!(containers_of(pid), Vec::<String>::new(), "container left after a panic");
    sandbox.assert_clean();
}

/// Starts a run on the docker backend and waits until its load runs.
fn start_run(sandbox: &Sandbox, image: &str) -> (std::process::Child, u32) {
    let scenario = repo("scenarios/add-column-default.toml");
    let args = ["run", scenario.to_str().unwrap(), "--scale", "0.01", "--backend", "docker", "--pg-image", image];
    let mut child = sandbox.command(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = lines.next().expect("the run ended before its load started").unwrap();
        if line.contains("load started") {
            break;
        }
        assert!(Instant::now() < deadline, "the load did not start");
    }
    assert_eq!(containers_of(pid).len(), 1, "the run has its container");
    // Keep draining stderr so that the child never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    (child, pid)
}

#[test]
fn sigint_removes_the_container() {
    let Some(image) = image() else { return };
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let (mut child, pid) = start_run(&sandbox, &image);
    kill(Pid::from_raw(pid as i32), Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(containers_of(pid), Vec::<String>::new(), "container left after SIGINT");
    sandbox.assert_clean();
}

#[test]
fn clean_removes_the_container_of_a_killed_run() {
    let Some(image) = image() else { return };
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let (mut child, pid) = start_run(&sandbox, &image);
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let left = containers_of(pid);
    assert_eq!(left.len(), 1, "SIGKILL leaves the container behind");

    let out = sandbox.run(&["clean"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains(&format!("removed container {}", &left[0][..12])), "{stdout}");
    assert_eq!(containers_of(pid), Vec::<String>::new(), "rehearse clean left the container");
    sandbox.assert_clean();
}

#[test]
fn several_images_are_rehearsed_side_by_side() {
    let Some(image) = image() else { return };
    let _turn = heavy();
    let sandbox = Sandbox::new();
    // A second name for the same image stands in for a second major.
    let (name, _) = image.rsplit_once(':').unwrap_or((&image, "latest"));
    let second = format!("{name}:side-by-side-test");
    docker(&["tag", &image, &second]);
    let path = sandbox.write("s.toml", &small_scenario(QUERY, "ALTER TABLE items ADD COLUMN note text"));
    let p = path.to_str().unwrap();
    let args = ["run", p, "--pg-image", &image, "--pg-image", &second, "--json", "r.json", "--quiet"];
    let (code, stdout, stderr, pid) = run(&sandbox, &args);
    docker(&["rmi", &second]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(containers_of(pid), Vec::<String>::new());

    let r = json(&sandbox);
    let reports = r["reports"].as_array().expect("one report per server");
    assert_eq!(reports.len(), 2);
    for (report, want) in reports.iter().zip([&image, &second]) {
        assert_eq!(report["postgres"]["backend"], "docker");
        assert_eq!(report["postgres"]["image"], want.as_str());
        assert_eq!(report["migration"]["outcome"], "ok");
        assert!(f(&report["phases"]["baseline"]["queries"]["get_item"]["count"]) > 0.0);
    }
    // One table, a column per server.
    let header = stdout.lines().find(|l| l.contains(&image)).unwrap_or_else(|| panic!("{stdout}"));
    assert!(header.contains(&second), "{stdout}");
    assert!(stdout.contains("migration waiting for locks"), "{stdout}");
}

/// `compare` on the docker backend: one container, one load, and every
/// run from a fresh copy of it, so a strategy that empties the table finds
/// it full again in the next round and one that adds a column can add it
/// again.
#[test]
fn compare_resets_the_database_in_a_container() {
    let Some(image) = image() else { return };
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let second = r#"
[[strategy]]
name = "empties"
steps = [{ sql = "DELETE FROM items WHERE id > 0" }, { sql = "ALTER TABLE items ADD COLUMN c int" }]
"#;
    let toml = small_scenario(QUERY, "ALTER TABLE items ADD COLUMN c int") + second;
    let path = sandbox.write("two.toml", &toml);
    let p = path.to_str().unwrap();
    let args =
        ["compare", p, "--backend", "docker", "--pg-image", &image, "--repeat", "2", "--json", "r.json", "--quiet"];
    let (code, stdout, stderr, pid) = run(&sandbox, &args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(containers_of(pid), Vec::<String>::new(), "container left after a comparison");

    let v = json(&sandbox);
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 4);
    for r in reports {
        assert_eq!(r["postgres"]["backend"], "docker");
        assert_eq!(r["migration"]["outcome"], "ok", "the column is new in every run: {}", r["strategy"]);
        if r["strategy"] == "empties" {
            assert_eq!(r["migration"]["steps"][0]["rows"], 2000, "every run starts from the full load");
        }
    }
    assert_eq!(v["comparison"]["reset"]["reset_s"]["n"], 4);
    sandbox.assert_clean();
}

#[test]
fn the_image_has_the_official_interface() {
    let Some(image) = image() else { return };
    let _turn = heavy();
    let id = docker(&[
        "run",
        "-d",
        "--label",
        "dev.rehearse.managed=true",
        "-e",
        "POSTGRES_USER=alice",
        "-e",
        "POSTGRES_PASSWORD=wonderland",
        "-e",
        "POSTGRES_DB=shop",
        "-p",
        "127.0.0.1::5432",
        &image,
    ])
    .trim()
    .to_string();
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", "-v", &self.0]).output();
        }
    }
    let _remove = Remove(id.clone());

    // The ready line: on stdout from the setup server, then on stderr from
    // the real one (what testcontainers' postgres module waits for).
    let ready = "database system is ready to accept connections";
    let deadline = Instant::now() + Duration::from_secs(60);
    let (stdout, stderr) = loop {
        let out = Command::new("docker").args(["logs", &id]).output().unwrap();
        let (o, e) = (text(&out.stdout), text(&out.stderr));
        if o.contains(ready) && e.contains(ready) {
            break (o, e);
        }
        assert!(Instant::now() < deadline, "no ready line on both streams\nstdout:\n{o}\nstderr:\n{e}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(stdout.contains("PostgreSQL init process complete"), "{stdout}");
    assert!(!stderr.contains("ERROR"), "{stderr}");

    // Port 5432 is exposed and published.
    let port = docker(&["port", &id, "5432/tcp"]);
    let port: u16 = port.lines().next().unwrap().rsplit(':').next().unwrap().trim().parse().unwrap();

    // The server runs as the postgres user.
    let uid = docker(&["exec", &id, "id", "-u", "postgres"]);
    let status = docker(&["exec", &id, "cat", "/proc/1/status"]);
    let pid1 = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(pid1.split_whitespace().nth(1), Some(uid.trim()), "{pid1}");
    let cmdline = docker(&["exec", &id, "cat", "/proc/1/cmdline"]);
    assert!(cmdline.starts_with("postgres"), "pid 1 is {cmdline:?}");

    // User, password and database come from the environment; a wrong
    // password is refused (scram-sha-256 over TCP).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = |pw: &str| format!("postgres://alice:{pw}@127.0.0.1:{port}/shop");
        let mut client = None;
        for _ in 0..50 {
            match tokio_postgres::connect(&url("wonderland"), tokio_postgres::NoTls).await {
                Ok((c, conn)) => {
                    tokio::spawn(conn);
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let client = client.expect("alice connects with her password");
        let row = client
            .query_one("SELECT current_user::text, current_database()::text, usesuper FROM pg_user WHERE usename = current_user", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "alice");
        assert_eq!(row.get::<_, String>(1), "shop");
        assert!(row.get::<_, bool>(2), "POSTGRES_USER is the superuser");
        let err = tokio_postgres::connect(&url("wrong"), tokio_postgres::NoTls).await.err().expect("refused");
        assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{err}");
    });
}

/// A standby container of the same image, started by the harness beside
/// the primary container: the reads go to it, its lag is measured (a 2 s
/// apply delay lags about 2 s; wide margins, as on the local backend), and
/// both containers are gone after the run.
#[test]
fn a_standby_container_serves_the_reads_and_its_lag_is_measured() {
    let Some(image) = image() else { return };
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let toml = crate::replicas::scenario(
        r#"recovery_min_apply_delay = "2s""#,
        "ALTER TABLE items ADD COLUMN note text",
        r#"max_replica_lag = "1s""#,
    );
    let path = sandbox.write("replica.toml", &toml);
    let args =
        ["run", path.to_str().unwrap(), "--backend", "docker", "--pg-image", &image, "--json", "r.json", "--quiet"];
    let (code, stdout, stderr, pid) = run(&sandbox, &args);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert_eq!(containers_of(pid), Vec::<String>::new(), "container left after the run");
    let r = json(&sandbox);
    let replica = r["workload"]["replica"].as_str().unwrap();
    assert!(replica.contains("standby container"), "{replica}");
    let lag = &r["replication"]["replicas"][0];
    let max = f(&lag["max_lag_ms"]);
    assert!((1_500.0..6_000.0).contains(&max), "a 2 s apply delay lags about 2 s: {max} ms");
    assert!(r["verdict"]["violations"].as_array().unwrap().iter().any(|v| v["threshold"] == "max_replica_lag"));
    let reads = &r["phases"]["baseline"]["queries"]["read_item"];
    assert!(f(&reads["count"]) > 0.0 && f(&reads["errors"]) == 0.0, "{reads}");
}
