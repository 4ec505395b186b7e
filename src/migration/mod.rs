//! Applying a strategy: its steps in order on a connection of their own,
//! each measured for duration, lock wait (from the observer's samples of
//! this backend), attempts, the locks it took and the relations it
//! rewrote. A step that fails ends the migration with its SQLSTATE,
//! message and position; one still running at `max_duration` is cancelled.
//! Either way the rehearsal goes on and reports: a failed migration is a
//! result, not a crash.

mod capture;
mod lock_mode;
mod step;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::{Client, NoTls};

pub use capture::LockTaken;
pub use lock_mode::LockMode;

use crate::observe::Observer;
use crate::postgres::{Role, SqlError, connect};
use crate::scenario::Strategy;
use crate::workload::PhaseClock;

/// How the migration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every step succeeded.
    Ok,
    /// A step failed.
    Failed,
    /// It was still running at `max_duration` and was cancelled.
    Cancelled,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        })
    }
}

/// What the migration did.
#[derive(Debug, Clone, Serialize, PartialEq)]
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
}

/// What one step did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepReport {
    /// 1-based position in the strategy.
    pub index: usize,
    /// Its label, if the scenario gives one.
    pub name: Option<String>,
    /// Its SQL.
    pub sql: String,
    /// Whether it ran in a transaction of its own.
    pub transactional: bool,
    /// Seconds from the start of the load.
    pub started_s: f64,
    /// Seconds from the start of the load.
    pub ended_s: f64,
    /// Wall time, in milliseconds, retries and pauses included.
    pub duration_ms: f64,
    /// Time its backend waited for locks, in milliseconds.
    pub lock_wait_ms: f64,
    /// Executions, retries after a lock timeout included.
    pub attempts: u32,
    /// For a repeated step, how many batches ran (the last one affected 0
    /// rows); `null` for a plain step.
    pub batches: Option<u64>,
    /// Rows affected, summed over batches.
    pub rows: u64,
    /// Relation locks it held, strongest first per relation.
    pub locks: Vec<LockTaken>,
    /// Relations it rewrote (their storage was replaced).
    pub rewrote: Vec<String>,
    /// How it failed, if it did.
    pub error: Option<SqlError>,
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
}

impl Session<'_> {
    /// Whether `max_duration` has passed (the watchdog may not have fired
    /// yet at the very deadline).
    fn expired(&self) -> bool {
        self.expired.load(Ordering::SeqCst) || Instant::now() >= self.deadline
    }

    /// Sleeps `d`, or until the deadline; false if the deadline passed.
    async fn pause(&self, d: Duration) -> bool {
        let until = (Instant::now() + d).min(self.deadline);
        tokio::time::sleep_until(until.into()).await;
        !self.expired()
    }
}

/// Applies `strategy`, marking the migration's start and end on `clock`.
/// Only a failure to open the migration's connection is an error.
pub async fn apply(
    config: &tokio_postgres::Config,
    strategy: &Strategy,
    observer: &Observer,
    clock: &PhaseClock,
    max_duration: Duration,
) -> Result<MigrationReport, tokio_postgres::Error> {
    let client = connect(config, &Role::Migration).await?;
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    let started = clock.mark_migration_start();
    let deadline = started + max_duration;
    let expired = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (cancel, expired) = (client.cancel_token(), expired.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            expired.store(true, Ordering::SeqCst);
            let _ = cancel.cancel_query(NoTls).await;
        })
    };
    let session = Session { client, config, pid, observer, clock, deadline, expired };
    let mut steps = Vec::new();
    let mut outcome = Outcome::Ok;
    for (i, spec) in strategy.steps.iter().enumerate() {
        let report = step::run(&session, i + 1, spec).await;
        let failed = report.error.is_some();
        steps.push(report);
        if failed {
            outcome = if session.expired() { Outcome::Cancelled } else { Outcome::Failed };
            break;
        }
        let more = i + 1 < strategy.steps.len();
        if more && session.expired() {
            outcome = Outcome::Cancelled;
            break;
        }
    }
    watchdog.abort();
    let ended = clock.mark_migration_end();
    Ok(MigrationReport {
        outcome,
        started_s: clock.offset(started),
        ended_s: clock.offset(ended),
        total_ms: crate::units::millis(ended - started),
        lock_wait_ms: (steps.iter().map(|s| s.lock_wait_ms).sum::<f64>() * 1000.0).round() / 1000.0,
        steps,
    })
}
