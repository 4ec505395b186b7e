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

use tokio_postgres::Client;

/// The objects of one table, taken off before its load.
#[derive(Debug, Default, Clone)]
pub struct Deferred {
    /// `CREATE INDEX` and `ADD CONSTRAINT` (primary/unique/exclusion)
    /// statements, in the order to run them.
    pub indexes: Vec<String>,
    /// `ADD CONSTRAINT ... FOREIGN KEY` statements of this table, and of
    /// other tables pointing at it (each foreign key once over all tables).
    pub foreign_keys: Vec<String>,
    /// `ADD CONSTRAINT ... CHECK` statements (schema imports only), re-added
    /// after the data.
    pub checks: Vec<String>,
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
    // tables that point at it (its keys cannot go while those stand).
    let constraints = client
        .query(
            "SELECT quote_ident(conname), pg_get_constraintdef(oid), contype::text, conrelid::regclass::text \
             FROM pg_constraint \
             WHERE (conrelid = $1::text::regclass AND contype IN ('p', 'u', 'x', 'f')) \
                OR (conrelid = $1::text::regclass AND contype = 'c' AND $2 AND conparentid = 0 AND NOT coninhcount > 0) \
                OR (confrelid = $1::text::regclass AND contype = 'f' AND conrelid <> confrelid) \
             ORDER BY oid",
            &[&table, &checks],
        )
        .await?;
    let indexes = client
        .query(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) \
             FROM pg_index i WHERE i.indrelid = $1::text::regclass \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                               WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x')) \
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
        if kind == "f" {
            fk_drops.push(drop);
            deferred.foreign_keys.push(add);
        } else if kind == "c" {
            drops.push(drop);
            deferred.checks.push(add);
        } else {
            drops.push(drop);
            deferred.indexes.push(add);
        }
    }
    // Plain indexes are dropped before the keys and rebuilt before them
    // too; neither depends on the other.
    for row in indexes.iter().rev() {
        let (name, def): (String, String) = (row.get(0), row.get(1));
        drops.insert(0, format!("DROP INDEX {name}"));
        deferred.indexes.insert(0, def);
    }
    Ok((deferred, fk_drops, drops))
}
