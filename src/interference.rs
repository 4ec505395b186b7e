//! Interference: statements that run at a given time on connections of
//! their own, such as the long analytical report whose lock the migration
//! queues behind. Each is started at its `at`, and one still running when
//! the rehearsal ends is cancelled and reported as such; one whose cancel
//! is not answered within a few seconds (a server that does not answer) is
//! abandoned, never waited for without end. One that fails fails the
//! verdict, unless the scenario marks it `optional`: a rehearsal of an
//! outage whose cause never ran has not rehearsed it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::{CancelToken, NoTls};

use crate::clock::PhaseClock;
use crate::postgres::{Role, SqlError, connect};
use crate::scenario::InterferenceSpec;

/// What one interfering statement did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct InterferenceReport {
    /// Its name.
    pub name: String,
    /// Seconds from the start of the load; `null` if it never started.
    pub started_s: Option<f64>,
    /// Seconds from the start of the load; `null` if it never ended.
    pub ended_s: Option<f64>,
    /// How it ended.
    pub outcome: InterferenceOutcome,
    /// Its error, if it failed.
    pub error: Option<SqlError>,
    /// Whether its failure is allowed (`optional = true`).
    pub optional: bool,
}

/// How an interfering statement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterferenceOutcome {
    /// It completed.
    Ok,
    /// It failed with an error.
    Failed,
    /// It was still running at the end of the run and was cancelled.
    Cancelled,
    /// It was still running and its cancel was not answered: abandoned.
    Abandoned,
    /// Its time never came.
    NotStarted,
}

impl std::fmt::Display for InterferenceOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InterferenceOutcome::Ok => "ok",
            InterferenceOutcome::Failed => "FAILED",
            InterferenceOutcome::Cancelled => "cancelled at the end of the run",
            InterferenceOutcome::Abandoned => "abandoned (its cancel was not answered)",
            InterferenceOutcome::NotStarted => "never started",
        })
    }
}

/// How long a cancelled statement may take to end.
const CANCEL_GRACE: Duration = Duration::from_secs(3);

/// Interfering statements, connected and waiting for their time. Dropping
/// it abandons them (their sessions close; see `postgres::Cleanup` for a
/// server the harness does not own).
pub struct Interference {
    running: Vec<(CancelToken, Arc<Mutex<InterferenceReport>>, tokio::task::JoinHandle<()>)>,
}

impl Interference {
    /// Connects one session per statement and schedules each at its `at`
    /// from the clock's start.
    pub async fn start(
        config: &tokio_postgres::Config,
        specs: &[InterferenceSpec],
        clock: Arc<PhaseClock>,
    ) -> Result<Interference, tokio_postgres::Error> {
        let mut running = Vec::new();
        for spec in specs {
            let client = connect(config, &Role::Interference(spec.name.clone())).await?;
            let report = Arc::new(Mutex::new(InterferenceReport {
                name: spec.name.clone(),
                started_s: None,
                ended_s: None,
                outcome: InterferenceOutcome::NotStarted,
                error: None,
                optional: spec.optional,
            }));
            let (r, clock, sql, at) = (report.clone(), clock.clone(), spec.sql.text.clone(), spec.at);
            let cancel = client.cancel_token();
            let task = tokio::spawn(async move {
                tokio::time::sleep_until((clock.start() + at).into()).await;
                r.lock().expect("not poisoned").started_s = Some(clock.offset(Instant::now()));
                let result = client.simple_query(&sql).await;
                let mut r = r.lock().expect("not poisoned");
                r.ended_s = Some(clock.offset(Instant::now()));
                match result {
                    Ok(_) => r.outcome = InterferenceOutcome::Ok,
                    Err(e) => {
                        r.outcome = InterferenceOutcome::Failed;
                        r.error = Some(SqlError::from_pg(&e));
                    }
                }
            });
            running.push((cancel, report, task));
        }
        Ok(Interference { running })
    }

    /// Cancels what still runs and reports every statement. Each cancel is
    /// given a few seconds to be answered.
    pub async fn finish(mut self) -> Vec<InterferenceReport> {
        let mut reports = Vec::new();
        for (cancel, report, mut task) in std::mem::take(&mut self.running) {
            let started = report.lock().expect("not poisoned").started_s.is_some();
            if !started {
                task.abort();
            } else if !task.is_finished() {
                let _ = tokio::time::timeout(CANCEL_GRACE, cancel.cancel_query(NoTls)).await;
                let ended = tokio::time::timeout(CANCEL_GRACE, &mut task).await.is_ok();
                task.abort();
                let mut r = report.lock().expect("not poisoned");
                // Cancelled now, not the error the cancel made it return.
                r.error = None;
                r.outcome = if ended { InterferenceOutcome::Cancelled } else { InterferenceOutcome::Abandoned };
            }
            reports.push(report.lock().expect("not poisoned").clone());
        }
        reports
    }
}

impl Drop for Interference {
    fn drop(&mut self) {
        for (_, _, task) in &self.running {
            task.abort();
        }
    }
}
