//! The verdict: the migration must complete, and the application must stay
//! within the scenario's thresholds.

use serde::Serialize;

use super::{Phases, ThresholdsInfo};
use crate::migration::{MigrationReport, Outcome};
use crate::observe::LockSummary;
use crate::scenario::duration::human;

/// Pass or fail.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    /// True when every threshold held and the migration completed.
    pub pass: bool,
    /// What did not hold.
    pub violations: Vec<Violation>,
}

/// One threshold that did not hold.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Violation {
    /// `migration`, `max_lock_wait`, `max_p99` or `max_error_rate`.
    pub threshold: String,
    /// What it is about: a query's name, `workload` or `migration`.
    pub subject: String,
    /// The measured figure (milliseconds or a fraction).
    pub measured: Option<f64>,
    /// The limit (milliseconds or a fraction).
    pub limit: Option<f64>,
    /// A sentence for people.
    pub message: String,
}

fn dur(ms: f64) -> String {
    human(std::time::Duration::from_secs_f64(ms.max(0.0) / 1000.0))
}

/// Judges a rehearsal.
/// Without a migration (a load-only run) the p99 and error-rate limits
/// apply to the whole run.
pub fn evaluate(
    th: &ThresholdsInfo,
    migration: Option<&MigrationReport>,
    locks: &LockSummary,
    phases: &Phases,
) -> Verdict {
    let mut v = Vec::new();
    let load_only = migration.is_none();
    if let Some(migration) = migration.filter(|m| m.outcome != Outcome::Ok) {
        let failed = migration.steps.iter().find(|s| s.error.is_some());
        let message = match (migration.outcome, failed) {
            (Outcome::Cancelled, _) => "the migration did not finish within max_duration and was cancelled".to_string(),
            (_, Some(step)) => format!(
                "the migration failed at step {}: {}",
                step.index,
                step.error.as_ref().map(|e| e.to_string()).unwrap_or_default()
            ),
            _ => "the migration failed".to_string(),
        };
        v.push(Violation {
            threshold: "migration".into(),
            subject: "migration".into(),
            measured: None,
            limit: None,
            message,
        });
    }
    if let Some(limit) = th.max_lock_wait_ms {
        let measured = locks.workload_longest_wait_ms;
        if measured > limit {
            v.push(Violation {
                threshold: "max_lock_wait".into(),
                subject: "workload".into(),
                measured: Some(measured),
                limit: Some(limit),
                message: format!("a workload request waited {} on a lock (limit {})", dur(measured), dur(limit)),
            });
        }
    }
    if let Some(limit) = th.max_p99_ms {
        let when = if load_only { "over the run" } else { "during the migration" };
        for (name, q) in &phases.under_test(load_only).queries.0 {
            if let Some(p99) = q.p99_ms.filter(|p| *p > limit) {
                v.push(Violation {
                    threshold: "max_p99".into(),
                    subject: name.clone(),
                    measured: Some(p99),
                    limit: Some(limit),
                    message: format!("{name}: p99 {when} was {} (limit {})", dur(p99), dur(limit)),
                });
            }
        }
    }
    if let Some(limit) = th.max_error_rate {
        let judged = phases.judged(load_only);
        let window = if load_only { "over the run" } else { "from the migration's start to the end of the run" };
        for (name, _) in &phases.baseline.queries.0 {
            let each = judged.iter().filter_map(|p| p.queries.get(name));
            let (errors, count) = each.fold((0, 0), |(e, c), q| (e + q.errors, c + q.count));
            if count == 0 {
                continue;
            }
            let rate = errors as f64 / count as f64;
            if rate > limit {
                v.push(Violation {
                    threshold: "max_error_rate".into(),
                    subject: name.clone(),
                    measured: Some(rate),
                    limit: Some(limit),
                    message: format!(
                        "{name}: {errors} of {count} requests due {window} failed ({:.2}%, limit {:.2}%)",
                        rate * 100.0,
                        limit * 100.0
                    ),
                });
            }
        }
    }
    Verdict { pass: v.is_empty(), violations: v }
}
