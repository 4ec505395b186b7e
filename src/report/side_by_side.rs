//! Several rehearsals of one scenario on different servers (one per
//! `--pg-image` or per `versions` entry), as one table with a column per
//! server, so that what changed between major versions shows at a glance.

use std::fmt::Write;

use super::Report;
use super::terminal::{count, dur, opt_dur};
use crate::migration::Outcome;

/// One row: a label and one cell per report.
fn row(w: &mut String, label: &str, cells: impl Iterator<Item = String>, width: usize) {
    let mut line = format!("  {label:<34}");
    for c in cells {
        let _ = write!(line, " {c:<width$}");
    }
    let _ = writeln!(w, "{}", line.trim_end());
}

/// Renders `reports` side by side. The first line names the scenario and
/// the strategy; every row says what it measured and over which window.
pub fn render_side_by_side(reports: &[Report]) -> String {
    let mut o = String::new();
    let w = &mut o;
    let Some(first) = reports.first() else { return o };
    let _ = writeln!(
        w,
        "rehearse · {} · strategy {} · {} servers · seed {} · scale {}",
        first.scenario,
        first.strategy.as_deref().unwrap_or("none (load only)"),
        reports.len(),
        first.seed,
        first.scale
    );
    let heads: Vec<String> =
        reports.iter().map(|r| r.postgres.image.clone().unwrap_or_else(|| r.postgres.backend.to_string())).collect();
    let width = heads.iter().map(|h| h.chars().count()).max().unwrap_or(0).max(22);
    let cells = |f: &dyn Fn(&Report) -> String| reports.iter().map(f).collect::<Vec<_>>().into_iter();

    row(w, "", heads.iter().cloned(), width);
    row(
        w,
        "server",
        // "PostgreSQL 15.18", without the build details.
        cells(&|r| r.postgres.version.split_whitespace().take(2).collect::<Vec<_>>().join(" ")),
        width,
    );
    row(
        w,
        "migration (whole)",
        cells(&|r| {
            let Some(m) = &r.migration else { return "none (load only)".into() };
            let outcome = match m.outcome {
                Outcome::Ok => "ok",
                Outcome::Failed => "FAILED",
                Outcome::Cancelled => "CANCELLED",
                Outcome::Interrupted => "INTERRUPTED",
            };
            format!("{outcome} in {}", dur(m.total_ms))
        }),
        width,
    );
    row(
        w,
        "migration waiting for locks",
        cells(&|r| r.migration.as_ref().map_or("-".into(), |m| dur(m.lock_wait_ms))),
        width,
    );
    row(
        w,
        "tables rewritten",
        cells(&|r| {
            let steps = r.migration.iter().flat_map(|m| &m.steps);
            let mut t: Vec<&str> = steps.flat_map(|s| s.rewrote.iter().map(String::as_str)).collect();
            t.dedup();
            if t.is_empty() { "none".into() } else { t.join(", ") }
        }),
        width,
    );
    row(w, "longest workload lock wait", cells(&|r| dur(r.locks.workload_longest_wait_ms)), width);
    row(w, "most backends waiting at once", cells(&|r| r.locks.max_waiting.to_string()), width);
    for q in &first.workload.queries {
        row(
            w,
            &format!("{} p99 baseline → during", q.name),
            cells(&|r| {
                let get = |p: &super::PhaseReport| p.queries.get(&q.name).and_then(|s| s.p99_ms);
                format!("{} → {}", opt_dur(get(&r.phases.baseline)), opt_dur(get(&r.phases.during)))
            }),
            width,
        );
        row(
            w,
            &format!("{} failed from migration on", q.name),
            cells(&|r| {
                let (errors, total, _) = r.failures_since_migration(&q.name);
                format!("{} of {}", count(errors), count(total))
            }),
            width,
        );
    }
    row(w, "pool timeouts (whole run)", cells(&|r| count(r.pool.timeouts)), width);
    row(w, "verdict", cells(&|r| if r.verdict.pass { "PASS".into() } else { "FAIL".into() }), width);

    let _ = writeln!(w);
    for (head, r) in heads.iter().zip(reports) {
        for warning in &r.warnings {
            let _ = writeln!(w, "  warning ({head}): {warning}");
        }
        if r.verdict.pass {
            let _ = writeln!(w, "  ✓ {head}: every threshold held");
        }
        for v in &r.verdict.violations {
            let _ = writeln!(w, "  ✗ {head}: {}: {}", v.threshold, v.message);
        }
    }
    o
}

/// The reports of several servers as one JSON document:
/// `{"reports": [ ... ]}`, one report per server, in order.
pub fn to_json_many(reports: &[Report]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({ "reports": reports })).expect("the reports serialize")
}
