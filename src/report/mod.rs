//! The report: one serde model of everything a rehearsal measured, from
//! which the terminal summary and the JSON file are rendered. Every figure
//! names what it measured and over which window; the JSON field names
//! listed in the README are a contract.

mod autovacuum;
mod broken;
mod build;
mod charts;
mod codequality;
mod compare;
mod compare_terminal;
pub mod github;
mod html;
mod json_file;
mod junit;
mod ledger;
mod markdown;
mod plans;
mod pooler;
mod predict;
mod predict_terminal;
mod progress;
pub mod regression;
mod replication;
mod side_by_side;
pub mod soak;
mod soak_render;
mod terminal;
mod tune;
mod verdict;

use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::SerializeMap;

pub use broken::{BrokenQuery, StepRef};
pub use build::{Measured, Run, build};
pub use codequality::codequality;
pub(crate) use compare::worst_during_p99;
pub use compare::{
    CompareRun, Comparison, OrderCheck, PhaseP99, ResetInfo, SAFEST_RULE, Spread, StrategySummary, summarize,
};
pub use compare_terminal::render_comparison;
pub use html::html;
pub use json_file::{JsonOut, JsonPathError, read_reports};
pub use junit::junit;
pub use markdown::{LIMIT as MARKDOWN_LIMIT, MARKER as MARKDOWN_MARKER, markdown, markdown_many};
pub use pooler::{PoolerReport, PoolerRun};
pub use predict::{Alternative, Figure, Fit, GrowthOrder, Metric, Point, Prediction, ScaleRun, ms_label};
pub use predict_terminal::render_prediction;
pub use progress::annotate as annotate_progress;
pub use replication::{Cdc, PhaseConflicts, Replication};
pub use side_by_side::{render_side_by_side, to_json_many};
pub use soak::{Planned, SoakSummary};
pub use soak_render::{SOAK_MARKER, render_soak, soak_junit, soak_markdown};
pub use terminal::render;
pub use tune::{Trial, Tuning, render_tuning};
pub use verdict::{Check, Judged, Verdict, Violation, evaluate};

use crate::clock::Phase;
use crate::datagen::LoadedTable;
use crate::interference::InterferenceReport;
use crate::migration::MigrationReport;
use crate::observe::LockSummary;
use crate::postgres::{BackendKind, FaultKind};
use crate::scenario::{Arrival, Load, QuerySpec, Target};
use crate::units::millis;
use crate::workload::{PoolStats, QueryPhaseStats, SeriesPoint};

/// A list of named entries serialized as a JSON object, keeping the order
/// of the scenario file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Named<T>(pub Vec<(String, T)>);

impl<T> Named<T> {
    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl<T: Serialize> Serialize for Named<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Named<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Entries<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of named entries")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Named(entries))
            }
        }
        d.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// Everything a rehearsal measured.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The strategy rehearsed; `null` for a load-only run.
    pub strategy: Option<String>,
    /// The seed of the data and request parameters.
    pub seed: u64,
    /// The `--scale` applied to row counts.
    pub scale: f64,
    /// The server.
    pub postgres: PostgresInfo,
    /// The tables, as loaded.
    pub tables: Vec<LoadedTable>,
    /// The load's shape.
    pub workload: WorkloadInfo,
    /// When things happened.
    pub timeline: Timeline,
    /// Each query's latency and failures, per phase.
    pub phases: Phases,
    /// How full the application's pool got.
    pub pool: PoolStats,
    /// What the migration did.
    pub migration: Option<MigrationReport>,
    /// What its rollback did, when `--rollback` rehearsed it after the
    /// migration; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<MigrationReport>,
    /// What the lock observer saw.
    pub locks: LockSummary,
    /// Queries the migration broke: they began to fail with a schema
    /// error they never met in the baseline.
    pub broken: Vec<BrokenQuery>,
    /// The `[[workload.check]]` entries, run once after the migration (in a
    /// transaction rolled back).
    pub checks: Vec<crate::observe::plans::CheckRun>,
    /// The workload's plans explained during the baseline and just
    /// after the migration, and those that changed shape; absent without a migration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plans: Option<crate::observe::plans::PlanCheck>,
    /// The WAL the server wrote over the run: per phase, its peak rate, a
    /// per-second series; absent when it could not be sampled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<crate::observe::wal::WalReport>,
    /// The replicas' lag and recovery conflicts, when standbys were
    /// measured; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<Replication>,
    /// The CDC slot and its consumer, with `[cdc]`; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdc: Option<Cdc>,
    /// The workload's acknowledged writes, checked after the run: lost
    /// and altered ones per statement; absent when the run did not check
    /// them (it was cut short before the end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger: Option<crate::ledger::LedgerReport>,
    /// PgBouncer between the workload and the server, with `[pooler]`:
    /// its clients waiting for a server connection; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooler: Option<PoolerReport>,
    /// This run against an earlier one (`--baseline`): the figures that got
    /// worse; absent without a baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regressions: Option<regression::Regressions>,
    /// Per query, per second (by due time).
    pub series: Named<Vec<SeriesPoint>>,
    /// The thresholds applied.
    pub thresholds: ThresholdsInfo,
    /// A fault of the server that cut the run short, if one did: the
    /// figures then cover the run up to it only.
    pub fault: Option<FaultReport>,
    /// Pass or fail, and why.
    pub verdict: Verdict,
    /// Things the user should know that are not measurements.
    pub warnings: Vec<String>,
}

/// A fault of the server during the run.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct FaultReport {
    /// What happened.
    pub kind: FaultKind,
    /// When it was noticed, seconds from the start of the load.
    pub at_s: f64,
    /// The phase the run was in.
    pub phase: Phase,
    /// Whether the migration was running then.
    pub during_migration: bool,
    /// What the harness saw.
    pub detail: String,
}

impl FaultReport {
    /// One line for people.
    pub fn sentence(&self) -> String {
        let what = match self.kind {
            FaultKind::ServerStopped => "the server stopped",
            FaultKind::ServerRestarted => "the server crashed and restarted, ending every session",
        };
        let when = match (self.phase, self.during_migration) {
            (_, true) => "during the migration",
            (Phase::Baseline, _) => "in the baseline, before the migration",
            (Phase::During, _) => "during the migration",
            (Phase::After, _) => "after the migration",
            (Phase::Rollback, _) => "during the rollback",
            (Phase::AfterRollback, _) => "after the rollback",
        };
        format!("{what} at {:.1}s, {when} ({}); the figures cover the run up to then only", self.at_s, self.detail)
    }
}

/// The server the rehearsal ran on.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PostgresInfo {
    /// `local`, `docker` or `url`.
    pub backend: BackendKind,
    /// Why that backend: the line the harness printed when it chose.
    pub chosen: String,
    /// The container image, on the docker backend.
    pub image: Option<String>,
    /// `SELECT version()`.
    pub version: String,
    /// `server_version_num`.
    pub version_num: i32,
    /// `deadlock_timeout`, in milliseconds, as the server had it.
    pub deadlock_timeout_ms: f64,
    /// Where it was, without password.
    pub target: String,
    /// The scenario's server settings.
    pub settings: Named<String>,
    /// Whether the harness applied them (it cannot on a server it did not
    /// start).
    pub settings_applied: bool,
}

/// The load as configured.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct WorkloadInfo {
    /// Connections in the application's pool.
    pub pool_size: usize,
    /// Longest wait for a connection, in milliseconds.
    pub pool_timeout_ms: f64,
    /// The replica that queries with `target = "replica"` ran on
    /// (password left out); `null` when there was none.
    pub replica: Option<String>,
    /// The queries.
    pub queries: Vec<QueryInfo>,
}

/// Whether a query only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryKind {
    /// It only reads (a SELECT without row locks).
    Read,
    /// It writes or locks rows.
    Write,
}

impl std::fmt::Display for QueryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QueryKind::Read => "read",
            QueryKind::Write => "write",
        })
    }
}

/// How a query's requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoopKind {
    /// Due on a schedule, whether or not earlier ones finished.
    Open,
    /// Clients that wait for each answer.
    Closed,
}

/// One workload query, as the scenario shapes its load.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct QueryInfo {
    /// Its name.
    pub name: String,
    /// `read` or `write`.
    pub kind: QueryKind,
    /// `open` or `closed`.
    #[serde(rename = "loop")]
    pub loop_kind: LoopKind,
    /// Open loop: target requests per second at the start.
    pub rate: Option<f64>,
    /// Open loop: the highest target rate of its ramp.
    pub peak_rate: Option<f64>,
    /// Open loop: `uniform` or `poisson`.
    pub arrival: Option<Arrival>,
    /// Closed loop: concurrent clients.
    pub clients: Option<usize>,
    /// Closed loop: pause between an answer and the next request.
    pub think_time_ms: Option<f64>,
    /// Statements per request (more than one: a transaction).
    pub statements: usize,
    /// `primary`, or `replica` when it ran on `--replica-url`.
    pub target: Target,
    /// Its `statement_timeout`.
    pub statement_timeout_ms: Option<f64>,
    /// Its client-side timeout, from when a request was due.
    pub timeout_ms: Option<f64>,
    /// Where it comes from, when not the scenario (a `pg_stat_statements`
    /// query id).
    pub source: Option<String>,
}

impl QueryInfo {
    /// The report's view of a query; `replica` tells whether a replica
    /// was there to take the queries that target one.
    pub fn new(q: &QuerySpec, replica: bool) -> Self {
        let (loop_kind, rate, peak_rate, arrival, clients, think_time_ms) = match &q.load {
            Load::Open { rate, arrival } => {
                (LoopKind::Open, Some(rate.initial()), Some(rate.peak()), Some(*arrival), None, None)
            }
            Load::Closed { clients, think_time } => {
                (LoopKind::Closed, None, None, None, Some(*clients), Some(millis(*think_time)))
            }
        };
        QueryInfo {
            name: q.name.clone(),
            kind: if q.is_read() { QueryKind::Read } else { QueryKind::Write },
            loop_kind,
            rate,
            peak_rate,
            arrival,
            clients,
            think_time_ms,
            statements: q.statements.len(),
            target: if replica && q.target == Target::Replica { Target::Replica } else { Target::Primary },
            statement_timeout_ms: q.statement_timeout.map(millis),
            timeout_ms: q.timeout.map(millis),
            source: q.source.clone(),
        }
    }
}

/// When things happened, in seconds from the start of the load.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Timeline {
    /// The scenario's `migrate_at`; `null` for a load-only run.
    pub migrate_at_s: Option<f64>,
    /// A load-only run's `duration`; `null` with a migration.
    pub duration_s: Option<f64>,
    /// The end of the run.
    pub end_s: f64,
    /// The interfering statements.
    pub interference: Vec<InterferenceReport>,
}

/// The phases: three, or five with a rollback.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Phases {
    /// From the start of the load to the start of the migration.
    pub baseline: PhaseReport,
    /// While the migration ran.
    pub during: PhaseReport,
    /// From the end of the migration to the end of the run, or to the
    /// start of its rollback.
    pub after: PhaseReport,
    /// While the rollback ran (with `--rollback`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<PhaseReport>,
    /// From the end of the rollback to the end of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_rollback: Option<PhaseReport>,
}

impl Phases {
    /// The phases the error-rate threshold judges: from the migration's
    /// start to the end of the run (its rollback included), or the whole
    /// run when there is no migration (it is all `baseline`).
    pub fn judged(&self, load_only: bool) -> Vec<&PhaseReport> {
        if load_only {
            return vec![&self.baseline];
        }
        let rollback = self.rollback.iter().chain(&self.after_rollback);
        [&self.during, &self.after].into_iter().chain(rollback).collect()
    }

    /// The phase the p99 threshold judges: `during`, or `baseline` when
    /// there is no migration.
    pub fn under_test(&self, load_only: bool) -> &PhaseReport {
        if load_only { &self.baseline } else { &self.during }
    }
}

/// One phase: its window and each query's statistics for requests due in
/// it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PhaseReport {
    /// Start, seconds from the start of the load.
    pub start_s: f64,
    /// End, seconds from the start of the load.
    pub end_s: f64,
    /// Its length.
    pub seconds: f64,
    /// Per query.
    pub queries: Named<QueryPhaseStats>,
}

/// The thresholds, in report units.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ThresholdsInfo {
    /// The longest any workload request may wait on a lock.
    pub max_lock_wait_ms: Option<f64>,
    /// The highest p99 of each query during the migration.
    pub max_p99_ms: Option<f64>,
    /// The highest fraction of failed requests of each query, during and
    /// after the migration.
    pub max_error_rate: Option<f64>,
    /// How many times its baseline p99 each query's p99 during the
    /// migration may be (when also 50 ms above it).
    pub max_p99_ratio: Option<f64>,
    /// How many workload queries the migration may break (0 unless the
    /// scenario says otherwise).
    pub max_broken_queries: u64,
    /// How many acknowledged writes may be lost or altered (0 unless the
    /// scenario says otherwise).
    pub max_lost_writes: u64,
    /// The most any replica may lag, in milliseconds; absent when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replica_lag_ms: Option<f64>,
    /// The most WAL any replica may have left to replay, in bytes; absent
    /// when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replica_lag_bytes: Option<u64>,
    /// How much worse than the baseline's (`--baseline`) a figure may get,
    /// as a fraction; absent when unset (0.25 applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_regression: Option<f64>,
    /// The scenario names no thresholds: these are the documented
    /// defaults.
    pub defaults: bool,
}

impl Report {
    /// Errors of each query summed over the judged phases (see
    /// [`Phases::judged`]): (errors, requests, kinds).
    pub fn failures_since_migration(&self, query: &str) -> (u64, u64, BTreeMap<String, u64>) {
        let mut kinds = BTreeMap::new();
        let (mut errors, mut count) = (0, 0);
        for phase in self.phases.judged(self.migration.is_none()) {
            if let Some(q) = phase.queries.get(query) {
                errors += q.errors;
                count += q.count;
                for (k, n) in &q.error_kinds {
                    *kinds.entry(k.clone()).or_default() += n;
                }
            }
        }
        (errors, count, kinds)
    }

    /// Writes the report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }
}
