//! The lock observer: a connection of its own samples the server's lock
//! state every few milliseconds (`pg_stat_activity`, `pg_locks`,
//! `pg_blocking_pids()`) and keeps, in bounded memory: how many backends
//! waited at once, the longest wait (overall and per role), who blocked
//! whom, a per-second series, and the lock-wait spans of the migration's
//! backend, from which each step's lock wait is computed.
//!
//! Roles come from `application_name`: workload, migration, interference,
//! or whatever else runs on the server (autovacuum included).

mod sample;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use sample::Backend;

use crate::postgres::{Role, connect};

/// What the observer saw over the run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LockSummary {
    /// Time between samples, in milliseconds.
    pub interval_ms: f64,
    /// Samples taken.
    pub samples: u64,
    /// Samples that failed.
    pub failed_samples: u64,
    /// The longest any backend waited on one lock, in milliseconds.
    pub longest_wait_ms: f64,
    /// Who waited that long.
    pub longest_wait_role: Option<String>,
    /// The longest any workload request waited on a lock.
    pub workload_longest_wait_ms: f64,
    /// The most backends waiting on locks at once.
    pub max_waiting: usize,
    /// When that was, seconds from the start of the load.
    pub max_waiting_at_s: Option<f64>,
    /// The longest wait per role.
    pub longest_wait_by_role: BTreeMap<String, f64>,
    /// Who waited behind whom, longest first.
    pub blocking: Vec<BlockEdge>,
    /// Per second: the most backends waiting at once.
    pub waiting_series: Vec<WaitingPoint>,
}

/// Backends of one role waiting behind a backend of another, for one lock.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BlockEdge {
    /// The waiting role (`workload`, `migration`, `interference NAME`, ...).
    pub waiter: String,
    /// The role waited behind.
    pub blocker: String,
    /// The relation (or lock type) waited for.
    pub relation: String,
    /// The mode waited for, as `pg_locks` names it.
    pub mode: String,
    /// The most backends of the waiting role waiting this way at once.
    pub max_waiters: usize,
    /// The longest such wait, in milliseconds.
    pub longest_wait_ms: f64,
    /// First seen, seconds from the start of the load.
    pub first_s: f64,
    /// Last seen.
    pub last_s: f64,
    /// What the blocker was running when first seen.
    pub blocker_query: String,
}

/// One second of the waiting series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WaitingPoint {
    /// Seconds from the start of the load.
    pub second: u64,
    /// The most backends waiting on locks at once during it.
    pub max_waiting: usize,
}

#[derive(Debug, Clone)]
struct Span {
    target: (String, String),
    start: Instant,
    last_seen: Instant,
    role: Role,
}

#[derive(Default)]
struct State {
    summary: LockSummary,
    open: HashMap<i32, Span>,
    /// Closed and open spans of the migration's backend.
    migration: Vec<(Instant, Instant, bool)>,
    edges: BTreeMap<(String, String, String, String), BlockEdge>,
    series: BTreeMap<u64, usize>,
}

fn label(role: &Role) -> String {
    role.to_string()
}

impl State {
    fn ingest(&mut self, t0: Instant, at: Instant, backends: &[Backend]) {
        let offset = crate::units::secs(at.saturating_duration_since(t0));
        self.summary.samples += 1;
        let roles: HashMap<i32, &Backend> = backends.iter().map(|b| (b.pid, b)).collect();
        let mut seen = HashSet::new();
        let mut waiters_per_edge: HashMap<(String, String, String, String), usize> = HashMap::new();
        for b in backends {
            let Some(target) = &b.waiting_for else { continue };
            seen.insert(b.pid);
            let server_start =
                b.wait_ms.map(|ms| at.checked_sub(Duration::from_secs_f64(ms.max(0.0) / 1000.0)).unwrap_or(at));
            // A new wait when none was open, it is for another lock, or the
            // server says it began after the open one (5 ms absorbs the
            // jitter of estimating its start from our clock).
            let renew = match self.open.get(&b.pid) {
                None => true,
                Some(s) => {
                    s.target != *target || server_start.is_some_and(|st| st > s.start + Duration::from_millis(5))
                }
            };
            if renew {
                if let Some(old) = self.open.remove(&b.pid) {
                    self.close(old);
                }
                self.open.insert(
                    b.pid,
                    Span {
                        target: target.clone(),
                        start: server_start.unwrap_or(at),
                        last_seen: at,
                        role: b.role.clone(),
                    },
                );
            }
            let span = self.open.get_mut(&b.pid).expect("just inserted");
            span.last_seen = at;
            let waited_ms = crate::units::millis(at.saturating_duration_since(span.start));
            let role = label(&b.role);
            if waited_ms > self.summary.longest_wait_ms {
                self.summary.longest_wait_ms = waited_ms;
                self.summary.longest_wait_role = Some(role.clone());
            }
            let by_role = self.summary.longest_wait_by_role.entry(role.clone()).or_default();
            *by_role = by_role.max(waited_ms);
            if b.role == Role::Workload {
                self.summary.workload_longest_wait_ms = self.summary.workload_longest_wait_ms.max(waited_ms);
            }
            for blocker_pid in &b.blockers {
                let blocker = roles.get(blocker_pid);
                let blocker_role = blocker.map_or_else(|| format!("pid {blocker_pid}"), |x| label(&x.role));
                let key = (role.clone(), blocker_role.clone(), target.0.clone(), target.1.clone());
                *waiters_per_edge.entry(key.clone()).or_default() += 1;
                let edge = self.edges.entry(key).or_insert_with(|| BlockEdge {
                    waiter: role.clone(),
                    blocker: blocker_role,
                    relation: target.0.clone(),
                    mode: target.1.clone(),
                    max_waiters: 0,
                    longest_wait_ms: 0.0,
                    first_s: offset,
                    last_s: offset,
                    blocker_query: blocker.map(|x| x.query.clone()).unwrap_or_default(),
                });
                edge.longest_wait_ms = edge.longest_wait_ms.max(waited_ms);
                edge.last_s = offset;
            }
        }
        for (key, n) in waiters_per_edge {
            if let Some(e) = self.edges.get_mut(&key) {
                e.max_waiters = e.max_waiters.max(n);
            }
        }
        // Waits no longer seen have ended.
        let ended: Vec<i32> = self.open.keys().filter(|p| !seen.contains(p)).copied().collect();
        for pid in ended {
            let span = self.open.remove(&pid).expect("listed");
            self.close(span);
        }
        let waiting = seen.len();
        if waiting > self.summary.max_waiting {
            self.summary.max_waiting = waiting;
            self.summary.max_waiting_at_s = Some(offset);
        }
        let sec = self.series.entry(offset as u64).or_default();
        *sec = (*sec).max(waiting);
    }

    fn close(&mut self, span: Span) {
        if span.role == Role::Migration {
            self.migration.push((span.start, span.last_seen, false));
        }
    }

    /// Time the migration's backend spent waiting on locks within
    /// `[from, to]`. A wait still open counts until `to`; a closed one
    /// until halfway to the sample that no longer saw it.
    fn migration_wait(&self, from: Instant, to: Instant, interval: Duration) -> Duration {
        let open = self.open.values().filter(|s| s.role == Role::Migration).map(|s| (s.start, s.last_seen, true));
        self.migration
            .iter()
            .copied()
            .chain(open)
            .map(|(start, last_seen, still_open)| {
                let end = if still_open { to } else { (last_seen + interval / 2).min(to) };
                let start = start.max(from);
                end.saturating_duration_since(start)
            })
            .sum()
    }
}

/// A running observer; dropping it stops the sampling.
pub struct Observer {
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    interval: Duration,
}

impl Observer {
    /// Connects and starts sampling every `interval`; offsets are from `t0`.
    pub async fn start(
        config: &tokio_postgres::Config,
        version_num: i32,
        interval: Duration,
        t0: Instant,
    ) -> Result<Observer, tokio_postgres::Error> {
        let client = connect(config, &Role::Observer).await?;
        let stmt = sample::prepare(&client, version_num).await?;
        let state = Arc::new(Mutex::new(State::default()));
        state.lock().expect("not poisoned").summary.interval_ms = interval.as_secs_f64() * 1000.0;
        let stop = CancellationToken::new();
        let (st, stp) = (state.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stp.cancelled() => break,
                }
                let before = Instant::now();
                let result = sample::take(&client, &stmt).await;
                let at = before + before.elapsed() / 2;
                let mut s = st.lock().expect("not poisoned");
                match result {
                    Ok(backends) => s.ingest(t0, at, &backends),
                    Err(_) => {
                        s.summary.failed_samples += 1;
                        if client.is_closed() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(Observer { state, stop, task, interval })
    }

    /// How long the migration's backend waited on locks within `[from, to]`.
    pub fn migration_wait(&self, from: Instant, to: Instant) -> Duration {
        self.state.lock().expect("not poisoned").migration_wait(from, to, self.interval)
    }

    /// A gauge of how many backends the latest sample saw waiting on a
    /// lock, for the live view.
    pub fn waiting_gauge(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let state = self.state.clone();
        move || state.lock().expect("not poisoned").open.len()
    }

    /// Stops sampling and returns what was seen.
    pub async fn finish(mut self) -> LockSummary {
        self.stop.cancel();
        let _ = (&mut self.task).await;
        let mut s = self.state.lock().expect("not poisoned");
        let mut summary = s.summary.clone();
        let mut edges: Vec<BlockEdge> = std::mem::take(&mut s.edges).into_values().collect();
        edges.sort_by(|a, b| b.longest_wait_ms.total_cmp(&a.longest_wait_ms));
        summary.blocking = edges;
        summary.waiting_series = s
            .series
            .iter()
            .map(|(second, max_waiting)| WaitingPoint { second: *second, max_waiting: *max_waiting })
            .collect();
        summary
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(pid: i32, role: Role, blockers: Vec<i32>, wait_ms: f64) -> Backend {
        Backend {
            pid,
            role,
            waiting_for: Some(("orders".into(), "AccessShareLock".into())),
            blockers,
            wait_ms: Some(wait_ms),
            query: String::new(),
        }
    }

    fn idle(pid: i32, role: Role, query: &str) -> Backend {
        Backend { pid, role, waiting_for: None, blockers: vec![], wait_ms: None, query: query.into() }
    }

    #[test]
    fn edges_and_longest_waits_follow_the_samples() {
        let t0 = Instant::now();
        let mut s = State::default();
        let report = Role::Interference("report".into());
        let mut mig = waiting(2, Role::Migration, vec![1], 100.0);
        mig.waiting_for = Some(("orders".into(), "AccessExclusiveLock".into()));
        s.ingest(t0, t0 + Duration::from_secs(1), &[idle(1, report.clone(), "SELECT pg_sleep"), mig.clone()]);
        mig.wait_ms = Some(1100.0);
        s.ingest(
            t0,
            t0 + Duration::from_secs(2),
            &[
                idle(1, report, "SELECT pg_sleep"),
                mig,
                waiting(3, Role::Workload, vec![2], 400.0),
                waiting(4, Role::Workload, vec![2], 300.0),
            ],
        );
        assert_eq!(s.summary.max_waiting, 3);
        assert!((s.summary.longest_wait_ms - 1100.0).abs() < 1.0);
        assert!((s.summary.workload_longest_wait_ms - 400.0).abs() < 1.0);
        let e = s.edges.values().find(|e| e.waiter == "workload").unwrap();
        assert_eq!((e.blocker.as_str(), e.max_waiters), ("migration", 2));
        let m = s.edges.values().find(|e| e.waiter == "migration").unwrap();
        assert_eq!(m.blocker, "interference report");
        assert_eq!(m.blocker_query, "SELECT pg_sleep");
    }

    #[test]
    fn migration_wait_counts_open_and_closed_spans() {
        let t0 = Instant::now();
        let mut s = State::default();
        let mut mig = waiting(2, Role::Migration, vec![1], 0.0);
        s.ingest(t0, t0 + Duration::from_millis(1000), &[mig.clone()]);
        mig.wait_ms = Some(500.0);
        s.ingest(t0, t0 + Duration::from_millis(1500), &[mig]);
        // still waiting: counts until the end of the asked window
        let w = s.migration_wait(t0, t0 + Duration::from_millis(2000), Duration::from_millis(20));
        assert_eq!(w, Duration::from_millis(1000));
        // the wait ends: closed at last_seen + interval/2
        s.ingest(t0, t0 + Duration::from_millis(1520), &[]);
        let w = s.migration_wait(t0, t0 + Duration::from_millis(2000), Duration::from_millis(20));
        assert_eq!(w, Duration::from_millis(510));
    }
}
