//! The application's load: each workload query open loop (on a schedule:
//! a rate, a ramp, Poisson arrivals) or closed loop (clients with think
//! time), as one statement or one transaction, through a pool of
//! `pool_size` connections, measured per phase.
//!
//! [`Workload::prepare`] starts the load's threads ([`Shards`]), opens the
//! pool and checks every query against the database (a query on a missing
//! table fails here, with the SQLSTATE and the place in the scenario
//! file). [`Workload::start`] runs, for each open-loop query, one pacing
//! loop per shard over its share of the schedule, each request its own
//! task, so a request stuck behind a lock never delays the next one; and
//! one loop per closed-loop client. [`Running::stop`] stops the pacers and
//! gives in-flight requests a grace period; any still running after it is
//! dropped and recorded as `unfinished`.

pub mod first_errors;
mod lease;
mod pacer;

mod pool;
mod pool_series;
mod recorder;
mod request;

use request::{Request, Spawner};
mod shards;
mod signal;
mod startup;
mod stats;
mod wire;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::task::AbortHandle;
use tokio_util::task::TaskTracker;

pub use first_errors::{ErrorSeen, FirstErrors};
pub use lease::{Lease, Plan};
pub use pacer::{Issue, OpenSchedule, Pacer, Share, ThinkTime, TimerFdWait, TokioWait, Wait, pace};

use crate::clock::{Phase, PhaseClock};
pub use pool::{Pool, PoolStats};
pub use pool_series::PoolPoint;
pub use recorder::QueryRecorder;
pub use shards::Shards;
pub use signal::Signal;
pub use stats::{Failure, LiveSample, QueryPhaseStats, SeriesPoint};
pub use wire::{WireConn, WireError};

use bytes::BytesMut;

use crate::datagen::{PgKind, ValueGen, rng_for};
use crate::ledger::{Capture, Ledger};
use crate::postgres::SqlError;
use crate::scenario::{Load, Location, QuerySpec, Target, ValueSpec, WorkloadSpec};

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
    /// The threads the load runs on could not start.
    #[error("cannot start the load's threads: {0}")]
    Threads(String),
}

impl WorkloadError {
    /// Statement `st` of query `q` did not prepare.
    pub fn prepare(q: &QuerySpec, st: &crate::scenario::SqlText, e: &tokio_postgres::Error) -> Self {
        let error = SqlError::from_pg(e);
        WorkloadError::Prepare { query: q.name.clone(), at: st.location_of(error.position), error }
    }

    /// 2 for the scenario's fault, 3 for the environment's.
    pub fn exit_code(&self) -> i32 {
        match self {
            WorkloadError::Connect(_) | WorkloadError::Threads(_) => 3,
            _ => 2,
        }
    }
}

struct Query {
    spec: QuerySpec,
    params: Vec<ValueGen>,
    recorder: QueryRecorder,
    /// The first error of each schema-error SQLSTATE it met.
    errors: FirstErrors,
    /// The pool of its server: the primary's, or one per replica, taken in
    /// turn.
    pools: Vec<Arc<Pool>>,
    turn: std::sync::atomic::AtomicUsize,
    plan: Plan,
    /// Where its acknowledged writes are recorded, when it has tracked
    /// statements.
    ledger: Option<Arc<Ledger>>,
}

impl Query {
    /// The pool its next request goes through.
    fn pool(&self) -> &Pool {
        match self.pools.as_slice() {
            [one] => one,
            many => &many[self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % many.len()],
        }
    }
}

/// A prepared workload, ready to start.
pub struct Workload {
    pools: Vec<Arc<Pool>>,
    /// The ledger of its acknowledged writes.
    ledger: Arc<Ledger>,
    queries: Vec<Arc<Query>>,
    pool_timeout: Duration,
    seed: u64,
    /// The threads requests run on; declared last, so the connections go
    /// before the runtimes that serve them.
    shards: Shards,
}

/// A workload whose pacers are running. Dropping it (an early return, a
/// Ctrl-C) stops the pacers and abandons the requests in flight.
pub struct Running {
    workload: Arc<Workload>,
    stop: Signal,
    /// One per shard: aborts the open-loop requests in flight on it.
    abort: Vec<Signal>,
    /// The closed-loop clients, each aborted with the request it has in
    /// flight.
    clients: Vec<AbortHandle>,
    tracker: TaskTracker,
    /// The primary pool's fill, per second.
    fill: Arc<Mutex<Vec<pool_series::PoolPoint>>>,
}

/// What one query measured over the run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct QueryResult {
    /// The query's name.
    pub name: String,
    /// Per phase: baseline, during, after.
    pub phases: [QueryPhaseStats; 5],
    /// Per second, by due time.
    pub series: Vec<SeriesPoint>,
    /// The errors it met that say its SQL no longer fits the schema or the
    /// data (see [`first_errors::schema_error`]), by SQLSTATE.
    pub errors: Vec<ErrorSeen>,
}

/// The statements one pool prepares, and which query each came from.
#[derive(Default)]
struct PoolPlan {
    sqls: Vec<String>,
    /// The ledger's columns, per SQL, when the ledger tracks it.
    captures: Vec<Option<Capture>>,
    /// (query index, statement index within the query) per SQL.
    origin: Vec<(usize, usize)>,
}

impl Workload {
    /// Opens the pools (the primary's, and one per replica when
    /// `replicas` are given and a query targets them) and prepares every
    /// query's statements on every connection. A query with `target =
    /// "replica"` sends its requests to the replicas in turn.
    pub async fn prepare(
        config: &tokio_postgres::Config,
        replicas: &[tokio_postgres::Config],
        spec: &WorkloadSpec,
        seed: u64,
    ) -> Result<Workload, WorkloadError> {
        Self::prepare_via(config, None, replicas, spec, seed).await
    }

    /// [`Workload::prepare`], the primary's pool connecting `via` a pooler
    /// (PgBouncer) when one is given.
    pub async fn prepare_via(
        config: &tokio_postgres::Config,
        via: Option<&tokio_postgres::Config>,
        replicas: &[tokio_postgres::Config],
        spec: &WorkloadSpec,
        seed: u64,
    ) -> Result<Workload, WorkloadError> {
        let shards = Shards::start(shards::default_count()).map_err(|e| WorkloadError::Threads(e.to_string()))?;
        let on_replica = |q: &QuerySpec| !replicas.is_empty() && q.target == Target::Replica;
        let catalog = crate::postgres::connect(config, &crate::postgres::Role::Harness)
            .await
            .map_err(|e| WorkloadError::Connect(SqlError::from_pg(&e)))?;
        let (ledger, rewritten) = Ledger::plan(&catalog, spec).await;
        drop(catalog);
        let mut plans = [PoolPlan::default(), PoolPlan::default()];
        for (qi, q) in spec.queries.iter().enumerate() {
            let replica = on_replica(q);
            let p = &mut plans[usize::from(replica)];
            for (si, st) in q.statements.iter().enumerate() {
                let tracked = rewritten.get(&(qi, si)).filter(|_| !replica);
                p.sqls.push(tracked.map_or_else(|| st.text.clone(), |r| r.sql.clone()));
                p.captures.push(tracked.map(|r| r.capture));
                p.origin.push((qi, si));
            }
        }
        let ledger = Arc::new(ledger);
        let mut pools = Vec::new();
        let mut prepared = Vec::new();
        let servers = std::iter::once((0, config)).chain(replicas.iter().map(|r| (1, r)));
        for (which, config) in servers {
            let plan = &plans[which];
            if plan.sqls.is_empty() && !pools.is_empty() {
                continue;
            }
            let (pool, statements) = Pool::open_tracked(
                config,
                via.filter(|_| which == 0),
                spec.pool_size,
                plan.sqls.clone(),
                plan.captures.clone(),
                &shards,
            )
            .await
            .map_err(|e| match e {
                pool::OpenError::Prepare { index, error } => {
                    let (qi, si) = plan.origin[index];
                    let q = &spec.queries[qi];
                    let at = q.statements[si].location_of(error.position);
                    WorkloadError::Prepare { query: q.name.clone(), at, error }
                }
                pool::OpenError::Connect(error) => WorkloadError::Connect(error),
            })?;
            pools.push(pool.clone());
            prepared.push((which, pool, statements));
        }
        let mut queries = Vec::with_capacity(spec.queries.len());
        for (qi, q) in spec.queries.iter().enumerate() {
            let which = usize::from(on_replica(q));
            let mine: Vec<_> = prepared.iter().filter(|(w, _, _)| *w == which).collect();
            let (_, _, statements) = mine[0];
            let mut steps = Vec::new();
            for (index, origin) in plans[which].origin.iter().enumerate() {
                if origin.0 == qi {
                    steps.push((index, statements[index].params().len()));
                }
            }
            check_params(q, &steps.iter().map(|(i, _)| &statements[*i]).collect::<Vec<_>>(), seed).map_err(|e| *e)?;
            queries.push(Arc::new(Query {
                params: q.params.iter().map(|p| ValueGen::from_spec(&p.spec)).collect(),
                spec: q.clone(),
                recorder: QueryRecorder::with_slots(shards.count()),
                errors: FirstErrors::default(),
                pools: mine.iter().map(|(_, pool, _)| pool.clone()).collect(),
                turn: Default::default(),
                plan: Plan { statements: steps, transaction: q.transaction, statement_timeout: q.statement_timeout },
                ledger: ledger.tracked.iter().any(|t| t.query == q.name).then(|| ledger.clone()),
            }));
        }
        Ok(Workload { pools, ledger, queries, pool_timeout: spec.pool_timeout, seed, shards })
    }

    /// Starts every query: one pacing loop per open-loop query, one per
    /// client of a closed-loop query. Time zero is the clock's start.
    pub fn start(self: Arc<Self>, clock: Arc<PhaseClock>) -> Running {
        let stop = Signal::new();
        let abort: Vec<Signal> = (0..self.shards.count()).map(|_| Signal::new()).collect();
        let mut clients = Vec::new();
        let tracker = TaskTracker::new();
        let start = clock.start();
        let mut lanes = 0u64..;
        for (index, query) in self.queries.iter().enumerate() {
            let stream = 1_000_000 + index as u64;
            match &query.spec.load {
                Load::Open { rate, arrival } => {
                    // Each shard paces its share of one schedule on a timer
                    // of its own reactor and spawns its requests there, so
                    // a request starts on the thread that woke for it.
                    let count = self.shards.count();
                    for (shard, abort) in abort.iter().enumerate() {
                        let schedule = OpenSchedule::new(rate, *arrival, rng_seed(self.seed, stream));
                        let pacer = Share::new(schedule, count, shard);
                        let spawner = Spawner {
                            request: Request::new(
                                query,
                                &clock,
                                rng_for(self.seed, stream, shard as u64),
                                lanes.next().unwrap_or_default(),
                                self.pool_timeout,
                            ),
                            abort: abort.clone(),
                            tracker: tracker.clone(),
                        };
                        let stop = stop.clone();
                        let pacing = async move {
                            let wait = TimerFdWait::new().unwrap_or_else(|e| {
                                eprintln!(
                                    "rehearse: no timerfd ({e}); open-loop requests are paced to the millisecond"
                                );
                                TimerFdWait::coarse()
                            });
                            pace(start, pacer, wait, &stop, spawner).await
                        };
                        tracker.spawn_on(pacing, self.shards.handle(shard));
                    }
                }
                Load::Closed { clients: n, think_time } => {
                    for client in 0..*n {
                        let rng = rng_for(self.seed, stream, client as u64);
                        let lane = lanes.next().unwrap_or_default();
                        let mut request = Request::new(query, &clock, rng, lane, self.pool_timeout);
                        let (stop, pacer) = (stop.clone(), ThinkTime::new(*think_time));
                        let client_loop = async move { pace(start, pacer, TokioWait, &stop, &mut request).await };
                        clients.push(tracker.spawn_on(client_loop, self.shards.handle(client)).abort_handle());
                    }
                }
            }
        }
        // The primary pool's fill, for the charts.
        let fill = Arc::new(Mutex::new(Vec::new()));
        tracker.spawn(pool_series::sample(self.pools[0].clone(), start, stop.clone(), fill.clone()));
        Running { workload: self, stop, abort, clients, tracker, fill }
    }
}

/// A seed for a pacer's arrivals, apart from its parameters' stream.
fn rng_seed(seed: u64, stream: u64) -> u64 {
    seed ^ stream.rotate_left(32) ^ 0x5851_f42d_4c95_7f2d
}

/// Checks that `q` gives as many parameters as its statements use, and
/// that each generator produces its placeholder's type, trying one value
/// of each now rather than failing every request later.
pub fn check_params(
    q: &QuerySpec,
    statements: &[&tokio_postgres::Statement],
    seed: u64,
) -> Result<(), Box<WorkloadError>> {
    let used = statements.iter().map(|s| s.params().len()).max().unwrap_or(0);
    if used != q.params.len() {
        return Err(Box::new(WorkloadError::Params {
            query: q.name.clone(),
            at: q.statements[0].at.clone(),
            given: q.params.len(),
            expected: used,
        }));
    }
    for stmt in statements {
        let mut rng = rng_for(seed, 0, 0);
        for (i, (p, ty)) in q.params.iter().zip(stmt.params()).enumerate() {
            let value = ValueGen::from_spec(&ValueSpec { nulls: 0.0, ..p.spec.clone() }).generate(0, &mut rng);
            let fits = PgKind::of(ty)
                .ok_or_else(|| format!("parameters of type {} are not supported", ty.name()))
                .and_then(|kind| value.encode(kind, &mut BytesMut::new()).map_err(|e| e.to_string()));
            if let Err(message) = fits {
                let at = p.at.clone();
                return Err(Box::new(WorkloadError::ParamType { query: q.name.clone(), at, index: i + 1, message }));
            }
        }
    }
    Ok(())
}

impl Workload {
    /// Adds what completed since the last call (over every query) to
    /// `into`; for the live view.
    pub fn drain_live(&self, into: &mut LiveSample) {
        for q in &self.queries {
            q.recorder.drain_live(into);
        }
    }

    /// The ledger of the workload's acknowledged writes, to check after
    /// the run.
    pub fn ledger(&self) -> Arc<Ledger> {
        self.ledger.clone()
    }

    /// Connections checked out right now and connections in all, over
    /// every pool.
    pub fn pool_gauge(&self) -> (usize, usize) {
        self.pools.iter().fold((0, 0), |(u, n), p| (u + p.in_use(), n + p.size()))
    }
}

impl Running {
    /// Stops issuing requests, waits up to `grace` for the ones in flight,
    /// records the rest as unfinished, and returns every query's results
    /// and the primary pool's figures.
    pub async fn stop(self, grace: Duration) -> (Vec<QueryResult>, PoolStats) {
        self.stop.fire();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            self.abort();
            self.tracker.wait().await;
        }
        let results = self
            .workload
            .queries
            .iter()
            .map(|q| QueryResult {
                name: q.spec.name.clone(),
                phases: Phase::ALL.map(|p| q.recorder.phase(p)),
                series: q.recorder.series(),
                errors: q.errors.seen(),
            })
            .collect();
        let mut pool = self.workload.pools[0].stats();
        pool.series = self.fill.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (results, pool)
    }

    /// Drops every request in flight; each is recorded as unfinished.
    fn abort(&self) {
        for signal in &self.abort {
            signal.fire();
        }
        for client in &self.clients {
            client.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.fire();
        self.abort();
    }
}
