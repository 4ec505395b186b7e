//! Applying a strategy: its steps in order on a connection of their own,
//! each measured for duration, lock wait (from the observer's samples of
//! this backend), attempts, the locks it took and the relations it
//! rewrote. A step that fails ends the migration with its SQLSTATE,
//! message and position; one still running at `max_duration` is cancelled.
//! Either way the rehearsal goes on and reports: a failed migration is a
//! result, not a crash.

mod capture;
pub mod files;
mod lock_mode;
mod step;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::{Client, NoTls};

pub use capture::LockTaken;
pub use lock_mode::LockMode;

use crate::clock::{PhaseClock, Window};
use crate::ledger::{Ledger, MigrationSpan};
use crate::observe::Observer;
use crate::postgres::{Role, SqlError, connect};
use crate::scenario::Strategy;
use crate::workload::Signal;

/// How the migration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every step succeeded.
    Ok,
    /// A step failed.
    Failed,
    /// It was still running at `max_duration` and was cancelled.
    Cancelled,
    /// It was abandoned: the server stopped, or did not answer a cancel.
    Interrupted,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Interrupted => "interrupted",
        })
    }
}

/// What the migration did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct MigrationReport {
    /// How it ended.
    pub outcome: Outcome,
    /// Seconds from the start of the load to its first statement.
    pub started_s: f64,
    /// Seconds from the start of the load to its end.
    pub ended_s: f64,
    /// Wall time of the whole migration, in milliseconds.
    pub total_ms: f64,
    /// Lock wait summed over its steps, in milliseconds.
    pub lock_wait_ms: f64,
    /// One entry per step that ran.
    pub steps: Vec<StepReport>,
    /// The migration files the steps come from, and how their runner
    /// sends each; empty for a scenario's own steps.
    pub files: Vec<crate::scenario::MigrationFileInfo>,
    /// Where the files come from and how the candidate was chosen.
    pub source: Option<String>,
}

/// What one step did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct StepReport {
    /// 1-based position in the strategy.
    pub index: usize,
    /// Its label, if the scenario gives one.
    pub name: Option<String>,
    /// Its SQL.
    pub sql: String,
    /// Whether it ran in a transaction of its own.
    pub transactional: bool,
    /// The transaction it ran in.
    pub transaction: TransactionKind,
    /// For a step in a transaction it shared with others (its migration
    /// file's), that transaction's number.
    pub transaction_id: Option<u32>,
    /// For a step in a shared transaction: seconds from the start of the
    /// load to that transaction's end, when the locks the step took were
    /// released.
    pub held_until_s: Option<f64>,
    /// The migration file it comes from.
    pub file: Option<String>,
    /// Its line in that file.
    pub line: Option<usize>,
    /// Seconds from the start of the load.
    pub started_s: f64,
    /// Seconds from the start of the load.
    pub ended_s: f64,
    /// Wall time, in milliseconds, retries and pauses included.
    pub duration_ms: f64,
    /// Wall-clock time its session waited for locks, in milliseconds: at
    /// most its duration.
    pub lock_wait_ms: f64,
    /// Time of the step the lock observer has no samples for, in
    /// milliseconds: the lock wait may be longer by up to this much.
    pub unsampled_ms: f64,
    /// How long it held the locks it took, in milliseconds: the wall time
    /// of its successful execution after its lock wait (of the longest
    /// batch, for a repeated step). A step in a transaction shared with
    /// others holds them on until that transaction ends (`held_until_s`).
    pub held_ms: f64,
    /// Executions, retries after a lock timeout included.
    pub attempts: u32,
    /// For a repeated step, how many batches ran (the last one affected 0
    /// rows); `null` for a plain step.
    pub batches: Option<u64>,
    /// For a repeated step, every batch that completed, in order: empty
    /// for a plain step.
    pub batches_series: Vec<BatchPoint>,
    /// For a repeated step that did not finish: how far it got, and how
    /// long the rest would take at its recent pace (set by the report,
    /// which knows the tables' sizes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<BatchProgress>,
    /// Rows affected, summed over batches.
    pub rows: u64,
    /// WAL the server wrote while it ran, in bytes (the load's included;
    /// set by the report from the WAL samples).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_bytes: Option<u64>,
    /// Relation locks it held, strongest first per relation.
    pub locks: Vec<LockTaken>,
    /// Relations it rewrote (their storage was replaced).
    pub rewrote: Vec<String>,
    /// How it failed, if it did.
    pub error: Option<SqlError>,
}

/// One batch of a repeated step.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq)]
pub struct BatchPoint {
    /// When it started, seconds from the start of the load.
    pub at_s: f64,
    /// Its wall time, retries after a lock timeout included, in ms.
    pub duration_ms: f64,
    /// Rows it affected.
    pub rows: u64,
}

/// How far a repeated step got before it was stopped, and an estimate of
/// the rest.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct BatchProgress {
    /// Rows the completed batches affected.
    pub rows_done: u64,
    /// The rows of the table the step writes, as loaded; `null` when the
    /// step's table is not one the harness loaded.
    pub rows_total: Option<u64>,
    /// That table.
    pub table: Option<String>,
    /// Wall time from the step's start to its last completed batch, in s.
    pub elapsed_s: f64,
    /// Rows per second over the recent batches (the last tenth, at least
    /// five), pauses included.
    pub recent_rows_per_s: Option<f64>,
    /// Seconds the rest would take at that pace.
    pub eta_s: Option<f64>,
    /// Median batch time at the start, the middle and the end (a tenth of
    /// the batches each, at least one), in ms.
    pub trend_ms: [f64; 3],
    /// The batches at the end took more than 1.5 times those at the start:
    /// the estimate is then likely short.
    pub slowing: bool,
}

/// The transaction a step ran in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransactionKind {
    /// One the harness opened for the step alone.
    Own,
    /// None: the statement ran on its own (autocommit).
    None,
    /// The implicit transaction Postgres gives a string of several
    /// statements sent at once.
    Implicit,
    /// One it shared with the steps around it: its migration file's.
    Shared,
}

impl TransactionKind {
    /// How a step of `tx` and SQL `sql` runs.
    fn of(tx: &crate::scenario::StepTx, sql: &str) -> Self {
        use crate::scenario::StepTx;
        match tx {
            StepTx::Own => Self::Own,
            StepTx::Shared(_) => Self::Shared,
            StepTx::Alone if crate::scenario::sql_parse::parse(sql).is_ok_and(|p| p.len() > 1) => Self::Implicit,
            StepTx::Alone => Self::None,
        }
    }
}

/// The transaction shared by the steps of a migration file while it is
/// open: the locks already held in it, and the catalog as it was at its
/// start (to name what it dropped).
#[derive(Default)]
struct OpenTransaction {
    id: u32,
    held: std::collections::BTreeSet<LockTaken>,
    catalog: capture::Catalog,
}

/// The migration's session and what it needs to measure its steps.
struct Session<'a> {
    client: Client,
    config: &'a tokio_postgres::Config,
    pid: i32,
    observer: &'a Observer,
    clock: &'a PhaseClock,
    deadline: Instant,
    expired: Arc<AtomicBool>,
    /// Fired when the migration must stop waiting on the server; why.
    abandon: Signal,
    why: Arc<Mutex<String>>,
    /// The shared transaction open now, if any.
    open: Mutex<Option<OpenTransaction>>,
    /// The workload's ledger, told of each execution (when it follows
    /// writes), so that the migration's own changes to rows are not taken
    /// for lost writes.
    ledger: Option<&'a Ledger>,
}

/// The first transaction id not yet assigned (64-bit, with its epoch;
/// `txid_*` for servers before 13).
const NEXT_XID: &str = "SELECT txid_snapshot_xmax(txid_current_snapshot())";

/// How long a step whose session was lost waits to hear whether the
/// server stopped.
const SERVER_VERDICT: Duration = Duration::from_secs(3);

/// How long a cancelled statement may take to end before it is abandoned.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

impl Session<'_> {
    /// Awaits `call` on the server, unless the migration is abandoned
    /// first.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, SqlError> {
        tokio::select! {
            r = call => r.map_err(|e| SqlError::from_pg(&e)),
            _ = self.abandon.fired() => Err(SqlError::harness(self.why.lock().expect("not poisoned").clone())),
        }
    }

    /// Whether the migration was abandoned.
    fn abandoned(&self) -> bool {
        self.abandon.is_fired()
    }

    /// Whether `max_duration` has passed (the watchdog may not have fired
    /// yet at the very deadline).
    fn expired(&self) -> bool {
        self.expired.load(Ordering::SeqCst) || Instant::now() >= self.deadline
    }

    /// Where an execution begins, for the ledger: its tick, and the next
    /// transaction id; `None` when no ledger follows writes.
    async fn span_start(&self) -> Option<(u64, i64)> {
        let ledger = self.ledger.filter(|l| l.follows())?;
        let tick = ledger.spill.tick();
        let row = self.bounded(self.client.query_one(NEXT_XID, &[])).await.ok()?;
        Some((tick, row.get(0)))
    }

    /// Tells the ledger of an execution that began at `start`. An
    /// execution whose end cannot be read is not told: its changes count
    /// as the workload's losses (never the other way round).
    async fn span_end(&self, start: Option<(u64, i64)>) {
        let (Some(ledger), Some((tick, lo))) = (self.ledger, start) else { return };
        if let Ok(row) = self.bounded(self.client.query_one(NEXT_XID, &[])).await {
            ledger.migration_ran(MigrationSpan { tick, lo, hi: row.get(0) });
        }
    }

    /// Sleeps `d`, or until the deadline; false if the deadline passed.
    async fn pause(&self, d: Duration) -> bool {
        let until = (Instant::now() + d).min(self.deadline);
        tokio::time::sleep_until(until.into()).await;
        !self.expired()
    }
}

/// Applies `strategy`, marking the start and end of `window` (the
/// migration, or its rollback) on `clock`.
/// Only a failure to open the migration's connection is an error. When
/// `server_gone` fires, the statement running is abandoned. `ledger`, the
/// workload's, is told when each execution ran.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    config: &tokio_postgres::Config,
    strategy: &Strategy,
    observer: &Observer,
    clock: &PhaseClock,
    window: Window,
    max_duration: Duration,
    server_gone: &Signal,
    ledger: Option<&Ledger>,
) -> Result<MigrationReport, tokio_postgres::Error> {
    let client = connect(config, &Role::Migration).await?;
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    let started = clock.mark_start(window);
    let deadline = started + max_duration;
    let expired = Arc::new(AtomicBool::new(false));
    let (abandon, why) = (Signal::new(), Arc::new(Mutex::new(String::new())));
    let watchdog = {
        let (cancel, expired, abandon, why) = (client.cancel_token(), expired.clone(), abandon.clone(), why.clone());
        let gone = server_gone.clone();
        tokio::spawn(async move {
            let reason = tokio::select! {
                _ = gone.fired() => "the server stopped while the statement ran; it was abandoned".to_string(),
                _ = async {
                    tokio::time::sleep_until(deadline.into()).await;
                    expired.store(true, Ordering::SeqCst);
                    let _ = tokio::time::timeout(CANCEL_GRACE, cancel.cancel_query(NoTls)).await;
                    tokio::time::sleep(CANCEL_GRACE).await;
                } => format!("the statement did not end within {}s of its cancel; it was abandoned", CANCEL_GRACE.as_secs()),
            };
            *why.lock().expect("not poisoned") = reason;
            abandon.fire();
        })
    };
    let open = Mutex::new(None);
    let session = Session { client, config, pid, observer, clock, deadline, expired, abandon, why, open, ledger };
    let mut steps = Vec::new();
    let mut outcome = Outcome::Ok;
    for (i, spec) in strategy.steps.iter().enumerate() {
        let report = step::run(&session, i + 1, spec).await;
        let failed = report.error.is_some();
        let lost = report.error.as_ref().is_some_and(SqlError::is_connection_lost);
        steps.push(report);
        if failed {
            // A session lost with the server: the server watch says so
            // within a second or two, and then it is the server's fault,
            // not the migration's.
            if lost && !session.abandoned() && !session.expired() {
                let _ = tokio::time::timeout(SERVER_VERDICT, server_gone.fired()).await;
            }
            outcome = if session.abandoned() || (lost && server_gone.is_fired()) {
                Outcome::Interrupted
            } else if session.expired() {
                Outcome::Cancelled
            } else {
                Outcome::Failed
            };
            break;
        }
        let more = i + 1 < strategy.steps.len();
        if more && session.expired() {
            outcome = Outcome::Cancelled;
            break;
        }
    }
    watchdog.abort();
    held_until(&mut steps);
    let ended = clock.mark_end(window);
    Ok(MigrationReport {
        outcome,
        started_s: clock.offset(started),
        ended_s: clock.offset(ended),
        total_ms: crate::units::millis(ended - started),
        lock_wait_ms: (steps.iter().map(|s| s.lock_wait_ms).sum::<f64>() * 1000.0).round() / 1000.0,
        steps,
        files: strategy.files.clone(),
        source: strategy.source.clone(),
    })
}

/// Sets, on each step of a shared transaction, when that transaction
/// ended: the end of its last step that ran (the COMMIT, or the failure
/// that rolled it back).
fn held_until(steps: &mut [StepReport]) {
    let mut end: std::collections::BTreeMap<u32, f64> = std::collections::BTreeMap::new();
    for s in steps.iter() {
        if let Some(id) = s.transaction_id {
            end.insert(id, s.ended_s);
        }
    }
    for s in steps.iter_mut() {
        s.held_until_s = s.transaction_id.and_then(|id| end.get(&id).copied());
    }
}
