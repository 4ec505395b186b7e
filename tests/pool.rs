//! The workload's connection pool on a real server: a full pool queues
//! requests first come first served, each until its deadline; the gauge
//! says how full it got and for how long; a connection abandoned
//! mid-query is cancelled and replaced; a request dropped while it waits
//! (a client-side timeout) takes nothing of the pool with it.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use rehearse::datagen::Value;
use rehearse::postgres::{LocalCluster, Server};
use rehearse::workload::{Failure, Plan, Pool, Shards};
use tokio::sync::{mpsc, oneshot};

use crate::common::heavy;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// `SELECT pg_sleep($1)`, prepared as statement 0.
fn sleep_plan() -> Plan {
    Plan { statements: vec![(0, 1)], transaction: false, statement_timeout: None }
}

/// A throwaway server, the load's two shards, and a pool of `size` on
/// them with `SELECT pg_sleep($1)` prepared as statement 0.
async fn sleep_pool(size: usize) -> (LocalCluster, Shards, Arc<Pool>) {
    let cluster = LocalCluster::start(&[]).await.unwrap();
    let shards = Shards::start(2).unwrap();
    let (pool, _) = Pool::open(cluster.config(), size, vec!["SELECT pg_sleep($1)".into()], &shards).await.unwrap();
    (cluster, shards, pool)
}

/// Waits until `cond` holds (ten seconds at most).
async fn until(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "the pool never got there");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Holds a connection of `pool` until told to let go; says when it has one.
fn hold(pool: &Arc<Pool>, got: mpsc::UnboundedSender<&'static str>, name: &'static str) -> oneshot::Sender<()> {
    let (tx, rx) = oneshot::channel::<()>();
    let pool = pool.clone();
    tokio::spawn(async move {
        let lease = pool.acquire(Instant::now() + Duration::from_secs(30)).await;
        got.send(name).unwrap();
        let _ = rx.await;
        drop(lease);
    });
    tx
}

#[test]
fn a_full_pool_serves_its_queue_in_order_and_times_out_at_each_deadline() {
    let _turn = heavy();
    runtime().block_on(async {
        let (_cluster, _shards, pool) = sleep_pool(2).await;
        let (got_tx, mut got) = mpsc::unbounded_channel();
        let release_a = hold(&pool, got_tx.clone(), "a");
        let release_b = hold(&pool, got_tx.clone(), "b");
        let mut first = vec![got.recv().await.unwrap(), got.recv().await.unwrap()];
        first.sort();
        assert_eq!(first, ["a", "b"]);
        let full_from = Instant::now();
        assert_eq!(pool.in_use(), 2);

        // Two queue with a long deadline, in this order (each seen in the
        // queue before the next comes), and one with a short deadline
        // behind them.
        let release_c = hold(&pool, got_tx.clone(), "c");
        until(|| pool.queued() == 1).await;
        let release_d = hold(&pool, got_tx.clone(), "d");
        until(|| pool.queued() == 2).await;
        let asked = Instant::now();
        let short = pool.acquire(asked + Duration::from_millis(200)).await;
        let waited = asked.elapsed();
        assert!(matches!(short, Err(Failure::PoolTimeout)), "a full pool gave a connection");
        // Never before its deadline; after it, as soon as its timer fires
        // (two seconds cover a starved runner).
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(2), "{waited:?}");
        assert!(got.try_recv().is_err(), "a queued request got a connection from a full pool");

        // Each connection given back goes to the longest waiting.
        release_a.send(()).unwrap();
        assert_eq!(got.recv().await.unwrap(), "c");
        release_b.send(()).unwrap();
        assert_eq!(got.recv().await.unwrap(), "d");
        assert_eq!(pool.in_use(), 2);
        let held_for = full_from.elapsed();
        release_c.send(()).unwrap();
        release_d.send(()).unwrap();
        until(|| pool.in_use() == 0).await;
        let full_for = full_from.elapsed();

        let stats = pool.stats();
        assert_eq!(stats.size, 2);
        assert_eq!(stats.max_in_use, 2);
        assert_eq!(stats.timeouts, 1);
        // Full from the second hold until c and d let go, without a gap:
        // at least from when the test saw it full until it let go, and
        // hardly more than until it saw it empty (the second hold came
        // just before the test heard of it).
        let full = Duration::from_secs_f64(stats.full_seconds);
        assert!(
            full >= held_for && full <= full_for + Duration::from_millis(500),
            "{full:?} of {held_for:?}..{full_for:?}"
        );

        // Free again: a request takes a connection at once and runs.
        let mut lease = pool.acquire(Instant::now() + Duration::from_millis(100)).await.unwrap();
        lease.run(&sleep_plan(), &[Value::Float(0.0)]).await.unwrap();
    });
}

#[test]
fn a_connection_abandoned_mid_query_is_cancelled_and_replaced() {
    let _turn = heavy();
    runtime().block_on(async {
        let (cluster, _shards, pool) = sleep_pool(1).await;
        let admin = rehearse::postgres::connect(cluster.config(), &rehearse::postgres::Role::Harness).await.unwrap();
        let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep($1)' AND state = 'active'";

        let (plan, params) = (sleep_plan(), [Value::Float(30.0)]);
        let mut lease = pool.acquire(Instant::now() + Duration::from_secs(1)).await.unwrap();
        let run = lease.run(&plan, &params);
        assert!(tokio::time::timeout(Duration::from_millis(300), run).await.is_err());
        drop(lease);
        // The server stops the query the client gave up on.
        let mut active = 1;
        for _ in 0..100 {
            active = admin.query_one(sleeping, &[]).await.unwrap().get::<_, i64>(0);
            if active == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(active, 0, "the abandoned query still runs");

        // The pool's one connection is gone; the next request opens another.
        assert_eq!(pool.in_use(), 0);
        let started = Instant::now();
        let mut lease = pool.acquire(Instant::now() + Duration::from_secs(5)).await.unwrap();
        lease.run(&sleep_plan(), &[Value::Float(0.0)]).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(lease);
        assert_eq!(pool.stats().timeouts, 0);
    });
}

/// Polls `f` once.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *f).poll(cx))).await
}

#[test]
fn a_request_dropped_while_it_waits_takes_nothing_of_the_pool() {
    let _turn = heavy();
    runtime().block_on(async {
        let (_cluster, _shards, pool) = sleep_pool(1).await;
        let far = || Instant::now() + Duration::from_secs(30);
        let soon =
            || tokio::time::timeout(Duration::from_secs(5), pool.acquire(Instant::now() + Duration::from_secs(1)));

        // Queued behind the one connection, handed it as it comes back,
        // and dropped before it ran again.
        let held = pool.acquire(far()).await.unwrap();
        let mut queued = Box::pin(pool.acquire(far()));
        assert!(poll_once(&mut queued).await.is_pending());
        drop(held);
        drop(queued);
        let lease = soon().await.expect("the pool lost its connection to a dropped request").unwrap();
        drop(lease);
        assert_eq!(pool.in_use(), 0);

        // A connection abandoned mid-query is gone; the request opening its
        // replacement is dropped before the server answers; the next one
        // opens it.
        let (plan, params) = (sleep_plan(), [Value::Float(30.0)]);
        let mut lease = pool.acquire(far()).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(100), lease.run(&plan, &params)).await.is_err());
        drop(lease);
        let mut reopening = Box::pin(pool.acquire(far()));
        assert!(poll_once(&mut reopening).await.is_pending());
        drop(reopening);
        let mut lease = soon().await.expect("nobody opens the lost connection again").unwrap();
        lease.run(&sleep_plan(), &[Value::Float(0.0)]).await.unwrap();
        drop(lease);
        assert_eq!((pool.in_use(), pool.stats().timeouts), (0, 0));
    });
}
