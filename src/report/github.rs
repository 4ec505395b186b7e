//! GitHub Actions: the Markdown appended to the job's summary
//! (`GITHUB_STEP_SUMMARY`), and an `::error` annotation on the migration
//! file's line of each step that failed, at most [`MAX_ANNOTATIONS`] (the
//! most GitHub shows of one step).

use std::io::Write;
use std::path::Path;

use super::Report;

/// GitHub shows at most 10 error annotations of one step.
pub const MAX_ANNOTATIONS: usize = 10;

/// Appends `markdown` to the job summary file at `path`.
pub fn append_summary(path: &Path, markdown: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path)?;
    f.write_all(markdown.as_bytes())?;
    f.write_all(b"\n")
}

/// A value escaped as a workflow command's property (`%`, `\r`, `\n`,
/// `:` and `,` are encoded).
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A workflow command's message, escaped.
fn data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Why a step of a migration file failed the run: its own error, or,
/// when the verdict failed, the workload's waits behind the migration
/// while the step ran (or held its locks).
pub(super) fn blame(r: &Report, s: &crate::migration::StepReport) -> Option<String> {
    if let Some(e) = &s.error {
        return Some(format!("step {} failed: {e}", s.index));
    }
    if r.verdict.pass {
        return None;
    }
    let until = s.held_until_s.unwrap_or(s.ended_s);
    let waits = r.locks.blocking.iter().filter(|e| {
        e.blocker == "migration" && e.waiter != "migration" && e.first_s <= until && e.last_s >= s.started_s
    });
    let worst = waits.max_by(|a, b| a.longest_wait_ms.total_cmp(&b.longest_wait_ms))?;
    let why = r.verdict.violations.first().map(|v| format!("; {}", v.message)).unwrap_or_default();
    Some(format!(
        "while step {} ran, {} waited up to {} for {} on {}{why}",
        s.index,
        worst.waiter,
        super::terminal::dur(worst.longest_wait_ms),
        worst.mode,
        worst.relation
    ))
}

/// The `::error` lines: one on the line of each migration-file step that
/// failed the run (see [`blame`]), then one per threshold that failed,
/// at most [`MAX_ANNOTATIONS`] in all. `path` turns a file as the report
/// names it (relative to its folder) into the path the job knows it by.
pub fn annotations(reports: &[Report], path: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut out = Vec::new();
    for r in reports {
        for s in r.migration.iter().chain(&r.rollback).flat_map(|m| &m.steps) {
            let (Some(file), Some(line)) = (&s.file, s.line) else { continue };
            let Some(why) = blame(r, s) else { continue };
            let title = property(&format!("rehearse {}: step {}", r.scenario, s.index));
            out.push(format!("::error file={},line={line},title={title}::{}", property(&path(file)), data(&why)));
        }
    }
    for r in reports {
        for v in &r.verdict.violations {
            let title = property(&format!("rehearse {}: {}", r.scenario, v.threshold));
            out.push(format!("::error title={title}::{}", data(&v.message)));
        }
    }
    out.truncate(MAX_ANNOTATIONS);
    out
}
