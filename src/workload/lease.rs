//! A connection checked out of the [`Pool`], and what a request runs on it.

use std::time::Duration;

use super::pool::{Conn, Pool};
use super::wire::{Stmt, WireError};
use crate::datagen::Value;
use crate::ledger::spill::Captured;

/// What one request runs on a connection.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Prepared statements by index into the pool's list, each with how
    /// many of the request's parameters it takes (the first n).
    pub statements: Vec<(usize, usize)>,
    /// Whether they run between BEGIN and COMMIT.
    pub transaction: bool,
    /// The `statement_timeout` they run under; `None` for the server's.
    pub statement_timeout: Option<Duration>,
}

/// A permit of the pool and, once it has one, a connection. Dropping it
/// gives both back, unless the connection broke or was dropped mid-query
/// (its state is then unknown, and the pool opens another in its place).
pub struct Lease<'a> {
    pool: &'a Pool,
    pub(super) conn: Option<Box<Conn>>,
    busy: bool,
    /// The ledger's columns of the rows the request wrote, handed to the
    /// ledger when it is acknowledged.
    pub(super) captured: Captured,
}

impl<'a> Lease<'a> {
    /// A lease holding a permit just taken, and no connection yet.
    pub(super) fn new(pool: &'a Pool) -> Self {
        Self { pool, conn: None, busy: false, captured: Captured::default() }
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("a lease handed out holds a connection")
    }

    /// Runs `plan` with `params`.
    ///
    /// A migration that changes a table's columns invalidates prepared
    /// statements whose result type depends on them (`SELECT *`): Postgres
    /// answers `0A000 cached plan must not change result type`. Like common
    /// drivers, the lease prepares the statement again and retries it once
    /// (outside a transaction; inside one the transaction has failed, so
    /// the request fails and the next one runs on the new statement).
    pub async fn run(&mut self, plan: &Plan, params: &[Value]) -> Result<(), WireError> {
        self.busy = true;
        self.captured.clear();
        let result = match plan {
            Plan { statements, transaction: false, statement_timeout: None }
                if statements.len() == 1 && self.conn().statement_timeout.is_none() =>
            {
                let (index, n) = statements[0];
                self.execute(index, &params[..n], true).await
            }
            // Boxed: the common case above keeps every request's future
            // small.
            plan => Box::pin(self.run_general(plan, params)).await,
        };
        self.busy = false;
        result
    }

    /// A plan with a `statement_timeout` to set or a transaction to run.
    async fn run_general(&mut self, plan: &Plan, params: &[Value]) -> Result<(), WireError> {
        let pooled = self.pool.statements.unnamed;
        let conn = self.conn();
        // Through a pooler, a session's setting would stay on a server
        // connection other clients get next: it is set for the
        // transaction only.
        let transaction = plan.transaction || (pooled && plan.statement_timeout.is_some());
        if !pooled && conn.statement_timeout != plan.statement_timeout {
            match plan.statement_timeout {
                Some(t) => conn.wire.simple(&format!("SET statement_timeout = {}", t.as_millis().max(1))).await?,
                None => conn.wire.simple("RESET statement_timeout").await?,
            }
            conn.statement_timeout = plan.statement_timeout;
        }
        if transaction {
            match plan.statement_timeout.filter(|_| pooled) {
                Some(t) => {
                    let sql = format!("BEGIN; SET LOCAL statement_timeout = {}", t.as_millis().max(1));
                    conn.wire.simple(&sql).await?;
                }
                None => conn.wire.simple("BEGIN").await?,
            }
        }
        let mut result = Ok(());
        let mut failed_at = None;
        for &(index, n) in &plan.statements {
            result = self.execute(index, &params[..n], !transaction).await;
            if result.is_err() {
                failed_at = Some(index);
                break;
            }
        }
        if transaction {
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            let ended = self.conn().wire.simple(end).await;
            if let (Err(e), Some(index), Ok(())) = (&result, failed_at, &ended) {
                if is_replan(e) {
                    self.replan(index).await?;
                }
            }
            result = result.and(ended);
        }
        result
    }

    async fn execute(&mut self, index: usize, params: &[Value], retry: bool) -> Result<(), WireError> {
        let pool = self.pool;
        let s = &pool.statements;
        let (name, kinds, capture) = (&s.names[index], &s.kinds[index][..params.len()], s.captures[index]);
        let stmt =
            if s.unnamed { Stmt::Unnamed { sql: &s.sqls[index], types: &s.types[index] } } else { Stmt::Named(name) };
        let conn = self.conn.as_mut().expect("a lease handed out holds a connection");
        let mark = self.captured.buf.len();
        let into = capture.map(|c| (c, &mut self.captured));
        match conn.wire.execute(stmt, params, kinds, into).await {
            Err(e) if retry && !s.unnamed && is_replan(&e) => {
                // A statement that failed wrote nothing.
                self.captured.buf.truncate(mark);
                Box::pin(self.replan(index)).await?;
                let conn = self.conn.as_mut().expect("a lease handed out holds a connection");
                conn.wire.execute(Stmt::Named(name), params, kinds, capture.map(|c| (c, &mut self.captured))).await
            }
            r => r,
        }
    }

    async fn replan(&mut self, index: usize) -> Result<(), WireError> {
        let pool = self.pool;
        let s = &pool.statements;
        self.conn().wire.prepare(&s.names[index], &s.sqls[index], &s.types[index], true).await?;
        self.pool.replanned();
        Ok(())
    }
}

fn is_replan(e: &WireError) -> bool {
    matches!(e, WireError::Db { code, message, .. }
        if code == "0A000" && message.contains("cached plan must not change result type"))
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        match self.conn.take() {
            Some(conn) if !self.busy && !conn.wire.is_broken() => self.pool.put_back(conn),
            Some(conn) => {
                if self.busy && !conn.wire.is_broken() {
                    // Dropped mid-query (a client-side timeout, or the run
                    // ending): cancel the query as drivers do, so the
                    // server stops working on it.
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        let key = conn.wire.cancel_key();
                        rt.spawn(async move { key.cancel().await });
                    }
                }
                self.pool.lost();
            }
            None => {}
        }
        // After the connection is back, so a permit always finds one.
        self.pool.release_permit();
    }
}
