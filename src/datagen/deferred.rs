//! Indexes and constraints built after the data, not maintained row by row
//! during it.
//!
//! After a table's DDL has run, its secondary indexes, primary-key, unique
//! and exclusion constraints and its foreign keys are read from the
//! catalog, dropped, and recreated from their own definitions
//! (`pg_get_indexdef`, `pg_get_constraintdef`) once the rows are in:
//! indexes and keys per table right after its load, foreign keys last, when
//! every table they point at is full. Whatever the DDL declared comes back
//! exactly, whether written inline or as separate statements.
//!
//! A primary or unique key of a plain table comes back in two statements:
//! its index, built as `CREATE UNIQUE INDEX` (a SHARE lock, so it builds
//! beside the table's other indexes), then `ADD CONSTRAINT … USING INDEX`
//! with the key's own name and deferrability. Other keys (exclusion
//! constraints, the keys of a partitioned table, which cannot be attached
//! so) are added whole.

use tokio_postgres::Client;

/// The objects of one table, taken off before its load.
#[derive(Debug, Default, Clone)]
pub struct Deferred {
    /// Statements that build an index: `CREATE INDEX`, `CREATE UNIQUE
    /// INDEX` of a key, `ADD CONSTRAINT` of a key built whole. Any order,
    /// several at once.
    pub indexes: Vec<String>,
    /// `ADD CONSTRAINT … USING INDEX`, after the builds.
    pub attach: Vec<String>,
    /// `ADD CONSTRAINT ... FOREIGN KEY` statements of this table, and of
    /// other tables pointing at it (each foreign key once over all tables).
    pub foreign_keys: Vec<ForeignKey>,
    /// `ADD CONSTRAINT ... CHECK` statements (schema imports only), re-added
    /// after the data.
    pub checks: Vec<String>,
}

/// A foreign key to put back.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    /// `ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY …`.
    pub sql: String,
    /// The table it is on and the table it points at (regclass texts),
    /// both locked while it is added.
    pub tables: [String; 2],
}

/// Reads and drops the indexes and constraints of `tables` (regclass
/// texts), and with `checks` their CHECK constraints; returns them per
/// table, in the same order.
pub async fn take_off(
    client: &Client,
    tables: &[String],
    checks: bool,
) -> Result<Vec<Deferred>, tokio_postgres::Error> {
    let mut all = Vec::new();
    let mut key_drops = Vec::new();
    let mut fk_drops: Vec<String> = Vec::new();
    for table in tables {
        let (mut deferred, fks, keys) = read(client, table, checks).await?;
        // A foreign key between two of these tables is seen from both.
        let fresh: Vec<usize> = (0..fks.len()).filter(|i| !fk_drops.contains(&fks[*i])).collect();
        debug_assert_eq!(fks.len(), deferred.foreign_keys.len());
        deferred.foreign_keys = fresh.iter().map(|i| deferred.foreign_keys[*i].clone()).collect();
        fk_drops.extend(fresh.iter().map(|i| fks[*i].clone()));
        all.push(deferred);
        key_drops.extend(keys);
    }
    // Every foreign key goes before any key: a key cannot go while a
    // foreign key of another table points at it.
    for sql in fk_drops.into_iter().chain(key_drops) {
        client.batch_execute(&sql).await?;
    }
    Ok(all)
}

/// One table's deferred objects, its foreign-key drops and its other drops.
async fn read(
    client: &Client,
    table: &str,
    checks: bool,
) -> Result<(Deferred, Vec<String>, Vec<String>), tokio_postgres::Error> {
    // The table's keys and foreign keys, and the foreign keys of other
    // tables that point at it (its keys cannot go while those stand); not
    // the copies a partition inherits (`conparentid`), which go and come
    // back with their parent's.
    let constraints = client
        .query(
            "SELECT quote_ident(con.conname), pg_get_constraintdef(con.oid), con.contype::text, \
                    con.conrelid::regclass::text, con.confrelid::regclass::text, \
                    CASE WHEN con.contype IN ('p', 'u') AND rel.relkind = 'r' \
                         THEN pg_get_indexdef(con.conindid) END, \
                    quote_ident(idx.relname), con.condeferrable, con.condeferred \
             FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid \
             LEFT JOIN pg_class idx ON idx.oid = con.conindid \
             WHERE con.conparentid = 0 \
               AND ((con.conrelid = $1::text::regclass AND con.contype IN ('p', 'u', 'x', 'f')) \
                OR (con.conrelid = $1::text::regclass AND con.contype = 'c' AND $2 AND NOT con.coninhcount > 0) \
                OR (con.confrelid = $1::text::regclass AND con.contype = 'f' AND con.conrelid <> con.confrelid)) \
             ORDER BY con.oid",
            &[&table, &checks],
        )
        .await?;
    let indexes = client
        .query(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), quote_ident(c.relname) \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::text::regclass \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                               WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x')) \
               AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) \
             ORDER BY i.indexrelid",
            &[&table],
        )
        .await?;
    let mut deferred = Deferred::default();
    let (mut fk_drops, mut drops) = (Vec::new(), Vec::new());
    for row in &constraints {
        let (name, def, kind, owner): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let drop = format!("ALTER TABLE {owner} DROP CONSTRAINT {name}");
        let add = format!("ALTER TABLE {owner} ADD CONSTRAINT {name} {def}");
        match (kind.as_str(), row.get::<_, Option<String>>(5)) {
            ("f", _) => {
                fk_drops.push(drop);
                let parent: String = row.get(4);
                deferred.foreign_keys.push(ForeignKey { sql: add, tables: [owner, parent] });
            }
            ("c", _) => {
                drops.push(drop);
                deferred.checks.push(add);
            }
            (key, Some(index)) => {
                drops.push(drop);
                deferred.indexes.push(index);
                let (index_name, deferrable, deferred_): (String, bool, bool) = (row.get(6), row.get(7), row.get(8));
                let what = if key == "p" { "PRIMARY KEY" } else { "UNIQUE" };
                let when = match (deferrable, deferred_) {
                    (false, _) => "",
                    (true, false) => " DEFERRABLE",
                    (true, true) => " DEFERRABLE INITIALLY DEFERRED",
                };
                deferred
                    .attach
                    .push(format!("ALTER TABLE {owner} ADD CONSTRAINT {name} {what} USING INDEX {index_name}{when}"));
            }
            (_, None) => {
                drops.push(drop);
                deferred.indexes.push(add);
            }
        }
    }
    // Plain indexes are dropped before the keys and rebuilt before them
    // too; neither depends on the other.
    // A partitioned table's index prints as `ON ONLY` (the parent's alone,
    // invalid until each partition's is attached); rebuilt `ON` the table,
    // it builds on every partition too. A partition's own copy of it
    // (`pg_inherits`) goes and comes back with it.
    for row in indexes.iter().rev() {
        let (name, def, bare): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let only = format!("INDEX {bare} ON ONLY ");
        let def = def.replacen(&only, &format!("INDEX {bare} ON "), 1);
        drops.insert(0, format!("DROP INDEX {name}"));
        deferred.indexes.insert(0, def);
    }
    Ok((deferred, fk_drops, drops))
}
