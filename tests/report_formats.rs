//! The report's other formats: Markdown for a pull-request comment, JUnit
//! XML for CI reporters, and in a GitHub Actions job the step summary and
//! the annotations on the migration file's line.

use std::collections::BTreeSet;

use quick_xml::events::Event;
use rehearse::report::{MARKDOWN_LIMIT, MARKDOWN_MARKER, junit, markdown, markdown_many};
use serde_json::Value;

use crate::common::{Sandbox, heavy, text};
use crate::report_render::{naive, two_servers};

/// A testcase as a reporter reads it: name, and the failure's type.
#[derive(Debug)]
struct Case {
    name: String,
    failure: Option<String>,
}

/// Parses JUnit XML as GitLab's and GitHub's reporters do: suites of
/// cases, each perhaps with a failure. Panics if the XML is not well formed.
fn parse_junit(xml: &str) -> Vec<(String, Vec<Case>)> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut suites: Vec<(String, Vec<Case>)> = Vec::new();
    let attr = |e: &quick_xml::events::BytesStart, name: &str| -> Option<String> {
        e.attributes()
            .flatten()
            .find(|a| a.key.as_ref() == name.as_bytes())
            .map(|a| a.unescape_value().unwrap().to_string())
    };
    loop {
        match reader.read_event().expect("the JUnit is well-formed XML") {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testsuite" => suites.push((attr(&e, "name").unwrap(), Vec::new())),
                b"testcase" => {
                    let case = Case { name: attr(&e, "name").unwrap(), failure: None };
                    suites.last_mut().expect("a testcase is in a testsuite").1.push(case);
                }
                b"failure" => {
                    let case = suites.last_mut().unwrap().1.last_mut().expect("a failure is in a testcase");
                    case.failure = Some(attr(&e, "type").unwrap());
                }
                _ => {}
            },
            _ => {}
        }
    }
    suites
}

#[test]
fn markdown_of_the_outage() {
    let md = markdown(&naive());
    assert!(md.starts_with(MARKDOWN_MARKER));
    insta::assert_snapshot!("naive_outage_markdown", md);
}

#[test]
fn markdown_of_two_servers_is_one_table() {
    let md = markdown_many(&two_servers());
    // One table, a row per server, then each server's summary in detail.
    let rows = md.lines().filter(|l| l.starts_with("| add-column-default")).count();
    assert_eq!(rows, 2, "{md}");
    assert_eq!(md.matches("<details>").count(), 2, "{md}");
    insta::assert_snapshot!("two_servers_markdown", md);
}

#[test]
fn markdown_stays_under_the_limit_and_says_what_it_left_out() {
    let mut r = naive();
    let q = r.phases.baseline.queries.0[0].clone();
    for i in 0..3000 {
        r.phases.baseline.queries.0.push((format!("query_number_{i}_with_a_long_name"), q.1.clone()));
    }
    let md = markdown(&r);
    assert!(md.chars().count() <= MARKDOWN_LIMIT, "{} characters", md.chars().count());
    assert!(md.starts_with(MARKDOWN_MARKER));
    assert!(md.contains("left out"), "{}", &md[md.len() - 400..]);
}

#[test]
fn junit_of_the_outage_fails_as_the_verdict_does() {
    let r = naive();
    let xml = junit(std::slice::from_ref(&r));
    insta::assert_snapshot!("naive_outage_junit", xml);
    let suites = parse_junit(&xml);
    assert_eq!(suites.len(), 1);
    let cases = &suites[0].1;
    // A testcase per step, and one per threshold that applies.
    let steps = cases.iter().filter(|c| c.name.starts_with("step ")).count();
    assert_eq!(steps, r.migration.as_ref().unwrap().steps.len());
    let failed: BTreeSet<String> = cases.iter().filter_map(|c| c.failure.clone()).filter(|f| f != "step").collect();
    let violated: BTreeSet<String> = r.verdict.violations.iter().map(|v| v.threshold.to_string()).collect();
    assert!(!violated.is_empty());
    assert_eq!(failed, violated);
    assert!(cases.iter().any(|c| c.name == "threshold max_lock_wait"), "{cases:?}");
}

#[test]
fn junit_of_a_pass_has_no_failure() {
    let mut r = two_servers().remove(1);
    r.verdict.pass = true;
    r.verdict.violations.clear();
    let suites = parse_junit(&junit(&[r]));
    assert!(suites[0].1.iter().all(|c| c.failure.is_none()), "{:?}", suites[0].1);
    assert!(suites[0].1.len() > 2);
}

/// The outage from a migration file, in a GitHub Actions job: the step
/// summary gets the Markdown, the annotation points at the file's line of
/// the ALTER TABLE, and the JUnit's failures are the verdict's.
#[test]
fn a_github_job_gets_the_summary_annotations_and_junit() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let fixture = |name: &str| crate::common::repo(&format!("tests/fixtures/zero-config/{name}"));
    let (m, schema) = (fixture("add_status_v2.sql"), fixture("schema.sql"));
    let (m, schema) = (m.to_str().unwrap(), schema.to_str().unwrap());
    let dir = sandbox.path();
    let (json, md, xml, summary) =
        (dir.join("r.json"), dir.join("r.md"), dir.join("r.xml"), dir.join("step-summary.md"));
    std::fs::write(&summary, "earlier step's summary\n").unwrap();
    let args = ["run", "--migration", m, "--schema", schema, "--rows", "orders=200000", "--backend", "local"];
    let cq = dir.join("codequality.json");
    let files = [
        ["--json", json.to_str().unwrap()],
        ["--markdown", md.to_str().unwrap()],
        ["--junit", xml.to_str().unwrap()],
        ["--codequality", cq.to_str().unwrap()],
    ]
    .concat();
    let out = sandbox
        .command(&[&args[..], &files[..]].concat())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    // The ALTER TABLE is on line 2 of the file.
    let line = std::fs::read_to_string(m).unwrap().lines().position(|l| l.contains("ALTER TABLE")).unwrap() + 1;
    let want = format!("::error file={m},line={line},");
    let annotations: Vec<&str> = stdout.lines().filter(|l| l.starts_with("::error")).collect();
    assert!(annotations.iter().any(|a| a.starts_with(&want)), "{annotations:?}");
    assert!(annotations.len() <= 10);

    // GitLab's Code Quality: the step on its line, each violation on the file.
    let issues: Value = serde_json::from_str(&std::fs::read_to_string(&cq).unwrap()).unwrap();
    let issues = issues.as_array().unwrap();
    let on_step: Vec<&Value> = issues.iter().filter(|i| i["check_name"] == "rehearse/step").collect();
    assert_eq!(on_step.len(), 1, "{issues:?}");
    let at = &on_step[0]["location"];
    assert_eq!((at["path"].as_str(), at["lines"]["begin"].as_u64()), (Some(m), Some(line as u64)));
    assert_eq!(issues.len(), 1 + r["verdict"]["violations"].as_array().unwrap().len());
    assert!(issues.iter().all(|i| i["fingerprint"].as_str().is_some_and(|f| f.len() == 32)));

    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.starts_with(MARKDOWN_MARKER) && md.chars().count() <= MARKDOWN_LIMIT);
    assert!(md.contains("❌ FAIL") && md.contains("| # | step |"), "{md}");
    let appended = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(appended, format!("earlier step's summary\n{md}"), "appended, not overwritten");

    let suites = parse_junit(&std::fs::read_to_string(&xml).unwrap());
    let failed: BTreeSet<String> =
        suites[0].1.iter().filter_map(|c| c.failure.clone()).filter(|f| f != "step").collect();
    let violated: BTreeSet<String> = r["verdict"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["threshold"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(failed, violated);
    sandbox.assert_clean();
}

#[test]
fn two_reports_on_stdout_are_refused() {
    let sandbox = Sandbox::new();
    let scenario = crate::common::repo("scenarios/add-column-default.toml");
    let out = sandbox.run(&["run", scenario.to_str().unwrap(), "--json", "-", "--junit", "-"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("only one of"), "{}", text(&out.stderr));
}

#[test]
fn a_run_worse_than_its_baseline_lists_each_regression_and_fails() {
    use rehearse::report::regression::{Figure, apply, compare};
    let [now, fast] = <[rehearse::report::Report; 2]>::try_from(two_servers()).ok().unwrap();
    let mut now = now;
    // The baseline as `--baseline` reads it: written as JSON, read back.
    let baseline: rehearse::report::Report = serde_json::from_str(&fast.to_json()).unwrap();
    let found = compare(&now, &baseline, "previous.json", 0.25);
    let figures: Vec<Figure> = found.regressed.iter().map(|g| g.figure).collect();
    // The fast server's migration took 1.25 s and its requests waited
    // 1.19 s at most; this one's, 10.21 s and 10.17 s. Its p99s and
    // failures are the same: not regressions.
    assert_eq!(figures, [Figure::MigrationMs, Figure::WorkloadLockWaitMs], "{found:?}");
    assert!(found.compared > 4, "{found:?}");
    apply(&mut now, found);
    assert!(!now.verdict.pass);
    let text = rehearse::report::render(&now);
    assert!(text.contains("REGRESSIONS  against previous.json (tolerance +25%): 2 of"), "{text}");
    assert!(text.contains("the migration's wall time 1.25s → 10.21s"), "{text}");
    let suites = parse_junit(&junit(&[now]));
    let case = suites[0].1.iter().find(|c| c.name == "threshold max_regression").expect("a testcase");
    assert_eq!(case.failure.as_deref(), Some("max_regression"));
}

#[test]
fn a_baseline_with_no_figure_in_common_fails_the_verdict() {
    use rehearse::report::regression::{Regressions, apply};
    let mut r = naive();
    let found = Regressions { baseline: "b.json".into(), tolerance: 0.25, compared: 0, regressed: vec![] };
    r.verdict = rehearse::report::Verdict { pass: true, violations: vec![] };
    apply(&mut r, found);
    assert!(!r.verdict.pass);
    assert!(r.verdict.violations[0].message.contains("nothing was compared"), "{:?}", r.verdict);
}

#[test]
fn a_run_against_itself_has_no_regression() {
    use rehearse::report::regression::compare;
    let r = naive();
    let found = compare(&r, &r, "same.json", 0.0);
    assert!(found.compared > 3 && found.regressed.is_empty(), "{found:?}");
}

#[test]
fn a_report_read_back_from_its_json_is_the_same_report() {
    // What `--baseline` and `merge` rely on: every field the JSON holds is
    // read back as written.
    for r in std::iter::once(naive()).chain(two_servers()) {
        let json = r.to_json();
        let back: rehearse::report::Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_json(), json);
    }
}

#[test]
fn a_baseline_that_is_not_a_report_is_refused_before_the_run() {
    let sandbox = Sandbox::new();
    let scenario = crate::common::repo("scenarios/add-column-default.toml");
    let bad = sandbox.write("bad.json", "{\"hello\": 1}");
    for (path, says) in [(bad.to_str().unwrap(), "not a rehearse report"), ("/nonexistent/b.json", "No such file")] {
        let out = sandbox.run(&["run", scenario.to_str().unwrap(), "--baseline", path]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
}

/// Two runs of one scenario: the second, against the first, compares its
/// figures (whether noise on a loaded machine makes one a regression is
/// not this test's to say).
#[test]
fn a_second_run_is_compared_with_the_first() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox
        .write("small.toml", &crate::common::small_scenario("SELECT * FROM items WHERE id = $1", "ANALYZE items"));
    let (code, stdout, stderr, first) = crate::common::rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let previous = sandbox.write("previous.json", &first.unwrap().to_string());
    let (_, stdout, stderr, second) =
        crate::common::rehearse(&sandbox, &path, &["--baseline", previous.to_str().unwrap()]);
    let r = second.unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    let g = &r["regressions"];
    assert!(g["compared"].as_u64().unwrap() >= 3, "{g}");
    assert_eq!(g["tolerance"], 0.25);
    assert!(stdout.contains("REGRESSIONS  against"), "{stdout}");
}
