//! The report as JUnit XML, for CI test reporters (GitLab's, and GitHub's
//! common actions): one `<testsuite>` per report, one `<testcase>` per
//! threshold that applies and per migration step. A failure carries the
//! measured figure and the limit. The format read is the one those
//! reporters share: `testsuites > testsuite[name tests failures errors
//! skipped time] > testcase[name classname time] > failure[message type]`,
//! with the details as the failure's text.

use std::fmt::Write;

use quick_xml::escape::escape;

use super::Report;
use super::verdict::{Check, Violation};

/// One testcase: its name, its time in seconds, and its failures.
struct Case {
    name: String,
    time_s: f64,
    failures: Vec<String>,
    /// The failure's one-line message.
    message: Option<String>,
    kind: String,
}

/// The JUnit XML of `reports`.
pub fn junit(reports: &[Report]) -> String {
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let all: Vec<(String, Vec<Case>, f64)> =
        reports.iter().map(|r| (suite_name(r), cases(r), r.timeline.end_s)).collect();
    let tests: usize = all.iter().map(|(_, c, _)| c.len()).sum();
    let failures: usize = all.iter().map(|(_, c, _)| c.iter().filter(|c| !c.failures.is_empty()).count()).sum();
    let _ = writeln!(o, "<testsuites name=\"rehearse\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\">");
    for ((name, cases, time), r) in all.iter().zip(reports) {
        let failed = cases.iter().filter(|c| !c.failures.is_empty()).count();
        let _ = writeln!(
            o,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\" time=\"{time:.3}\">",
            escape(name.as_str()),
            cases.len()
        );
        let class = format!("rehearse.{}.{}", r.scenario, r.strategy.as_deref().unwrap_or("load-only"));
        for c in cases {
            let _ = write!(
                o,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                escape(c.name.as_str()),
                escape(class.as_str()),
                c.time_s
            );
            if c.failures.is_empty() {
                let _ = writeln!(o, "/>");
                continue;
            }
            let message = c.message.clone().unwrap_or_default();
            let _ = writeln!(
                o,
                ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                escape(message.as_str()),
                escape(c.kind.as_str()),
                escape(c.failures.join("\n").as_str())
            );
        }
        let summary = super::render(r);
        let _ = writeln!(o, "    <system-out>{}</system-out>\n  </testsuite>", escape(summary.as_str()));
    }
    o.push_str("</testsuites>\n");
    o
}

fn suite_name(r: &Report) -> String {
    let version: Vec<&str> = r.postgres.version.split_whitespace().take(2).collect();
    let at = r.postgres.image.clone().unwrap_or_else(|| r.postgres.backend.to_string());
    let strategy = r.strategy.as_deref().unwrap_or("load only");
    format!("rehearse {} · {strategy} · {} ({at})", r.scenario, version.join(" "))
}

/// The checks that apply to `r`: the run's own conditions, each threshold
/// the scenario sets, and any other a violation names.
fn checks(r: &Report) -> Vec<Check> {
    let t = &r.thresholds;
    let mut checks = vec![Check::Server];
    let migrated = r.strategy.is_some();
    let set = [
        (Check::Migration, migrated),
        (Check::Rollback, r.rollback.is_some()),
        (Check::Interference, !r.timeline.interference.is_empty()),
        (Check::MaxLockWait, t.max_lock_wait_ms.is_some()),
        (Check::MaxP99, t.max_p99_ms.is_some()),
        (Check::MaxErrorRate, t.max_error_rate.is_some()),
        (Check::MaxP99Ratio, t.max_p99_ratio.is_some()),
        (Check::MaxBrokenQueries, migrated),
        (Check::MaxLostWrites, r.ledger.is_some()),
        (Check::MaxReplicaLag, t.max_replica_lag_ms.is_some()),
        (Check::MaxReplicaLagBytes, t.max_replica_lag_bytes.is_some()),
        (Check::MaxRegression, r.regressions.is_some()),
    ];
    checks.extend(set.iter().filter(|(_, on)| *on).map(|(c, _)| *c));
    for v in &r.verdict.violations {
        if !checks.contains(&v.threshold) {
            checks.push(v.threshold);
        }
    }
    checks
}

/// A violation with its figures: `… (measured 2310, limit 500)`.
fn failure(v: &Violation) -> String {
    let figures = match (v.measured, v.limit) {
        (Some(m), Some(l)) => format!(" [measured {m}, limit {l}]"),
        (Some(m), None) => format!(" [measured {m}]"),
        (None, Some(l)) => format!(" [limit {l}]"),
        (None, None) => String::new(),
    };
    if v.message.starts_with(&v.subject) {
        format!("{}{figures}", v.message)
    } else {
        format!("{}: {}{figures}", v.subject, v.message)
    }
}

fn cases(r: &Report) -> Vec<Case> {
    let mut cases: Vec<Case> = checks(r)
        .into_iter()
        .map(|check| {
            let hits: Vec<&Violation> = r.verdict.violations.iter().filter(|v| v.threshold == check).collect();
            Case {
                name: format!("threshold {check}"),
                time_s: 0.0,
                message: hits.first().map(|v| v.message.clone()),
                failures: hits.iter().map(|v| failure(v)).collect(),
                kind: check.to_string(),
            }
        })
        .collect();
    for s in r.migration.iter().flat_map(|m| &m.steps) {
        let what = s.name.clone().unwrap_or_else(|| super::terminal::shorten(&s.sql, 80));
        let error = s.error.as_ref().map(|e| e.to_string());
        let at = match (&s.file, s.line) {
            (Some(f), Some(l)) => format!(" at {f}:{l}"),
            _ => String::new(),
        };
        cases.push(Case {
            name: format!("step {}: {what}", s.index),
            time_s: s.duration_ms / 1000.0,
            message: error.clone(),
            failures: error.map(|e| format!("step {}{at} failed: {e}\n{}", s.index, s.sql)).into_iter().collect(),
            kind: "step".into(),
        });
    }
    cases
}
