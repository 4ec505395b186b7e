//! The pooler's side of a lock wait: PgBouncer's `SHOW POOLS`, sampled on
//! its admin console every interval. When the server's connections are
//! all stuck behind a lock, the clients queue in PgBouncer (`cl_waiting`)
//! and the oldest of them has waited `maxwait`: the wait the application
//! sees before its query reaches the server at all.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_postgres::SimpleQueryMessage;

use crate::clock::{Phase, PhaseClock};
use crate::workload::Signal;

/// How often `SHOW POOLS` is read.
pub const POOLER_INTERVAL: Duration = Duration::from_millis(100);

/// One reading of `SHOW POOLS`, summed over the pools of the rehearsed
/// database (the admin console's own left out).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolSample {
    /// Seconds from the start of the load.
    pub at_s: f64,
    /// Clients waiting for a server connection.
    pub waiting: u64,
    /// Clients paired with a server connection.
    pub active: u64,
    /// Server connections in use.
    pub servers_active: u64,
    /// How long the oldest waiting client has waited, in milliseconds.
    pub max_wait_ms: f64,
}

/// The sampler, running.
pub struct PoolerObserver {
    stop: Signal,
    task: JoinHandle<(Vec<PoolSample>, u64)>,
}

impl PoolerObserver {
    /// Connects to the admin console of `admin` and samples until
    /// [`PoolerObserver::finish`].
    pub async fn start(admin: &tokio_postgres::Config, clock: Arc<PhaseClock>) -> Result<Self, tokio_postgres::Error> {
        let (client, conn) = admin.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let stop = Signal::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let (mut samples, mut failed) = (Vec::new(), 0);
            let mut tick = tokio::time::interval(POOLER_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.fired() => break,
                    _ = tick.tick() => {}
                }
                let at_s = clock.start().elapsed().as_secs_f64();
                match client.simple_query("SHOW POOLS").await {
                    Ok(rows) => samples.push(sum(at_s, &rows)),
                    Err(_) => failed += 1,
                }
            }
            (samples, failed)
        });
        Ok(PoolerObserver { stop, task })
    }

    /// Stops sampling; the samples, and how many readings failed.
    pub async fn finish(self) -> (Vec<PoolSample>, u64) {
        self.stop.fire();
        self.task.await.unwrap_or_default()
    }
}

fn sum(at_s: f64, rows: &[SimpleQueryMessage]) -> PoolSample {
    let mut s = PoolSample { at_s, waiting: 0, active: 0, servers_active: 0, max_wait_ms: 0.0 };
    for m in rows {
        let SimpleQueryMessage::Row(row) = m else { continue };
        if row.get("database") == Some("pgbouncer") {
            continue;
        }
        let n = |c: &str| row.get(c).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        s.waiting += n("cl_waiting");
        s.active += n("cl_active");
        s.servers_active += n("sv_active");
        let wait = n("maxwait") as f64 * 1000.0 + n("maxwait_us") as f64 / 1000.0;
        s.max_wait_ms = s.max_wait_ms.max(wait);
    }
    s
}

/// What the pooler's clients went through in one phase.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PoolerPhase {
    /// The phase.
    pub phase: Phase,
    /// Readings in it.
    pub samples: usize,
    /// The most clients waiting for a server connection at once.
    pub max_waiting_clients: u64,
    /// The longest any client had waited, in milliseconds, as PgBouncer
    /// reports it (`maxwait`: the oldest waiting client's wait so far).
    pub max_wait_ms: f64,
    /// The most server connections in use at once.
    pub max_servers_active: u64,
}

/// One second of the run: the most clients waiting, and the longest wait.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PoolerPoint {
    /// Seconds from the start of the load.
    pub second: u64,
    /// The most clients waiting at once.
    pub waiting_clients: u64,
    /// The longest wait, in milliseconds.
    pub max_wait_ms: f64,
}

/// Per phase (`(phase, start, end)` in seconds) and per second.
pub fn summarise(samples: &[PoolSample], phases: &[(Phase, f64, f64)]) -> (Vec<PoolerPhase>, Vec<PoolerPoint>) {
    let per_phase = phases
        .iter()
        .map(|&(phase, start, end)| {
            let inside: Vec<&PoolSample> = samples.iter().filter(|s| s.at_s >= start && s.at_s < end).collect();
            PoolerPhase {
                phase,
                samples: inside.len(),
                max_waiting_clients: inside.iter().map(|s| s.waiting).max().unwrap_or(0),
                max_wait_ms: inside.iter().map(|s| s.max_wait_ms).fold(0.0, f64::max),
                max_servers_active: inside.iter().map(|s| s.servers_active).max().unwrap_or(0),
            }
        })
        .collect();
    let mut series: Vec<PoolerPoint> = Vec::new();
    for s in samples {
        let second = s.at_s as u64;
        match series.last_mut() {
            Some(p) if p.second == second => {
                p.waiting_clients = p.waiting_clients.max(s.waiting);
                p.max_wait_ms = p.max_wait_ms.max(s.max_wait_ms);
            }
            _ => series.push(PoolerPoint { second, waiting_clients: s.waiting, max_wait_ms: s.max_wait_ms }),
        }
    }
    (per_phase, series)
}
