//! Replica lag: how far each hot standby is behind its primary, sampled
//! every observer interval on sessions of the observer's own (one on the
//! primary, one per standby).
//!
//! Each sample reads the primary's WAL position (`pg_current_wal_lsn()`),
//! then each standby's replayed position (`pg_last_wal_replay_lsn()`).
//! - **Lag in bytes** is the WAL the standby has yet to replay:
//!   `pg_wal_lsn_diff` of the two.
//! - **Lag in time** is the age of what the standby shows: how long ago the
//!   primary was at the position the standby has replayed. The primary's
//!   positions are kept, with the time each was read, and the moment it
//!   passed the replayed position is interpolated between the two samples
//!   around it, so the figure is good to one sampling interval. A standby
//!   that has replayed everything the primary had written at its last
//!   sample lags 0. (`now() - pg_last_xact_replay_timestamp()` is not used:
//!   it grows on an idle primary, where nothing is behind.)
//!
//! Per standby and per phase (by when the sample was taken): the samples,
//! and the max and p99 of both figures (HDR); per second, the max of each.
//! Memory is bounded: positions the slowest standby has passed are
//! dropped, and at most [`MAX_HISTORY`] are kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio_postgres::Client;

use crate::clock::{Phase, PhaseClock};
use crate::postgres::{Role, connect};
use crate::workload::Signal;

/// The most primary positions kept for timing the lag: at a 10 ms interval,
/// 2¾ hours of a standby that replays nothing.
pub const MAX_HISTORY: usize = 1_000_000;

/// The primary's position, in bytes of WAL since 0/0.
const PRIMARY_LSN: &str = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8";
/// A standby's replayed position.
pub const REPLAY_LSN: &str = "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8";

/// One follower of the primary's WAL to watch: a standby, or a logical
/// replication slot (whose position is read on the primary).
#[derive(Debug, Clone)]
pub struct Standby {
    /// How reports name it: its address, without password.
    pub name: String,
    /// Where its position is read.
    pub config: tokio_postgres::Config,
    /// The query that reads its position, in bytes since 0/0 (one float8):
    /// [`REPLAY_LSN`] for a standby.
    pub position: String,
}

/// One standby's lag over the run.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ReplicaLag {
    /// The standby, as reached (no password).
    pub name: String,
    /// Samples taken of it.
    pub samples: u64,
    /// Samples that failed (the standby or the primary did not answer).
    pub failed_samples: u64,
    /// The most it lagged, in milliseconds (age of what it had replayed).
    pub max_lag_ms: Option<f64>,
    /// The most WAL it had left to replay, in bytes.
    pub max_lag_bytes: Option<u64>,
    /// When it lagged most in time, seconds from the start of the load.
    pub max_lag_at_s: Option<f64>,
    /// Per phase, by when each sample was taken.
    pub phases: Vec<LagPhase>,
    /// Per second: the most it lagged.
    pub series: Vec<LagPoint>,
}

/// A standby's lag within one phase.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct LagPhase {
    /// The phase.
    pub phase: Phase,
    /// Samples taken in it.
    pub samples: u64,
    /// The most it lagged, in milliseconds.
    pub max_lag_ms: f64,
    /// The 99th percentile of the lag, in milliseconds.
    pub p99_lag_ms: f64,
    /// The most WAL it had left to replay, in bytes.
    pub max_lag_bytes: u64,
    /// The 99th percentile of the WAL left to replay, in bytes.
    pub p99_lag_bytes: u64,
}

/// One second of a standby's lag series.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct LagPoint {
    /// Seconds from the start of the load.
    pub second: u64,
    /// The most it lagged in that second, in milliseconds.
    pub max_lag_ms: f64,
    /// The most WAL it had left to replay in that second, in bytes.
    pub max_lag_bytes: u64,
}

/// Lag is recorded in microseconds up to a day, and bytes up to 1 TiB.
fn histograms() -> [Histogram<u64>; 2] {
    let make = |high| Histogram::new_with_bounds(1, high, 3).expect("valid bounds");
    [make(86_400_000_000), make(1 << 40)]
}

/// What is kept of one standby while sampling.
struct Track {
    name: String,
    samples: u64,
    failed: u64,
    /// Per phase: lag in µs, lag in bytes.
    phases: Vec<Option<[Histogram<u64>; 2]>>,
    /// The most lag in milliseconds, the most bytes, and when the first
    /// was seen.
    max: Option<(f64, u64, f64)>,
    series: Vec<LagPoint>,
}

impl Track {
    fn new(name: String) -> Self {
        Track { name, samples: 0, failed: 0, phases: vec![None; Phase::ALL.len()], max: None, series: Vec::new() }
    }

    fn record(&mut self, phase: Phase, offset_s: f64, lag_ms: f64, bytes: u64) {
        self.samples += 1;
        let h = self.phases[phase.index()].get_or_insert_with(histograms);
        let _ = h[0].record(((lag_ms * 1000.0) as u64).min(h[0].high()));
        let _ = h[1].record(bytes.min(h[1].high()));
        let (top_ms, top_bytes, at) = self.max.unwrap_or((lag_ms, bytes, offset_s));
        let at = if lag_ms > top_ms { offset_s } else { at };
        self.max = Some((top_ms.max(lag_ms), top_bytes.max(bytes), at));
        let second = offset_s.max(0.0) as u64;
        match self.series.last_mut() {
            Some(p) if p.second == second => {
                p.max_lag_ms = p.max_lag_ms.max(lag_ms);
                p.max_lag_bytes = p.max_lag_bytes.max(bytes);
            }
            _ => self.series.push(LagPoint { second, max_lag_ms: lag_ms, max_lag_bytes: bytes }),
        }
    }

    fn finish(self) -> ReplicaLag {
        let phases = Phase::ALL
            .iter()
            .zip(self.phases)
            .filter_map(|(phase, h)| {
                let [ms, bytes] = h?;
                Some(LagPhase {
                    phase: *phase,
                    samples: ms.len(),
                    max_lag_ms: ms.max() as f64 / 1000.0,
                    p99_lag_ms: ms.value_at_quantile(0.99).min(ms.max()) as f64 / 1000.0,
                    max_lag_bytes: bytes.max(),
                    p99_lag_bytes: bytes.value_at_quantile(0.99).min(bytes.max()),
                })
            })
            .collect();
        ReplicaLag {
            name: self.name,
            samples: self.samples,
            failed_samples: self.failed,
            max_lag_ms: self.max.map(|m| m.0),
            max_lag_bytes: self.max.map(|m| m.1),
            max_lag_at_s: self.max.map(|m| m.2),
            phases,
            series: self.series,
        }
    }
}

/// The primary's positions, oldest first, each with when it was read.
#[derive(Default)]
struct History(VecDeque<(Instant, f64)>);

impl History {
    fn push(&mut self, at: Instant, lsn: f64) {
        if self.0.len() == MAX_HISTORY {
            self.0.pop_front();
        }
        self.0.push_back((at, lsn));
    }

    /// When the primary passed `replayed`: interpolated between the last
    /// position at or before it and the first after it; `None` when the
    /// last position read is no further than it (nothing is behind).
    fn passed(&self, replayed: f64) -> Option<Instant> {
        let (_, last) = *self.0.back()?;
        if replayed >= last {
            return None;
        }
        let after = self.0.partition_point(|(_, lsn)| *lsn <= replayed);
        let (t1, l1) = self.0[after];
        let Some(&(t0, l0)) = after.checked_sub(1).and_then(|i| self.0.get(i)) else {
            // Older than anything kept: at least this old.
            return Some(t1);
        };
        let fraction = ((replayed - l0) / (l1 - l0)).clamp(0.0, 1.0);
        Some(t0 + (t1 - t0).mul_f64(fraction))
    }

    /// Drops the positions every standby has passed, keeping the last one
    /// at or before `slowest`.
    fn prune(&mut self, slowest: f64) {
        while self.0.len() > 1 && self.0[1].1 <= slowest {
            self.0.pop_front();
        }
    }
}

/// A running lag observer; dropping it stops the sampling.
pub struct LagObserver {
    tracks: Arc<Mutex<Vec<Track>>>,
    stop: Signal,
    task: tokio::task::JoinHandle<()>,
}

/// The sessions a sample runs on; reopened when one breaks.
struct Sessions {
    primary: Option<Client>,
    standbys: Vec<Option<Client>>,
}

async fn reopen<'a>(slot: &'a mut Option<Client>, config: &tokio_postgres::Config) -> Option<&'a Client> {
    if slot.as_ref().is_none_or(Client::is_closed) {
        *slot = connect(config, &Role::Observer).await.ok();
    }
    slot.as_ref()
}

async fn position(client: Option<&Client>, sql: &str) -> Option<f64> {
    client?.query_one(sql, &[]).await.ok()?.get::<_, Option<f64>>(0)
}

impl LagObserver {
    /// Connects to the primary and every standby and samples every
    /// `interval`; phases and offsets come from `clock`.
    pub async fn start(
        primary: &tokio_postgres::Config,
        standbys: &[Standby],
        interval: Duration,
        clock: Arc<PhaseClock>,
    ) -> Result<LagObserver, tokio_postgres::Error> {
        let mut sessions = Sessions { primary: Some(connect(primary, &Role::Observer).await?), standbys: Vec::new() };
        for s in standbys {
            sessions.standbys.push(Some(connect(&s.config, &Role::Observer).await?));
        }
        let tracks = Arc::new(Mutex::new(standbys.iter().map(|s| Track::new(s.name.clone())).collect::<Vec<_>>()));
        let stop = Signal::new();
        let (shared, stopped) = (tracks.clone(), stop.clone());
        let primary = primary.clone();
        let configs: Vec<_> = standbys.iter().map(|s| (s.config.clone(), s.position.clone())).collect();
        let task = tokio::spawn(async move {
            let mut history = History::default();
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.fired() => break,
                }
                let before = Instant::now();
                let primary_at = position(reopen(&mut sessions.primary, &primary).await, PRIMARY_LSN).await;
                let read_at = before + before.elapsed() / 2;
                if let Some(lsn) = primary_at {
                    history.push(read_at, lsn);
                }
                let mut slowest = f64::INFINITY;
                for (i, (config, sql)) in configs.iter().enumerate() {
                    let replayed = position(reopen(&mut sessions.standbys[i], config).await, sql).await;
                    let at = Instant::now();
                    let mut tracks = shared.lock().expect("not poisoned");
                    let (Some(last), Some(replayed)) = (primary_at, replayed) else {
                        tracks[i].failed += 1;
                        continue;
                    };
                    slowest = slowest.min(replayed);
                    let lag_ms = history.passed(replayed).map_or(0.0, |t| crate::units::millis(at - t));
                    let bytes = (last - replayed).max(0.0) as u64;
                    tracks[i].record(clock.phase_of(read_at), clock.offset(read_at), lag_ms, bytes);
                }
                if slowest.is_finite() {
                    history.prune(slowest);
                }
            }
        });
        Ok(LagObserver { tracks, stop, task })
    }

    /// Stops sampling and returns each standby's lag, in the order given.
    pub async fn finish(mut self) -> Vec<ReplicaLag> {
        self.stop.fire();
        if tokio::time::timeout(Duration::from_secs(1), &mut self.task).await.is_err() {
            self.task.abort();
        }
        let tracks = std::mem::take(&mut *self.tracks.lock().expect("not poisoned"));
        tracks.into_iter().map(Track::finish).collect()
    }
}

impl Drop for LagObserver {
    fn drop(&mut self) {
        self.stop.fire();
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_is_how_long_ago_the_primary_passed_the_replayed_position() {
        let t0 = Instant::now();
        let mut h = History::default();
        for (i, lsn) in [100.0, 200.0, 400.0, 400.0, 800.0].into_iter().enumerate() {
            h.push(t0 + Duration::from_millis(100 * i as u64), lsn);
        }
        // Caught up with the last position read: no lag.
        assert_eq!(h.passed(800.0), None);
        assert_eq!(h.passed(900.0), None);
        // Halfway from 200 (at 100 ms) to 400 (at 200 ms): 150 ms.
        assert_eq!(h.passed(300.0), Some(t0 + Duration::from_millis(150)));
        // Exactly at a position read: the first time after it the primary
        // was further, interpolated to the start of that step.
        assert_eq!(h.passed(400.0), Some(t0 + Duration::from_millis(300)));
        // Behind everything kept: at least as old as the oldest.
        assert_eq!(h.passed(50.0), Some(t0));
        h.prune(450.0);
        assert_eq!(h.0.len(), 2, "only the last position at or before 450 and the ones after");
        assert_eq!(h.passed(450.0), Some(t0 + Duration::from_millis(300) + Duration::from_micros(12_500)));
    }

    #[test]
    fn a_phase_keeps_its_max_and_p99_and_the_series_its_max_per_second() {
        let mut t = Track::new("r".into());
        for i in 0..100u64 {
            t.record(Phase::Baseline, i as f64 / 100.0, 1.0, 10);
        }
        t.record(Phase::During, 1.5, 2_500.0, 4096);
        t.record(Phase::During, 1.6, 10.0, 8192);
        let r = t.finish();
        assert_eq!(r.samples, 102);
        assert_eq!(r.max_lag_ms, Some(2_500.0));
        assert_eq!(r.max_lag_bytes, Some(8192));
        assert_eq!(r.max_lag_at_s, Some(1.5));
        assert_eq!(r.phases.len(), 2);
        assert_eq!(r.phases[0].phase, Phase::Baseline);
        assert_eq!((r.phases[0].max_lag_ms, r.phases[0].max_lag_bytes), (1.0, 10));
        let during = &r.phases[1];
        assert!((during.max_lag_ms - 2_500.0).abs() < 2.0, "{}", during.max_lag_ms);
        assert!(during.max_lag_bytes >= 8192 && during.max_lag_bytes < 8200, "{}", during.max_lag_bytes);
        assert_eq!(r.series.len(), 2);
        assert_eq!(r.series[1].second, 1);
        assert_eq!((r.series[1].max_lag_ms, r.series[1].max_lag_bytes), (2_500.0, 8192));
    }
}
