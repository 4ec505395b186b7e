//! Every statement of the scenario tried on the server before the data
//! load, so that a typo costs seconds, not a run: the tables exist then,
//! empty, with their indexes and constraints.
//!
//! - Each workload query is prepared, and its parameters' generators
//!   checked against the types the server infers.
//! - Each interfering statement that can be prepared (a SELECT, say) is.
//! - The strategy's steps are tried, in order, in one transaction that is
//!   rolled back (with short lock and statement timeouts), on the empty
//!   tables: their schema changes are run, their queries (a backfill's
//!   UPDATE, a SELECT) only prepared, so that nothing slow runs before its
//!   time. A step that cannot run in a transaction block, or a statement
//!   that is neither (a `DO` block, a `CALL`), ends this dry run: the steps
//!   after it may need what it does. A statement whose error says the SQL
//!   is wrong for this schema (SQLSTATE class 42: a missing table or
//!   column, a type mismatch; 0A: not supported) is bad input; any other
//!   error is only noted, as the data may be what the step needs.
//!
//! Nothing here touches what the harness did not create: on a server the
//! user names, steps are dry-run only when every table they name is one of
//! the scenario's, freshly created; never with `--reuse-existing`.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use crate::postgres::SqlError;
use crate::scenario::sql_parse::{self, StatementKind};
use crate::scenario::{Location, QuerySpec, Scenario, SharedTx, SqlText, StepTx, Strategy, Target};
use crate::workload::{WorkloadError, check_params};

/// A statement the server refuses before the load.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// A workload query does not prepare, or its parameters do not fit.
    #[error(transparent)]
    Query(#[from] Box<WorkloadError>),
    /// An interfering statement does not prepare.
    #[error("{at}: interference `{name}` is not valid on this database: {error}")]
    Interference {
        /// Its name.
        name: String,
        /// Where Postgres pointed, in the scenario file.
        at: Location,
        /// The server's error.
        error: SqlError,
    },
    /// A step's SQL is wrong for this schema.
    #[error(
        "{at}: step {index} of strategy `{strategy}` fails on the empty tables, before any data is loaded: {error}"
    )]
    Step {
        /// The strategy.
        strategy: String,
        /// 1-based step number.
        index: usize,
        /// Where Postgres pointed, in the scenario file.
        at: Location,
        /// The server's error.
        error: SqlError,
    },
    /// The server failed while checking (not the scenario's fault).
    #[error("checking the scenario's statements on the server: {0}")]
    Server(SqlError),
}

impl PreflightError {
    /// 2 for the scenario's fault, 3 for the server's.
    pub fn exit_code(&self) -> i32 {
        match self {
            PreflightError::Server(_) => 3,
            PreflightError::Query(e) => e.exit_code(),
            _ => 2,
        }
    }
}

/// Which tables the steps' dry run may touch.
#[derive(Debug, Clone)]
pub enum DryRun {
    /// Any: the server is the harness's own.
    Anything,
    /// Only these, which the harness created (a server the user named).
    Only(Vec<String>),
    /// None: the scenario's tables existed already and are used as they
    /// are.
    Nothing,
}

/// Checks every statement; returns notes for the report (what was not
/// tried, and why). Queries that run on a replica are left to their pool
/// when `has_replica`.
pub async fn check(
    admin: &Client,
    scenario: &Scenario,
    strategy: Option<&Strategy>,
    dry_run: &DryRun,
    has_replica: bool,
) -> Result<Vec<String>, PreflightError> {
    let mut notes = Vec::new();
    for q in &scenario.workload.queries {
        // A replica's queries are prepared there, when its pool opens.
        if !(has_replica && q.target == Target::Replica) {
            query(admin, q, scenario.seed).await?;
        }
    }
    for i in &scenario.interference {
        interference(admin, &i.name, &i.sql).await?;
    }
    match (strategy, dry_run) {
        (None, _) => {}
        (Some(s), DryRun::Nothing) => notes.push(format!(
            "the steps of `{}` were not tried before the load: they would have touched existing tables",
            s.name
        )),
        (Some(s), DryRun::Anything) => notes.extend(steps(admin, s, None).await?),
        (Some(s), DryRun::Only(tables)) => {
            let mut ours: BTreeSet<String> = tables.iter().cloned().collect();
            ours.extend(scenario.tables.iter().map(|t| t.name.clone()));
            notes.extend(steps(admin, s, Some(&ours)).await?);
        }
    }
    Ok(notes)
}

async fn query(admin: &Client, q: &QuerySpec, seed: u64) -> Result<(), PreflightError> {
    let mut prepared = Vec::new();
    for st in &q.statements {
        match admin.prepare(&st.text).await {
            Ok(p) => prepared.push(p),
            Err(e) if e.as_db_error().is_none() => return Err(PreflightError::Server(SqlError::from_pg(&e))),
            Err(e) => return Err(PreflightError::Query(Box::new(WorkloadError::prepare(q, st, &e)))),
        }
    }
    check_params(q, &prepared.iter().collect::<Vec<_>>(), seed).map_err(PreflightError::Query)
}

async fn interference(admin: &Client, name: &str, sql: &SqlText) -> Result<(), PreflightError> {
    let Ok(parsed) = sql_parse::parse(&sql.text) else { return Ok(()) };
    for (range, preparable) in parsed.ranges().into_iter().zip(parsed.preparable()) {
        if !preparable {
            continue;
        }
        if let Err(e) = admin.prepare(&sql.text[range.clone()]).await {
            let error = SqlError::from_pg(&e);
            if error.sqlstate.is_none() {
                return Err(PreflightError::Server(error));
            }
            // The position is within the piece; the file's is after what
            // comes before it.
            let before = sql.text[..range.start].chars().count() as u32;
            let at = sql.location_of(error.position.map(|p| p + before));
            return Err(PreflightError::Interference { name: name.to_string(), at, error });
        }
    }
    Ok(())
}

/// Whether every table `sql` names is one of `ours`.
fn touches_only(sql: &str, ours: &BTreeSet<String>) -> bool {
    sql_parse::parse(sql)
        .is_ok_and(|p| p.tables().iter().all(|t| ours.contains(t) || ours.contains(t.rsplit('.').next().unwrap_or(t))))
}

/// The dry run of the steps, rolled back; with `ours`, only while each
/// step names none but those tables.
async fn steps(
    admin: &Client,
    strategy: &Strategy,
    ours: Option<&BTreeSet<String>>,
) -> Result<Vec<String>, PreflightError> {
    let server = |e: tokio_postgres::Error| PreflightError::Server(SqlError::from_pg(&e));
    let mut notes = Vec::new();
    admin
        .batch_execute("BEGIN; SET LOCAL lock_timeout = '2s'; SET LOCAL statement_timeout = '10s'")
        .await
        .map_err(server)?;
    let untried = |index: usize, why: &str| {
        format!(
            "steps {index} to {} of `{}` were not tried before the load: {why}",
            strategy.steps.len(),
            strategy.name
        )
    };
    let mut result = Ok(());
    'steps: for (i, step) in strategy.steps.iter().enumerate() {
        let index = i + 1;
        let in_transaction = matches!(step.tx, StepTx::Own | StepTx::Shared(SharedTx { control: None, .. }));
        if !in_transaction {
            notes
                .push(untried(index, &format!("step {index} does not run in a transaction the dry run can roll back")));
            break;
        }
        if ours.is_some_and(|ours| !touches_only(&step.sql.text, ours)) {
            notes.push(untried(index, &format!("step {index} names a table the scenario does not create")));
            break;
        }
        let Ok(parsed) = sql_parse::parse(&step.sql.text) else { break };
        for (range, kind) in parsed.ranges().into_iter().zip(parsed.kinds()) {
            let piece = &step.sql.text[range.clone()];
            if sql_parse::parse(piece).ok().and_then(|p| p.transaction_control()).is_some() {
                notes.push(untried(index, &format!("step {index} opens or ends a transaction")));
                break 'steps;
            }
            let attempt = match kind {
                StatementKind::Query => admin.prepare(piece).await.map(|_| ()),
                StatementKind::Utility => admin.batch_execute(piece).await,
                StatementKind::Code => {
                    let why = format!("step {index} runs code (DO, CALL) whose effect is known only when it runs");
                    notes.push(untried(index, &why));
                    break 'steps;
                }
            };
            let Err(e) = attempt else { continue };
            let error = SqlError::from_pg(&e);
            if error.sqlstate.is_none() {
                return Err(PreflightError::Server(error));
            }
            let class = error.sqlstate.as_deref().map(|c| &c[..2]);
            if matches!(class, Some("42" | "0A")) {
                let before = step.sql.text[..range.start].chars().count() as u32;
                let at = step.sql.location_of(error.position.map(|p| p + before));
                result = Err(PreflightError::Step { strategy: strategy.name.clone(), index, at, error });
            } else {
                notes.push(format!(
                    "step {index} of `{}` failed on the empty tables ({error}); it is rehearsed on the data anyway",
                    strategy.name
                ));
            }
            break 'steps;
        }
    }
    admin.batch_execute("ROLLBACK").await.map_err(server)?;
    result.map(|()| notes)
}
