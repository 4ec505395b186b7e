//! One step: executions, retries after a lock timeout, batches of a
//! repeated step, and the capture of what each execution did.

use std::collections::BTreeSet;
use std::time::Instant;

use tokio_postgres::SimpleQueryMessage;

use super::capture::{self, LockTaken};
use super::{BatchPoint, OpenTransaction, Session, StepReport, TransactionKind};
use crate::postgres::{LOCK_NOT_AVAILABLE, SqlError};
use crate::scenario::{SharedTx, SqlText, StepSpec, StepTx, TxControl};
use crate::units::millis as ms;

/// What one execution of the step's SQL did.
struct Execution {
    rows: u64,
    /// A keyset step's greatest key of the batch.
    last_key: Option<String>,
    locks: BTreeSet<LockTaken>,
    rewrote: Vec<String>,
}

fn settings(spec: &StepSpec, scope: &str) -> String {
    let mut sql = String::new();
    if let Some(t) = spec.lock_timeout {
        sql.push_str(&format!("SET {scope} lock_timeout = {}; ", t.as_millis().max(1)));
    }
    if let Some(t) = spec.statement_timeout {
        sql.push_str(&format!("SET {scope} statement_timeout = {}; ", t.as_millis().max(1)));
    }
    sql
}

/// Rows changed, and for a keyset step (one row of two columns: rows and
/// the last key) the last key.
fn outcome(spec: &StepSpec, messages: &[SimpleQueryMessage]) -> (u64, Option<String>) {
    if spec.keyset.is_some() {
        let row = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) if r.len() == 2 => Some(r),
            _ => None,
        });
        if let Some(r) = row {
            let rows = r.get(0).and_then(|n| n.parse().ok()).unwrap_or(0);
            return (rows, r.get(1).map(str::to_string));
        }
    }
    (rows_affected(messages), None)
}

fn rows_affected(messages: &[SimpleQueryMessage]) -> u64 {
    messages
        .iter()
        .map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => *n,
            _ => 0,
        })
        .sum()
}

/// Runs a step to its end and reports it.
pub(super) async fn run(s: &Session<'_>, index: usize, spec: &StepSpec) -> StepReport {
    let started = Instant::now();
    let mut report = StepReport {
        index,
        name: spec.name.clone(),
        sql: spec.sql.text.clone(),
        transactional: matches!(spec.tx, StepTx::Own),
        transaction: TransactionKind::of(&spec.tx, &spec.sql.text),
        transaction_id: match spec.tx {
            StepTx::Shared(t) => Some(t.id),
            _ => None,
        },
        held_until_s: None,
        file: spec.origin.as_ref().map(|o| o.file.clone()),
        line: spec.origin.as_ref().map(|o| o.line),
        started_s: s.clock.offset(started),
        ended_s: 0.0,
        duration_ms: 0.0,
        lock_wait_ms: 0.0,
        unsampled_ms: 0.0,
        held_ms: 0.0,
        attempts: 0,
        batches: spec.repeat.map(|_| 0),
        batches_series: Vec::new(),
        progress: None,
        rows: 0,
        wal_bytes: None,
        locks: Vec::new(),
        rewrote: Vec::new(),
        error: None,
    };
    let mut locks = BTreeSet::new();
    let mut rewrote = BTreeSet::new();
    // A keyset step's batches: each after the last key of the one before.
    let mut last_key: Option<String> = None;
    loop {
        let began = Instant::now();
        let batch = spec.keyset.as_ref().map(|k| {
            let text = k.batch_sql(&spec.sql.text, last_key.as_deref());
            StepSpec { sql: SqlText::derived(text, spec.sql.at.clone()), ..spec.clone() }
        });
        match execute_with_retries(s, batch.as_ref().unwrap_or(spec), &mut report).await {
            Ok(exec) => {
                if exec.last_key.is_some() {
                    last_key = exec.last_key.clone();
                }
                report.rows += exec.rows;
                locks.extend(exec.locks);
                rewrote.extend(exec.rewrote);
                let Some(pause) = spec.repeat else { break };
                *report.batches.get_or_insert(0) += 1;
                let batch =
                    BatchPoint { at_s: s.clock.offset(began), duration_ms: ms(began.elapsed()), rows: exec.rows };
                report.batches_series.push(batch);
                // A keyset walk ends at a short batch: rows written after it
                // began have the new default.
                if exec.rows == 0 || spec.keyset.as_ref().is_some_and(|k| exec.rows < k.batch) {
                    break;
                }
                if !s.pause(pause).await {
                    report.error = Some(SqlError::harness("the migration reached max_duration between batches"));
                    break;
                }
            }
            Err(e) => {
                report.error = Some(e);
                break;
            }
        }
    }
    let ended = Instant::now();
    report.ended_s = s.clock.offset(ended);
    report.duration_ms = ms(ended - started);
    let mut locks: Vec<LockTaken> = locks.into_iter().collect();
    // Per relation, strongest mode first.
    locks.sort_by(|a, b| a.relation.cmp(&b.relation).then(b.mode.cmp(&a.mode)));
    report.locks = locks;
    report.rewrote = rewrote.into_iter().collect();
    report
}

/// One execution, tried again after a lock timeout while retries last.
async fn execute_with_retries(
    s: &Session<'_>,
    spec: &StepSpec,
    report: &mut StepReport,
) -> Result<Execution, SqlError> {
    let mut retries_left = spec.retries;
    loop {
        report.attempts += 1;
        let span = s.span_start().await;
        let began = Instant::now();
        let result = execute(s, spec).await;
        let waited = s.observer.migration_wait(began, Instant::now());
        report.lock_wait_ms += ms(waited.wait);
        report.unsampled_ms += ms(waited.unobserved);
        if result.is_ok() {
            let held = (ms(began.elapsed()) - ms(waited.wait)).max(0.0);
            report.held_ms = report.held_ms.max(held);
        }
        s.span_end(span).await;
        match result {
            Err(e) if e.is(LOCK_NOT_AVAILABLE) && retries_left > 0 && !s.expired() && !s.abandoned() => {
                retries_left -= 1;
                if !s.pause(spec.backoff).await {
                    return Err(e);
                }
            }
            other => return other,
        }
    }
}

async fn execute(s: &Session<'_>, spec: &StepSpec) -> Result<Execution, SqlError> {
    match spec.tx {
        StepTx::Own => execute_in_transaction(s, spec).await,
        StepTx::Alone => execute_alone(s, spec).await,
        StepTx::Shared(tx) => execute_shared(s, spec, tx).await,
    }
}

/// A statement in a transaction it shares with the steps around it: the
/// locks it adds are read before the transaction ends, and are held until
/// it does.
async fn execute_shared(s: &Session<'_>, spec: &StepSpec, tx: SharedTx) -> Result<Execution, SqlError> {
    let c = &s.client;
    if tx.begin {
        s.bounded(c.batch_execute("BEGIN")).await?;
    }
    let before = s.bounded(capture::catalog(c)).await?;
    let result = s.bounded(c.simple_query(&spec.sql.text)).await;
    let messages = match result {
        Ok(m) => m,
        Err(e) => {
            // The runner rolls the file's transaction back; so does the
            // server, once told.
            let _ = s.bounded(c.batch_execute("ROLLBACK")).await;
            *s.open.lock().expect("not poisoned") = None;
            return Err(e);
        }
    };
    let ended = tx.control == Some(TxControl::End);
    let mut locks = BTreeSet::new();
    if !ended {
        let mut open = s.open.lock().expect("not poisoned").take().filter(|o| o.id == tx.id);
        let mut state = open.take().unwrap_or_else(|| OpenTransaction { id: tx.id, ..Default::default() });
        state.catalog.merge(&before);
        let held = s.bounded(capture::own_locks(c, &state.catalog)).await?;
        locks = held.difference(&state.held).cloned().collect();
        state.held = held;
        *s.open.lock().expect("not poisoned") = Some(state);
    }
    let after = s.bounded(capture::catalog(c)).await?;
    if tx.commit || ended {
        *s.open.lock().expect("not poisoned") = None;
    }
    if tx.commit {
        s.bounded(c.batch_execute("COMMIT")).await?;
    }
    let (rows, last_key) = outcome(spec, &messages);
    Ok(Execution { rows, last_key, locks, rewrote: capture::rewritten(&before, &after) })
}

async fn execute_in_transaction(s: &Session<'_>, spec: &StepSpec) -> Result<Execution, SqlError> {
    let c = &s.client;
    s.bounded(c.batch_execute(&format!("BEGIN; {}", settings(spec, "LOCAL")))).await?;
    let attempt = async {
        let before = s.bounded(capture::catalog(c)).await?;
        let messages = s.bounded(c.simple_query(&spec.sql.text)).await?;
        // Read inside the transaction, before COMMIT releases them.
        let locks = s.bounded(capture::own_locks(c, &before)).await?;
        let after = s.bounded(capture::catalog(c)).await?;
        s.bounded(c.batch_execute("COMMIT")).await?;
        let (rows, last_key) = outcome(spec, &messages);
        Ok::<_, SqlError>(Execution { rows, last_key, locks, rewrote: capture::rewritten(&before, &after) })
    };
    match attempt.await {
        Ok(exec) => Ok(exec),
        Err(e) => {
            let _ = s.bounded(c.batch_execute("ROLLBACK")).await;
            Err(e)
        }
    }
}

async fn execute_alone(s: &Session<'_>, spec: &StepSpec) -> Result<Execution, SqlError> {
    let c = &s.client;
    let set = settings(spec, "SESSION");
    if !set.is_empty() {
        s.bounded(c.batch_execute(&set)).await?;
    }
    let before = s.bounded(capture::catalog(c)).await?;
    let watcher = s.bounded(capture::LockWatcher::start(s.config, s.pid, before.clone())).await?;
    let result = s.bounded(c.simple_query(&spec.sql.text)).await;
    let locks = watcher.stop().await;
    if !set.is_empty() {
        let _ = s.bounded(c.batch_execute("RESET lock_timeout; RESET statement_timeout")).await;
    }
    let messages = result?;
    let after = s.bounded(capture::catalog(c)).await?;
    let (rows, last_key) = outcome(spec, &messages);
    Ok(Execution { rows, last_key, locks, rewrote: capture::rewritten(&before, &after) })
}
