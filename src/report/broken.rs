//! Queries the migration broke: a workload query that began to fail, after
//! the migration started, with an error saying its SQL no longer fits the
//! schema or the data (an undefined column or table, a datatype mismatch, a
//! NOT NULL or CHECK violation on a write it makes; see
//! [`crate::workload::first_errors::schema_error`]) that it never met in
//! the baseline. Each is named with its first error and the step after
//! which it started, and judged by `max_broken_queries` (0 unless the
//! scenario says otherwise).

use std::fmt::Write;

use serde::Serialize;

use super::{Check, Violation};
use crate::migration::{MigrationReport, StepReport};
use crate::workload::QueryResult;

/// A query the migration broke.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct BrokenQuery {
    /// The query's name.
    pub query: String,
    /// Its SQL, as the scenario gives it (a transaction's statements joined).
    pub sql: String,
    /// SQLSTATE of its first such error.
    pub sqlstate: String,
    /// The server's message.
    pub message: String,
    /// When it first failed so, seconds from the start of the load.
    pub first_s: f64,
    /// How many of its requests failed so.
    pub errors: u64,
    /// The step after which it started failing: the last to start before
    /// its first such error.
    pub after_step: Option<StepRef>,
}

/// A migration step, as a broken query names it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct StepRef {
    /// `migration`, or `rollback` for a step of the down migration.
    pub migration: String,
    /// Its 1-based index.
    pub index: usize,
    /// Its name, if any.
    pub name: Option<String>,
    /// Its SQL.
    pub sql: String,
    /// Its migration file and line, when it came from one.
    pub file: Option<String>,
    /// The line there.
    pub line: Option<usize>,
}

impl StepRef {
    fn of(migration: &'static str, s: &StepReport) -> Self {
        StepRef {
            migration: migration.to_string(),
            index: s.index,
            name: s.name.clone(),
            sql: s.sql.clone(),
            file: s.file.clone(),
            line: s.line,
        }
    }

    /// `step 2 (drop status)` or `rollback step 1`, with its file and line.
    pub fn describe(&self) -> String {
        let mut out = if self.migration == "rollback" {
            format!("rollback step {}", self.index)
        } else {
            format!("step {}", self.index)
        };
        if let Some(name) = &self.name {
            let _ = write!(out, " ({name})");
        }
        if let (Some(file), Some(line)) = (&self.file, self.line) {
            let _ = write!(out, " at {file}:{line}");
        }
        out
    }
}

/// The queries the migration (or its rollback) broke, in the order they
/// broke.
pub(super) fn find(
    queries: &[(String, String)],
    results: &[QueryResult],
    migration: Option<&MigrationReport>,
    rollback: Option<&MigrationReport>,
) -> Vec<BrokenQuery> {
    let Some(started) = migration.map(|m| m.started_s) else { return Vec::new() };
    // Every step, in the order they ran, with when each started.
    let runs = [("migration", migration), ("rollback", rollback)];
    let steps: Vec<(f64, StepRef)> = runs
        .iter()
        .filter_map(|(kind, m)| Some((*kind, (*m)?)))
        .flat_map(|(kind, m)| m.steps.iter().map(move |s| (s.started_s, StepRef::of(kind, s))))
        .collect();
    let mut broken = Vec::new();
    for q in results {
        let sql = queries.iter().find(|(n, _)| *n == q.name).map(|(_, s)| s.clone()).unwrap_or_default();
        // The first schema error it did not meet in the baseline.
        let first = q
            .errors
            .iter()
            .filter(|e| !e.in_baseline && e.first_s >= started)
            .min_by(|a, b| a.first_s.total_cmp(&b.first_s));
        let Some(e) = first else { continue };
        let after = steps.iter().rev().find(|(at, _)| *at <= e.first_s).map(|(_, s)| s.clone());
        broken.push(BrokenQuery {
            query: q.name.clone(),
            sql,
            sqlstate: e.sqlstate.clone(),
            message: e.message.clone(),
            first_s: e.first_s,
            errors: q.errors.iter().filter(|x| !x.in_baseline && x.first_s >= started).map(|x| x.count).sum(),
            after_step: after,
        });
    }
    broken.sort_by(|a, b| a.first_s.total_cmp(&b.first_s));
    broken
}

/// The checks that failed with a schema error when run after the
/// migration: broken by it, after its last step.
pub(super) fn of_checks(
    checks: &[crate::observe::plans::CheckRun],
    migration: Option<&MigrationReport>,
) -> Vec<BrokenQuery> {
    let last = migration.and_then(|m| m.steps.last()).map(|s| StepRef::of("migration", s));
    checks
        .iter()
        .filter(|c| c.planned_before)
        .filter_map(|c| {
            let e = c.error.as_ref()?;
            let code = e.sqlstate.clone().filter(|code| crate::workload::first_errors::schema_error(code))?;
            Some(BrokenQuery {
                query: c.name.clone(),
                sql: c.sql.clone(),
                sqlstate: code,
                message: e.message.clone(),
                first_s: c.at_s,
                errors: 1,
                after_step: last.clone(),
            })
        })
        .collect()
}

/// `max_broken_queries`: more queries broken than the limit fails.
pub(super) fn judge(limit: u64, broken: &[BrokenQuery]) -> Vec<Violation> {
    if broken.len() as u64 <= limit {
        return Vec::new();
    }
    broken
        .iter()
        .map(|b| Violation {
            threshold: Check::MaxBrokenQueries,
            subject: b.query.clone(),
            measured: Some(broken.len() as f64),
            limit: Some(limit as f64),
            message: format!("{}: broken by the migration, {}", b.query, sentence(b)),
        })
        .collect()
}

fn sentence(b: &BrokenQuery) -> String {
    let after = b.after_step.as_ref().map(|s| format!(" after {}", s.describe())).unwrap_or_default();
    format!("{} requests failed from {:.1}s{after}: ERROR {} {}", b.errors, b.first_s, b.sqlstate, b.message)
}

/// The terminal section, when a query broke.
pub(super) fn render(w: &mut String, broken: &[BrokenQuery]) {
    if broken.is_empty() {
        return;
    }
    let _ =
        writeln!(w, "\nBROKEN BY THE MIGRATION  queries that began to fail with a schema error the baseline never had");
    for b in broken {
        let _ = writeln!(w, "  ✗ {}: {}", b.query, super::terminal::shorten(&b.sql, 90));
        let _ = writeln!(w, "     {}", sentence(b));
        if let Some(step) = &b.after_step {
            let _ = writeln!(w, "     the step: {}", super::terminal::shorten(&step.sql, 90));
        }
    }
}
