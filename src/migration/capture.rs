//! What a step did to the catalog, read from its own session: the relation
//! locks it holds (from `pg_locks`, before its transaction commits) and the
//! relations it rewrote (their `relfilenode` changed). For a step that runs
//! outside a transaction, a side session polls the step's backend instead.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::postgres::{Role, connect};

/// A lock a step took.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LockTaken {
    /// The relation.
    pub relation: String,
    /// The mode, as `pg_locks` names it (e.g. `AccessExclusiveLock`).
    pub mode: String,
}

/// User relations (tables, materialized views, indexes) and their
/// relfilenodes.
pub type Relfilenodes = BTreeMap<i64, (String, i64)>;

const USER_RELATIONS: &str =
    "c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace, 'pg_toast'::regnamespace)";

/// Reads the relfilenode of every user relation.
pub async fn relfilenodes(client: &Client) -> Result<Relfilenodes, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!("SELECT c.oid::int8, c.oid::regclass::text, c.relfilenode::int8 FROM pg_class c WHERE c.relkind IN ('r', 'm', 'i') AND {USER_RELATIONS}"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect())
}

/// Relations whose storage changed between two readings.
pub fn rewritten(before: &Relfilenodes, after: &Relfilenodes) -> Vec<String> {
    before
        .iter()
        .filter_map(|(oid, (name, node))| match after.get(oid) {
            Some((_, n)) if n != node => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn lock_query(pid: &str) -> String {
    format!(
        "SELECT coalesce(c.oid::regclass::text, 'dropped relation ' || l.relation), l.mode FROM pg_locks l \
         LEFT JOIN pg_class c ON c.oid = l.relation \
         WHERE l.pid = {pid} AND l.locktype = 'relation' AND l.granted \
           AND (c.oid IS NULL OR {USER_RELATIONS})"
    )
}

/// The relation locks the session holds now. A relation the step dropped
/// (an index rebuilt by a rewrite, a dropped table) shows as `dropped
/// relation OID`.
pub async fn own_locks(client: &Client) -> Result<BTreeSet<LockTaken>, tokio_postgres::Error> {
    let rows = client.query(&lock_query("pg_backend_pid()"), &[]).await?;
    Ok(rows.iter().map(|r| LockTaken { relation: r.get(0), mode: r.get(1) }).collect())
}

/// Samples the relation locks of another backend from a session of its
/// own, for steps that cannot run in a transaction (their locks cannot be
/// read from inside). Sampling starts only once [`LockWatcher::start`] has
/// returned, so the step must start after it; a lock held for less than a
/// sampling period may be missed.
pub struct LockWatcher {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<BTreeSet<LockTaken>>,
}

/// Time between samples of a [`LockWatcher`].
const WATCH_EVERY: Duration = Duration::from_millis(2);

impl LockWatcher {
    /// Connects, prepares, and starts sampling backend `pid`.
    pub async fn start(config: &tokio_postgres::Config, pid: i32) -> Result<LockWatcher, tokio_postgres::Error> {
        let client = connect(config, &Role::Harness).await?;
        let stmt = client.prepare(&lock_query("$1")).await?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            loop {
                // A failed sample (the connection broke) ends the watch with
                // what was seen so far.
                let Ok(rows) = client.query(&stmt, &[&pid]).await else { return seen };
                seen.extend(rows.iter().map(|r| LockTaken { relation: r.get(0), mode: r.get(1) }));
                tokio::select! {
                    _ = tokio::time::sleep(WATCH_EVERY) => {}
                    _ = token.cancelled() => return seen,
                }
            }
        });
        Ok(LockWatcher { stop, task })
    }

    /// Stops sampling and returns every lock seen.
    pub async fn stop(self) -> BTreeSet<LockTaken> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}
