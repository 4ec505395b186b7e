//! Bad input found before the data load, not after the run: a step, a
//! query or an interfering statement the server refuses, a setting it
//! refuses, and a report path that cannot be written, each with exit 2 and
//! the place in the scenario file.

use std::time::{Duration, Instant};

use crate::common::{Sandbox, heavy, position_of, rehearse, small_scenario, text};

const QUERY: &str = "SELECT * FROM items WHERE id = $1";
const STEP: &str = "ALTER TABLE items ADD COLUMN note text";

/// Runs `toml` at a million rows (a load of several seconds, which the
/// checks must come before) and returns (exit code, stderr, seconds).
fn run_big(sandbox: &Sandbox, toml: &str) -> (i32, String, f64) {
    let path = sandbox.write("s.toml", &toml.replace("rows = 2000", "rows = 1000000"));
    let started = Instant::now();
    let (code, _, stderr, report) = rehearse(sandbox, &path, &[]);
    assert!(report.is_none(), "no report: nothing ran");
    (code, stderr, started.elapsed().as_secs_f64())
}

#[test]
fn a_step_wrong_for_the_schema_is_found_before_the_load() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let toml = small_scenario(QUERY, "ALTER TABLE items ADD COLUMN note nosuchtype");
    let (code, stderr, secs) = run_big(&sandbox, &toml);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("step 1 of strategy `only` fails on the empty tables, before any data is loaded"),
        "{stderr}"
    );
    assert!(stderr.contains("ERROR 42704: type \"nosuchtype\" does not exist"), "{stderr}");
    let (line, col) = position_of(&toml, "nosuchtype", 0);
    assert!(stderr.contains(&format!("s.toml:{line}:{col}:")), "{stderr}");
    // A million rows take several seconds to load and index; the check
    // came first. (Generous: a loaded runner starts a cluster in ~2 s.)
    assert!(secs < 20.0, "{secs}");
    sandbox.assert_clean();
}

#[test]
fn an_interference_wrong_for_the_schema_is_found_before_the_load() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let toml = small_scenario(QUERY, STEP).replace(
        "[timeline]",
        "[[interference]]\nname = \"report\"\nat = \"1s\"\nsql = \"SELECT stauts, count(*) FROM items GROUP BY 1\"\n\n[timeline]",
    );
    let (code, stderr, _) = run_big(&sandbox, &toml);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("interference `report` is not valid on this database"), "{stderr}");
    assert!(stderr.contains("42703"), "{stderr}");
    let (line, col) = position_of(&toml, "stauts", 0);
    assert!(stderr.contains(&format!(":{line}:{col}:")), "{stderr}");
    sandbox.assert_clean();
}

#[test]
fn a_setting_the_server_refuses_is_bad_input_at_its_place() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let toml = small_scenario(QUERY, STEP)
        .replace("seed = 7\n", "seed = 7\n\n[postgres]\nsettings = { shared_buffers = \"1\", work_mem = \"4MB\" }\n");
    let path = sandbox.write("s.toml", &toml);
    let (code, _, stderr, _) = rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("setting `shared_buffers` = \"1\": the server refused it"), "{stderr}");
    assert!(stderr.contains("outside the valid range"), "{stderr}");
    let (line, col) = position_of(&toml, "\"1\"", 0);
    assert!(stderr.contains(&format!("s.toml:{line}:{col}:")), "{stderr}");

    let unknown = toml.replace("shared_buffers = \"1\"", "shared_bufers = \"1GB\"");
    let path = sandbox.write("s.toml", &unknown);
    let (code, _, stderr, _) = rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unrecognized configuration parameter \"shared_bufers\""), "{stderr}");
    sandbox.assert_clean();
}

#[test]
fn a_report_path_that_cannot_be_written_is_refused_before_anything_starts() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &small_scenario(QUERY, STEP));
    let started = Instant::now();
    let out = sandbox.run(&["run", path.to_str().unwrap(), "--backend", "local", "--json", "/nonexistent/dir/r.json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--json /nonexistent/dir/r.json: the directory /nonexistent/dir does not exist"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once, not after a run");
    assert!(sandbox.leftover_dirs().is_empty(), "no server was started");
}
