//! `[[strategy]]` as validated: a way to apply the migration, as steps
//! written in the scenario or read from the user's migration files, each
//! knowing the transaction it runs in.

use std::time::Duration;

use super::SqlText;

/// One `[[strategy]]`: a way to apply the migration.
#[derive(Debug, Clone)]
pub struct Strategy {
    /// Its name, for `--strategy`.
    pub name: String,
    /// What it does, if the file says.
    pub description: Option<String>,
    /// Its steps, run in order.
    pub steps: Vec<StepSpec>,
    /// The migration files it comes from, when it does.
    pub files: Vec<MigrationFileInfo>,
    /// Where those files come from: the folder, its format and why, and
    /// how the candidate was chosen.
    pub source: Option<String>,
    /// The way back, rehearsed after it with `--rollback`.
    pub rollback: Rollback,
}

/// The way back from a strategy: its migrations' down parts, last first,
/// or the scenario's `rollback` steps.
#[derive(Debug, Clone)]
pub enum Rollback {
    /// The steps of the down migration, as a strategy of their own.
    Steps(Box<Strategy>),
    /// There is none, and why (a file without a down part, a format
    /// without downs).
    Missing(String),
}

/// A migration file a strategy runs, and how its runner sends it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MigrationFileInfo {
    /// The file, relative to its folder.
    pub file: String,
    /// Its version.
    pub version: String,
    /// How its runner sends it, and why (a directive, or the default).
    pub sending: String,
}

/// One step of a strategy.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// A label, if the file gives one.
    pub name: Option<String>,
    /// The SQL of the step.
    pub sql: SqlText,
    /// `SET lock_timeout` for the step.
    pub lock_timeout: Option<Duration>,
    /// `SET statement_timeout` for the step.
    pub statement_timeout: Option<Duration>,
    /// How many times to try again after hitting the lock timeout.
    pub retries: u32,
    /// Pause before each retry.
    pub backoff: Duration,
    /// `Some(pause)` when the step is a batch that repeats, pausing this
    /// long between runs, until it affects 0 rows; `None` when it runs once.
    pub repeat: Option<Duration>,
    /// A repeated step that walks its table in key order (see [`Keyset`]).
    pub keyset: Option<Keyset>,
    /// How it runs with respect to transactions.
    pub tx: StepTx,
    /// The migration file and line it comes from, when it does.
    pub origin: Option<StepOrigin>,
}

/// A repeated step that walks its table in key order, batch after batch,
/// instead of searching it again for the rows still to do: its SQL holds
/// `{after}`, which the runner replaces with nothing for the first batch
/// and with `WHERE key > 'last'` for the next ones, and it returns one
/// row: the rows it walked and the greatest key among them, as text. The
/// walk ends at the first batch shorter than `batch` rows (rows written
/// after that are the application's, with the column's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyset {
    /// The key column, quoted as an identifier.
    pub key: String,
    /// The rows of a full batch (the SQL's `LIMIT`).
    pub batch: u64,
}

/// The placeholder of a keyset step's SQL.
pub const AFTER: &str = "{after}";

impl Keyset {
    /// The SQL of the batch after the key `last` (the first batch: `None`).
    pub fn batch_sql(&self, template: &str, last: Option<&str>) -> String {
        let after = match last {
            Some(k) => format!("WHERE {} > '{}'", self.key, k.replace('\'', "''")),
            None => String::new(),
        };
        template.replace(AFTER, &after)
    }
}

/// How a step runs with respect to transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepTx {
    /// In a transaction the harness opens for the step alone.
    Own,
    /// Sent on its own, outside any transaction block: a statement that
    /// cannot run in one (`CONCURRENTLY`), or a string of several
    /// statements, which Postgres runs as one implicit transaction.
    Alone,
    /// In a transaction it shares with the steps around it: the one its
    /// migration runner opens for a file, or one the file opens itself.
    Shared(SharedTx),
}

/// A step's place in a transaction it shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedTx {
    /// Which transaction, numbered from 1 across the strategy.
    pub id: u32,
    /// The harness sends `BEGIN` before the step (as the runner does).
    pub begin: bool,
    /// The harness sends `COMMIT` after the step (as the runner does).
    pub commit: bool,
    /// The step itself opens or ends the transaction (`BEGIN`, `COMMIT`,
    /// `ROLLBACK` written in the file).
    pub control: Option<TxControl>,
}

/// A statement that opens or ends a transaction block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxControl {
    /// `BEGIN`, `START TRANSACTION`.
    Begin,
    /// `COMMIT`, `END`, `ROLLBACK`, `PREPARE TRANSACTION`.
    End,
}

/// Where in a migration file a step comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOrigin {
    /// The file, relative to its folder.
    pub file: String,
    /// The 1-based line of the statement's first character.
    pub line: usize,
}
