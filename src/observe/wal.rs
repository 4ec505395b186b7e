//! WAL written over the run: the server's WAL position
//! (`pg_current_wal_lsn()`) and, from PostgreSQL 14, its full-page images
//! (`pg_stat_wal.wal_fpi`), sampled every [`INTERVAL`] on a session of the
//! observer's own. WAL is the server's, not a session's: a figure for a
//! step or a phase is all the WAL the server wrote then, the load's
//! included. That is what a replica replays and a CDC connector reads.
//!
//! From the samples the report takes, per phase, the bytes and full-page
//! images written; the peak rate over any one second; a per-second series;
//! and for each migration step, the WAL written while it ran (the position
//! interpolated between the samples around its start and its end).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::{Phase, PhaseClock};
use crate::postgres::{Role, connect};
use crate::workload::Signal;

/// Time between WAL samples.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// One look at the server's WAL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WalSample {
    /// Seconds from the start of the load.
    pub at_s: f64,
    /// The WAL position, in bytes since 0/0.
    pub lsn: f64,
    /// Full-page images written since the statistics were reset
    /// (PostgreSQL 14+).
    pub fpi: Option<i64>,
}

/// WAL over the run, as the report gives it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct WalReport {
    /// Time between samples, in milliseconds.
    pub interval_ms: f64,
    /// Samples taken.
    pub samples: usize,
    /// Bytes of WAL written over the run (first sample to last).
    pub bytes: u64,
    /// The most WAL written in one second, in bytes per second.
    pub peak_bytes_per_s: u64,
    /// When that second began, seconds from the start of the load.
    pub peak_at_s: Option<f64>,
    /// Per phase.
    pub phases: Vec<WalPhase>,
    /// Per second: bytes written in it.
    pub series: Vec<WalPoint>,
}

/// WAL written in one phase.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct WalPhase {
    /// The phase.
    pub phase: Phase,
    /// Bytes written.
    pub bytes: u64,
    /// Full-page images written (PostgreSQL 14+; null before).
    pub full_page_images: Option<i64>,
}

/// One second of the WAL series.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct WalPoint {
    /// Seconds from the start of the load.
    pub second: u64,
    /// Bytes written in it.
    pub bytes: u64,
}

/// A running WAL sampler; dropping it stops the sampling.
pub struct WalObserver {
    samples: Arc<Mutex<Vec<WalSample>>>,
    stop: Signal,
    task: tokio::task::JoinHandle<()>,
}

impl WalObserver {
    /// Connects and samples every [`INTERVAL`]; offsets from `clock`.
    pub async fn start(
        config: &tokio_postgres::Config,
        version_num: i32,
        clock: Arc<PhaseClock>,
    ) -> Result<WalObserver, tokio_postgres::Error> {
        let client = connect(config, &Role::Observer).await?;
        let sql = if version_num >= 140_000 {
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8, (SELECT wal_fpi FROM pg_stat_wal)"
        } else {
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8, NULL::int8"
        };
        let stmt = client.prepare(sql).await?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Signal::new();
        let (shared, stopped) = (samples.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.fired() => break,
                }
                let before = Instant::now();
                let Ok(row) = client.query_one(&stmt, &[]).await else { continue };
                let at = before + before.elapsed() / 2;
                let sample = WalSample { at_s: clock.offset(at), lsn: row.get(0), fpi: row.get(1) };
                shared.lock().expect("not poisoned").push(sample);
            }
        });
        Ok(WalObserver { samples, stop, task })
    }

    /// Stops sampling and returns the samples, in time order.
    pub async fn finish(mut self) -> Vec<WalSample> {
        self.stop.fire();
        if tokio::time::timeout(Duration::from_secs(1), &mut self.task).await.is_err() {
            self.task.abort();
        }
        std::mem::take(&mut *self.samples.lock().expect("not poisoned"))
    }
}

impl Drop for WalObserver {
    fn drop(&mut self) {
        self.stop.fire();
        self.task.abort();
    }
}

/// The WAL position at `t_s`, interpolated between the samples around it
/// (the first or last sample outside them).
pub fn lsn_at(samples: &[WalSample], t_s: f64) -> Option<f64> {
    let after = samples.partition_point(|s| s.at_s <= t_s);
    match (after.checked_sub(1).map(|i| samples[i]), samples.get(after)) {
        (Some(a), Some(b)) if b.at_s > a.at_s => Some(a.lsn + (b.lsn - a.lsn) * (t_s - a.at_s) / (b.at_s - a.at_s)),
        (Some(a), _) => Some(a.lsn),
        (None, Some(b)) => Some(b.lsn),
        (None, None) => None,
    }
}

/// WAL written from `from_s` to `to_s`, in bytes.
pub fn bytes_between(samples: &[WalSample], from_s: f64, to_s: f64) -> Option<u64> {
    Some((lsn_at(samples, to_s)? - lsn_at(samples, from_s)?).max(0.0) as u64)
}

/// The report of `samples`, with each phase's window in seconds.
pub fn report(samples: &[WalSample], phases: &[(Phase, f64, f64)]) -> Option<WalReport> {
    let (first, last) = (samples.first()?, samples.last()?);
    let mut series: Vec<WalPoint> = Vec::new();
    let start = first.at_s.floor() as u64;
    for second in start..=last.at_s.floor() as u64 {
        let (from, to) = ((second as f64).max(first.at_s), (second as f64 + 1.0).min(last.at_s));
        if to <= from {
            continue;
        }
        if let Some(bytes) = bytes_between(samples, from, to) {
            series.push(WalPoint { second, bytes });
        }
    }
    // Whole seconds only for the peak: a partial first or last second is
    // not a rate over a second.
    let whole = series.iter().filter(|p| p.second as f64 >= first.at_s && (p.second + 1) as f64 <= last.at_s);
    let peak = whole.max_by_key(|p| p.bytes);
    let fpi_at = |t: f64| {
        let i = samples.partition_point(|s| s.at_s <= t);
        samples.get(i.saturating_sub(1)).and_then(|s| s.fpi)
    };
    let phases = phases
        .iter()
        .filter(|(_, from, to)| to > from)
        .map(|(phase, from, to)| WalPhase {
            phase: *phase,
            bytes: bytes_between(samples, *from, *to).unwrap_or(0),
            full_page_images: fpi_at(*to).zip(fpi_at(*from)).map(|(b, a)| (b - a).max(0)),
        })
        .collect();
    Some(WalReport {
        interval_ms: crate::units::millis(INTERVAL),
        samples: samples.len(),
        bytes: (last.lsn - first.lsn).max(0.0) as u64,
        peak_bytes_per_s: peak.map_or(0, |p| p.bytes),
        peak_at_s: peak.map(|p| p.second as f64),
        phases,
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_s: f64, lsn: f64, fpi: i64) -> WalSample {
        WalSample { at_s, lsn, fpi: Some(fpi) }
    }

    #[test]
    fn wal_is_cut_by_phase_and_step_by_interpolating_the_position() {
        let samples = [s(0.0, 1000.0, 0), s(1.0, 2000.0, 1), s(2.0, 12_000.0, 5), s(3.0, 13_000.0, 6)];
        assert_eq!(lsn_at(&samples, 1.5), Some(7000.0));
        assert_eq!(bytes_between(&samples, 1.5, 2.0), Some(5000));
        assert_eq!(bytes_between(&samples, -1.0, 9.0), Some(12_000), "clamped to the samples");
        let r = report(&samples, &[(Phase::Baseline, 0.0, 1.0), (Phase::During, 1.0, 2.0), (Phase::After, 2.0, 3.0)])
            .unwrap();
        assert_eq!(r.bytes, 12_000);
        assert_eq!((r.peak_bytes_per_s, r.peak_at_s), (10_000, Some(1.0)));
        let during = &r.phases[1];
        assert_eq!((during.bytes, during.full_page_images), (10_000, Some(4)));
        assert_eq!(r.series.iter().map(|p| p.bytes).collect::<Vec<_>>(), [1000, 10_000, 1000]);
    }
}
