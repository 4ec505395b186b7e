//! Nothing leaks: the throwaway server and its directory are gone after a
//! run that failed with an error, after Ctrl-C or SIGTERM, and after a
//! panic. (After success and a failed threshold: see `strategies`.)

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::{Sandbox, heavy, rehearse, repo, small_scenario};

const QUERY: &str = "SELECT * FROM items WHERE id = $1";

#[test]
fn nothing_is_left_after_an_error() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    // The server starts, then the workload query fails to prepare.
    let path = sandbox.write("s.toml", &small_scenario("SELECT nope FROM items WHERE id = $1", "SELECT 1"));
    let (code, _, stderr, _) = rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 2, "{stderr}");
    sandbox.assert_clean();
}

#[test]
fn nothing_is_left_after_a_panic() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &small_scenario(QUERY, "SELECT 1"));
    let out = sandbox
        .command(&["run", path.to_str().unwrap(), "--quiet", "--backend", "local"])
        .env("REHEARSE_FAULT", "panic-after-provision")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(101), "a panic exits 101");
    assert!(String::from_utf8_lossy(&out.stderr).contains("injected fault"));
    sandbox.assert_clean();
}

/// Starts a full rehearsal, waits until its load runs (the server is up and
/// data loaded), sends `signal`, and checks the exit and the clean-up.
fn interrupt_with(signal: Signal) {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let scenario = repo("scenarios/add-column-default.toml");
    let mut child = sandbox
        .command(&["run", scenario.to_str().unwrap(), "--scale", "0.01", "--backend", "local"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines.next().expect("the run ended before its load started").unwrap();
        if line.contains("load started") {
            break;
        }
        assert!(Instant::now() < deadline, "the load did not start");
    }
    assert_eq!(sandbox.leftover_dirs().len(), 1, "the cluster directory exists while running");
    std::thread::sleep(Duration::from_millis(500));
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
    sandbox.assert_clean();
}

#[test]
fn nothing_is_left_after_ctrl_c() {
    interrupt_with(Signal::SIGINT);
}

#[test]
fn nothing_is_left_after_sigterm() {
    interrupt_with(Signal::SIGTERM);
}
