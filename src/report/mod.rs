//! The report: one serde model of everything a rehearsal measured, from
//! which the terminal summary and the JSON file are rendered. Every figure
//! names what it measured and over which window; the JSON field names
//! listed in the README are a contract.

mod side_by_side;
mod terminal;
mod verdict;

use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::SerializeMap;

pub use side_by_side::{render_side_by_side, to_json_many};
pub use terminal::render;
pub use verdict::{Verdict, Violation, evaluate};

use crate::datagen::LoadedTable;
use crate::interference::InterferenceReport;
use crate::migration::MigrationReport;
use crate::observe::LockSummary;
use crate::postgres::BackendKind;
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

/// Everything a rehearsal measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The strategy rehearsed.
    pub strategy: String,
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
    pub migration: MigrationReport,
    /// What the lock observer saw.
    pub locks: LockSummary,
    /// Per query, per second (by due time).
    pub series: Named<Vec<SeriesPoint>>,
    /// The thresholds applied.
    pub thresholds: ThresholdsInfo,
    /// Pass or fail, and why.
    pub verdict: Verdict,
    /// Things the user should know that are not measurements.
    pub warnings: Vec<String>,
}

/// The server the rehearsal ran on.
#[derive(Debug, Clone, Serialize, PartialEq)]
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
    /// Where it was, without password.
    pub target: String,
    /// The scenario's server settings.
    pub settings: Named<String>,
    /// Whether the harness applied them (it cannot on a server it did not
    /// start).
    pub settings_applied: bool,
}

/// The load as configured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkloadInfo {
    /// Connections in the application's pool.
    pub pool_size: usize,
    /// Longest wait for a connection, in milliseconds.
    pub pool_timeout_ms: f64,
    /// The queries.
    pub queries: Vec<QueryInfo>,
}

/// One workload query.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueryInfo {
    /// Its name.
    pub name: String,
    /// `read` or `write`.
    pub kind: String,
    /// Target requests per second.
    pub rate: f64,
}

/// When things happened, in seconds from the start of the load.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Timeline {
    /// The scenario's `migrate_at`.
    pub migrate_at_s: f64,
    /// The end of the run.
    pub end_s: f64,
    /// The interfering statements.
    pub interference: Vec<InterferenceReport>,
}

/// The three phases.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Phases {
    /// From the start of the load to the start of the migration.
    pub baseline: PhaseReport,
    /// While the migration ran.
    pub during: PhaseReport,
    /// From the end of the migration to the end of the run.
    pub after: PhaseReport,
}

/// One phase: its window and each query's statistics for requests due in
/// it.
#[derive(Debug, Clone, Serialize, PartialEq)]
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
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ThresholdsInfo {
    /// The longest any workload request may wait on a lock.
    pub max_lock_wait_ms: Option<f64>,
    /// The highest p99 of each query during the migration.
    pub max_p99_ms: Option<f64>,
    /// The highest fraction of failed requests of each query, during and
    /// after the migration.
    pub max_error_rate: Option<f64>,
}

impl Report {
    /// Errors of each query summed over the phases from the migration's
    /// start to the end of the run: (errors, requests, kinds).
    pub fn failures_since_migration(&self, query: &str) -> (u64, u64, BTreeMap<String, u64>) {
        let mut kinds = BTreeMap::new();
        let (mut errors, mut count) = (0, 0);
        for phase in [&self.phases.during, &self.phases.after] {
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
