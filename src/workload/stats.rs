//! What each query's requests measured: per phase, an HDR histogram of the
//! latency of successful requests, another of failed ones, and failures
//! counted by kind; plus a per-second series.
//!
//! Latency is from the moment a request was due, so time spent queued for
//! a connection or behind a lock is in it. The series buckets requests by
//! the second they were due: a stalled second shows its full count with
//! long latencies, not an empty gap. A second is summarised and its
//! histogram freed once requests two seconds later have started and none
//! of its own is still in flight, so memory stays bounded however long the
//! run.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::phase::Phase;
use super::wire::WireError;
use crate::postgres::{LOCK_NOT_AVAILABLE, QUERY_CANCELED};

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection of the pool came free within `pool_timeout`.
    PoolTimeout,
    /// The server cancelled it at `statement_timeout`.
    StatementTimeout,
    /// It waited longer than `lock_timeout` for a lock.
    LockTimeout,
    /// The client gave up at the query's `timeout` and cancelled it.
    ClientTimeout,
    /// The connection broke.
    Connection,
    /// It was still running when the run ended.
    Unfinished,
    /// Any other error, by SQLSTATE.
    Sql(String),
}

impl Failure {
    /// The kind as reports name it: `pool_timeout`, `statement_timeout`,
    /// `lock_timeout`, `client_timeout`, `connection`, `unfinished`, or
    /// `sqlstate_` and the SQLSTATE.
    pub fn label(&self) -> String {
        match self {
            Failure::PoolTimeout => "pool_timeout".into(),
            Failure::StatementTimeout => "statement_timeout".into(),
            Failure::LockTimeout => "lock_timeout".into(),
            Failure::ClientTimeout => "client_timeout".into(),
            Failure::Connection => "connection".into(),
            Failure::Unfinished => "unfinished".into(),
            Failure::Sql(code) => format!("sqlstate_{code}"),
        }
    }

    /// Classifies a failed request's error. Runs once per failed request,
    /// so it reads the error in place rather than copying it.
    pub fn classify(e: &WireError) -> Failure {
        let WireError::Db { code, message, .. } = e else { return Failure::Connection };
        match code.as_str() {
            LOCK_NOT_AVAILABLE => Failure::LockTimeout,
            QUERY_CANCELED if message.contains("statement timeout") => Failure::StatementTimeout,
            code if code.starts_with("08") || code == "57P01" => Failure::Connection,
            code => Failure::Sql(code.to_string()),
        }
    }
}

/// Latencies are recorded in microseconds, from 1 µs to 1 hour; a longer
/// one is recorded as 1 hour.
const MAX_US: u64 = 3_600_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, sigfig).expect("valid bounds")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A percentile, never above the exact maximum (HDR reports the upper
/// edge of a value's bucket).
fn quantile_ms(h: &Histogram<u64>, q: f64, max_us: u64) -> Option<f64> {
    (!h.is_empty()).then(|| ms(h.value_at_quantile(q).min(max_us)))
}

/// One query in one phase.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QueryPhaseStats {
    /// Requests due in the phase that completed or failed.
    pub count: u64,
    /// Of those, how many failed.
    pub errors: u64,
    /// Failures by kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// Latency percentiles of successful requests, in milliseconds from the
    /// moment each was due; `null` when none succeeded.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// The slowest successful request.
    pub max_ms: Option<f64>,
    /// 99th percentile of the time failed requests took to fail.
    pub failed_p99_ms: Option<f64>,
    /// The longest a failed request took to fail.
    pub failed_max_ms: Option<f64>,
}

/// One second of one query's series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesPoint {
    /// Seconds from the start of the load; the request was due in
    /// `[second, second + 1)`.
    pub second: u64,
    /// Requests due in that second.
    pub count: u64,
    /// Of those, how many failed.
    pub errors: u64,
    /// Median latency of the successful ones.
    pub p50_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Slowest.
    pub max_ms: Option<f64>,
}

struct PhaseHist {
    ok: Histogram<u64>,
    /// Exact maxima: a histogram's max is its bucket's upper edge.
    ok_max: u64,
    failed_max: u64,
    failed: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

struct Second {
    ok: Histogram<u64>,
    ok_max: u64,
    count: u64,
    errors: u64,
    inflight: u64,
}

/// What completed since the live view last looked, by completion time.
struct Live {
    ok: Histogram<u64>,
    count: u64,
    errors: u64,
}

/// The live view's figures for one interval, summed over queries.
#[derive(Debug)]
pub struct LiveSample {
    /// Latencies of the requests that succeeded in the interval.
    pub ok: Histogram<u64>,
    /// Requests that completed (or failed) in it.
    pub count: u64,
    /// Of those, how many failed.
    pub errors: u64,
}

impl Default for LiveSample {
    fn default() -> Self {
        Self { ok: histogram(2), count: 0, errors: 0 }
    }
}

struct Inner {
    phases: [PhaseHist; 3],
    live: Live,
    open: BTreeMap<u64, Second>,
    /// The pacer has issued every request due before this second.
    issued_through: u64,
    points: Vec<SeriesPoint>,
}

/// The measurements of one query, fed by its requests.
pub struct QueryRecorder {
    inner: Mutex<Inner>,
}

impl Default for QueryRecorder {
    fn default() -> Self {
        let phase =
            || PhaseHist { ok: histogram(3), ok_max: 0, failed_max: 0, failed: histogram(3), errors: BTreeMap::new() };
        Self {
            inner: Mutex::new(Inner {
                phases: [phase(), phase(), phase()],
                live: Live { ok: histogram(2), count: 0, errors: 0 },
                open: BTreeMap::new(),
                issued_through: 0,
                points: Vec::new(),
            }),
        }
    }
}

impl Inner {
    fn second(&mut self, second: u64) -> &mut Second {
        self.open.entry(second).or_insert_with(|| Second {
            ok: histogram(2),
            ok_max: 0,
            count: 0,
            errors: 0,
            inflight: 0,
        })
    }

    /// Summarises the seconds that can no longer change, oldest first.
    fn close_seconds(&mut self, all: bool) {
        while let Some(entry) = self.open.first_entry() {
            // One second of slack: requests start on several threads, so
            // one due just before a second boundary may register after one
            // due just after it.
            let done = all || (*entry.key() + 1 < self.issued_through && entry.get().inflight == 0);
            if !done {
                break;
            }
            let (second, s) = entry.remove_entry();
            self.points.push(SeriesPoint {
                second,
                count: s.count,
                errors: s.errors,
                p50_ms: quantile_ms(&s.ok, 0.5, s.ok_max),
                p99_ms: quantile_ms(&s.ok, 0.99, s.ok_max),
                max_ms: (!s.ok.is_empty()).then(|| ms(s.ok_max)),
            });
        }
    }
}

impl QueryRecorder {
    /// A request due in `second` was issued.
    pub fn issued(&self, second: u64) {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.issued_through = inner.issued_through.max(second);
        inner.second(second).inflight += 1;
    }

    /// A request due in `second` (and in `phase`) finished after `latency`.
    pub fn completed(&self, phase: Phase, second: u64, latency: Duration, outcome: Result<(), Failure>) {
        let us = (latency.as_micros() as u64).max(1);
        let mut inner = self.inner.lock().expect("not poisoned");
        let p = &mut inner.phases[phase.index()];
        match &outcome {
            Ok(()) => {
                p.ok.saturating_record(us);
                p.ok_max = p.ok_max.max(us);
            }
            Err(f) => {
                p.failed.saturating_record(us);
                p.failed_max = p.failed_max.max(us);
                *p.errors.entry(f.label()).or_default() += 1;
            }
        }
        inner.live.count += 1;
        match &outcome {
            Ok(()) => inner.live.ok.saturating_record(us),
            Err(_) => inner.live.errors += 1,
        }
        let s = inner.second(second);
        s.count += 1;
        s.inflight = s.inflight.saturating_sub(1);
        match outcome {
            Ok(()) => {
                s.ok.saturating_record(us);
                s.ok_max = s.ok_max.max(us);
            }
            Err(_) => s.errors += 1,
        }
        inner.close_seconds(false);
    }

    /// The statistics of one phase.
    pub fn phase(&self, phase: Phase) -> QueryPhaseStats {
        let inner = self.inner.lock().expect("not poisoned");
        let p = &inner.phases[phase.index()];
        let errors: u64 = p.errors.values().sum();
        QueryPhaseStats {
            count: p.ok.len() + errors,
            errors,
            error_kinds: p.errors.clone(),
            p50_ms: quantile_ms(&p.ok, 0.5, p.ok_max),
            p90_ms: quantile_ms(&p.ok, 0.9, p.ok_max),
            p99_ms: quantile_ms(&p.ok, 0.99, p.ok_max),
            p999_ms: quantile_ms(&p.ok, 0.999, p.ok_max),
            max_ms: (!p.ok.is_empty()).then(|| ms(p.ok_max)),
            failed_p99_ms: quantile_ms(&p.failed, 0.99, p.failed_max),
            failed_max_ms: (!p.failed.is_empty()).then(|| ms(p.failed_max)),
        }
    }

    /// The per-second series; closes every second still open, so call it
    /// once the run is over.
    pub fn series(&self) -> Vec<SeriesPoint> {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.close_seconds(true);
        inner.points.clone()
    }

    /// Adds what completed since the last call to `into`, and starts over.
    pub fn drain_live(&self, into: &mut LiveSample) {
        let mut inner = self.inner.lock().expect("not poisoned");
        let live = &mut inner.live;
        let _ = into.ok.add(&live.ok);
        into.count += live.count;
        into.errors += live.errors;
        live.ok.reset();
        live.count = 0;
        live.errors = 0;
    }

    /// Seconds still held open (for tests of memory bounds).
    pub fn open_seconds(&self) -> usize {
        self.inner.lock().expect("not poisoned").open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_successes_and_failures_are_counted_by_kind() {
        let r = QueryRecorder::default();
        for i in 1..=100u64 {
            r.issued(0);
            r.completed(Phase::Baseline, 0, Duration::from_millis(i), Ok(()));
        }
        r.issued(0);
        r.completed(Phase::Baseline, 0, Duration::from_secs(2), Err(Failure::PoolTimeout));
        let s = r.phase(Phase::Baseline);
        assert_eq!(s.count, 101);
        assert_eq!(s.errors, 1);
        assert_eq!(s.error_kinds.get("pool_timeout"), Some(&1));
        let p99 = s.p99_ms.unwrap();
        assert!((98.0..=100.5).contains(&p99), "{p99}");
        assert!(s.max_ms.unwrap() < 101.0);
        assert!(s.failed_max_ms.unwrap() >= 1999.0);
        assert_eq!(r.phase(Phase::During).count, 0);
    }

    #[test]
    fn a_second_closes_only_when_passed_and_drained() {
        let r = QueryRecorder::default();
        r.issued(0);
        r.issued(0);
        r.issued(1);
        r.completed(Phase::Baseline, 0, Duration::from_millis(1), Ok(()));
        r.completed(Phase::Baseline, 0, Duration::from_secs(9), Ok(()));
        // drained, but only one second has passed: a late starter of
        // second 0 may still come
        assert_eq!(r.open_seconds(), 2);
        r.issued(2);
        r.completed(Phase::Baseline, 1, Duration::from_millis(1), Ok(()));
        // second 0 closes; second 1 is drained but not two seconds old
        assert_eq!(r.open_seconds(), 2);
        let series = r.series();
        assert_eq!(series[0].second, 0);
        assert_eq!(series[0].count, 2);
        assert!(series[0].max_ms.unwrap() >= 8900.0);
        assert_eq!(series[1].count, 1);
        assert_eq!(series[2].count, 0); // issued, never completed
    }
}
