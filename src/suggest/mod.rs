//! Safer variants of a migration, derived from it as written (`--suggest`):
//!
//! - `S+lock-timeout`: the same SQL, each step that touches a table of the
//!   scenario with a `lock_timeout` computed from the workload, and retries;
//! - `S+rewrites`: each statement with a known safe form replaced by it
//!   (see [`rewrite`]), every locking step with the same `lock_timeout`.
//!
//! Why that `lock_timeout`: while a lock request waits, every query on the
//! table queues behind it, so a pool of P connections with R requests/s
//! on the table is full after about P/R. The timeout is half of that, so
//! that the pool never fills, and at most half the `max_lock_wait` limit.

pub mod rewrite;

use std::time::Duration;

use crate::scenario::duration::human;
use crate::scenario::shapes;
use crate::scenario::{Keyset, Load, Scenario, SqlText, StepSpec, StepTx, Strategy};
use rewrite::{Derived, Kind};

/// The `lock_timeout` the variants use, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct LockBudget {
    /// The value.
    pub lock_timeout: Duration,
    /// Retries, enough to outlast blockers until `max_duration`.
    pub retries: u32,
    /// Pause before each retry.
    pub backoff: Duration,
    /// The reasoning, with its figures.
    pub why: String,
}

/// Pause between batches of a derived backfill.
const PAUSE: Duration = Duration::from_millis(50);

/// Whether two table names, each schema-qualified or not, may name the
/// same table: both qualified, the same; else the same table name (the
/// search path is not known).
fn same_table(a: &str, b: &str) -> bool {
    let last = |n: &str| n.rsplit('.').next().unwrap_or(n).to_string();
    match (a.contains('.'), b.contains('.')) {
        (true, true) => a == b,
        _ => last(a) == last(b),
    }
}

/// Requests per second of the workload's queries that touch `tables`.
fn rate_on(scenario: &Scenario, tables: &[String]) -> f64 {
    let touches = |sql: &str| {
        pg_query::parse(sql).map(|t| t.tables().iter().any(|n| tables.iter().any(|x| same_table(n, x)))).unwrap_or(true)
    };
    scenario
        .workload
        .queries
        .iter()
        .filter(|q| q.statements.iter().any(|s| touches(&s.text)))
        .map(|q| match &q.load {
            Load::Open { rate, .. } => rate.peak(),
            Load::Closed { clients, think_time } => *clients as f64 / think_time.as_secs_f64().max(0.001),
        })
        .sum()
}

/// The tables of the scenario a step's SQL names.
fn tables_of(scenario: &Scenario, sql: &str) -> Vec<String> {
    let named = pg_query::parse(sql).map(|t| t.tables()).unwrap_or_default();
    let ours = |n: &String| scenario.tables.iter().any(|t| same_table(&t.name, n));
    named.into_iter().filter(ours).collect()
}

/// The `lock_timeout` for steps on `tables`.
pub fn budget(scenario: &Scenario, tables: &[String]) -> LockBudget {
    let pool = scenario.workload.pool_size as f64;
    let rate = rate_on(scenario, tables);
    let fills = if rate > 0.0 { Duration::from_secs_f64(pool / rate) } else { Duration::from_secs(2) };
    let mut t = (fills / 2).clamp(Duration::from_millis(10), Duration::from_secs(2));
    let mut why = if rate > 0.0 {
        format!(
            "a pool of {pool:.0} with {rate:.0} requests/s on {} fills in about {} (P/R) while a lock request waits; half of that",
            tables.join(", "),
            human(fills)
        )
    } else {
        "no query of the workload touches the tables; 1s".to_string()
    };
    if let Some(limit) = scenario.thresholds.max_lock_wait.filter(|l| *l / 2 < t) {
        t = limit / 2;
        why.push_str(&format!(", capped at half the max_lock_wait of {}", human(limit)));
    }
    let backoff = Duration::from_millis(500);
    let per_try = (t + backoff).as_secs_f64();
    let retries = (scenario.timeline.max_duration.as_secs_f64() / per_try).ceil().clamp(1.0, 1000.0) as u32;
    LockBudget { lock_timeout: t, retries, backoff, why }
}

fn spec(base: &StepSpec, d: &Derived, budget: &LockBudget) -> StepSpec {
    let sql = SqlText::derived(d.sql.clone(), base.sql.at.clone());
    let mut s = StepSpec { name: Some(d.name.clone()), sql, origin: base.origin.clone(), ..base.clone() };
    (s.lock_timeout, s.retries, s.backoff, s.repeat, s.keyset) = (None, 0, Duration::ZERO, None, None);
    s.tx = StepTx::Own;
    match &d.kind {
        Kind::Locking => {
            (s.lock_timeout, s.retries, s.backoff) = (Some(budget.lock_timeout), budget.retries, budget.backoff)
        }
        Kind::Concurrent => s.tx = StepTx::Alone,
        Kind::Keyset(key) => {
            (s.repeat, s.keyset) = (Some(PAUSE), Some(Keyset { key: key.clone(), batch: rewrite::BATCH }))
        }
        Kind::Rescan => s.repeat = Some(PAUSE),
    }
    s
}

/// The variants derived from `strategy`, with what the user should know.
pub struct Suggested {
    /// `S+lock-timeout`, then `S+rewrites` when a statement had a rewrite.
    pub strategies: Vec<Strategy>,
    /// The rules applied, the `lock_timeout` and why, and statements with
    /// no known safe form.
    pub notes: Vec<String>,
}

/// Derives the safer variants of `strategy`.
pub fn suggest(scenario: &Scenario, strategy: &Strategy) -> Suggested {
    let schema = scenario.schema.iter().flat_map(|f| f.statements.iter().map(|s| s.text.as_str()));
    let ddl: Vec<&str> = schema.chain(scenario.tables.iter().map(|t| t.ddl.text.as_str())).collect();
    let shapes = shapes::tables(ddl);
    let mut timed = strategy.clone();
    timed.name = format!("{}+lock-timeout", strategy.name);
    let mut rewritten = strategy.clone();
    rewritten.name = format!("{}+rewrites", strategy.name);
    rewritten.steps.clear();
    let mut notes = Vec::new();
    let mut any_rewrite = false;
    let mut split = false;
    for (step, timed_step) in strategy.steps.iter().zip(&mut timed.steps) {
        let tables = tables_of(scenario, &step.sql.text);
        let budget = budget(scenario, &tables);
        let needs_timeout = !tables.is_empty() && step.lock_timeout.is_none() && step.repeat.is_none();
        // A step in a transaction it shares cannot be retried alone: the
        // lock-timeout variant leaves it as it is.
        if needs_timeout && step.tx == StepTx::Own {
            (timed_step.lock_timeout, timed_step.retries, timed_step.backoff) =
                (Some(budget.lock_timeout), budget.retries, budget.backoff);
            let note =
                format!("lock_timeout {} with {} retries: {}", human(budget.lock_timeout), budget.retries, budget.why);
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
        // The rewrite commits each step on its own: CONCURRENTLY and
        // batches cannot run in the file's one transaction.
        if let StepTx::Shared(t) = step.tx {
            split = true;
            if t.control.is_some() {
                continue;
            }
        }
        match rewrite::rewrite(&step.sql.text, &shapes) {
            Some(r) if !r.steps.is_empty() => {
                any_rewrite |= r.rule.is_some();
                if let Some(rule) = r.rule {
                    notes.push(format!("{rule}: {}", one_line(&step.sql.text)));
                }
                notes.extend(r.note.clone());
                rewritten.steps.extend(r.steps.iter().map(|d| spec(step, d, &budget)));
            }
            r => {
                notes.extend(r.and_then(|r| r.note));
                let mut own = timed_step.clone();
                if let StepTx::Shared(_) = own.tx {
                    own.tx = StepTx::Own;
                    if needs_timeout {
                        (own.lock_timeout, own.retries, own.backoff) =
                            (Some(budget.lock_timeout), budget.retries, budget.backoff);
                    }
                }
                rewritten.steps.push(own);
            }
        }
    }
    if split && any_rewrite {
        notes.push(format!("{}: the migration's transaction is split, each step committing on its own, as CONCURRENTLY and batched backfills need; a failure part-way leaves the steps before it applied", rewritten.name));
    }
    let mut strategies = vec![timed];
    if any_rewrite {
        strategies.push(rewritten);
    }
    Suggested { strategies, notes }
}

fn one_line(sql: &str) -> String {
    let s: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 90 { format!("{}…", s.chars().take(89).collect::<String>()) } else { s }
}

/// The variant's SQL, ready to copy: each step with its settings as
/// comments.
pub fn printable(s: &Strategy) -> String {
    let mut out = format!("-- strategy {}\n", s.name);
    for (i, step) in s.steps.iter().enumerate() {
        let mut how = Vec::new();
        if let Some(t) = step.lock_timeout {
            how.push(format!(
                "SET lock_timeout = '{}'; retry up to {} times, {} apart",
                human(t),
                step.retries,
                human(step.backoff)
            ));
        }
        if step.tx == StepTx::Alone {
            how.push("outside a transaction".into());
        }
        match (&step.keyset, step.repeat) {
            (Some(k), Some(p)) => how.push(format!(
                "repeat, {} apart, until it returns fewer than {} rows; {{after}} is empty for the first batch, then WHERE {} > the last key returned",
                human(p),
                k.batch,
                k.key
            )),
            (None, Some(p)) => how.push(format!("repeat until it changes 0 rows, {} apart", human(p))),
            _ => {}
        }
        let name = step.name.as_deref().unwrap_or("step");
        out.push_str(&format!(
            "-- {}. {name}{}\n{};\n",
            i + 1,
            if how.is_empty() { String::new() } else { format!(" ({})", how.join("; ")) },
            step.sql.text.trim_end_matches(';')
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_table_is_the_same_with_or_without_its_public_schema() {
        assert!(super::same_table("public.rental", "rental"));
        assert!(super::same_table("rental", "public.rental"));
        assert!(super::same_table("shop.orders", "shop.orders"));
        assert!(!super::same_table("shop.orders", "public.orders"));
        assert!(!super::same_table("rental", "rentals"));
    }
}
