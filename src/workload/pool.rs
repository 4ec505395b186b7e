//! The application's connection pool, as the outage needs it modelled:
//! `size` connections opened up front, every workload statement prepared
//! on each, and a request that cannot get one within its deadline fails
//! like a 504. When a migration's lock queue stalls the queries, their
//! connections stay checked out, the pool fills, and later requests time
//! out waiting: the pool's queue is where users feel the outage, so the
//! pool also records how full it got and for how long.
//!
//! Written here rather than taken from a pool crate because its waiting is
//! part of what is measured: the deadline counts from when the request was
//! due, statements are prepared on every connection before the first
//! request so no request pays for a prepare, and the in-use gauge is read
//! by the report.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use crate::datagen::Value;

use super::stats::Failure;
use crate::postgres::{Role, SqlError, connect};

/// One pooled connection with its prepared statements.
struct Conn {
    client: Client,
    statements: Vec<Statement>,
    /// The `statement_timeout` last set on it; `None` is the server's.
    statement_timeout: Option<Duration>,
}

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

#[derive(Default)]
struct Gauge {
    in_use: usize,
    max_in_use: usize,
    full_since: Option<Instant>,
    full_total: Duration,
    timeouts: u64,
    replans: u64,
}

/// How full the pool got.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolStats {
    /// Connections in the pool.
    pub size: usize,
    /// The most checked out at once.
    pub max_in_use: usize,
    /// Total time every connection was checked out, in seconds.
    pub full_seconds: f64,
    /// Requests that gave up waiting for a connection.
    pub timeouts: u64,
    /// Statements prepared again because a schema change altered their
    /// result type (`cached plan must not change result type`); the request
    /// was retried once, as drivers such as ActiveRecord and Npgsql do.
    pub replans: u64,
}

/// A pool of connections of the workload role.
pub struct Pool {
    config: tokio_postgres::Config,
    sqls: Vec<String>,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Conn>>,
    size: usize,
    gauge: Mutex<Gauge>,
}

/// Why the pool could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Statement `index` does not prepare.
    Prepare {
        /// Which statement.
        index: usize,
        /// The server's error.
        error: SqlError,
    },
    /// A connection could not be opened.
    Connect(SqlError),
}

async fn open_conn(config: &tokio_postgres::Config, sqls: &[String]) -> Result<Conn, OpenError> {
    let client = connect(config, &Role::Workload).await.map_err(|e| OpenError::Connect(SqlError::from_pg(&e)))?;
    let mut statements = Vec::with_capacity(sqls.len());
    for (index, sql) in sqls.iter().enumerate() {
        let stmt = client.prepare(sql).await.map_err(|e| OpenError::Prepare { index, error: SqlError::from_pg(&e) })?;
        statements.push(stmt);
    }
    Ok(Conn { client, statements, statement_timeout: None })
}

impl Pool {
    /// Opens `size` connections and prepares `sqls` on each. Returns the
    /// statements as prepared on the first (for their parameter types).
    pub async fn open(
        config: &tokio_postgres::Config,
        size: usize,
        sqls: Vec<String>,
    ) -> Result<(Arc<Pool>, Vec<Statement>), OpenError> {
        let first = open_conn(config, &sqls).await?;
        let statements = first.statements.clone();
        let mut conns = vec![first];
        let rest: Vec<Result<Conn, OpenError>> =
            futures_util::stream::iter(1..size).map(|_| open_conn(config, &sqls)).buffer_unordered(8).collect().await;
        for c in rest {
            conns.push(c?);
        }
        let pool = Pool {
            config: config.clone(),
            sqls,
            permits: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(conns),
            size,
            gauge: Mutex::default(),
        };
        Ok((Arc::new(pool), statements))
    }

    /// Checks out a connection, waiting until `deadline` at most.
    pub async fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<Lease, Failure> {
        let permit = match tokio::time::timeout_at(deadline.into(), self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(Failure::Connection),
            Err(_) => {
                self.gauge.lock().expect("not poisoned").timeouts += 1;
                return Err(Failure::PoolTimeout);
            }
        };
        self.checked_out(1);
        let idle = self.idle.lock().expect("not poisoned").pop();
        let conn = match idle {
            Some(c) if !c.client.is_closed() => c,
            // A connection broke earlier: open its replacement on demand.
            _ => match open_conn(&self.config, &self.sqls).await {
                Ok(c) => c,
                Err(_) => {
                    self.checked_out(-1);
                    return Err(Failure::Connection);
                }
            },
        };
        Ok(Lease { pool: self.clone(), conn: Some(conn), busy: false, _permit: permit })
    }

    fn checked_out(&self, delta: isize) {
        let mut g = self.gauge.lock().expect("not poisoned");
        let now = Instant::now();
        g.in_use = g.in_use.saturating_add_signed(delta);
        g.max_in_use = g.max_in_use.max(g.in_use);
        if g.in_use >= self.size {
            g.full_since.get_or_insert(now);
        } else if let Some(since) = g.full_since.take() {
            g.full_total += now - since;
        }
    }

    /// Connections checked out right now.
    pub fn in_use(&self) -> usize {
        self.gauge.lock().expect("not poisoned").in_use
    }

    /// Connections in the pool.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How full the pool got so far.
    pub fn stats(&self) -> PoolStats {
        let g = self.gauge.lock().expect("not poisoned");
        let open_full = g.full_since.map_or(Duration::ZERO, |s| s.elapsed());
        PoolStats {
            size: self.size,
            max_in_use: g.max_in_use,
            full_seconds: (g.full_total + open_full).as_secs_f64(),
            timeouts: g.timeouts,
            replans: g.replans,
        }
    }
}

/// A checked-out connection; goes back to the pool when dropped, unless it
/// broke or was dropped mid-query (its state is then unknown).
pub struct Lease {
    pool: Arc<Pool>,
    conn: Option<Conn>,
    busy: bool,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    /// Runs `plan` with `params`.
    ///
    /// A migration that changes a table's columns invalidates prepared
    /// statements whose result type depends on them (`SELECT *`): Postgres
    /// answers `0A000 cached plan must not change result type`. Like common
    /// drivers, the lease prepares the statement again and retries it once
    /// (outside a transaction; inside one the transaction has failed, so
    /// the request fails and the next one runs on the new statement).
    pub async fn run(&mut self, plan: &Plan, params: &[Value]) -> Result<(), tokio_postgres::Error> {
        self.busy = true;
        let conn = self.conn.as_mut().expect("lease holds a connection");
        if conn.statement_timeout != plan.statement_timeout {
            match plan.statement_timeout {
                Some(t) => {
                    conn.client.batch_execute(&format!("SET statement_timeout = {}", t.as_millis().max(1))).await?
                }
                None => conn.client.batch_execute("RESET statement_timeout").await?,
            }
            conn.statement_timeout = plan.statement_timeout;
        }
        if plan.transaction {
            conn.client.batch_execute("BEGIN").await?;
        }
        let mut result = Ok(());
        let mut failed_at = None;
        for &(index, n) in &plan.statements {
            result = self.execute(index, &params[..n], !plan.transaction).await;
            if result.is_err() {
                failed_at = Some(index);
                break;
            }
        }
        if plan.transaction {
            let conn = self.conn.as_mut().expect("lease holds a connection");
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            let ended = conn.client.batch_execute(end).await;
            if let (Err(e), Some(index), Ok(())) = (&result, failed_at, &ended) {
                if is_replan(e) {
                    self.replan(index).await?;
                }
            }
            result = result.and(ended);
        }
        self.busy = false;
        result
    }

    async fn execute(&mut self, index: usize, params: &[Value], retry: bool) -> Result<(), tokio_postgres::Error> {
        let conn = self.conn.as_mut().expect("lease holds a connection");
        let result = conn.client.execute_raw(&conn.statements[index], params.iter()).await;
        match result {
            Err(e) if retry && is_replan(&e) => {
                self.replan(index).await?;
                let conn = self.conn.as_mut().expect("lease holds a connection");
                conn.client.execute_raw(&conn.statements[index], params.iter()).await.map(|_| ())
            }
            r => r.map(|_| ()),
        }
    }

    async fn replan(&mut self, index: usize) -> Result<(), tokio_postgres::Error> {
        let conn = self.conn.as_mut().expect("lease holds a connection");
        conn.statements[index] = conn.client.prepare(&self.pool.sqls[index]).await?;
        self.pool.gauge.lock().expect("not poisoned").replans += 1;
        Ok(())
    }
}

fn is_replan(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::FEATURE_NOT_SUPPORTED
            && db.message().contains("cached plan must not change result type")
    })
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !self.busy && !conn.client.is_closed() {
                self.pool.idle.lock().expect("not poisoned").push(conn);
            } else if self.busy && !conn.client.is_closed() {
                // Dropped mid-query (a client-side timeout, or the run
                // ending): cancel the query as drivers do, so the server
                // stops working on it, and let the connection go.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let token = conn.client.cancel_token();
                    rt.spawn(async move { token.cancel_query(tokio_postgres::NoTls).await });
                }
            }
        }
        self.pool.checked_out(-1);
    }
}
