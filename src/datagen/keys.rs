//! Keys the generated rows must keep, beyond what a column's own generator
//! knows: a foreign key that is also unique (a 1:1 table) takes each
//! parent key at most once, and a unique key over several columns (from a
//! unique index or constraint, partial ones too) is made to hold by making
//! one of its columns distinct on its own, or, when every column of it is
//! a foreign key, by walking the parents' keys as the digits of one count.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::generate::ValueGen;
use super::infer::ColumnInfo;
use super::value::PgKind;
use crate::scenario::{GenSpec, TableSpec, ValueSpec};

/// What a column's generated values must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forced {
    /// Distinct text (the row number woven in).
    Unique,
    /// 1, 2, 3, …: distinct keys of a parent, each once.
    Sequence,
    /// `(row / place) % radix + 1`: one digit of the row number in mixed
    /// radix, so that the columns of a key together count the rows.
    Digit {
        /// The parent's rows.
        radix: u64,
        /// The product of the radices before it.
        place: u64,
    },
}

/// The unique keys of `table` over more than one column, by column name
/// (expression columns left out).
pub async fn composite_unique(client: &Client, table: &str) -> Result<Vec<Vec<String>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1::text::regclass AND i.indisunique AND i.indnkeyatts > 1 \
             GROUP BY i.indexrelid",
            &[&table],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, Vec<String>>(0)).collect())
}

fn rows_of(sizes: &[(String, u64)], table: &str) -> Option<u64> {
    sizes.iter().find(|(t, _)| t == table).map(|(_, n)| *n)
}

/// What each column the user did not describe must be, for `t` of `rows`
/// rows; or why its keys cannot hold.
pub fn force(
    t: &TableSpec,
    cols: &[ColumnInfo],
    composites: &[Vec<String>],
    sizes: &[(String, u64)],
) -> Result<BTreeMap<String, Forced>, String> {
    let described = |c: &str| t.columns.iter().any(|o| o.column == c);
    let is_int = |c: &ColumnInfo| matches!(PgKind::of(&c.ty), Some(PgKind::Int2 | PgKind::Int4 | PgKind::Int8));
    let mut forced = BTreeMap::new();
    for c in cols.iter().filter(|c| c.unique_key && is_int(c) && !described(&c.name)) {
        let Some(parent) = &c.references else { continue };
        let Some(n) = rows_of(sizes, parent).filter(|n| *n > 0) else { continue };
        if t.rows > n {
            return Err(format!(
                "column `{}` is a unique foreign key to {parent}: each of its {n} rows has at most one row here, so `{}` can have at most {n} rows, not {} (give {parent} more rows or this table fewer)",
                c.name, t.name, t.rows
            ));
        }
        forced.insert(c.name.clone(), Forced::Sequence);
    }
    for key in composites {
        let members: Vec<&ColumnInfo> = key.iter().filter_map(|k| cols.iter().find(|c| &c.name == k)).collect();
        if members.iter().any(|c| described(&c.name) || forced.contains_key(&c.name) || c.unique_key) {
            continue;
        }
        // An enum reads as text but takes only its labels.
        let text = members.iter().find(|c| {
            c.references.is_none()
                && PgKind::of(&c.ty) == Some(PgKind::Text)
                && !matches!(c.ty.kind(), tokio_postgres::types::Kind::Enum(_))
        });
        let int = members.iter().find(|c| c.references.is_none() && is_int(c) && c.sequence.is_none());
        if let Some(c) = text {
            forced.insert(c.name.clone(), Forced::Unique);
        } else if let Some(c) = int {
            forced.insert(c.name.clone(), Forced::Sequence);
        } else if members.iter().all(|c| is_int(c) && c.references.is_some()) {
            let mut place = 1u64;
            for c in &members {
                let parent = c.references.as_deref().unwrap_or_default();
                let radix = rows_of(sizes, parent).unwrap_or(0).max(1);
                forced.insert(c.name.clone(), Forced::Digit { radix, place });
                place = place.saturating_mul(radix);
            }
            if t.rows > place {
                return Err(format!(
                    "unique key ({}) of `{}` has only {place} combinations of its parents' keys, fewer than its {} rows (give the parents more rows or this table fewer)",
                    key.join(", "),
                    t.name,
                    t.rows
                ));
            }
        } else {
            return Err(format!(
                "cannot keep the unique key ({}) of `{}` unique: describe one of its columns in `columns` (a `sequence`, say)",
                key.join(", "),
                t.name
            ));
        }
    }
    Ok(forced)
}

/// `g`, made to be what `f` says.
pub fn apply(g: ValueGen, f: Forced) -> ValueGen {
    match f {
        Forced::Unique => g.with_unique(true),
        Forced::Sequence => ValueGen::from_spec(&ValueSpec { kind: GenSpec::Sequence { start: 1 }, nulls: 0.0 }),
        Forced::Digit { radix, place } => ValueGen::digit(radix, place),
    }
}
