//! The lock observer: a connection of its own samples the server's lock
//! state every few milliseconds (`pg_stat_activity`, `pg_locks`,
//! `pg_blocking_pids()`) and keeps, in bounded memory: how many sessions
//! waited at once, the longest wait (overall and per role), who blocked
//! whom, a per-second series, the gaps where samples were missing, and the
//! lock-wait spans of the migration's sessions, from which each step's lock
//! wait is computed as wall-clock time (see [`state`] for the rules).
//!
//! Roles come from `application_name`: workload, migration, interference,
//! or whatever else runs on the server (autovacuum included). A sample that
//! fails (the observer's session was ended, the server restarted) is
//! counted, and the observer connects again; the time without samples is a
//! gap in the report, never silently lost.

pub mod cdc;
pub mod lag;
pub mod plans;
pub mod pooler;
mod sample;
mod state;
pub mod wal;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::{Client, Statement};

pub use sample::Backend;

use crate::postgres::{Role, connect};
use crate::workload::Signal;

/// What the observer saw over the run.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct LockSummary {
    /// Time between samples, in milliseconds.
    pub interval_ms: f64,
    /// Samples taken.
    pub samples: u64,
    /// Samples that failed.
    pub failed_samples: u64,
    /// Time without samples.
    pub gaps: GapSummary,
    /// The longest any session waited on one lock, in milliseconds.
    pub longest_wait_ms: f64,
    /// Who waited that long.
    pub longest_wait_role: Option<String>,
    /// Whether that wait spans a gap in the samples.
    pub longest_wait_spans_gap: bool,
    /// Whether that wait ended unseen inside a gap, so that it lasted at
    /// least this long and perhaps longer.
    pub longest_wait_lower_bound: bool,
    /// The longest any workload request waited on a lock.
    pub workload_longest_wait_ms: f64,
    /// The most sessions waiting on locks at once (a parallel query's
    /// workers count with their leader).
    pub max_waiting: usize,
    /// When that was, seconds from the start of the load.
    pub max_waiting_at_s: Option<f64>,
    /// The longest wait per role.
    pub longest_wait_by_role: BTreeMap<String, f64>,
    /// Who waited behind whom, longest first.
    pub blocking: Vec<BlockEdge>,
    /// Per second: the most sessions waiting at once.
    pub waiting_series: Vec<WaitingPoint>,
}

/// Where samples were missing: a sample failed, or came more than five
/// intervals (and 250 ms) after the one before.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct GapSummary {
    /// How many gaps.
    pub count: u64,
    /// Their total length, in seconds.
    pub seconds: f64,
    /// The longest, in seconds.
    pub longest_s: f64,
    /// The longest twenty, in time order.
    pub longest: Vec<Gap>,
}

/// A time without samples, in seconds from the start of the load.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Gap {
    /// The last sample before it.
    pub start_s: f64,
    /// The first sample after it.
    pub end_s: f64,
}

/// Sessions of one role waiting behind backends of another, for one lock.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct BlockEdge {
    /// The waiting role (`workload`, `migration`, `interference NAME`, ...).
    pub waiter: String,
    /// The role waited behind.
    pub blocker: String,
    /// The relation (or lock type) waited for.
    pub relation: String,
    /// The mode waited for, as `pg_locks` names it.
    pub mode: String,
    /// The most sessions of the waiting role waiting this way at once.
    pub max_waiters: usize,
    /// The longest such wait, in milliseconds.
    pub longest_wait_ms: f64,
    /// When the longest wait began, seconds from the start of the load
    /// (when it was seen, less how long it had waited): which migration it
    /// came during, when the run rehearses a rollback too.
    #[serde(skip)]
    pub longest_began_s: f64,
    /// First seen, seconds from the start of the load.
    pub first_s: f64,
    /// Last seen.
    pub last_s: f64,
    /// What the blocker was running when first seen.
    pub blocker_query: String,
    /// The most processes of the blocking role one waiter waited behind at
    /// once (`pg_blocking_pids` names each worker of a parallel query by
    /// its leader's pid): more than one for a parallel query, or for
    /// requests queued ahead.
    pub max_blockers: usize,
}

impl BlockEdge {
    /// How long this waiting was seen within `[from_s, to_s]` (seconds from
    /// the start of the load), when it was seen there at all.
    pub fn seen_within(&self, from_s: f64, to_s: f64) -> Option<f64> {
        let overlap = self.last_s.min(to_s) - self.first_s.max(from_s);
        (overlap >= 0.0).then_some(overlap)
    }
}

/// One second of the waiting series.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct WaitingPoint {
    /// Seconds from the start of the load.
    pub second: u64,
    /// The most sessions waiting on locks at once during it.
    pub max_waiting: usize,
}

/// A lock wait within a window, and how much of the window had no samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitMeasure {
    /// Wall-clock time spent waiting.
    pub wait: Duration,
    /// Time of the window without samples: the wait may be longer by up
    /// to this much.
    pub unobserved: Duration,
}

/// A running observer; dropping it stops the sampling.
pub struct Observer {
    state: Arc<Mutex<State>>,
    stop: Signal,
    task: tokio::task::JoinHandle<()>,
}

use state::State;

/// The observer's session and its prepared sampling query.
struct Session {
    client: Client,
    stmt: Statement,
}

async fn open(config: &tokio_postgres::Config, version_num: i32) -> Result<Session, tokio_postgres::Error> {
    let client = connect(config, &Role::Observer).await?;
    let stmt = sample::prepare(&client, version_num).await?;
    Ok(Session { client, stmt })
}

impl Observer {
    /// Connects and starts sampling every `interval`; offsets are from `t0`.
    pub async fn start(
        config: &tokio_postgres::Config,
        version_num: i32,
        interval: Duration,
        t0: Instant,
    ) -> Result<Observer, tokio_postgres::Error> {
        let mut session = Some(open(config, version_num).await?);
        let state = Arc::new(Mutex::new(State::new(t0, interval)));
        let stop = Signal::new();
        let (st, stp, config) = (state.clone(), stop.clone(), config.clone());
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stp.fired() => break,
                }
                let Some(s) = session.as_ref().filter(|s| !s.client.is_closed()) else {
                    // The session is gone (ended, or the server restarted):
                    // open another; the time meanwhile is a gap.
                    session = open(&config, version_num).await.ok();
                    continue;
                };
                let before = Instant::now();
                let result = sample::take(&s.client, &s.stmt).await;
                let at = before + before.elapsed() / 2;
                let mut state = st.lock().expect("not poisoned");
                match result {
                    Ok(backends) => state.ingest(at, &backends),
                    Err(_) => state.summary.failed_samples += 1,
                }
            }
        });
        Ok(Observer { state, stop, task })
    }

    /// How long the migration's sessions waited on locks within `[from,
    /// to]`, as wall-clock time, and how much of it had no samples.
    pub fn migration_wait(&self, from: Instant, to: Instant) -> WaitMeasure {
        let s = self.state.lock().expect("not poisoned");
        let mut unobserved = s.gap_within(from, to);
        // A gap still open: no sample since the last one.
        if let Some(last) = s.last_sample.filter(|l| to.saturating_duration_since(*l) > s.gap_threshold()) {
            unobserved += to.saturating_duration_since(last.max(from));
        }
        WaitMeasure { wait: s.migration_wait(from, to), unobserved: unobserved.min(to.saturating_duration_since(from)) }
    }

    /// A gauge of how many sessions the latest sample saw waiting on a
    /// lock, for the live view; `None` when the latest sample is more than
    /// a second old (the figure would be stale).
    pub fn waiting_gauge(&self) -> impl Fn() -> Option<usize> + Send + Sync + 'static {
        let shared = self.state.clone();
        move || {
            let s = shared.lock().expect("not poisoned");
            let fresh = s.last_sample.is_some_and(|l| l.elapsed() < Duration::from_secs(1).max(s.gap_threshold()));
            fresh.then(|| s.open.len())
        }
    }

    /// Stops sampling and returns what was seen. A sample stuck on a server
    /// that does not answer is abandoned after a second.
    pub async fn finish(mut self) -> LockSummary {
        self.stop.fire();
        if tokio::time::timeout(Duration::from_secs(1), &mut self.task).await.is_err() {
            self.task.abort();
        }
        let mut s = self.state.lock().expect("not poisoned");
        s.finish(Instant::now())
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.fire();
        self.task.abort();
    }
}

#[cfg(test)]
mod tests;
