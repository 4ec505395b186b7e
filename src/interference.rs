//! Interference: statements that run at a given time on connections of
//! their own, such as the long analytical report whose lock the migration
//! queues behind. Each is started at its `at`, and one still running when
//! the rehearsal ends is cancelled and reported as such.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio_postgres::{CancelToken, NoTls};

use crate::postgres::{Role, SqlError, connect};
use crate::scenario::InterferenceSpec;
use crate::workload::PhaseClock;

/// What one interfering statement did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InterferenceReport {
    /// Its name.
    pub name: String,
    /// Seconds from the start of the load; `null` if it never started.
    pub started_s: Option<f64>,
    /// Seconds from the start of the load; `null` if it never ended.
    pub ended_s: Option<f64>,
    /// `ok`, `failed`, `cancelled` (still running at the end of the run)
    /// or `not_started`.
    pub outcome: String,
    /// Its error, if it failed.
    pub error: Option<SqlError>,
}

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
                outcome: "not_started".into(),
                error: None,
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
                    Ok(_) => r.outcome = "ok".into(),
                    Err(e) => {
                        r.outcome = "failed".into();
                        r.error = Some(SqlError::from_pg(&e));
                    }
                }
            });
            running.push((cancel, report, task));
        }
        Ok(Interference { running })
    }

    /// Cancels what still runs and reports every statement.
    pub async fn finish(mut self) -> Vec<InterferenceReport> {
        let mut reports = Vec::new();
        for (cancel, report, task) in std::mem::take(&mut self.running) {
            let started = report.lock().expect("not poisoned").started_s.is_some();
            let done = task.is_finished();
            if !started {
                task.abort();
            } else if !done {
                let _ = cancel.cancel_query(NoTls).await;
                let _ = task.await;
                let mut r = report.lock().expect("not poisoned");
                r.outcome = "cancelled".into();
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
