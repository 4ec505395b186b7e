//! A throwaway server is the harness's alone: another user of the machine
//! cannot enter it while a run holds it, neither without the password nor
//! with a guessed one, and there is no Unix socket to try instead.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User};
use rehearse::postgres::server_program;

use crate::common::{Sandbox, heavy, small_scenario, start_generate, text};

/// Runs psql against `port` as user `as_user` (when the tests run as root),
/// with `password` if any, and returns (success, stderr).
fn psql(port: &str, password: Option<&str>, as_user: Option<&User>) -> (bool, String) {
    let mut cmd = Command::new(server_program("psql").expect("psql beside the server binaries"));
    cmd.args(["-w", "-X", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "postgres", "-c"])
        .arg("COPY (SELECT 1) TO PROGRAM 'id'")
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/dev/null")
        .env("HOME", "/")
        .current_dir("/");
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    if let Some(u) = as_user {
        cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
    }
    let out = cmd.output().unwrap();
    (out.status.success(), text(&out.stderr))
}

#[test]
fn another_user_of_the_machine_cannot_enter_a_running_local_cluster() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &small_scenario("SELECT * FROM items WHERE id = $1", "SELECT 1"));
    let (mut child, url, _) = start_generate(&sandbox, &path);
    // postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres
    let config: tokio_postgres::Config = url.parse().unwrap();
    let port = config.get_ports()[0].to_string();
    let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();

    // Someone else: `nobody` when the tests run as root (the server itself
    // runs as `postgres` then), else this very user without the password.
    let other = Uid::effective().is_root().then(|| User::from_name("nobody").unwrap().unwrap());
    let (entered, why) = psql(&port, None, other.as_ref());
    assert!(!entered, "entered without a password");
    assert!(why.contains("password"), "refused for want of a password: {why}");
    let (entered, why) = psql(&port, Some("postgres"), other.as_ref());
    assert!(!entered, "entered with a guessed password");
    assert!(why.contains("password authentication failed"), "{why}");

    // No socket to try: the cluster's directory is the server user's alone
    // and holds none.
    let dirs = sandbox.leftover_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let meta = std::fs::metadata(&dirs[0]).unwrap();
    assert_eq!(meta.mode() & 0o077, 0, "the cluster directory is private");
    let sockets: Vec<_> = walk(&dirs[0]).into_iter().filter(|p| p.to_string_lossy().contains(".s.PGSQL")).collect();
    assert!(sockets.is_empty(), "{sockets:?}");

    // The password the harness holds does open it.
    let (entered, why) = psql(&port, Some(&password), None);
    assert!(entered, "the harness's own password: {why}");

    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    sandbox.assert_clean();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(walk(&p));
        } else {
            found.push(p);
        }
    }
    found
}
