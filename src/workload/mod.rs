//! The application's load: each workload query on its own open-loop
//! schedule, through a pool of `pool_size` connections, measured per phase.
//!
//! [`Workload::prepare`] opens the pool and checks every query against the
//! database (a query on a missing table fails here, with the SQLSTATE and
//! the place in the scenario file). [`Workload::start`] runs one pacing
//! loop per query; each request is its own task, so a request stuck
//! behind a lock never delays the next one. [`Running::stop`] stops the
//! pacers and gives in-flight requests a grace period; any still running
//! after it is recorded as `unfinished`.

mod pacer;
mod phase;
mod pool;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use pacer::{FixedRate, Pacer, pace};
pub use phase::{Phase, PhaseClock};
pub use pool::{Pool, PoolStats};
pub use stats::{Failure, QueryPhaseStats, QueryRecorder, SeriesPoint};

use bytes::BytesMut;

use crate::datagen::{PgKind, ValueGen, rng_for};
use crate::postgres::SqlError;
use crate::scenario::{Location, QuerySpec, ValueSpec, WorkloadSpec};

/// Why the workload could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// A query does not prepare on the database: the scenario's fault.
    #[error("{at}: query `{query}` is not valid on this database: {error}")]
    Prepare {
        /// The query.
        query: String,
        /// Where Postgres pointed, in the scenario file.
        at: Location,
        /// The server's error.
        error: SqlError,
    },
    /// A parameter's generator cannot produce the placeholder's type.
    #[error("{at}: query `{query}`, parameter ${index}: {message}")]
    ParamType {
        /// The query.
        query: String,
        /// Where its generator is.
        at: Location,
        /// 1-based placeholder number.
        index: usize,
        /// What does not fit.
        message: String,
    },
    /// A query has a different number of parameters than its SQL uses.
    #[error("{at}: query `{query}` gives {given} params but its SQL uses {expected}")]
    Params {
        /// The query.
        query: String,
        /// Where its SQL is.
        at: Location,
        /// Generators given.
        given: usize,
        /// Placeholders in the SQL.
        expected: usize,
    },
    /// The pool could not connect.
    #[error("cannot open the workload's connection pool: {0}")]
    Connect(SqlError),
}

impl WorkloadError {
    /// 2 for the scenario's fault, 3 for the environment's.
    pub fn exit_code(&self) -> i32 {
        match self {
            WorkloadError::Connect(_) => 3,
            _ => 2,
        }
    }
}

struct Query {
    spec: QuerySpec,
    params: Vec<ValueGen>,
    recorder: QueryRecorder,
}

/// A prepared workload, ready to start.
pub struct Workload {
    pool: Arc<Pool>,
    queries: Vec<Arc<Query>>,
    pool_timeout: Duration,
    seed: u64,
}

/// A workload whose pacers are running. Dropping it (an early return, a
/// Ctrl-C) stops the pacers and abandons the requests in flight.
pub struct Running {
    workload: Arc<Workload>,
    stop: CancellationToken,
    abort: CancellationToken,
    tracker: TaskTracker,
    pacers: Vec<tokio::task::JoinHandle<()>>,
}

/// What one query measured over the run.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    /// The query's name.
    pub name: String,
    /// Whether it only reads.
    pub is_read: bool,
    /// Target rate, requests per second.
    pub rate: f64,
    /// Per phase: baseline, during, after.
    pub phases: [QueryPhaseStats; 3],
    /// Per second, by due time.
    pub series: Vec<SeriesPoint>,
}

impl Workload {
    /// Opens the pool and prepares every query on every connection.
    pub async fn prepare(
        config: &tokio_postgres::Config,
        spec: &WorkloadSpec,
        seed: u64,
    ) -> Result<Workload, WorkloadError> {
        let sqls = spec.queries.iter().map(|q| q.sql.text.clone()).collect();
        let (pool, statements) = Pool::open(config, spec.pool_size, sqls).await.map_err(|e| match e {
            pool::OpenError::Prepare { index, error } => {
                let q = &spec.queries[index];
                WorkloadError::Prepare { query: q.name.clone(), at: q.sql.location_of(error.position), error }
            }
            pool::OpenError::Connect(error) => WorkloadError::Connect(error),
        })?;
        for (q, stmt) in spec.queries.iter().zip(&statements) {
            if stmt.params().len() != q.params.len() {
                return Err(WorkloadError::Params {
                    query: q.name.clone(),
                    at: q.sql.at.clone(),
                    given: q.params.len(),
                    expected: stmt.params().len(),
                });
            }
        }
        // Every generator must produce its placeholder's type; try one
        // value of each now rather than fail every request later.
        for (q, stmt) in spec.queries.iter().zip(&statements) {
            let mut rng = rng_for(seed, 0, 0);
            for (i, (p, ty)) in q.params.iter().zip(stmt.params()).enumerate() {
                let value = ValueGen::from_spec(&ValueSpec { nulls: 0.0, ..p.spec.clone() }).generate(0, &mut rng);
                let fits = PgKind::of(ty)
                    .ok_or_else(|| format!("parameters of type {} are not supported", ty.name()))
                    .and_then(|kind| value.encode(kind, &mut BytesMut::new()).map_err(|e| e.to_string()));
                if let Err(message) = fits {
                    return Err(WorkloadError::ParamType {
                        query: q.name.clone(),
                        at: p.at.clone(),
                        index: i + 1,
                        message,
                    });
                }
            }
        }
        let queries = spec
            .queries
            .iter()
            .map(|q| {
                Arc::new(Query {
                    params: q.params.iter().map(|p| ValueGen::from_spec(&p.spec)).collect(),
                    spec: q.clone(),
                    recorder: QueryRecorder::default(),
                })
            })
            .collect();
        Ok(Workload { pool, queries, pool_timeout: spec.pool_timeout, seed })
    }

    /// The pool, for its gauge.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Starts every query's pacer; time zero is the clock's start.
    pub fn start(self: Arc<Self>, clock: Arc<PhaseClock>) -> Running {
        let stop = CancellationToken::new();
        let abort = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut pacers = Vec::new();
        for (index, query) in self.queries.iter().enumerate() {
            let (query, clock, tracker, abort) = (query.clone(), clock.clone(), tracker.clone(), abort.clone());
            let (pool, timeout) = (self.pool.clone(), self.pool_timeout);
            let mut rng = rng_for(self.seed, 1_000_000 + index as u64, 0);
            let pacer = FixedRate::new(query.spec.rate);
            let start = clock.start();
            pacers.push(tokio::spawn(pace(start, pacer, stop.clone(), move |due, n| {
                let params: Vec<_> = query.params.iter().map(|g| g.generate(n, &mut rng)).collect();
                let second = due.saturating_duration_since(start).as_secs();
                query.recorder.issued(second);
                let (query, clock, pool, abort) = (query.clone(), clock.clone(), pool.clone(), abort.clone());
                tracker.spawn(async move {
                    let work = async {
                        let mut lease = pool.acquire(due + timeout).await?;
                        lease.execute(index, &params).await.map(|_| ()).map_err(|e| Failure::classify(&e))
                    };
                    let outcome = tokio::select! {
                        r = work => r,
                        _ = abort.cancelled() => Err(Failure::Unfinished),
                    };
                    query.recorder.completed(clock.phase_of(due), second, due.elapsed(), outcome);
                });
            })));
        }
        Running { workload: self, stop, abort, tracker, pacers }
    }
}

impl Running {
    /// Stops issuing requests, waits up to `grace` for the ones in flight,
    /// records the rest as unfinished, and returns every query's results.
    pub async fn stop(mut self, grace: Duration) -> (Vec<QueryResult>, PoolStats) {
        self.stop.cancel();
        for p in std::mem::take(&mut self.pacers) {
            let _ = p.await;
        }
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            self.abort.cancel();
            self.tracker.wait().await;
        }
        let results = self
            .workload
            .queries
            .iter()
            .map(|q| QueryResult {
                name: q.spec.name.clone(),
                is_read: q.spec.is_read(),
                rate: q.spec.rate,
                phases: Phase::ALL.map(|p| q.recorder.phase(p)),
                series: q.recorder.series(),
            })
            .collect();
        (results, self.workload.pool.stats())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
        self.abort.cancel();
    }
}
