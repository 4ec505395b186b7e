//! `[workload]` as validated: the pool, and each query's statements,
//! parameters, shape of load (open loop at a rate or a ramp, closed loop
//! with clients and think time), timeouts and target.

use std::time::Duration;

use super::ValueSpec;
use super::source::{Location, SqlText};

/// `[workload]`: the application's load.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// Connections the application's pool holds.
    pub pool_size: usize,
    /// Longest a request waits for a connection before it fails.
    pub pool_timeout: Duration,
    /// The queries, each on its own schedule.
    pub queries: Vec<QuerySpec>,
    /// What replaying `from = "pgss.csv"` left out or should say.
    pub notes: Vec<String>,
    /// `[[workload.check]]`: queries the application runs rarely (a weekly
    /// batch job), not part of the load: explained before and after the
    /// migration, and run once after it (in a transaction rolled back).
    pub checks: Vec<CheckSpec>,
}

/// One `[[workload.check]]`.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    /// Its name.
    pub name: String,
    /// Its one statement.
    pub statement: super::SqlText,
    /// One generator per `$n`.
    pub params: Vec<ParamSpec>,
}

/// How requests of one query arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// Open loop: requests are due on a schedule, whether or not earlier
    /// ones have finished (`rate` or `ramp`, with `arrival`).
    Open {
        /// Requests per second over time.
        rate: RateProfile,
        /// Evenly spaced or Poisson arrivals.
        arrival: Arrival,
    },
    /// Closed loop: `clients` users, each sending its next request
    /// `think_time` after its previous one finished.
    Closed {
        /// Concurrent users.
        clients: usize,
        /// Pause between a response and the next request.
        think_time: Duration,
    },
}

/// How open-loop requests are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly: request n is due when the rate's integral reaches n.
    Uniform,
    /// A Poisson process of the given rate (exponential gaps), as
    /// `pgbench --rate` schedules transactions.
    Poisson,
}

/// A rate over time: piecewise linear between points `(at, rate)`, the
/// first point's rate before it and the last one's after it. A constant
/// rate is one point.
#[derive(Debug, Clone, PartialEq)]
pub struct RateProfile {
    /// Points in increasing time; rates are requests per second, ≥ 0.
    pub points: Vec<(Duration, f64)>,
}

impl RateProfile {
    /// A constant rate.
    pub fn constant(rate: f64) -> Self {
        Self { points: vec![(Duration::ZERO, rate)] }
    }

    /// The rate at the start of the load.
    pub fn initial(&self) -> f64 {
        self.points[0].1
    }

    /// The highest rate anywhere in the profile.
    pub fn peak(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(0.0, f64::max)
    }
}

/// Where a query's requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The server being migrated.
    Primary,
    /// A read replica (`--replica-url`); the primary when none is given.
    Replica,
}

/// One `[[workload.query]]`.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    /// Its name in reports.
    pub name: String,
    /// Its statements, each with `$1`, `$2`, ...: one for `sql`, several
    /// for `transaction`.
    pub statements: Vec<SqlText>,
    /// Whether the statements run in one transaction (`transaction = [...]`).
    pub transaction: bool,
    /// One generator per parameter; statement k takes the first `n_k`.
    pub params: Vec<ParamSpec>,
    /// How its requests arrive.
    pub load: Load,
    /// `SET statement_timeout` for its statements, if given.
    pub statement_timeout: Option<Duration>,
    /// Client-side timeout, from when a request was due: past it the
    /// client cancels the query and counts a `client_timeout`.
    pub timeout: Option<Duration>,
    /// Where it runs.
    pub target: Target,
    /// Whether every statement only reads (see
    /// [`super::sql_parse::Parsed::is_read_only`]).
    pub read_only: bool,
    /// Where it comes from, when not the scenario: its
    /// `pg_stat_statements` query id and counts.
    pub source: Option<String>,
}

impl QuerySpec {
    /// Whether the query only reads: every statement is a SELECT that
    /// takes no row locks and writes nothing, as its parse tree shows.
    pub fn is_read(&self) -> bool {
        self.read_only
    }

    /// The open-loop rate at the start, `None` for a closed loop.
    pub fn rate(&self) -> Option<f64> {
        match &self.load {
            Load::Open { rate, .. } => Some(rate.initial()),
            Load::Closed { .. } => None,
        }
    }
}

/// The generator of one query parameter, and where the file names it.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// Its generator.
    pub spec: ValueSpec,
    /// Where it is written.
    pub at: Location,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_knows_its_start_and_peak() {
        let p = RateProfile { points: vec![(Duration::ZERO, 10.0), (Duration::from_secs(5), 40.0)] };
        assert_eq!((p.initial(), p.peak()), (10.0, 40.0));
        assert_eq!(RateProfile::constant(7.0).peak(), 7.0);
    }
}
