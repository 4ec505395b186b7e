//! Scenario files: every shipped one is valid, and every kind of bad input
//! gets a clear error naming the file, line and column, with exit code 2.

use crate::common::{Sandbox, heavy, position_of, rehearse, repo, small_scenario, text};

const QUERY: &str = "SELECT * FROM items WHERE id = $1";
const STEP: &str = "ALTER TABLE items ADD COLUMN note text";

/// Runs `rehearse check` on `toml`: (exit code, stderr, the file's path,
/// the sandbox holding it).
pub(crate) fn check(toml: &str) -> (i32, String, std::path::PathBuf, Sandbox) {
    let sandbox = Sandbox::new();
    let path = sandbox.write("scenario.toml", toml);
    let out = sandbox.run(&["check", path.to_str().unwrap()]);
    (out.status.code().unwrap(), text(&out.stderr), path, sandbox)
}

fn assert_located(stderr: &str, path: &std::path::Path, line: usize, col: usize) {
    let want = format!("{}:{line}:{col}:", path.display());
    assert!(stderr.contains(&want), "expected `{want}` in:\n{stderr}");
}

#[test]
fn every_shipped_scenario_is_valid() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = Sandbox::new().run(&["check", path.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), text(&out.stderr));
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

#[test]
fn an_unknown_key_is_named_with_its_line_and_column() {
    let toml = small_scenario(QUERY, STEP).replace("pool_size = 4", "pool_sise = 4");
    let (code, stderr, path, _sandbox) = check(&toml);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown field `pool_sise`"), "{stderr}");
    let (line, col) = position_of(&toml, "pool_sise", 0);
    assert_located(&stderr, &path, line, col);
}

#[test]
fn a_bad_duration_is_named_with_its_line_and_column() {
    let toml = small_scenario(QUERY, STEP).replace("migrate_at = \"1s\"", "migrate_at = \"1 sec\"");
    let (code, stderr, path, _sandbox) = check(&toml);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid duration `1 sec`"), "{stderr}");
    let (line, col) = position_of(&toml, "\"1 sec\"", 0);
    assert_located(&stderr, &path, line, col);
}

#[test]
fn a_duration_without_unit_is_refused() {
    let toml = small_scenario(QUERY, STEP).replace("cooldown = \"1s\"", "cooldown = 10");
    let (code, stderr, _, _sandbox) = check(&toml);
    assert_eq!(code, 2);
    assert!(stderr.contains("give a unit"), "{stderr}");
}

#[test]
fn a_key_of_an_unknown_table_is_refused() {
    let toml = small_scenario(QUERY, STEP).replace("key_of = \"items\"", "key_of = \"itmes\"");
    let (code, stderr, path, _sandbox) = check(&toml);
    assert_eq!(code, 2);
    assert!(stderr.contains("no [[table]] named `itmes`"), "{stderr}");
    let (line, col) = position_of(&toml, "{ key_of", 0);
    assert_located(&stderr, &path, line, col);
}

#[test]
fn retries_without_lock_timeout_are_refused() {
    let toml = small_scenario(QUERY, STEP)
        .replace(&format!("{{ sql = \"{STEP}\" }}"), &format!("{{ sql = \"{STEP}\", retries = 3 }}"));
    let (code, stderr, _, _sandbox) = check(&toml);
    assert_eq!(code, 2);
    assert!(stderr.contains("set `lock_timeout` too"), "{stderr}");
}

#[test]
fn a_missing_file_is_bad_input() {
    let out = Sandbox::new().run(&["check", "/nonexistent/scenario.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read scenario /nonexistent/scenario.toml"));
}

#[test]
fn an_unknown_strategy_is_bad_input() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &small_scenario(QUERY, STEP));
    let (code, _, stderr, _) = rehearse(&sandbox, &path, &["--strategy", "nope"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no strategy `nope`") && stderr.contains("strategies: only"), "{stderr}");
}

#[test]
fn a_query_on_a_missing_table_gives_sqlstate_and_position() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let toml = small_scenario("SELECT * FROM itemz WHERE id = $1", STEP);
    let path = sandbox.write("s.toml", &toml);
    let (code, _, stderr, report) = rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(report.is_none());
    assert!(
        stderr.contains("query `get_item`")
            && stderr.contains("42P01")
            && stderr.contains("relation \"itemz\" does not exist"),
        "{stderr}"
    );
    // Postgres points at `itemz`, 15th character of the statement.
    let (line, col) = position_of(&toml, "SELECT * FROM itemz", 14);
    assert_located(&stderr, &path, line, col);
    sandbox.assert_clean();
}

#[test]
fn a_failing_ddl_points_into_the_ddl() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let toml = small_scenario(QUERY, STEP).replace("price_cents int", "price_cents integr");
    let path = sandbox.write("s.toml", &toml);
    let (code, _, stderr, _) = rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("42704") && stderr.contains("type \"integr\" does not exist"), "{stderr}");
    let (line, col) = position_of(&toml, "integr", 0);
    assert_located(&stderr, &path, line, col);
    sandbox.assert_clean();
}

#[test]
fn a_step_that_fails_on_the_data_gives_a_failed_migration_report_not_a_crash() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    // Valid on the empty tables the steps are tried on; broken by the rows.
    let toml = small_scenario(QUERY, "ALTER TABLE items ADD CONSTRAINT free CHECK (price_cents < 0)");
    let path = sandbox.write("s.toml", &toml);
    let (code, stdout, stderr, report) = rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let r = report.expect("a report");
    assert_eq!(r["migration"]["outcome"], "failed");
    let err = &r["migration"]["steps"][0]["error"];
    assert_eq!(err["sqlstate"], "23514");
    assert!(err["message"].as_str().unwrap().contains("is violated by some row"), "{err}");
    assert_eq!(r["verdict"]["violations"][0]["threshold"], "migration");
    assert!(stdout.contains("FAILED") && stdout.contains("ERROR 23514"), "{stdout}");
    // The load ran before and after the failed step.
    assert!(r["phases"]["after"]["queries"]["get_item"]["count"].as_u64().unwrap() > 20);
    sandbox.assert_clean();
}

/// `small_scenario` with a `[postgres]` table holding `body`.
fn with_postgres(body: &str) -> String {
    small_scenario(QUERY, STEP).replace("seed = 7\n", &format!("seed = 7\n\n[postgres]\n{body}\n"))
}

#[test]
fn versions_and_images_are_checked_where_they_are_written() {
    let toml = with_postgres("version = \"12\"\nversions = [\"12\", \"16\"]");
    let (code, stderr, path, _s) = check(&toml);
    assert_eq!(code, 2);
    assert!(stderr.contains("give `version` or `versions`, not both"), "{stderr}");
    let (line, col) = position_of(&toml, "[\"12\", \"16\"]", 0);
    assert_located(&stderr, &path, line, col);

    let toml = with_postgres("versions = [\"12\", \"16\", \"12\"]");
    let (code, stderr, path, _s) = check(&toml);
    assert_eq!(code, 2);
    assert!(stderr.contains("version `12` is listed twice"), "{stderr}");
    // The second "12", on the `versions` line.
    let (line, versions_col) = position_of(&toml, "versions = ", 0);
    let line_text = toml.lines().nth(line - 1).unwrap();
    assert_located(&stderr, &path, line, versions_col + line_text.rfind("\"12\"").unwrap());

    let toml = with_postgres("version = \"16 beta\"");
    let (code, stderr, _, _s) = check(&toml);
    assert_eq!(code, 2);
    assert!(stderr.contains("is not a version"), "{stderr}");

    let toml = with_postgres("image = \"postgres@sha256:0123\"");
    let (code, stderr, path, _s) = check(&toml);
    assert_eq!(code, 2);
    assert!(stderr.contains("digests are not supported"), "{stderr}");
    let (line, col) = position_of(&toml, "\"postgres@", 0);
    assert_located(&stderr, &path, line, col);

    let (code, stderr, _, _s) = check(&with_postgres("versions = [\"12\", \"16\"]"));
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn several_versions_on_the_local_backend_are_refused() {
    let sandbox = Sandbox::new();
    let path = sandbox.write("s.toml", &with_postgres("versions = [\"12\", \"16\"]"));
    let (code, _, stderr, _) = rehearse(&sandbox, &path, &["--backend", "local"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the scenario lists 2 versions (postgres:12, postgres:16)"), "{stderr}");
    let (code, _, stderr, _) = rehearse(&sandbox, &path, &["--backend", "local", "--pg-image", "postgres:16"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--pg-image goes with --backend docker or auto"), "{stderr}");
    sandbox.assert_clean();
}

#[test]
fn auto_falls_back_to_local_and_says_why() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    // An image no registry has: auto cannot use Docker, with or without a
    // daemon, and says why in one line.
    let path = sandbox.write("s.toml", &with_postgres("image = \"rehearse-test/absent:0\""));
    let (code, _, stderr, report) = rehearse(&sandbox, &path, &["--backend", "auto"]);
    assert_eq!(code, 0, "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("rehearse: backend ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.starts_with("rehearse: backend local: "), "{line}");
    let r = report.unwrap();
    assert_eq!(r["postgres"]["backend"], "local");
    assert_eq!(r["postgres"]["chosen"], line.trim_start_matches("rehearse: backend "));
    let warnings = r["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("rehearse-test/absent:0")), "{warnings:?}");
    sandbox.assert_clean();
}

#[test]
fn bloat_must_be_a_fraction() {
    let toml = small_scenario(QUERY, STEP).replace("rows = 2000\n", "rows = 2000\nbloat = 1.5\n");
    let (code, stderr, path, _s) = check(&toml);
    assert_eq!(code, 2);
    assert!(stderr.contains("bloat is a fraction"), "{stderr}");
    let (line, col) = position_of(&toml, "1.5", 0);
    assert_located(&stderr, &path, line, col);
    let (code, stderr, _, _s) =
        check(&small_scenario(QUERY, STEP).replace("rows = 2000\n", "rows = 2000\nbloat = 0.1\n"));
    assert_eq!(code, 0, "{stderr}");
}
