//! A migration step that retried behind autovacuum, and why it could not
//! get past it.
//!
//! Autovacuum gives way to a lock request: once the request has waited
//! `deadlock_timeout`, the waiting backend's deadlock check finds the
//! autovacuum worker in its way and cancels it (unless it runs to prevent
//! wraparound). A step whose `lock_timeout` is shorter gives up before
//! that check, so autovacuum is never cancelled and every retry waits for
//! the whole VACUUM. Seen on `add-column-default`'s expand-backfill at 2M
//! rows: after the backfill, the `NOT VALID` check (100 ms) retried 28
//! times over 16.4 s behind `autovacuum: VACUUM ANALYZE public.orders`,
//! a wait no run at a smaller scale had shown. The report names it, since
//! the lock_timeout alone does not explain the wait.

use super::ms_label;
use crate::migration::{MigrationReport, StepReport};
use crate::observe::{BlockEdge, LockSummary};
use crate::scenario::Strategy;

/// The role the lock observer gives an autovacuum worker (its
/// `backend_type`).
const AUTOVACUUM: &str = "autovacuum worker";

/// One warning per step of `migration` that retried while autovacuum held
/// its table, with a `lock_timeout` below `deadlock_timeout_ms`.
pub fn warnings(
    strategy: Option<&Strategy>,
    migration: Option<&MigrationReport>,
    locks: &LockSummary,
    deadlock_timeout_ms: f64,
) -> Vec<String> {
    let (Some(strategy), Some(m)) = (strategy, migration) else { return Vec::new() };
    let migration_role = crate::postgres::Role::Migration.to_string();
    let edges: Vec<&BlockEdge> =
        locks.blocking.iter().filter(|e| e.waiter == migration_role && e.blocker == AUTOVACUUM).collect();
    let mut out = Vec::new();
    for step in &m.steps {
        let spec = step.index.checked_sub(1).and_then(|i| strategy.steps.get(i));
        let Some(lock_timeout) = spec.and_then(|s| s.lock_timeout) else { continue };
        let lock_timeout_ms = lock_timeout.as_secs_f64() * 1000.0;
        if lock_timeout_ms >= deadlock_timeout_ms || step.attempts < 2 {
            continue;
        }
        if let Some((edge, seconds)) = behind(step, &edges) {
            out.push(warning(step, edge, seconds, lock_timeout_ms, deadlock_timeout_ms));
        }
    }
    out
}

/// The autovacuum edge that overlapped `step` longest, and for how long
/// (seconds, as the observer saw it).
fn behind<'a>(step: &StepReport, edges: &[&'a BlockEdge]) -> Option<(&'a BlockEdge, f64)> {
    let seen = edges.iter().filter_map(|e| Some((*e, e.seen_within(step.started_s, step.ended_s)?)));
    seen.max_by(|a, b| a.1.total_cmp(&b.1))
}

fn warning(step: &StepReport, edge: &BlockEdge, seconds: f64, lock_timeout_ms: f64, deadlock_ms: f64) -> String {
    let name = step.name.as_deref().map_or(String::new(), |n| format!(" ({n})"));
    format!(
        "step {}{name} retried behind autovacuum (`{}`) for {} in {} attempts: autovacuum gives way to a lock request \
         only once it has waited deadlock_timeout ({}), and the step's lock_timeout ({}) gives up sooner, so \
         autovacuum is never cancelled and the step can only wait it out. `SET LOCAL deadlock_timeout` below the \
         lock_timeout in the step's transaction (as a superuser) lets it cancel the VACUUM; a VACUUM of the table \
         as a step before it takes the wait out of the migration",
        step.index,
        edge.blocker_query,
        ms_label(seconds * 1000.0),
        step.attempts,
        ms_label(deadlock_ms),
        ms_label(lock_timeout_ms),
    )
}
