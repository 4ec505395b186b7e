//! The verdict: the run must be whole (the server did not fail under it,
//! and every interference it needed ran), the migration must complete, and
//! the application must stay within the scenario's thresholds.

use serde::Serialize;

use super::{FaultReport, PhaseReport, Phases, ThresholdsInfo};
use crate::interference::{InterferenceOutcome, InterferenceReport};
use crate::migration::{MigrationReport, Outcome};
use crate::observe::LockSummary;
use crate::scenario::P99_RATIO_FLOOR;
use crate::scenario::duration::human;

/// Pass or fail.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Verdict {
    /// True when every threshold held and the migration completed.
    pub pass: bool,
    /// What did not hold.
    pub violations: Vec<Violation>,
}

/// What a violation is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The server failed under the run.
    Server,
    /// The migration did not complete.
    Migration,
    /// Its rollback (`--rollback`) did not complete.
    Rollback,
    /// An interference the run needed failed.
    Interference,
    /// `max_lock_wait`
    MaxLockWait,
    /// `max_p99`
    MaxP99,
    /// `max_error_rate`
    MaxErrorRate,
    /// `max_p99_ratio`
    MaxP99Ratio,
    /// `max_broken_queries`
    MaxBrokenQueries,
    /// `max_lost_writes`
    MaxLostWrites,
    /// `max_replica_lag`
    MaxReplicaLag,
    /// `max_replica_lag_bytes`
    MaxReplicaLagBytes,
    /// `max_regression`, against `--baseline`
    MaxRegression,
    /// Every shard of a `rehearse merge --plan` sent its report.
    Shards,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Check::Server => "server",
            Check::Migration => "migration",
            Check::Rollback => "rollback",
            Check::Interference => "interference",
            Check::MaxLockWait => "max_lock_wait",
            Check::MaxP99 => "max_p99",
            Check::MaxErrorRate => "max_error_rate",
            Check::MaxP99Ratio => "max_p99_ratio",
            Check::MaxBrokenQueries => "max_broken_queries",
            Check::MaxLostWrites => "max_lost_writes",
            Check::MaxReplicaLag => "max_replica_lag",
            Check::MaxReplicaLagBytes => "max_replica_lag_bytes",
            Check::MaxRegression => "max_regression",
            Check::Shards => "shards",
        })
    }
}

/// One threshold (or condition of a whole run) that did not hold.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Violation {
    /// What did not hold.
    pub threshold: Check,
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

/// What a rehearsal measured, for the verdict.
pub struct Judged<'a> {
    /// The thresholds.
    pub thresholds: &'a ThresholdsInfo,
    /// The migration, if the scenario has one and it started.
    pub migration: Option<&'a MigrationReport>,
    /// Whether the scenario has a migration (it may not have started).
    pub has_strategy: bool,
    /// The rollback, when `--rollback` rehearsed one.
    pub rollback: Option<&'a MigrationReport>,
    /// The lock observer's summary.
    pub locks: &'a LockSummary,
    /// The phases.
    pub phases: &'a Phases,
    /// The interfering statements.
    pub interference: &'a [InterferenceReport],
    /// A fault of the server, if one cut the run short.
    pub fault: Option<&'a FaultReport>,
    /// The replicas' lag, when standbys were measured.
    pub replication: Option<&'a super::Replication>,
    /// The queries the migration broke.
    pub broken: &'a [super::BrokenQuery],
    /// The acknowledged writes, checked after the run.
    pub ledger: Option<&'a crate::ledger::LedgerReport>,
}

fn violation(threshold: Check, subject: &str, message: String) -> Violation {
    Violation { threshold, subject: subject.into(), measured: None, limit: None, message }
}

/// Judges a rehearsal.
/// Without a migration (a load-only run) the p99 and error-rate limits
/// apply to the whole run.
pub fn evaluate(j: &Judged<'_>) -> Verdict {
    let (th, migration, locks, phases) = (j.thresholds, j.migration, j.locks, j.phases);
    let mut v = Vec::new();
    let load_only = !j.has_strategy;
    if let Some(f) = j.fault {
        v.push(violation(Check::Server, "server", f.sentence()));
    }
    if j.has_strategy && migration.is_none() {
        v.push(violation(Check::Migration, "migration", "the migration never started".into()));
    }
    for i in j.interference.iter().filter(|i| i.outcome == InterferenceOutcome::Failed && !i.optional) {
        let error = i.error.as_ref().map(|e| e.to_string()).unwrap_or_default();
        let message = format!(
            "interference {} failed, so the run did not rehearse what it was meant to (mark it `optional = true` if that is fine): {error}",
            i.name
        );
        v.push(violation(Check::Interference, &i.name, message));
    }
    for (check, m) in [(Check::Migration, migration), (Check::Rollback, j.rollback)] {
        if let Some(m) = m.filter(|m| m.outcome != Outcome::Ok) {
            v.push(violation(check, &check.to_string(), incomplete(check, m)));
        }
    }
    if let Some(limit) = th.max_lock_wait_ms {
        let measured = locks.workload_longest_wait_ms;
        if measured > limit {
            v.push(Violation {
                threshold: Check::MaxLockWait,
                subject: "workload".into(),
                measured: Some(measured),
                limit: Some(limit),
                message: format!(
                    "a workload request waited {} on a lock{} (limit {})",
                    dur(measured),
                    longest_wait_when(locks, j.rollback),
                    dur(limit)
                ),
            });
        }
    }
    if let Some(limit) = th.max_p99_ms {
        for (when, phase) in under_test(phases, load_only) {
            for (name, q) in &phase.queries.0 {
                if let Some(p99) = q.p99_ms.filter(|p| *p > limit) {
                    v.push(Violation {
                        threshold: Check::MaxP99,
                        subject: name.clone(),
                        measured: Some(p99),
                        limit: Some(limit),
                        message: format!("{name}: p99 {when} was {} (limit {})", dur(p99), dur(limit)),
                    });
                }
            }
        }
    }
    if let Some(ratio) = th.max_p99_ratio.filter(|_| !load_only) {
        for (when, phase) in under_test(phases, load_only) {
            v.extend(p99_ratio(phase, &phases.baseline, when, ratio));
        }
    }
    if let Some(limit) = th.max_error_rate {
        let judged = phases.judged(load_only);
        let window = match (load_only, j.rollback.is_some()) {
            (true, _) => "over the run",
            (false, false) => "from the migration's start to the end of the run",
            (false, true) => "from the migration's start to the end of the run (its rollback included)",
        };
        for (name, _) in &phases.baseline.queries.0 {
            let each = judged.iter().filter_map(|p| p.queries.get(name));
            let (errors, count) = each.fold((0, 0), |(e, c), q| (e + q.errors, c + q.count));
            if count == 0 {
                continue;
            }
            let rate = errors as f64 / count as f64;
            if rate > limit {
                v.push(Violation {
                    threshold: Check::MaxErrorRate,
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
    v.extend(super::broken::judge(th.max_broken_queries, j.broken));
    v.extend(super::ledger::judge(th.max_lost_writes, j.ledger));
    v.extend(super::replication::judge(th, j.replication));
    Verdict { pass: v.is_empty(), violations: v }
}

/// Why a migration (or its rollback) did not complete, for people.
fn incomplete(check: Check, m: &MigrationReport) -> String {
    let what = if check == Check::Rollback { "the rollback" } else { "the migration" };
    let failed = m.steps.iter().find(|s| s.error.is_some());
    let at = |step: &crate::migration::StepReport| {
        let error = step.error.as_ref().map(|e| e.to_string()).unwrap_or_default();
        match &step.name {
            Some(name) => format!("step {} ({name}): {error}", step.index),
            None => format!("step {}: {error}", step.index),
        }
    };
    match (m.outcome, failed) {
        (Outcome::Cancelled, _) => format!("{what} did not finish within max_duration and was cancelled"),
        (Outcome::Interrupted, Some(step)) => format!("{what} was interrupted at {}", at(step)),
        (_, Some(step)) => format!("{what} failed at {}", at(step)),
        _ => format!("{what} failed"),
    }
}

/// The phases the p99 thresholds judge, each with how a message names it:
/// the migration's, and the rollback's when one ran; the baseline of a
/// load-only run.
fn under_test(phases: &Phases, load_only: bool) -> Vec<(&'static str, &PhaseReport)> {
    if load_only {
        return vec![("over the run", &phases.baseline)];
    }
    let mut out = vec![("during the migration", &phases.during)];
    out.extend(phases.rollback.as_ref().map(|r| ("during the rollback", r)));
    out
}

/// ` during the rollback` when the longest wait of a workload request
/// began while the rollback ran; empty otherwise.
fn longest_wait_when(locks: &LockSummary, rollback: Option<&MigrationReport>) -> &'static str {
    let Some(r) = rollback else { return "" };
    let longest = locks
        .blocking
        .iter()
        .filter(|e| e.waiter == "workload")
        .max_by(|a, b| a.longest_wait_ms.total_cmp(&b.longest_wait_ms));
    match longest {
        Some(e) if e.longest_began_s >= r.started_s => " during the rollback",
        Some(_) => " during the migration",
        None => "",
    }
}

/// Queries whose p99 in `phase` is more than `ratio` times their baseline
/// p99, and more than [`P99_RATIO_FLOOR`] above it.
fn p99_ratio(phase: &PhaseReport, baseline: &PhaseReport, when: &str, ratio: f64) -> Vec<Violation> {
    let floor = crate::units::millis(P99_RATIO_FLOOR);
    let mut v = Vec::new();
    for (name, q) in &phase.queries.0 {
        let (Some(during), Some(base)) = (q.p99_ms, baseline.queries.get(name).and_then(|b| b.p99_ms)) else {
            continue;
        };
        let limit = (base * ratio).max(base + floor);
        if during > limit {
            v.push(Violation {
                threshold: Check::MaxP99Ratio,
                subject: name.clone(),
                measured: Some(during),
                limit: Some(limit),
                message: format!(
                    "{name}: p99 {when} was {} against {} in the baseline ({:.1}×, limit {ratio}× and {} above it)",
                    dur(during),
                    dur(base),
                    during / base.max(1e-6),
                    dur(floor)
                ),
            });
        }
    }
    v
}
