//! Scenario files: TOML → raw serde structs (strict about unknown keys) →
//! one validated [`Scenario`] with durations parsed, table references
//! resolved and row counts scaled. Everything downstream trusts it.
//!
//! A scenario describes five things: the database (`[postgres]`,
//! `[[table]]`), the application's load (`[workload]`), any interference
//! (`[[interference]]`), the migration strategies (`[[strategy]]`) and the
//! thresholds that decide the verdict (`[thresholds]`). The timeline
//! (`[timeline]`) says when the migration starts and how long to watch.

pub mod calendar;
pub mod derive;
pub mod duration;
pub mod limits;
pub mod pgss;
mod raw;
pub mod shapes;
pub mod source;
pub mod sql_parse;
pub mod sql_split;
mod strategy;
mod validate;
mod validate_external;
mod validate_generator;
mod validate_workload;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use source::{Location, SqlText};
pub use strategy::{
    AFTER, Keyset, MigrationFileInfo, Rollback, SharedTx, StepOrigin, StepSpec, StepTx, Strategy, TxControl,
};
pub use workload::{Arrival, CheckSpec, Load, ParamSpec, QuerySpec, RateProfile, Target, WorkloadSpec};

/// A scenario that could not be read or does not make sense. Always the
/// user's input: exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {}: {source}", path.display())]
    Read {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value that does
    /// not fit.
    #[error("{at}: {message}")]
    Invalid {
        /// Where in the file.
        at: Location,
        /// What is wrong, in the user's terms.
        message: String,
    },
}

/// How a scenario is loaded: from where, and how its row counts scale.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Multiplies every table's row count (`--scale`).
    pub scale: f64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { scale: 1.0 }
    }
}

/// Reads and validates a scenario file.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Scenario, ScenarioError> {
    let text = read_text(path, limits::MAX_SCENARIO_BYTES, "scenario")?;
    parse(path, text, options)
}

/// Reads a text file of the user's: a plain file (not a device or a pipe,
/// which could be endless), at most `max` bytes, in UTF-8 (a byte that is
/// not is reported with its line and column).
pub(crate) fn read_text(path: &Path, max: u64, what: &str) -> Result<String, ScenarioError> {
    use std::io::Read;
    let read = |source| ScenarioError::Read { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_file() {
        return Err(read(std::io::Error::other(format!("the {what} is not a plain file"))));
    }
    if meta.len() > max {
        let message = format!("the {what} is {} MB; at most {} MB is read", meta.len() >> 20, max >> 20);
        return Err(read(std::io::Error::other(message)));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path).map_err(read)?.take(max + 1).read_to_end(&mut bytes).map_err(read)?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        let prefix = String::from_utf8_lossy(&bytes[..valid]).into_owned();
        let at = source::SourceFile::new(path, prefix).location(valid);
        ScenarioError::Invalid {
            at,
            message: format!("byte 0x{:02x} is not UTF-8: the {what} must be UTF-8 text", bytes[valid]),
        }
    })
}

/// Sessions the harness opens on the server beside the pool and the
/// interference: the lock observer, the WAL sampler, the migration, its lock
/// watcher, the plan explainer (around the migration), the setup session,
/// the server watch, and a spare for clean-up.
pub const HARNESS_SESSIONS: usize = 8;

/// Validates a scenario from its text; `path` is used in messages.
pub fn parse(path: &Path, text: String, options: &LoadOptions) -> Result<Scenario, ScenarioError> {
    validate::validate(source::SourceFile::new(path, text), options)
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `name`
    pub name: String,
    /// `description`, if any.
    pub description: Option<String>,
    /// The file it came from.
    pub path: PathBuf,
    /// Seed of every random choice (data and request parameters).
    pub seed: u64,
    /// The `--scale` the row counts were multiplied by.
    pub scale: f64,
    /// `[postgres]`
    pub postgres: PostgresSpec,
    /// `[[table]]`, in file order.
    pub tables: Vec<TableSpec>,
    /// `schema = "dump.sql"`: a schema to build before the tables are
    /// filled; `rows = { … }` names the tables to fill.
    pub schema: Option<SchemaFile>,
    /// `[workload]`
    pub workload: WorkloadSpec,
    /// `[[interference]]`, in file order.
    pub interference: Vec<InterferenceSpec>,
    /// `[timeline]`
    pub timeline: Timeline,
    /// `[[strategy]]`, in file order; the first is the default.
    pub strategies: Vec<Strategy>,
    /// `[thresholds]`
    pub thresholds: Thresholds,
    /// `[replica] count`: hot standbys the harness starts beside its
    /// throwaway primary (`--replicas` overrides it); 0 for none.
    pub replicas: usize,
    /// `[replica] settings`: the standbys run with the primary's settings
    /// and these over them (a smaller `shared_buffers`, a
    /// `max_standby_streaming_delay`).
    pub replica_settings: Vec<Setting>,
    /// `[cdc]`: a logical replication slot read at a set pace, as a CDC
    /// connector reads it.
    pub cdc: Option<CdcSpec>,
    /// `[pooler]`: PgBouncer between the workload and the server.
    pub pooler: Option<PoolerSpec>,
}

/// `[pooler]`: the pooler the workload's connections go through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolerSpec {
    /// `mode = "transaction"` (the default) or `"session"`.
    pub mode: crate::postgres::PoolMode,
    /// `pool_size`: server connections PgBouncer opens per database and
    /// user (its `default_pool_size`; 20 unless given).
    pub pool_size: u32,
}

/// `[cdc]`: the slot's output plugin and the consumer's pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CdcSpec {
    /// `slot = "pgoutput"` or `"test_decoding"`.
    pub plugin: CdcPlugin,
    /// `rate`: changes the consumer reads per second; `None` for as fast
    /// as it can.
    pub rate: Option<f64>,
}

/// A logical decoding output plugin that ships with PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CdcPlugin {
    /// The plugin of logical replication, and of Debezium's default.
    Pgoutput,
    /// The plugin of PostgreSQL's tests, text output.
    TestDecoding,
}

impl CdcPlugin {
    /// Its name, as `pg_create_logical_replication_slot` takes it.
    pub fn name(self) -> &'static str {
        match self {
            CdcPlugin::Pgoutput => "pgoutput",
            CdcPlugin::TestDecoding => "test_decoding",
        }
    }
}

impl Scenario {
    /// Sessions a rehearsal opens on the primary at once: the pool, one per
    /// interference, and the harness's own ([`HARNESS_SESSIONS`]).
    pub fn sessions_needed(&self) -> usize {
        // The replica-lag observer reads the primary's WAL position on a
        // session of its own; a CDC slot has its consumer's session, and
        // its lag is read on one more.
        let watchers = usize::from(self.replicas > 0 || self.cdc.is_some()) + usize::from(self.cdc.is_some());
        // Through a pooler, the server sees the pooler's connections.
        let pool = self.pooler.map_or(self.workload.pool_size, |p| p.pool_size as usize);
        pool + self.interference.len() + HARNESS_SESSIONS + watchers
    }

    /// The strategy called `name`, or the first when `name` is `None`.
    pub fn strategy(&self, name: Option<&str>) -> Option<&Strategy> {
        match name {
            None => self.strategies.first(),
            Some(n) => self.strategies.iter().find(|s| s.name == n),
        }
    }
}

/// `[postgres]`: how the server is configured.
#[derive(Debug, Clone, Default)]
pub struct PostgresSpec {
    /// Server settings, passed as `-c name=value` where the harness starts
    /// the server.
    pub settings: Vec<Setting>,
    /// The container images to rehearse on, from `image = "…"`, or from
    /// `version = "12"` / `versions = ["12", "16"]` as `postgres:<version>`.
    /// Empty when the scenario names none.
    pub images: Vec<String>,
}

/// One server setting of `[postgres] settings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Its name, e.g. `shared_buffers`.
    pub name: String,
    /// Its value as the server is given it, e.g. `1GB`.
    pub value: String,
    /// Where the file sets it.
    pub at: Location,
}

impl PostgresSpec {
    /// The settings as (name, value) pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.settings.iter().map(|s| (s.name.clone(), s.value.clone())).collect()
    }
}

/// A schema file, such as `pg_dump --schema-only` writes, cut into its
/// statements.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// The file, as the scenario names it, resolved against the scenario's
    /// directory.
    pub path: PathBuf,
    /// Its SQL statements, in order, each locatable in the file.
    pub statements: Vec<SqlText>,
    /// psql meta-commands (`\restrict …`), which are not SQL and are skipped.
    pub meta_commands: Vec<String>,
}

/// One `[[table]]`, or one entry of `rows` (a table of the schema file).
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Table name as the DDL creates it.
    pub name: String,
    /// Rows to generate, after `--scale`.
    pub rows: u64,
    /// Rows the file asks for, before `--scale`.
    pub declared_rows: u64,
    /// The DDL that creates it (and its indexes).
    pub ddl: SqlText,
    /// Generators the file names for some columns; the rest are inferred.
    pub columns: Vec<ColumnOverride>,
    /// Created by the schema file, not by `ddl` (which is then empty).
    pub from_schema: bool,
    /// `bloat = 0.2`: the fraction of rows left behind as dead tuples after
    /// the load, as updates leave them in a production table.
    pub bloat: f64,
}

/// A generator the scenario names for one column.
#[derive(Debug, Clone)]
pub struct ColumnOverride {
    /// Column name.
    pub column: String,
    /// Its generator.
    pub spec: ValueSpec,
    /// Where the file names it, for errors about a missing column.
    pub at: Location,
}

/// A generator of values plus the fraction of NULLs it yields.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueSpec {
    /// What values.
    pub kind: GenSpec,
    /// Fraction in `[0, 1]` of NULLs.
    pub nulls: f64,
}

/// The kinds of value a generator produces.
#[derive(Debug, Clone, PartialEq)]
pub enum GenSpec {
    /// Uniform integers in `[lo, hi]`.
    Int {
        /// Lowest value.
        lo: i64,
        /// Highest value.
        hi: i64,
    },
    /// Uniform floats in `[lo, hi)`.
    Float {
        /// Lowest value.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// `start + row index`: keys, ids.
    Sequence {
        /// Value of the first row.
        start: i64,
    },
    /// A uniform existing key (1..=rows) of another generated table.
    KeyOf {
        /// The table.
        table: String,
        /// Its row count, after scaling.
        rows: u64,
    },
    /// One of the values, uniformly or by weight.
    OneOf {
        /// The values.
        values: Vec<Literal>,
        /// Relative weights, one per value.
        weights: Option<Vec<f64>>,
    },
    /// Lorem words, between `min` and `max` of them.
    Words {
        /// Fewest words.
        min: u32,
        /// Most words.
        max: u32,
    },
    /// A realistic value from the `fake` crate.
    Fake(FakeKind),
    /// Timestamps uniform in `[lo, hi)`, microseconds since 2000-01-01.
    Timestamp {
        /// Earliest.
        lo: i64,
        /// Latest (exclusive).
        hi: i64,
    },
    /// Dates uniform in `[lo, hi)`, days since 2000-01-01.
    Date {
        /// Earliest.
        lo: i32,
        /// Latest (exclusive).
        hi: i32,
    },
    /// true or false, evenly.
    Bool,
    /// A random (version 4) UUID.
    Uuid,
    /// A value of whatever type the column or placeholder has (`"any"`):
    /// for parameters whose type is learned only when the query is
    /// prepared, as those of a replayed `pg_stat_statements` query.
    Any,
    /// The same value every time.
    Const(Literal),
    /// Integers in `[lo, hi]` with Zipf's law: the value of rank k (`lo`
    /// is rank 1) comes up with weight 1/k^skew. Hot keys.
    Zipf {
        /// Lowest (and most frequent) value.
        lo: i64,
        /// Highest value.
        hi: i64,
        /// The exponent; larger is more skewed.
        skew: f64,
    },
    /// Timestamps that rise with the row number from `lo` to `hi`
    /// (microseconds since 2000-01-01), jittered within one row's step:
    /// `created_at` of rows inserted over time.
    Increasing {
        /// The first row's time.
        lo: i64,
        /// The last row's time.
        hi: i64,
    },
    /// A JSON object with these keys, each value from its generator.
    Json(Vec<(String, ValueSpec)>),
    /// An array of `min..=max` values of one generator.
    Array {
        /// The elements' generator.
        of: Box<ValueSpec>,
        /// Fewest elements.
        min: u32,
        /// Most elements.
        max: u32,
    },
}

/// The range of timestamps and dates generated when none is named:
/// fixed, so that the same seed gives the same data whenever it runs.
const DEFAULT_RANGE: (&str, &str) = ("2024-01-01", "2026-01-01");

impl GenSpec {
    /// Timestamps over the default range (2024-01-01 to 2026-01-01).
    pub fn default_timestamp() -> GenSpec {
        let parse = |s| calendar::parse_timestamp(s).expect("a valid constant");
        GenSpec::Timestamp { lo: parse(DEFAULT_RANGE.0), hi: parse(DEFAULT_RANGE.1) }
    }

    /// Dates over the default range (2024-01-01 to 2026-01-01).
    pub fn default_date() -> GenSpec {
        let parse = |s| calendar::parse_date(s).expect("a valid constant");
        GenSpec::Date { lo: parse(DEFAULT_RANGE.0), hi: parse(DEFAULT_RANGE.1) }
    }
}

/// A literal value from the scenario file.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Text(String),
    /// A boolean.
    Bool(bool),
}

/// Realistic text values, produced by the `fake` crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeKind {
    /// `alice@example.org`
    Email,
    /// First and last name.
    Name,
    /// First name.
    FirstName,
    /// Last name.
    LastName,
    /// City name.
    City,
    /// Street name.
    Street,
    /// Country name.
    Country,
    /// Phone number.
    Phone,
    /// Company name.
    Company,
    /// User name.
    Username,
}

impl FakeKind {
    /// The names a scenario may use for each kind.
    pub const NAMES: &'static [(&'static str, FakeKind)] = &[
        ("email", FakeKind::Email),
        ("name", FakeKind::Name),
        ("first_name", FakeKind::FirstName),
        ("last_name", FakeKind::LastName),
        ("city", FakeKind::City),
        ("street", FakeKind::Street),
        ("country", FakeKind::Country),
        ("phone", FakeKind::Phone),
        ("company", FakeKind::Company),
        ("username", FakeKind::Username),
    ];

    /// The kind called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }
}

/// One `[[interference]]`: a statement started at a given time on a
/// connection of its own, such as a long report.
#[derive(Debug, Clone)]
pub struct InterferenceSpec {
    /// Its name in reports.
    pub name: String,
    /// When it starts, from the start of the load.
    pub at: Duration,
    /// What it runs.
    pub sql: SqlText,
    /// `optional = true`: its failure is reported but does not fail the
    /// verdict.
    pub optional: bool,
}

/// `[timeline]`: when the migration starts and how long the load runs.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// When the migration starts, from the start of the load.
    pub migrate_at: Duration,
    /// How long the load keeps running after the migration ends.
    pub cooldown: Duration,
    /// A migration still running this long after it started is cancelled.
    pub max_duration: Duration,
    /// `Some` for a load-only scenario (no `[[strategy]]`): how long the
    /// load runs; the other fields are then zero.
    pub duration: Option<Duration>,
}

/// `[thresholds]`: what a passing rehearsal must stay within.
#[derive(Debug, Clone, Copy, Default)]
pub struct Thresholds {
    /// The longest any workload request may wait on a lock.
    pub max_lock_wait: Option<Duration>,
    /// The highest p99 latency of each query during the migration.
    pub max_p99: Option<Duration>,
    /// The highest fraction of failed requests of each query, from the
    /// start of the migration to the end of the run.
    pub max_error_rate: Option<f64>,
    /// How many times its baseline p99 each query's p99 during the
    /// migration may be (and it is judged only when also more than
    /// [`P99_RATIO_FLOOR`] above it).
    pub max_p99_ratio: Option<f64>,
    /// How many workload queries the migration may break (see
    /// [`crate::report::BrokenQuery`]); 0 unless the scenario says, whatever
    /// else it sets.
    pub max_broken_queries: u64,
    /// How many acknowledged writes may be lost or altered (see
    /// [`crate::ledger`]); 0 unless the scenario says, whatever else it
    /// sets.
    pub max_lost_writes: u64,
    /// The most any replica may lag behind the primary, as the age of
    /// what it has replayed.
    pub max_replica_lag: Option<Duration>,
    /// The most WAL any replica may have left to replay, in bytes.
    pub max_replica_lag_bytes: Option<u64>,
    /// How much worse than `--baseline`'s a figure may get, as a fraction
    /// (0.25 when unset); judged only with a baseline.
    pub max_regression: Option<f64>,
    /// The scenario names no thresholds: these are [`Thresholds::DEFAULTS`].
    pub defaults: bool,
}

/// A p99 during the migration above `max_p99_ratio` × its baseline fails
/// only when it is also this much above the baseline: a 0.4 ms p99 that
/// becomes 2 ms is noise, not harm.
pub const P99_RATIO_FLOOR: Duration = Duration::from_millis(50);

impl Thresholds {
    /// What a scenario without `[thresholds]` is judged against: no
    /// workload request waits more than 1 s on a lock, no query's p99 during
    /// the migration is more than 5× its baseline (and 50 ms above it), and
    /// no query fails more than 1% of its requests.
    pub const DEFAULTS: Thresholds = Thresholds {
        max_lock_wait: Some(Duration::from_secs(1)),
        max_p99: None,
        max_error_rate: Some(0.01),
        max_p99_ratio: Some(5.0),
        max_broken_queries: 0,
        max_lost_writes: 0,
        max_replica_lag: None,
        max_replica_lag_bytes: None,
        max_regression: None,
        defaults: true,
    };

    /// These, or the defaults when none is set.
    pub fn or_defaults(self) -> Self {
        let none = self.max_lock_wait.is_none()
            && self.max_p99.is_none()
            && self.max_error_rate.is_none()
            && self.max_p99_ratio.is_none()
            && self.max_replica_lag.is_none()
            && self.max_replica_lag_bytes.is_none();
        if none {
            Thresholds {
                max_broken_queries: self.max_broken_queries,
                max_lost_writes: self.max_lost_writes,
                max_regression: self.max_regression,
                ..Self::DEFAULTS
            }
        } else {
            self
        }
    }
}
