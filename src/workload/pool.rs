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
//!
//! A request writes one cache line that other cores write too: the count
//! of connections checked out, which is also the permit to check one out,
//! and beside it the running sum of the time the pool was full.
//! Free connections wait on the shard they were opened on and go back
//! there, so a shard's requests find them without touching another core's
//! lines. Only when every connection is out do requests queue, first come
//! first served, each woken with the permit a returning request hands it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;
use tokio_postgres::Statement;
use tokio_postgres::types::Type;

use super::lease::Lease;
use super::shards::{Padded, PerShard, Shards};
use super::stats::Failure;
use super::wire::{WireConn, WireError};
use crate::datagen::PgKind;
use crate::ledger::Capture;
use crate::postgres::{Role, SqlError, connect};

/// One pooled connection; statement i is prepared on it as `s{i}`.
pub(super) struct Conn {
    pub(super) wire: WireConn,
    /// The shard it was opened on, whose reactor serves its socket.
    pub(super) home: usize,
    /// The `statement_timeout` last set on it; `None` is the server's.
    pub(super) statement_timeout: Option<Duration>,
}

/// What a request writes: the count of connections checked out, which is
/// also the permit to check one out, and the time the pool was full.
struct Counts {
    /// A request may take a connection while this is below `size`.
    in_use: AtomicUsize,
    /// Nanoseconds since `epoch`: minus each time the pool filled, plus
    /// each time it drained. The count fills and drains the pool in turn
    /// (it reaches `size` only from below and leaves it only downwards), so
    /// this is the time it was full, less the instant it last filled while
    /// it is full still.
    full_ns: AtomicI64,
}

/// What rarely changes.
#[derive(Default)]
struct Gauge {
    timeouts: u64,
    replans: u64,
}

/// How full the pool got.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
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
    /// Per second, connections checked out and requests queued (sampled
    /// every 100 ms, the most of each second).
    pub series: Vec<super::pool_series::PoolPoint>,
}

/// What the pool's connections prepare, and how to open another.
#[derive(Clone)]
pub(super) struct Statements {
    config: tokio_postgres::Config,
    pub(super) sqls: Vec<String>,
    /// Statement names (`s0`, `s1`, ...), parameter types, and the binary
    /// format each parameter is written in.
    pub(super) names: Vec<String>,
    pub(super) types: Vec<Vec<Type>>,
    pub(super) kinds: Vec<Vec<PgKind>>,
    /// The ledger's columns each statement's rows end with, if tracked.
    pub(super) captures: Vec<Option<Capture>>,
    /// Connections go through a pooler that hands a client a different
    /// server connection per transaction (PgBouncer before 1.21 keeps no
    /// prepared statement across them): each request parses its statement
    /// as the unnamed one, and a `statement_timeout` is set per transaction.
    pub(super) unnamed: bool,
}

/// A pool of connections of the workload role.
pub struct Pool {
    pub(super) statements: Statements,
    size: usize,
    counts: Padded<Counts>,
    /// Time zero of `full_ns`.
    epoch: Instant,
    /// Requests queued for a permit, and their queue.
    waiting: AtomicUsize,
    queue: Mutex<VecDeque<oneshot::Sender<()>>>,
    /// Free connections, by the shard they were opened on; boxed, as every
    /// request moves one out and back.
    #[expect(clippy::vec_box, reason = "a lease moves a pointer in and out, not the connection's 200 bytes")]
    idle: PerShard<Mutex<Vec<Box<Conn>>>>,
    /// Connections dropped (broken, or abandoned mid-query) that a request
    /// holding a permit opens again.
    missing: AtomicUsize,
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

impl Statements {
    /// Opens a workload connection and prepares every statement on it.
    async fn open_conn(&self) -> Result<Conn, WireError> {
        let mut wire = WireConn::connect(&self.config, &Role::Workload.application_name()).await?;
        if !self.unnamed {
            for ((sql, name), types) in self.sqls.iter().zip(&self.names).zip(&self.types) {
                wire.prepare(name, sql, types, false).await?;
            }
        }
        Ok(Conn { wire, home: Shards::current().unwrap_or(0), statement_timeout: None })
    }
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
        let captures = vec![None; sqls.len()];
        Self::open_tracked(config, None, size, sqls, captures, shards).await
    }

    /// [`Pool::open`], with the ledger's `captures` per statement, its
    /// connections opened `via` a pooler when one is given (statements are
    /// still checked on the server itself).
    pub async fn open_tracked(
        config: &tokio_postgres::Config,
        via: Option<&tokio_postgres::Config>,
        size: usize,
        sqls: Vec<String>,
        captures: Vec<Option<Capture>>,
        shards: &Shards,
    ) -> Result<(Arc<Pool>, Vec<Statement>), OpenError> {
        let client = connect(config, &Role::Workload).await.map_err(|e| OpenError::Connect(SqlError::from_pg(&e)))?;
        let mut prepared = Vec::with_capacity(sqls.len());
        for (index, sql) in sqls.iter().enumerate() {
            let stmt =
                client.prepare(sql).await.map_err(|e| OpenError::Prepare { index, error: SqlError::from_pg(&e) })?;
            prepared.push(stmt);
        }
        drop(client);
        let types: Vec<Vec<Type>> = prepared.iter().map(|s| s.params().to_vec()).collect();
        // A type the encoder cannot write is refused before any request,
        // with the parameter named (see `check_params`); Text stands in.
        let kinds = types.iter().map(|t| t.iter().map(|ty| PgKind::of(ty).unwrap_or(PgKind::Text)).collect()).collect();
        let names = (0..sqls.len()).map(|i| format!("s{i}")).collect();
        let statements = Arc::new(Statements {
            config: via.unwrap_or(config).clone(),
            sqls,
            names,
            types,
            kinds,
            captures,
            unnamed: via.is_some(),
        });
        // Each shard opens its share one after another, as `pgbench -j`
        // threads do: each new backend starts in step with the thread
        // that will drive it.
        let count = shards.count();
        let opening: Vec<_> = (0..count)
            .map(|shard| {
                let statements = statements.clone();
                let share = (shard..size).step_by(count).count();
                shards.handle(shard).spawn(async move {
                    let mut conns = Vec::with_capacity(share);
                    for _ in 0..share {
                        conns.push(Box::new(statements.open_conn().await?));
                    }
                    Ok::<_, WireError>(conns)
                })
            })
            .collect();
        let idle = PerShard::new(count, |_| Mutex::new(Vec::new()));
        for (shard, opened) in opening.into_iter().enumerate() {
            let opened = opened.await.unwrap_or_else(|e| Err(WireError::Protocol(e.to_string())));
            *idle.get(shard).lock().expect("not poisoned") = opened.map_err(|e| OpenError::Connect(wire_error(&e)))?;
        }
        let statements = Arc::unwrap_or_clone(statements);
        let pool = Pool {
            statements,
            size,
            counts: Padded(Counts { in_use: AtomicUsize::new(0), full_ns: AtomicI64::new(0) }),
            epoch: Instant::now(),
            waiting: AtomicUsize::new(0),
            queue: Mutex::default(),
            idle,
            missing: AtomicUsize::new(0),
            max_in_use: AtomicUsize::new(0),
            gauge: Mutex::default(),
        };
        Ok((Arc::new(pool), prepared))
    }

    /// Checks out a connection, waiting until `deadline` at most.
    pub async fn acquire(&self, deadline: Instant) -> Result<Lease<'_>, Failure> {
        // Behind requests already queued, a request queues too. The slow
        // paths are boxed: their futures are large, and every request's
        // future would otherwise carry (and copy) their size.
        if self.waiting.load(Ordering::SeqCst) > 0 || !self.try_permit() {
            Box::pin(self.queue_for_permit(deadline)).await?;
        }
        let mut lease = Lease::new(self);
        lease.conn = Some(self.take_conn().await?);
        Ok(lease)
    }

    /// A free connection, this shard's first; the caller holds a permit,
    /// so one is free or one was dropped and may be opened again.
    async fn take_conn(&self) -> Result<Box<Conn>, Failure> {
        let here = self.idle.here();
        loop {
            for k in 0..self.idle.count() {
                if let Some(c) = self.idle.get(here + k).lock().expect("not poisoned").pop() {
                    return Ok(c);
                }
            }
            let replace = self.missing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| m.checked_sub(1)).is_ok();
            if replace {
                let mut reopening = Reopening { missing: &self.missing, opened: false };
                let conn = Box::pin(self.statements.open_conn()).await;
                reopening.opened = conn.is_ok();
                return conn.map(Box::new).map_err(|_| Failure::Connection);
            }
            // A connection is on its way back to a list already searched.
            tokio::task::yield_now().await;
        }
    }

    /// Puts back a connection checked out with a lease.
    pub(super) fn put_back(&self, conn: Box<Conn>) {
        self.idle.get(conn.home).lock().expect("not poisoned").push(conn);
    }

    /// Counts a connection the pool lost.
    pub(super) fn lost(&self) {
        self.missing.fetch_add(1, Ordering::SeqCst);
    }

    /// Takes a permit if one is free.
    fn try_permit(&self) -> bool {
        let counter = &self.counts.0.in_use;
        let mut n = counter.load(Ordering::Relaxed);
        loop {
            if n >= self.size {
                return false;
            }
            match counter.compare_exchange_weak(n, n + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        if n + 1 > self.max_in_use.load(Ordering::Relaxed) {
            self.max_in_use.fetch_max(n + 1, Ordering::Relaxed);
        }
        if n + 1 == self.size {
            self.counts.0.full_ns.fetch_sub(self.nanos(), Ordering::Relaxed);
        }
        true
    }

    /// Returns a permit, handing it to the first queued request if any.
    pub(super) fn release_permit(&self) {
        self.put_permit();
        // After the count went down: a request that queued before this
        // load is handed a permit; one that queues after it sees the count.
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.hand_over();
        }
    }

    fn put_permit(&self) {
        if self.counts.0.in_use.fetch_sub(1, Ordering::SeqCst) == self.size {
            self.counts.0.full_ns.fetch_add(self.nanos(), Ordering::Relaxed);
        }
    }

    /// Now, in nanoseconds since `epoch`.
    fn nanos(&self) -> i64 {
        self.epoch.elapsed().as_nanos() as i64
    }

    /// Queues for a permit until `deadline`.
    async fn queue_for_permit(&self, deadline: Instant) -> Result<(), Failure> {
        let mut place = {
            let mut queue = self.queue.lock().expect("not poisoned");
            self.waiting.fetch_add(1, Ordering::SeqCst);
            // A permit returned before the count went up was handed to no
            // one: take it, unless others queue ahead (theirs to take).
            if queue.is_empty() && self.try_permit() {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                return Ok(());
            }
            let (tx, rx) = oneshot::channel();
            queue.push_back(tx);
            Queued { pool: self, rx, served: false }
        };
        match tokio::time::timeout_at(deadline.into(), &mut place.rx).await {
            Ok(Ok(())) => {
                place.served = true;
                Ok(())
            }
            Ok(Err(_)) => Err(Failure::Connection),
            Err(_) => {
                drop(place);
                self.gauge.lock().expect("not poisoned").timeouts += 1;
                Err(Failure::PoolTimeout)
            }
        }
    }

    /// Hands free permits to queued requests, first come first served.
    fn hand_over(&self) {
        let mut queue = self.queue.lock().expect("not poisoned");
        while let Some(front) = queue.front() {
            if !front.is_closed() && !self.try_permit() {
                break;
            }
            let tx = queue.pop_front().expect("a front");
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            // A closed one gave up waiting; so did one whose send fails,
            // just now, and its permit goes back.
            if !tx.is_closed() && tx.send(()).is_err() {
                self.put_permit();
            }
        }
    }

    /// Counts a prepared statement prepared again.
    pub(super) fn replanned(&self) {
        self.gauge.lock().expect("not poisoned").replans += 1;
    }

    /// Connections checked out right now.
    pub fn in_use(&self) -> usize {
        self.counts.0.in_use.load(Ordering::Relaxed)
    }

    /// Requests queued for a connection right now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Connections in the pool.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How full the pool got so far; exact once the load has stopped.
    pub fn stats(&self) -> PoolStats {
        let g = self.gauge.lock().expect("not poisoned");
        let mut full = self.counts.0.full_ns.load(Ordering::Relaxed);
        if self.in_use() >= self.size {
            full += self.nanos();
        }
        PoolStats {
            size: self.size,
            max_in_use: self.max_in_use.load(Ordering::Relaxed),
            full_seconds: full.clamp(0, self.nanos()) as f64 / 1e9,
            timeouts: g.timeouts,
            replans: g.replans,
            series: Vec::new(),
        }
    }
}

/// A request's place in the queue for a permit. Dropped before it is
/// served (its deadline passed, or the request itself was dropped: a
/// client-side timeout, the run aborting), it leaves the queue, and a
/// permit handed to it just then goes back.
struct Queued<'a> {
    pool: &'a Pool,
    rx: oneshot::Receiver<()>,
    served: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.served {
            return;
        }
        {
            let mut queue = self.pool.queue.lock().expect("not poisoned");
            self.rx.close();
            let before = queue.len();
            queue.retain(|tx| !tx.is_closed());
            self.pool.waiting.fetch_sub(before - queue.len(), Ordering::SeqCst);
        }
        if self.rx.try_recv().is_ok() {
            self.pool.release_permit();
        }
    }
}

/// A lost connection being opened again: counted missing again unless it
/// opened, so a request dropped meanwhile leaves it to the next.
struct Reopening<'a> {
    missing: &'a AtomicUsize,
    opened: bool,
}

impl Drop for Reopening<'_> {
    fn drop(&mut self) {
        if !self.opened {
            self.missing.fetch_add(1, Ordering::SeqCst);
        }
    }
}
