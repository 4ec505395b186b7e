//! A report assembled from what one timeline measured: its phases cut by
//! the phase clock, its fault placed on the clock, and its verdict.

use std::time::{Duration, Instant};

use super::{FaultReport, Judged, Named, PhaseReport, Phases, PostgresInfo, QueryInfo, Report};
use super::{ThresholdsInfo, Timeline, WorkloadInfo, evaluate};
use crate::clock::{Phase, PhaseClock, Window};
use crate::datagen::LoadedTable;
use crate::interference::InterferenceReport;
use crate::migration::MigrationReport;
use crate::observe::LockSummary;
use crate::observe::cdc::CdcStats;
use crate::observe::lag::ReplicaLag;
use crate::observe::plans::{CheckRun, PlanCheck};
use crate::observe::wal::WalSample;
use crate::postgres::Fault;
use crate::scenario::CdcSpec;
use crate::scenario::{Scenario, Strategy};
use crate::units::{millis, secs};
use crate::workload::{PoolStats, QueryResult};

/// What one timeline measured, on its clock.
pub struct Measured {
    /// The clock the timeline ran on.
    pub clock: std::sync::Arc<PhaseClock>,
    /// When it ended: the fault's moment when one cut it short.
    pub end: Instant,
    /// The migration, when it started.
    pub migration: Option<MigrationReport>,
    /// Its rollback, when rehearsed.
    pub rollback: Option<MigrationReport>,
    /// A fault of the server.
    pub fault: Option<Fault>,
    /// Each query's recorded results.
    pub results: Vec<QueryResult>,
    /// The application pool's figures.
    pub pool: PoolStats,
    /// The interfering sessions.
    pub interference: Vec<InterferenceReport>,
    /// What the lock observer saw.
    pub locks: LockSummary,
    /// Each standby's replay lag, when standbys were measured.
    pub replicas: Vec<ReplicaLag>,
    /// Time between lag samples, in milliseconds.
    pub lag_interval_ms: f64,
    /// The workload's plans before and after the migration, when it ran.
    pub plans: Option<PlanCheck>,
    /// The `[[workload.check]]` entries, run once after the migration.
    pub checks: Vec<CheckRun>,
    /// The server's WAL position, sampled over the run.
    pub wal: Vec<WalSample>,
    /// The CDC consumer, when `[cdc]` asked for one: its slot's lag is the
    /// last of `replicas`.
    pub cdc: Option<(CdcSpec, CdcStats)>,
    /// The workload's acknowledged writes, checked after the run.
    pub ledger: Option<crate::ledger::LedgerReport>,
    /// The pooler in the path, and what `SHOW POOLS` said over the run.
    pub pooler: Option<super::PoolerRun>,
}

/// What a report says about the run beside its measurements.
pub struct Run<'a> {
    /// The scenario rehearsed.
    pub scenario: &'a Scenario,
    /// The strategy applied; `None` for a load-only run.
    pub strategy: Option<&'a Strategy>,
    /// The server.
    pub postgres: PostgresInfo,
    /// The tables, as loaded.
    pub tables: Vec<LoadedTable>,
    /// The replicas' targets, when there were any.
    pub replicas: Vec<String>,
    /// Things the user should know.
    pub warnings: Vec<String>,
}

/// The migration waits only while one of its steps runs, so no wait of
/// its is longer than its longest step. The observer's ages come from the
/// server's clock (`statement_timestamp() - waitstart`), a step's from the
/// harness's monotonic one; when the system clock is slewed the two drift
/// apart by a few ms over seconds, and the step's clock is the one kept.
fn bound_migration_waits<'a>(locks: &mut LockSummary, runs: impl Iterator<Item = &'a MigrationReport>) {
    let Some(bound) = runs.flat_map(|m| m.steps.iter().map(|s| s.duration_ms)).reduce(f64::max) else { return };
    let role = crate::postgres::Role::Migration.to_string();
    for e in locks.blocking.iter_mut().filter(|e| e.waiter == role) {
        e.longest_wait_ms = e.longest_wait_ms.min(bound);
    }
    if let Some(w) = locks.longest_wait_by_role.get_mut(&role) {
        *w = w.min(bound);
    }
    if locks.longest_wait_role.as_deref() == Some(role.as_str()) {
        locks.longest_wait_ms = locks.longest_wait_ms.min(bound);
    }
}

/// The report of one timeline: what it measured, judged by the
/// scenario's thresholds.
pub fn build(run: Run<'_>, measured: Measured) -> Report {
    let Run { scenario, strategy, postgres, tables, replicas: replica_targets, warnings } = run;
    let Measured {
        clock,
        end,
        migration,
        rollback,
        fault,
        results,
        pool,
        interference,
        locks,
        replicas,
        lag_interval_ms,
        plans,
        checks,
        wal,
        cdc,
        ledger,
        pooler,
    } = measured;
    let mut replicas = replicas;
    let cdc = cdc.and_then(|(spec, stats)| {
        let lag = replicas.pop()?;
        Some(super::replication::Cdc { plugin: spec.plugin, rate: spec.rate, stats, lag })
    });
    let (mut migration, mut rollback, mut locks) = (migration, rollback, locks);
    bound_migration_waits(&mut locks, migration.iter().chain(rollback.iter()));
    for m in migration.iter_mut().chain(rollback.iter_mut()) {
        super::progress::annotate(m, &tables);
    }
    let mut warnings = warnings;
    warnings.extend(super::autovacuum::warnings(strategy, migration.as_ref(), &locks, postgres.deadlock_timeout_ms));
    let t = scenario.timeline;
    let end_s = clock.offset(end);
    let phases = phases(&clock, end_s, migration.is_some(), rollback.is_some(), &results);
    let fault = fault.map(|f| {
        let at_s = clock.offset(f.at);
        FaultReport {
            kind: f.kind,
            at_s,
            phase: clock.phase_of(f.at),
            during_migration: migration.as_ref().is_some_and(|m| at_s >= m.started_s && at_s <= m.ended_s + 0.5),
            detail: f.detail,
        }
    });
    let ms = millis;
    let thresholds = ThresholdsInfo {
        max_lock_wait_ms: scenario.thresholds.max_lock_wait.map(ms),
        max_p99_ms: scenario.thresholds.max_p99.map(ms),
        max_error_rate: scenario.thresholds.max_error_rate,
        max_p99_ratio: scenario.thresholds.max_p99_ratio,
        max_broken_queries: scenario.thresholds.max_broken_queries,
        max_lost_writes: scenario.thresholds.max_lost_writes,
        max_replica_lag_ms: scenario.thresholds.max_replica_lag.map(ms),
        max_replica_lag_bytes: scenario.thresholds.max_replica_lag_bytes,
        max_regression: scenario.thresholds.max_regression,
        defaults: scenario.thresholds.defaults,
    };
    let replication = super::replication::build(lag_interval_ms, replicas, &phases);
    for step in migration.iter_mut().chain(rollback.iter_mut()).flat_map(|m| m.steps.iter_mut()) {
        step.wal_bytes = crate::observe::wal::bytes_between(&wal, step.started_s, step.ended_s);
    }
    let wal = crate::observe::wal::report(&wal, &phase_windows(&phases));
    let pooler = pooler.map(|p| super::pooler::build(p, &phase_windows(&phases)));
    let sqls: Vec<(String, String)> = scenario
        .workload
        .queries
        .iter()
        .map(|q| (q.name.clone(), q.statements.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("; ")))
        .collect();
    let mut broken = super::broken::find(&sqls, &results, migration.as_ref(), rollback.as_ref());
    broken.extend(super::broken::of_checks(&checks, migration.as_ref()));
    let verdict = evaluate(&Judged {
        thresholds: &thresholds,
        migration: migration.as_ref(),
        has_strategy: strategy.is_some(),
        rollback: rollback.as_ref(),
        locks: &locks,
        phases: &phases,
        interference: &interference,
        fault: fault.as_ref(),
        replication: replication.as_ref(),
        broken: &broken,
        ledger: ledger.as_ref(),
    });
    let replica = (!replica_targets.is_empty()).then(|| replica_targets.join(", "));
    Report {
        scenario: scenario.name.clone(),
        strategy: strategy.map(|s| s.name.clone()),
        seed: scenario.seed,
        scale: scenario.scale,
        postgres,
        tables,
        workload: WorkloadInfo {
            pool_size: scenario.workload.pool_size,
            pool_timeout_ms: ms(scenario.workload.pool_timeout),
            queries: scenario.workload.queries.iter().map(|q| QueryInfo::new(q, replica.is_some())).collect(),
            replica,
        },
        timeline: Timeline {
            migrate_at_s: strategy.map(|_| t.migrate_at.as_secs_f64()),
            duration_s: t.duration.map(|d| d.as_secs_f64()),
            end_s,
            interference,
        },
        phases,
        pool,
        migration,
        rollback,
        locks,
        broken,
        checks,
        plans,
        wal,
        replication,
        cdc,
        ledger,
        pooler,
        regressions: None,
        series: Named(results.into_iter().map(|q| (q.name, q.series)).collect()),
        thresholds,
        fault,
        verdict,
        warnings,
    }
}

/// Each phase's window and statistics. Without a migration the whole run
/// is the baseline; without a rollback, `after` runs to the end.
fn phases(clock: &PhaseClock, end_s: f64, migrated: bool, rolled_back: bool, results: &[QueryResult]) -> Phases {
    let window = |w: Window, until: f64| {
        let (start, end) = clock.window(w);
        (start.map_or(0.0, secs), end.map_or(until, secs))
    };
    let (mig_start, mig_end) = if migrated { window(Window::Migration, end_s) } else { (end_s, end_s) };
    let (back_start, back_end) = if rolled_back { window(Window::Rollback, end_s) } else { (end_s, end_s) };
    let bounds =
        [(0.0, mig_start), (mig_start, mig_end), (mig_end, back_start), (back_start, back_end), (back_end, end_s)];
    let phase = |p: Phase| {
        let (start_s, end_s) = bounds[p.index()];
        let end_s = end_s.max(start_s);
        PhaseReport {
            start_s,
            end_s,
            seconds: secs(Duration::from_secs_f64(end_s - start_s)),
            queries: Named(results.iter().map(|q| (q.name.clone(), q.phases[p.index()].clone())).collect()),
        }
    };
    Phases {
        baseline: phase(Phase::Baseline),
        during: phase(Phase::During),
        after: phase(Phase::After),
        rollback: rolled_back.then(|| phase(Phase::Rollback)),
        after_rollback: rolled_back.then(|| phase(Phase::AfterRollback)),
    }
}

/// Each phase that happened, with its window in seconds.
fn phase_windows(p: &Phases) -> Vec<(Phase, f64, f64)> {
    let each = [
        (Phase::Baseline, Some(&p.baseline)),
        (Phase::During, Some(&p.during)),
        (Phase::After, Some(&p.after)),
        (Phase::Rollback, p.rollback.as_ref()),
        (Phase::AfterRollback, p.after_rollback.as_ref()),
    ];
    each.into_iter().filter_map(|(phase, r)| r.map(|r| (phase, r.start_s, r.end_s))).collect()
}
