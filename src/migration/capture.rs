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
        "SELECT coalesce(c.oid::regclass::text, l.relation::text), l.mode FROM pg_locks l \
         LEFT JOIN pg_class c ON c.oid = l.relation \
         WHERE l.pid = {pid} AND l.locktype = 'relation' AND l.granted \
           AND (c.oid IS NULL OR {USER_RELATIONS})"
    )
}

/// The relation locks the session holds now.
pub async fn own_locks(client: &Client) -> Result<BTreeSet<LockTaken>, tokio_postgres::Error> {
    let rows = client.query(&lock_query("pg_backend_pid()"), &[]).await?;
    Ok(rows.iter().map(|r| LockTaken { relation: r.get(0), mode: r.get(1) }).collect())
}

/// Polls the relation locks of backend `pid` from a session of its own
/// until `stop` fires; for steps that cannot run in a transaction.
pub async fn watch_locks(
    config: tokio_postgres::Config,
    pid: i32,
    stop: CancellationToken,
) -> Result<BTreeSet<LockTaken>, tokio_postgres::Error> {
    let client = connect(&config, &Role::Harness).await?;
    let stmt = client.prepare(&lock_query("$1")).await?;
    let mut seen = BTreeSet::new();
    loop {
        for r in client.query(&stmt, &[&pid]).await? {
            seen.insert(LockTaken { relation: r.get(0), mode: r.get(1) });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            _ = stop.cancelled() => return Ok(seen),
        }
    }
}
