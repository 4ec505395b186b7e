//! The report as a GitLab Code Quality report (`artifacts:reports:
//! codequality`): a JSON array of issues, each with a description, a check
//! name, a fingerprint, a severity and a location. A step of a migration
//! file that failed the run (its error, or the workload's waits behind it;
//! see `github::blame`) is an issue on its line; each violation of the
//! verdict is an issue on the first line of the file rehearsed (the first
//! migration file, or the scenario).

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Report;

/// One Code Quality issue.
#[derive(Debug, Serialize)]
struct Issue {
    description: String,
    check_name: String,
    fingerprint: String,
    severity: &'static str,
    location: Location,
}

#[derive(Debug, Serialize)]
struct Location {
    path: String,
    lines: Lines,
}

#[derive(Debug, Serialize)]
struct Lines {
    begin: usize,
}

/// A fingerprint that stays the same across runs for the same finding (so
/// that GitLab tracks it between pipelines): the check, the file, the line
/// and the subject, not the measured figure.
fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The Code Quality JSON of `reports`. `path` gives a migration file's
/// path as the repository knows it; `default_path` is the file rehearsed.
pub fn codequality(reports: &[Report], path: &dyn Fn(&str) -> String, default_path: &str) -> String {
    let mut issues = Vec::new();
    for r in reports {
        let steps = r.migration.iter().chain(&r.rollback).flat_map(|m| &m.steps);
        let first_file = steps.clone().find_map(|s| s.file.as_deref()).map(path);
        let before = issues.len();
        for s in steps {
            let (Some(file), Some(line)) = (&s.file, s.line) else { continue };
            let Some(why) = super::github::blame(r, s) else { continue };
            let file = path(file);
            issues.push(Issue {
                description: format!("rehearse {}: {why}", r.scenario),
                check_name: "rehearse/step".into(),
                fingerprint: fingerprint(&["step", &file, &line.to_string(), &r.scenario]),
                severity: "blocker",
                location: Location { path: file, lines: Lines { begin: line } },
            });
        }
        let file = first_file.unwrap_or_else(|| default_path.to_string());
        let on_a_line = issues.len() > before;
        // A failed step is already an issue on its line.
        for v in r.verdict.violations.iter().filter(|v| !(on_a_line && v.threshold == super::Check::Migration)) {
            let check = v.threshold.to_string();
            issues.push(Issue {
                description: format!("rehearse {}: {}", r.scenario, v.message),
                check_name: format!("rehearse/{check}"),
                fingerprint: fingerprint(&[
                    &check,
                    &file,
                    &r.scenario,
                    r.strategy.as_deref().unwrap_or(""),
                    &v.subject,
                ]),
                severity: "critical",
                location: Location { path: file.clone(), lines: Lines { begin: 1 } },
            });
        }
    }
    serde_json::to_string_pretty(&issues).expect("serializes")
}
