//! The first error of each kind a query met that says its SQL no longer
//! fits the schema or its data: what a migration can break. Kept per query
//! and SQLSTATE, with when it first happened and whether it happened in the
//! baseline too (then the migration did not cause it). The report turns
//! these into the queries broken by the migration.
//!
//! Failures are the rare path, so a mutex is fine here; the number kept is
//! bounded by the SQLSTATEs Postgres has.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use super::wire::WireError;
use crate::clock::{Phase, PhaseClock};

/// Whether an error with this SQLSTATE says the query no longer fits the
/// schema or the data it runs against, as a migration can make it: class
/// 42 (an undefined column, table or function, a datatype mismatch, …), 23
/// (a NOT NULL, CHECK, unique or foreign-key violation), 22 (a value the
/// new type refuses), and 0A000 (a prepared plan whose result type the
/// migration changed). Timeouts, cancels, deadlocks and lost connections
/// are not: they are the load's weather, counted by kind elsewhere.
pub fn schema_error(code: &str) -> bool {
    code.starts_with("42") || code.starts_with("23") || code.starts_with("22") || code == "0A000"
}

/// One kind of error of one query.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ErrorSeen {
    /// SQLSTATE.
    pub sqlstate: String,
    /// The server's message, the first time.
    pub message: String,
    /// When it first happened (when the request failed), seconds from the
    /// start of the load.
    pub first_s: f64,
    /// How many requests failed so.
    pub count: u64,
    /// Whether a request due in the baseline failed so: then it predates
    /// the migration.
    pub in_baseline: bool,
}

/// The errors of one query, by SQLSTATE.
#[derive(Default)]
pub struct FirstErrors(Mutex<BTreeMap<String, ErrorSeen>>);

impl FirstErrors {
    /// Notes `e`, when it is a schema error, for a request due at `due`
    /// that failed now.
    pub fn note(&self, e: &WireError, clock: &PhaseClock, due: Instant) {
        let WireError::Db { code, message, .. } = e else { return };
        if !schema_error(code) {
            return;
        }
        let baseline = clock.phase_of(due) == Phase::Baseline;
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = seen.entry(code.clone()).or_insert_with(|| ErrorSeen {
            sqlstate: code.clone(),
            message: message.clone(),
            first_s: clock.offset(Instant::now()),
            count: 0,
            in_baseline: false,
        });
        entry.count += 1;
        entry.in_baseline |= baseline;
    }

    /// What was seen, by SQLSTATE.
    pub fn seen(&self) -> Vec<ErrorSeen> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_of_the_schema_or_data_are_kept_with_their_first_time_and_baseline() {
        let clock = PhaseClock::new(Instant::now());
        let errors = FirstErrors::default();
        let db =
            |code: &str, message: &str| WireError::Db { code: code.into(), message: message.into(), position: None };
        errors.note(&db("57014", "canceling statement due to statement timeout"), &clock, Instant::now());
        errors.note(&db("40P01", "deadlock detected"), &clock, Instant::now());
        errors.note(&db("23505", "duplicate key"), &clock, Instant::now());
        clock.mark_start(crate::clock::Window::Migration);
        let due = Instant::now();
        errors.note(&db("42703", "column \"status\" does not exist"), &clock, due);
        errors.note(&db("42703", "column \"status\" does not exist (again)"), &clock, due);
        let seen = errors.seen();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!((seen[0].sqlstate.as_str(), seen[0].in_baseline), ("23505", true));
        assert_eq!((seen[1].sqlstate.as_str(), seen[1].count, seen[1].in_baseline), ("42703", 2, false));
        assert_eq!(seen[1].message, "column \"status\" does not exist");
    }
}
