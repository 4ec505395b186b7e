//! What each query's requests measured, as the report gives it: per phase,
//! latency percentiles of successful requests and of failed ones, and
//! failures counted by kind; plus a per-second series. The
//! [`super::recorder`] gathers them.
//!
//! Latency is from the moment a request was due, so time spent queued for
//! a connection or behind a lock is in it. The series buckets requests by
//! the second they were due: a stalled second shows its full count with
//! long latencies, not an empty gap.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

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
    /// A standby cancelled it (or ended its session) for a conflict with
    /// recovery: a replayed lock or vacuum it stood in the way of.
    RecoveryConflict,
    /// Any other error, by SQLSTATE.
    Sql(String),
}

impl Failure {
    /// The kind as reports name it: `pool_timeout`, `statement_timeout`,
    /// `lock_timeout`, `client_timeout`, `connection`, `unfinished`,
    /// `recovery_conflict`, or
    /// `sqlstate_` and the SQLSTATE.
    pub fn label(&self) -> String {
        match self {
            Failure::PoolTimeout => "pool_timeout".into(),
            Failure::StatementTimeout => "statement_timeout".into(),
            Failure::LockTimeout => "lock_timeout".into(),
            Failure::ClientTimeout => "client_timeout".into(),
            Failure::Connection => "connection".into(),
            Failure::Unfinished => "unfinished".into(),
            Failure::RecoveryConflict => "recovery_conflict".into(),
            Failure::Sql(code) => format!("sqlstate_{code}"),
        }
    }

    /// Classifies a failed request's error. Runs once per failed request,
    /// so it reads the error in place rather than copying it.
    pub fn classify(e: &WireError) -> Failure {
        let WireError::Db { code, message, .. } = e else { return Failure::Connection };
        match code.as_str() {
            LOCK_NOT_AVAILABLE => Failure::LockTimeout,
            "40001" | "57P04" if message.contains("conflict with recovery") => Failure::RecoveryConflict,
            QUERY_CANCELED if message.contains("statement timeout") => Failure::StatementTimeout,
            code if code.starts_with("08") || code == "57P01" => Failure::Connection,
            code => Failure::Sql(code.to_string()),
        }
    }
}

/// Latencies are recorded in microseconds, from 1 µs to 1 hour; a longer
/// one is recorded as 1 hour.
const MAX_US: u64 = 3_600_000_000;

pub(super) fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, sigfig).expect("valid bounds")
}

pub(super) fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A percentile, never above the exact maximum (HDR reports the upper
/// edge of a value's bucket).
pub(super) fn quantile_ms(h: &Histogram<u64>, q: f64, max_us: u64) -> Option<f64> {
    (!h.is_empty()).then(|| ms(h.value_at_quantile(q).min(max_us)))
}

/// One query in one phase.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
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
