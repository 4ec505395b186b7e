//! What a step did to the catalog, read from its own session: the relation
//! locks it holds (from `pg_locks`, before its transaction commits) and the
//! relations it rewrote (their `relfilenode` changed). For a step that runs
//! outside a transaction, a side session polls the step's backend instead.
//!
//! A lock on a relation the step itself dropped (the old index of a
//! rewrite, a dropped table, the old TOAST table) is named from the catalog
//! as it was before the step, so the report says `orders_pkey` or
//! `orders (TOAST)`, not `dropped relation 16392`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::LockMode;
use crate::postgres::{Role, connect};

/// A lock a step took.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct LockTaken {
    /// The relation.
    pub relation: String,
    /// The mode (in JSON as `pg_locks` names it, e.g. `AccessExclusiveLock`).
    pub mode: LockMode,
}

/// The user relations (of every kind: tables, partitioned tables, indexes,
/// sequences, views, materialized views) by oid: their names and
/// relfilenodes, as one snapshot of the catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog(BTreeMap<i64, (String, i64)>);

const USER_RELATIONS: &str =
    "c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace, 'pg_toast'::regnamespace)";

/// Reads the catalog's user relations, and the TOAST table (and its index)
/// of each, named after the table they belong to.
pub async fn catalog(client: &Client) -> Result<Catalog, tokio_postgres::Error> {
    let sql = format!(
        "SELECT c.oid::int8, c.oid::regclass::text, c.relfilenode::int8 FROM pg_class c WHERE {USER_RELATIONS} \
         UNION ALL \
         SELECT t.oid::int8, c.oid::regclass::text || ' (TOAST)', t.relfilenode::int8 \
         FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid WHERE {USER_RELATIONS} \
         UNION ALL \
         SELECT i.indexrelid::int8, c.oid::regclass::text || ' (TOAST index)', ic.relfilenode::int8 \
         FROM pg_class c JOIN pg_index i ON i.indrelid = c.reltoastrelid JOIN pg_class ic ON ic.oid = i.indexrelid \
         WHERE {USER_RELATIONS}"
    );
    let rows = client.query(&sql, &[]).await?;
    Ok(Catalog(rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect()))
}

impl Catalog {
    /// Adds the relations of `other` this snapshot lacks (to name, later,
    /// what a transaction created and then dropped).
    pub fn merge(&mut self, other: &Catalog) {
        for (oid, v) in &other.0 {
            self.0.entry(*oid).or_insert_with(|| v.clone());
        }
    }

    /// The name of relation `oid` in this snapshot.
    fn name(&self, oid: i64) -> Option<&str> {
        self.0.get(&oid).map(|(n, _)| n.as_str())
    }
}

/// Relations with storage whose storage changed between two readings.
pub fn rewritten(before: &Catalog, after: &Catalog) -> Vec<String> {
    before
        .0
        .iter()
        .filter_map(|(oid, (name, node))| match after.0.get(oid) {
            Some((_, n)) if *node != 0 && n != node => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn lock_query(pid: &str) -> String {
    // A relation gone from the catalog (dropped by the step) has no row in
    // pg_class: its oid is named from the snapshot taken before the step.
    format!(
        "SELECT l.relation::int8, c.oid::regclass::text, l.mode FROM pg_locks l \
         LEFT JOIN pg_class c ON c.oid = l.relation \
         WHERE l.pid = {pid} AND l.locktype = 'relation' AND l.granted \
           AND (c.oid IS NULL OR {USER_RELATIONS})"
    )
}

/// Names each lock's relation: as the catalog has it now, else as it was
/// in `before`. A relation in neither was made and dropped by the step
/// itself (a rewrite's transient heap): nothing else could have waited for
/// it, and it is left out. So is a SERIALIZABLE transaction's predicate
/// lock (`SIReadLock`), which blocks nobody.
fn name_locks(rows: &[tokio_postgres::Row], before: &Catalog) -> BTreeSet<LockTaken> {
    rows.iter()
        .filter_map(|r| {
            let oid: i64 = r.get(0);
            let now: Option<String> = r.get(1);
            let relation = now.or_else(|| before.name(oid).map(str::to_string))?;
            let mode = LockMode::from_pg(r.get(2))?;
            Some(LockTaken { relation, mode })
        })
        .collect()
}

/// The relation locks the session holds now.
pub async fn own_locks(client: &Client, before: &Catalog) -> Result<BTreeSet<LockTaken>, tokio_postgres::Error> {
    let rows = client.query(&lock_query("pg_backend_pid()"), &[]).await?;
    Ok(name_locks(&rows, before))
}

/// Samples the relation locks of another backend from a session of its
/// own, for steps that cannot run in a transaction (their locks cannot be
/// read from inside). Sampling starts only once [`LockWatcher::start`] has
/// returned, so the step must start after it; a lock held for less than a
/// sampling period may be missed.
pub struct LockWatcher {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<BTreeSet<LockTaken>>,
    seen: std::sync::Arc<std::sync::Mutex<BTreeSet<LockTaken>>>,
}

/// Time between samples of a [`LockWatcher`].
const WATCH_EVERY: Duration = Duration::from_millis(2);

impl LockWatcher {
    /// Connects, prepares, and starts sampling backend `pid`; `before` names
    /// relations the step drops.
    pub async fn start(
        config: &tokio_postgres::Config,
        pid: i32,
        before: Catalog,
    ) -> Result<LockWatcher, tokio_postgres::Error> {
        let client = connect(config, &Role::Harness).await?;
        let stmt = client.prepare(&lock_query("$1")).await?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                // A sample that fails (the connection broke) or does not
                // answer ends the watch with what was seen so far.
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&pid];
                let rows = tokio::select! {
                    r = client.query(&stmt, &params) => r,
                    _ = token.cancelled() => break,
                };
                let Ok(rows) = rows else { break };
                shared.lock().expect("not poisoned").extend(name_locks(&rows, &before));
                tokio::select! {
                    _ = tokio::time::sleep(WATCH_EVERY) => {}
                    _ = token.cancelled() => break,
                }
            }
            std::mem::take(&mut *shared.lock().expect("not poisoned"))
        });
        Ok(LockWatcher { stop, task, seen })
    }

    /// Stops sampling and returns every lock seen.
    pub async fn stop(mut self) -> BTreeSet<LockTaken> {
        self.stop.cancel();
        match tokio::time::timeout(Duration::from_secs(1), &mut self.task).await {
            Ok(seen) => seen.unwrap_or_default(),
            Err(_) => {
                self.task.abort();
                std::mem::take(&mut *self.seen.lock().expect("not poisoned"))
            }
        }
    }
}
