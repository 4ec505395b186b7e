//! The example CI files of `examples/ci/` cannot run here (no GitHub, no
//! GitLab), but every `rehearse` command in them can: each line that runs
//! one is taken from the YAML as written and run by bash in a repository
//! laid out as the examples expect (`tests/fixtures/ci/`: scenarios/, a
//! rehearse.toml, db/migrations/ with a base commit and a pull request's
//! migration after it), with the variables the CI would set. A matrix
//! job's line runs once per shard of the matrix the plan line printed. The
//! runner's official images (`postgres:N`) stand in as the images
//! `scripts/build-postgres-image` built (`rehearse/postgres:N`), since no
//! registry answers here.

use std::collections::HashMap;
use std::process::Command;

use serde_json::Value;

use crate::common::{Sandbox, bin, heavy, repo, text};

/// The lines of a CI file that run `rehearse`, as written (comments left
/// out, a YAML list's `- ` taken off).
fn rehearse_lines(file: &str) -> Vec<String> {
    let yaml = std::fs::read_to_string(repo(&format!("examples/ci/{file}"))).unwrap();
    let runs = |l: &str| {
        ["rehearse run ", "rehearse soak ", "rehearse plan ", "rehearse merge "].iter().any(|c| l.contains(c))
    };
    yaml.lines()
        .map(|l| l.trim())
        .filter(|l| !l.starts_with('#') && runs(l))
        .map(|l| l.strip_prefix("- ").unwrap_or(l).to_string())
        .collect()
}

/// A repository laid out as the examples expect, with the pull request's
/// migration committed after the base; returns the base commit.
fn ci_repo(sandbox: &Sandbox) -> String {
    let root = sandbox.path();
    let copy = Command::new("cp").arg("-r").arg(repo("tests/fixtures/ci/.")).arg(root).status().unwrap();
    assert!(copy.success());
    let pr = root.join("db/migrations/002_index_items_name.sql");
    let held = std::fs::read_to_string(&pr).unwrap();
    std::fs::remove_file(&pr).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.email=ci@example.com", "-c", "user.name=ci"])
            .args(args)
            .current_dir(root)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "base"]);
    let base = git(&["rev-parse", "HEAD"]);
    std::fs::write(&pr, held).unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-qm", "the pull request's migration"]);
    // The server's unprivileged user reads the scenario's files.
    Command::new("chmod").args(["-R", "a+rX"]).arg(root).status().unwrap();
    base
}

/// Runs one line with bash in the repository, `rehearse` on its PATH;
/// returns the exit code and what it printed on stderr.
fn sh(sandbox: &Sandbox, line: &str, env: &HashMap<&str, String>) -> (i32, String) {
    let dir = bin().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-c", line])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PATH", path)
        .env("TMPDIR", sandbox.path())
        .env("XDG_STATE_HOME", sandbox.path().join("state"))
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .current_dir(sandbox.path())
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "`{line}` exited {code}:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    (code, text(&out.stderr))
}

/// The image standing in for a runner's official one.
fn local_image(image: &str) -> String {
    image.replace("postgres:", "rehearse/postgres:")
}

fn read(sandbox: &Sandbox, name: &str) -> String {
    std::fs::read_to_string(sandbox.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn json(sandbox: &Sandbox, name: &str) -> Value {
    serde_json::from_str(&read(sandbox, name)).unwrap()
}

/// The shards of a matrix file, as the variables a job gets.
fn shards(matrix: &Value) -> Vec<HashMap<&'static str, String>> {
    let (entries, keys) = match matrix.get("include").and_then(|i| i[0].get("shard")) {
        Some(_) => (
            &matrix["include"],
            [("SHARD", "shard"), ("SCENARIO", "scenario"), ("STRATEGY", "strategy"), ("PG_IMAGE", "image")],
        ),
        None => (
            &matrix["rehearse-shard"]["parallel"]["matrix"],
            [("SHARD", "SHARD"), ("SCENARIO", "SCENARIO"), ("STRATEGY", "STRATEGY"), ("PG_IMAGE", "PG_IMAGE")],
        ),
    };
    let entries = entries.as_array().expect("a matrix");
    entries
        .iter()
        .map(|e| keys.iter().map(|(var, key)| (*var, e[*key].as_str().unwrap_or_default().to_string())).collect())
        .map(|mut m: HashMap<&str, String>| {
            let image = local_image(&m["PG_IMAGE"]);
            m.insert("PG_IMAGE", image);
            m
        })
        .collect()
}

#[test]
fn every_rehearse_command_of_the_example_ci_files_works() {
    let Some(_) = crate::majors::images() else { return };
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let base = ci_repo(&sandbox);
    let mut env: HashMap<&str, String> = HashMap::from([
        ("BASE_SHA", base.clone()),
        ("CI_MERGE_REQUEST_DIFF_BASE_SHA", base),
        ("SOAK_DURATION", "1s".into()),
        ("PG_IMAGE", "rehearse/postgres:15".into()),
        ("GITHUB_OUTPUT", sandbox.path().join("github-output").display().to_string()),
    ]);

    // The pull request's check: the changed migration rehearsed, the
    // comment's Markdown opening with the marker the comment step looks for.
    let pr = rehearse_lines("github/rehearse-pr.yml");
    assert_eq!(pr.len(), 1, "{pr:?}");
    let (code, _) = sh(&sandbox, &pr[0], &env);
    assert_eq!(code, 0, "CREATE INDEX CONCURRENTLY keeps reads flowing");
    let workflow = std::fs::read_to_string(repo("examples/ci/github/rehearse-pr.yml")).unwrap();
    assert!(workflow.contains(&format!("const marker = '{}'", rehearse::report::MARKDOWN_MARKER)));
    assert!(read(&sandbox, "rehearse.md").starts_with(rehearse::report::MARKDOWN_MARKER));
    let pr_report = json(&sandbox, "rehearse.json");
    assert_eq!(pr_report["migration"]["steps"][0]["file"], "002_index_items_name.sql", "only the changed migration");
    assert!(read(&sandbox, "rehearse.xml").contains("<testsuites"));

    // The nightly: the plan, every shard, the merge; the soak.
    let nightly = rehearse_lines("github/nightly.yml");
    assert_eq!(nightly.len(), 4, "{nightly:?}");
    sh(&sandbox, &nightly[0], &env);
    let matrix = json(&sandbox, "matrix.json");
    let all = shards(&matrix);
    assert_eq!(all.len(), 6, "2 strategies × 3 majors: {matrix}");
    // The job's `mkdir -p reports`, before its rehearse line.
    std::fs::create_dir(sandbox.path().join("reports")).unwrap();
    for shard in &all {
        let mut with = env.clone();
        with.extend(shard.iter().map(|(k, v)| (*k, v.clone())));
        let (code, _) = sh(&sandbox, &nightly[1], &with);
        assert_eq!(code, 0, "the shard's line takes a failed threshold as the merge's to report");
    }
    let (code, stderr) = sh(&sandbox, &nightly[2], &env);
    assert_eq!(code, 1, "lock-and-wait fails its threshold on every major: {stderr}");
    let merged = json(&sandbox, "nightly.json");
    let reports = merged["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 6);
    for shard in &all {
        let major = shard["PG_IMAGE"].rsplit(':').next().unwrap();
        let found = reports.iter().any(|r| {
            r["strategy"] == shard["STRATEGY"].as_str()
                && r["postgres"]["version"].as_str().unwrap().starts_with(&format!("PostgreSQL {major}."))
        });
        assert!(found, "the report of {} is in the merge", shard["SHARD"]);
    }
    assert!(!stderr.contains("sent no report"), "{stderr}");
    // Each shard's report is in the merge as it wrote it, figure for figure.
    for shard in &all {
        let own = json(&sandbox, &format!("reports/{}.json", shard["SHARD"]));
        assert!(reports.contains(&own), "{} is read back whole", shard["SHARD"]);
    }
    assert_eq!(read(&sandbox, "nightly.xml").matches("<testsuite ").count(), 6);
    assert!(read(&sandbox, "nightly.html").contains("<svg"));
    let (code, _) = sh(&sandbox, &nightly[3], &env);
    assert_eq!(code, 1);
    let soak = read(&sandbox, "soak.xml");
    assert_eq!(soak.matches("<testcase ").count(), 2, "a testcase per scenario × strategy: {soak}");

    // GitLab: the merge request's check with Code Quality; the plan as a
    // child pipeline; one shard of it run, so the merge names the others
    // as missing and fails; the soak.
    let gitlab = rehearse_lines("gitlab/.gitlab-ci.yml");
    assert_eq!(gitlab.len(), 3, "{gitlab:?}");
    let (code, _) = sh(&sandbox, &gitlab[0], &env);
    assert_eq!(code, 0, "the line keeps the exit code for the end of the job");
    assert!(json(&sandbox, "gl-code-quality.json").is_array());
    sh(&sandbox, &gitlab[1], &env);
    let child = json(&sandbox, "shards.json");
    assert_eq!(child["include"][0]["local"], ".gitlab/rehearse-shard.yml");
    assert_eq!(child["rehearse-shard"]["extends"], ".rehearse-shard");
    let (code, _) = sh(&sandbox, &gitlab[2], &env);
    assert_eq!(code, 1);

    let shard_file = rehearse_lines("gitlab/rehearse-shard.yml");
    assert_eq!(shard_file.len(), 2, "{shard_file:?}");
    std::fs::remove_dir_all(sandbox.path().join("reports")).unwrap();
    std::fs::create_dir(sandbox.path().join("reports")).unwrap();
    let first = &shards(&child)[0];
    env.extend(first.iter().map(|(k, v)| (*k, v.clone())));
    sh(&sandbox, &shard_file[0], &env);
    let (code, stderr) = sh(&sandbox, &shard_file[1], &env);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("5 of 6 planned shards sent no report"), "{stderr}");
    let md = read(&sandbox, "nightly.md");
    assert!(md.contains("5 of 6 planned shards sent no report"), "{md}");
    let junit = read(&sandbox, "nightly.xml");
    assert!(junit.contains("threshold shards") && junit.contains("<failure"), "{junit}");
    sandbox.assert_clean();
}

#[test]
fn plan_prints_a_matrix_each_ci_accepts_for_the_shipped_scenarios() {
    let sandbox = Sandbox::new();
    let scenarios = repo("scenarios");
    let out = sandbox.run(&["plan", scenarios.to_str().unwrap(), "--matrix", "--majors", "13,15,17"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let github: Value = serde_json::from_slice(&out.stdout).unwrap();
    let include = github["include"].as_array().unwrap();
    // Every strategy of every shipped scenario, on each major.
    let mut strategies = 0;
    for f in std::fs::read_dir(&scenarios).unwrap().flatten() {
        let toml = std::fs::read_to_string(f.path()).unwrap();
        strategies += toml.lines().filter(|l| l.trim() == "[[strategy]]").count();
    }
    assert_eq!(include.len(), strategies * 3, "{github}");
    let names: std::collections::HashSet<&str> = include.iter().map(|e| e["shard"].as_str().unwrap()).collect();
    assert_eq!(names.len(), include.len(), "shard names are unique");
    for e in include {
        let name = e["shard"].as_str().unwrap();
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{name}");
        assert!(name.ends_with(&format!("-pg{}", e["major"].as_str().unwrap())), "{e}");
        assert_eq!(e["image"], format!("rehearse/postgres:{}", e["major"].as_str().unwrap()));
        assert!(e["scenario"].as_str().unwrap().ends_with(".toml") && e["strategy"].is_string(), "{e}");
    }
    let out = sandbox.run(&["plan", scenarios.to_str().unwrap(), "--matrix=gitlab", "--majors", "15"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let gitlab: Value = serde_json::from_slice(&out.stdout).unwrap();
    let matrix = gitlab["rehearse-shard"]["parallel"]["matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), strategies);
    // parallel:matrix takes strings (or lists of them) as values.
    assert!(matrix.iter().flat_map(|e| e.as_object().unwrap().values()).all(Value::is_string), "{gitlab}");
    let out = sandbox.run(&["plan", "no-such-dir", "--matrix"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn merge_refuses_a_file_that_is_not_a_report() {
    let sandbox = Sandbox::new();
    let other = sandbox.write("other.json", "{\"soak\": {}}");
    let out = sandbox.run(&["merge", other.to_str().unwrap(), "--json", "m.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a rehearse report"), "{}", text(&out.stderr));
    assert!(!sandbox.path().join("m.json").exists());
}
