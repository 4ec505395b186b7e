//! The ledger of acknowledged writes: every row a workload write changed
//! and the server acknowledged, recorded as its key and a digest of the
//! values written, and checked against the database after the run.
//!
//! [`Ledger::plan`] reads each workload statement (`pg_query`): a
//! single-table `INSERT`, `UPDATE` or `DELETE` on a table with a primary
//! key (or a unique index on NOT NULL columns) is tracked, its SQL given a
//! `RETURNING` list of the key and the digest (see [`rewrite`]). The
//! workload's connections read those columns off each row; when the
//! request is acknowledged (its statement, or its transaction's COMMIT,
//! succeeded) the rows go to the [`Spill`]. After the run, [`verify`]
//! checks the last state of each key: present with the values written,
//! or gone after a delete, unless a later acknowledged write changed it.

pub mod rewrite;
pub mod spill;
pub mod verify;

use std::collections::HashMap;

use serde::Serialize;
use tokio_postgres::Client;

pub use rewrite::WriteKind;
pub use spill::{Capture, Spill};

use crate::scenario::{Target, WorkloadSpec};

/// A table the ledger checks, and its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// `"schema"."table"` or `"table"`, as the workload names it.
    pub qualified: String,
    /// `schema.table` or `table`, for people.
    pub name: String,
    /// Its key columns.
    pub keys: Vec<String>,
    /// Its oid when the run began: a table swapped in under its name has
    /// another.
    pub oid: i64,
}

/// A workload statement whose writes are recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked {
    /// The query's name.
    pub query: String,
    /// Its statement's 1-based number within the query.
    pub statement: usize,
    /// Index into the ledger's tables.
    pub table: usize,
    /// Insert, update or delete.
    pub kind: WriteKind,
    /// The columns whose values are digested.
    pub columns: Vec<String>,
    /// Their types when the run began (`format_type`): after a migration
    /// that changed one (or dropped a column), the values are no longer
    /// comparable by digest, and only the rows' presence is checked.
    pub types: Vec<String>,
}

/// A workload write the ledger does not follow, and why.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Untracked {
    /// The query's name.
    pub query: String,
    /// Why.
    pub reason: String,
}

/// The ledger of one run.
pub struct Ledger {
    /// The tables checked.
    pub tables: Vec<Table>,
    /// The statements tracked; a [`Capture`]'s `tracked` indexes this.
    pub tracked: Vec<Tracked>,
    /// Writes not followed.
    pub untracked: Vec<Untracked>,
    /// The acknowledged rows.
    pub spill: Spill,
    /// The migration's executions, in the order they began.
    pub migration: std::sync::Mutex<Vec<MigrationSpan>>,
}

/// One execution of a migration statement, as the ledger sees it. A row
/// it wrote (its `xmin` in `lo..hi`) holds a change the migration made on
/// purpose, not a write lost, when the migration could see the write: it
/// wrote the row in the table the workload wrote (an `UPDATE` reads the
/// latest committed version of the row it changes; a rewrite holds the
/// table), or the write was acknowledged before the execution began
/// (`tick`). A row copied into a table swapped in later, from a snapshot
/// older than the write, is neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationSpan {
    /// The ledger's tick as the execution began.
    pub tick: u64,
    /// The first transaction id not yet assigned when it began.
    pub lo: i64,
    /// The same, once it ended: its transactions' ids are in `lo..hi`
    /// (beside the workload's).
    pub hi: i64,
}

/// A tracked statement's SQL, with the ledger's `RETURNING` columns.
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// The SQL to prepare.
    pub sql: String,
    /// Which of its rows' columns the ledger reads.
    pub capture: Capture,
}

/// What the catalog says of a table: its key and its columns.
struct Shape {
    oid: i64,
    keys: Vec<String>,
    columns: Vec<String>,
    types: Vec<String>,
}

const SHAPE: &str = "
SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.n
             WHERE k.o <= i.indnkeyatts ORDER BY k.o),
       ARRAY(SELECT attname::text FROM pg_attribute
             WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum),
       ARRAY(SELECT format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum),
       c.oid::int8
FROM pg_class c
LEFT JOIN LATERAL (
  SELECT i.* FROM pg_index i
  WHERE i.indrelid = c.oid AND i.indisvalid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
    AND (i.indisprimary OR NOT EXISTS (
          SELECT 1 FROM unnest(i.indkey::int2[]) k JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k
          WHERE NOT a.attnotnull))
  ORDER BY i.indisprimary DESC, i.indnkeyatts LIMIT 1) i ON true
WHERE c.oid = to_regclass($1)";

impl Ledger {
    /// Reads the workload's statements against the catalog: the tracked
    /// ones, by (query, statement) index, with the SQL to prepare instead.
    /// Queries sent to replicas are not writes the ledger follows.
    pub async fn plan(client: &Client, spec: &WorkloadSpec) -> (Ledger, HashMap<(usize, usize), Rewritten>) {
        let mut ledger = Ledger {
            tables: Vec::new(),
            tracked: Vec::new(),
            untracked: Vec::new(),
            spill: Spill::new(),
            migration: Default::default(),
        };
        let mut rewritten = HashMap::new();
        let mut shapes: HashMap<String, Option<Shape>> = HashMap::new();
        for (qi, q) in spec.queries.iter().enumerate() {
            if q.target == Target::Replica {
                continue;
            }
            for (si, st) in q.statements.iter().enumerate() {
                let w = match rewrite::read(&st.text) {
                    Ok(Some(w)) => w,
                    Ok(None) => continue,
                    Err(reason) => {
                        ledger.untracked.push(Untracked { query: q.name.clone(), reason });
                        continue;
                    }
                };
                let qualified = match &w.schema {
                    Some(s) => format!("{}.{}", rewrite::ident(s), rewrite::ident(&w.table)),
                    None => rewrite::ident(&w.table),
                };
                if !shapes.contains_key(&qualified) {
                    let shape = shape(client, &qualified).await;
                    shapes.insert(qualified.clone(), shape);
                }
                let Some(Some(shape)) = shapes.get(&qualified) else {
                    let reason = format!("{} has no primary key or unique NOT NULL key", w.table);
                    ledger.untracked.push(Untracked { query: q.name.clone(), reason });
                    continue;
                };
                let at = Statement { client, query: &q.name, number: si + 1, sql: &st.text, qualified: &qualified };
                match ledger.track(at, &w, shape).await {
                    Ok(Some(r)) => drop(rewritten.insert((qi, si), r)),
                    Ok(None) => {}
                    Err(reason) => ledger.untracked.push(Untracked { query: q.name.clone(), reason }),
                }
            }
        }
        (ledger, rewritten)
    }

    /// Whether the ledger records anything: some workload write is
    /// tracked.
    pub fn follows(&self) -> bool {
        !self.tracked.is_empty()
    }

    /// Records an execution of the migration.
    pub fn migration_ran(&self, span: MigrationSpan) {
        self.migration.lock().unwrap_or_else(|p| p.into_inner()).push(span);
    }

    /// Tracks write `w` of statement `at` on a table of `shape`: its SQL
    /// with the ledger's `RETURNING` columns; `Err` with the reason when it
    /// cannot be followed, `None` when it is left alone.
    async fn track(
        &mut self,
        at: Statement<'_>,
        w: &rewrite::Write,
        shape: &Shape,
    ) -> Result<Option<Rewritten>, String> {
        if w.kind == WriteKind::Update && w.columns.iter().any(|c| shape.keys.contains(c)) {
            return Err("it changes the key of the rows it writes".into());
        }
        if self.tracked.len() >= u16::MAX as usize || shape.keys.len() > u8::MAX as usize {
            return Ok(None);
        }
        let columns = match w.kind {
            WriteKind::Insert if w.columns.is_empty() => shape.columns.clone(),
            WriteKind::Delete => Vec::new(),
            _ => w.columns.clone(),
        };
        let sql = rewrite::with_returning(at.sql, w, &shape.keys, &columns);
        // What the ledger adds must not turn a statement that prepares
        // into one that does not: such a write is left as written (and one
        // that does not prepare either is the workload's to report, in its
        // own words).
        if let Err(e) = at.client.prepare(&sql).await {
            if at.client.prepare(at.sql).await.is_ok() {
                let e = crate::postgres::SqlError::from_pg(&e);
                return Err(format!("its RETURNING list does not prepare: {e}"));
            }
            return Ok(None);
        }
        let table = match self.tables.iter().position(|t| t.qualified == at.qualified) {
            Some(i) => i,
            None => {
                let name = w.schema.as_ref().map_or(w.table.clone(), |s| format!("{s}.{}", w.table));
                self.tables.push(Table {
                    qualified: at.qualified.to_string(),
                    name,
                    keys: shape.keys.clone(),
                    oid: shape.oid,
                });
                self.tables.len() - 1
            }
        };
        let type_of = |c: &String| {
            let i = shape.columns.iter().position(|x| x == c);
            i.map(|i| shape.types[i].clone()).unwrap_or_default()
        };
        let types = columns.iter().map(type_of).collect();
        let capture = Capture {
            tracked: self.tracked.len() as u16,
            keys: shape.keys.len() as u8,
            digest: w.kind != WriteKind::Delete,
        };
        let (query, statement, kind) = (at.query.to_string(), at.number, w.kind);
        self.tracked.push(Tracked { query, statement, table, kind, columns, types });
        Ok(Some(Rewritten { sql, capture }))
    }
}

/// A workload statement being read, and the catalog's session.
struct Statement<'a> {
    client: &'a Client,
    query: &'a str,
    number: usize,
    sql: &'a str,
    qualified: &'a str,
}

/// The key and columns of `qualified`; `None` when it has no usable key
/// (or does not exist: the workload's prepare reports that).
async fn shape(client: &Client, qualified: &str) -> Option<Shape> {
    let row = client.query_opt(SHAPE, &[&qualified]).await.ok()??;
    let keys: Vec<String> = row.get(0);
    (!keys.is_empty()).then(|| Shape { oid: row.get(3), keys, columns: row.get(1), types: row.get(2) })
}

/// What the ledger found after the run.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LedgerReport {
    /// Rows written by acknowledged requests of tracked statements.
    pub writes: u64,
    /// Keys checked: the last state of each row written.
    pub keys: u64,
    /// Rows written and acknowledged that are gone.
    pub lost: u64,
    /// Rows whose written values differ from every acknowledged write's
    /// (or that a delete removed and are back).
    pub altered: u64,
    /// Rows whose values differ because a statement of the migration
    /// changed them after it could see the write (a data migration's
    /// `UPDATE`): reported, not counted as altered.
    pub changed_by_migration: u64,
    /// Per tracked statement.
    pub queries: Vec<LedgerQuery>,
    /// Writes not followed, and why.
    pub untracked: Vec<Untracked>,
    /// Tables that could not be checked, with the error: their writes are
    /// neither lost nor kept as far as the report knows.
    pub errors: Vec<String>,
    /// Statements whose rows were checked for presence only, and why (a
    /// column they write changed type or is gone).
    pub notes: Vec<String>,
    /// Bytes the record took on disk.
    pub file_bytes: u64,
    /// Time the check took, in milliseconds.
    pub verify_ms: f64,
}

/// One tracked statement's writes, and what became of them.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LedgerQuery {
    /// The query.
    pub query: String,
    /// The statement's number within it.
    pub statement: usize,
    /// The table it writes, as named.
    pub table: String,
    /// Insert, update or delete.
    pub kind: WriteKind,
    /// Acknowledged rows it wrote.
    pub writes: u64,
    /// Of the keys whose last acknowledged write was its: gone.
    pub lost: u64,
    /// Present with other values.
    pub altered: u64,
    /// Present with values the migration's own statements wrote, after
    /// the write was acknowledged.
    pub changed_by_migration: u64,
    /// A few of them: `lost id=42`, `altered id=7`.
    pub examples: Vec<String>,
}
