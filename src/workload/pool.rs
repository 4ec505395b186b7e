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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::Statement;
use tokio_postgres::types::Type;

use crate::datagen::Value;

use super::shards::Shards;
use super::stats::Failure;
use super::wire::{WireConn, WireError};
use crate::postgres::{Role, SqlError, connect};

/// One pooled connection; statement i is prepared on it as `s{i}`.
struct Conn {
    wire: WireConn,
    /// The shard it was opened on, whose reactor serves its socket.
    home: usize,
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

/// The gauge's rarely changed part; the counts are atomics of the pool,
/// so a request touches this lock only when the pool fills or drains.
#[derive(Default)]
struct Gauge {
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
    /// Statement names (`s0`, `s1`, ...) and parameter types.
    names: Vec<String>,
    types: Vec<Vec<Type>>,
    permits: Semaphore,
    /// Free connections, by the shard they were opened on.
    idle: Vec<Mutex<Vec<Conn>>>,
    size: usize,
    in_use: AtomicUsize,
    max_in_use: AtomicUsize,
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

fn wire_error(e: &WireError) -> SqlError {
    match e {
        WireError::Db { code, message, position } => SqlError {
            sqlstate: Some(code.clone()),
            message: message.clone(),
            position: *position,
            detail: None,
            hint: None,
        },
        other => SqlError { sqlstate: None, message: other.to_string(), position: None, detail: None, hint: None },
    }
}

/// Opens a workload connection and prepares every statement on it.
async fn open_conn(
    config: &tokio_postgres::Config,
    sqls: &[String],
    names: &[String],
    types: &[Vec<Type>],
) -> Result<Conn, WireError> {
    let mut wire = WireConn::connect(config, &Role::Workload.application_name()).await?;
    for ((sql, name), types) in sqls.iter().zip(names).zip(types) {
        wire.prepare(name, sql, types, false).await?;
    }
    Ok(Conn { wire, home: Shards::current().unwrap_or(0), statement_timeout: None })
}

impl Pool {
    /// Prepares `sqls` once through tokio-postgres (which reports errors
    /// with their position and finds the parameter types), then opens
    /// `size` connections, spread over `shards`, and prepares them on
    /// each. Returns the statements as first prepared.
    pub async fn open(
        config: &tokio_postgres::Config,
        size: usize,
        sqls: Vec<String>,
        shards: &Shards,
    ) -> Result<(Arc<Pool>, Vec<Statement>), OpenError> {
        let client = connect(config, &Role::Workload).await.map_err(|e| OpenError::Connect(SqlError::from_pg(&e)))?;
        let mut statements = Vec::with_capacity(sqls.len());
        for (index, sql) in sqls.iter().enumerate() {
            let stmt =
                client.prepare(sql).await.map_err(|e| OpenError::Prepare { index, error: SqlError::from_pg(&e) })?;
            statements.push(stmt);
        }
        drop(client);
        let names: Vec<String> = (0..sqls.len()).map(|i| format!("s{i}")).collect();
        let types: Vec<Vec<Type>> = statements.iter().map(|s| s.params().to_vec()).collect();
        let opened: Vec<Result<Conn, WireError>> = futures_util::stream::iter(0..size)
            .map(|i| {
                let (config, sqls, names, types) = (config.clone(), sqls.clone(), names.clone(), types.clone());
                let on = shards.handle(i).spawn(async move { open_conn(&config, &sqls, &names, &types).await });
                async move { on.await.unwrap_or_else(|e| Err(WireError::Protocol(e.to_string()))) }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let idle: Vec<Mutex<Vec<Conn>>> = (0..shards.count()).map(|_| Mutex::default()).collect();
        for c in opened {
            let c = c.map_err(|e| OpenError::Connect(wire_error(&e)))?;
            idle[c.home % idle.len()].lock().expect("not poisoned").push(c);
        }
        let pool = Pool {
            config: config.clone(),
            sqls,
            names,
            types,
            permits: Semaphore::new(size),
            idle,
            size,
            in_use: AtomicUsize::new(0),
            max_in_use: AtomicUsize::new(0),
            gauge: Mutex::default(),
        };
        Ok((Arc::new(pool), statements))
    }

    /// Checks out a connection, waiting until `deadline` at most.
    pub async fn acquire(&self, deadline: Instant) -> Result<Lease<'_>, Failure> {
        let permit = match tokio::time::timeout_at(deadline.into(), self.permits.acquire()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(Failure::Connection),
            Err(_) => {
                self.gauge.lock().expect("not poisoned").timeouts += 1;
                return Err(Failure::PoolTimeout);
            }
        };
        self.checked_out(1);
        // This shard's own connection when one is free, else another's.
        let here = Shards::current().unwrap_or(0);
        let n = self.idle.len();
        let idle = (0..n).find_map(|k| self.idle[(here + k) % n].lock().expect("not poisoned").pop());
        let conn = match idle {
            Some(c) if !c.wire.is_broken() => c,
            // A connection broke earlier: open its replacement on demand.
            _ => match open_conn(&self.config, &self.sqls, &self.names, &self.types).await {
                Ok(c) => c,
                Err(_) => {
                    self.checked_out(-1);
                    return Err(Failure::Connection);
                }
            },
        };
        Ok(Lease { pool: self, conn: Some(conn), busy: false, _permit: permit })
    }

    fn checked_out(&self, delta: isize) {
        let crossed = if delta > 0 {
            let now_in = self.in_use.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_use.fetch_max(now_in, Ordering::Relaxed);
            now_in >= self.size
        } else {
            self.in_use.fetch_sub(1, Ordering::SeqCst) >= self.size
        };
        if crossed {
            // Judged on the count as it is under the lock, so two requests
            // crossing at once leave the state of the later one.
            let mut g = self.gauge.lock().expect("not poisoned");
            let now = Instant::now();
            if self.in_use.load(Ordering::SeqCst) >= self.size {
                g.full_since.get_or_insert(now);
            } else if let Some(since) = g.full_since.take() {
                g.full_total += now - since;
            }
        }
    }

    /// Connections checked out right now.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
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
            max_in_use: self.max_in_use.load(Ordering::Relaxed),
            full_seconds: (g.full_total + open_full).as_secs_f64(),
            timeouts: g.timeouts,
            replans: g.replans,
        }
    }
}

/// A checked-out connection; goes back to the pool when dropped, unless it
/// broke or was dropped mid-query (its state is then unknown).
pub struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    busy: bool,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
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
        let conn = self.conn.as_mut().expect("lease holds a connection");
        if conn.statement_timeout != plan.statement_timeout {
            match plan.statement_timeout {
                Some(t) => conn.wire.simple(&format!("SET statement_timeout = {}", t.as_millis().max(1))).await?,
                None => conn.wire.simple("RESET statement_timeout").await?,
            }
            conn.statement_timeout = plan.statement_timeout;
        }
        if plan.transaction {
            conn.wire.simple("BEGIN").await?;
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
            let ended = conn.wire.simple(end).await;
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

    async fn execute(&mut self, index: usize, params: &[Value], retry: bool) -> Result<(), WireError> {
        let pool = self.pool;
        let conn = self.conn.as_mut().expect("lease holds a connection");
        let (name, types) = (&pool.names[index], &pool.types[index][..params.len()]);
        match conn.wire.execute(name, params, types).await {
            Err(e) if retry && is_replan(&e) => {
                self.replan(index).await?;
                let conn = self.conn.as_mut().expect("lease holds a connection");
                conn.wire.execute(name, params, types).await
            }
            r => r,
        }
    }

    async fn replan(&mut self, index: usize) -> Result<(), WireError> {
        let pool = self.pool;
        let conn = self.conn.as_mut().expect("lease holds a connection");
        conn.wire.prepare(&pool.names[index], &pool.sqls[index], &pool.types[index], true).await?;
        pool.gauge.lock().expect("not poisoned").replans += 1;
        Ok(())
    }
}

fn is_replan(e: &WireError) -> bool {
    matches!(e, WireError::Db { code, message, .. }
        if code == "0A000" && message.contains("cached plan must not change result type"))
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !self.busy && !conn.wire.is_broken() {
                let home = conn.home % self.pool.idle.len();
                self.pool.idle[home].lock().expect("not poisoned").push(conn);
            } else if self.busy && !conn.wire.is_broken() {
                // Dropped mid-query (a client-side timeout, or the run
                // ending): cancel the query as drivers do, so the server
                // stops working on it, and let the connection go.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let key = conn.wire.cancel_key();
                    rt.spawn(async move { key.cancel().await });
                }
            }
        }
        self.pool.checked_out(-1);
    }
}
