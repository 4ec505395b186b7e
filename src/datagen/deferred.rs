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
    /// `ADD CONSTRAINT ... FOREIGN KEY` statements of this table.
    pub foreign_keys: Vec<String>,
}

/// Reads and drops the indexes and constraints of `tables` (regclass
/// texts); returns them per table, in the same order.
pub async fn take_off(client: &Client, tables: &[String]) -> Result<Vec<Deferred>, tokio_postgres::Error> {
    let mut all = Vec::new();
    let mut key_drops = Vec::new();
    let mut fk_drops = Vec::new();
    for table in tables {
        let (deferred, fks, keys) = read(client, table).await?;
        all.push(deferred);
        fk_drops.extend(fks);
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
async fn read(client: &Client, table: &str) -> Result<(Deferred, Vec<String>, Vec<String>), tokio_postgres::Error> {
    let constraints = client
        .query(
            "SELECT quote_ident(conname), pg_get_constraintdef(oid), contype::text \
             FROM pg_constraint WHERE conrelid = $1::text::regclass AND contype IN ('p', 'u', 'x', 'f') \
             ORDER BY oid",
            &[&table],
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
        let (name, def, kind): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let drop = format!("ALTER TABLE {table} DROP CONSTRAINT {name}");
        let add = format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}");
        if kind == "f" {
            fk_drops.push(drop);
            deferred.foreign_keys.push(add);
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
