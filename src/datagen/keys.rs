//! Keys the generated rows must keep, beyond what a column's own generator
//! knows: a foreign key that is also unique (a 1:1 table) takes each
//! parent key at most once, and a unique key over several columns (from a
//! unique index or constraint, partial ones too) is made to hold by making
//! one of its columns distinct on its own, or, when every column of it is
//! a foreign key, by walking the parents' keys as the digits of one count.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::generate::{KeyKind, ValueGen};
use super::infer::ColumnInfo;
use super::value::PgKind;
use crate::scenario::TableSpec;

/// What a column's generated values must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forced {
    /// Distinct text (the row number woven in).
    Unique,
    /// Key number `(row / place) % radix + 1` of the table whose keys
    /// `key` writes: with `radix = u64::MAX, place = 1`, each key once (1,
    /// 2, 3, …); as several columns, the digits of one count in mixed
    /// radix, so that together they count the rows.
    Key {
        /// Keys of the parent (the digit's base).
        radix: u64,
        /// The product of the radices before it.
        place: u64,
        /// How the keys are written.
        key: KeyKind,
    },
    /// A random one of a parent's `rows` keys, written as `key`.
    RandomKey {
        /// The parent's rows.
        rows: u64,
        /// How its keys are written.
        key: KeyKind,
    },
    /// Timestamps a second apart from 2020-01-01: distinct.
    Spaced,
    /// Dates a day apart from 1990-01-01: distinct.
    SpacedDays,
    /// Label `(row / place) % labels` of the column's enum: a digit of a
    /// count, beside foreign keys.
    Label {
        /// The product of the radices before it.
        place: u64,
    },
}

/// Each key once: 1, 2, 3, … written as `key`.
fn once(key: KeyKind) -> Forced {
    Forced::Key { radix: u64::MAX, place: 1, key }
}

/// How the keys of `table` are written when its key column is `c`'s type:
/// integers, UUIDs or text (`None` for another type).
pub fn key_kind(c: &ColumnInfo, table: &str) -> Option<KeyKind> {
    match PgKind::of(&c.ty)? {
        PgKind::Int2 | PgKind::Int4 | PgKind::Int8 => Some(KeyKind::Int),
        PgKind::Uuid => Some(KeyKind::Uuid(KeyKind::salt(table))),
        PgKind::Text if !matches!(c.ty.kind(), tokio_postgres::types::Kind::Enum(_)) => {
            Some(KeyKind::Text(KeyKind::salt(table)))
        }
        _ => None,
    }
}

/// The unique keys of `table` that its single-column keys do not cover:
/// over several columns, on expressions (`lower(email)`), or partial, each
/// as the columns it reads (key columns, and those of its expressions and
/// predicate).
pub async fn composite_unique(client: &Client, table: &str) -> Result<Vec<Vec<String>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum), a.attnum) FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum > 0 \
               AND (a.attnum = ANY (i.indkey::int2[]) OR EXISTS (SELECT 1 FROM pg_depend d \
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid \
                      AND d.refobjid = i.indrelid AND d.refobjsubid = a.attnum)) \
             WHERE i.indrelid = $1::text::regclass AND i.indisunique \
               AND (i.indnkeyatts > 1 OR i.indexprs IS NOT NULL OR i.indpred IS NOT NULL) \
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
    let mut forced = BTreeMap::new();
    for c in cols.iter().filter(|c| !described(&c.name)) {
        // A key others point at is written so that they can name it.
        if c.unique_key && c.references.is_none() && c.sequence.is_none() {
            match key_kind(c, &c.table) {
                Some(k @ (KeyKind::Uuid(_) | KeyKind::Text(_))) if c.referenced || matches!(k, KeyKind::Uuid(_)) => {
                    forced.insert(c.name.clone(), once(k));
                }
                _ => {}
            }
        }
        let Some(parent) = &c.references else { continue };
        let Some(n) = rows_of(sizes, parent).filter(|n| *n > 0) else { continue };
        let Some(key) = key_kind(c, parent) else { continue };
        if c.unique_key {
            if t.rows > n {
                return Err(format!(
                    "column `{}` is a unique foreign key to {parent}: each of its {n} rows has at most one row here, so `{}` can have at most {n} rows, not {} (give {parent} more rows or this table fewer)",
                    c.name, t.name, t.rows
                ));
            }
            forced.insert(c.name.clone(), once(key));
        } else if key != KeyKind::Int {
            forced.insert(c.name.clone(), Forced::RandomKey { rows: n, key });
        }
    }
    for key in composites {
        composite(t, cols, key, sizes, &described, &mut forced)?;
    }
    Ok(forced)
}

/// Makes the unique key `key` hold, unless a column of it already does.
fn composite(
    t: &TableSpec,
    cols: &[ColumnInfo],
    key: &[String],
    sizes: &[(String, u64)],
    described: &dyn Fn(&str) -> bool,
    forced: &mut BTreeMap<String, Forced>,
) -> Result<(), String> {
    let members: Vec<&ColumnInfo> = key.iter().filter_map(|k| cols.iter().find(|c| &c.name == k)).collect();
    let distinct_already = |c: &ColumnInfo| {
        c.unique_key
            || c.sequence.is_some()
            || matches!(
                forced.get(&c.name),
                Some(Forced::Key { radix: u64::MAX, .. } | Forced::Unique | Forced::Spaced | Forced::SpacedDays)
            )
            // Random UUIDs do not repeat.
            || (c.references.is_none() && PgKind::of(&c.ty) == Some(PgKind::Uuid))
    };
    if members.iter().any(|c| described(&c.name) || distinct_already(c)) {
        return Ok(());
    }
    let free = |c: &&&ColumnInfo| c.references.is_none();
    let kind = |c: &ColumnInfo| PgKind::of(&c.ty);
    let enum_type = |c: &ColumnInfo| matches!(c.ty.kind(), tokio_postgres::types::Kind::Enum(_));
    // Text first, then integers, then times: a time column is often a
    // partition key, whose ranges a spaced series would leave.
    let pick = (0..3).find_map(|rank| {
        members.iter().filter(free).find_map(|c| match (rank, kind(c)) {
            (0, Some(PgKind::Text)) if !enum_type(c) => Some((c.name.clone(), Forced::Unique)),
            (1, Some(PgKind::Int2 | PgKind::Int4 | PgKind::Int8)) => Some((c.name.clone(), once(KeyKind::Int))),
            (2, Some(PgKind::Timestamp | PgKind::Timestamptz)) => Some((c.name.clone(), Forced::Spaced)),
            (2, Some(PgKind::Date)) => Some((c.name.clone(), Forced::SpacedDays)),
            _ => None,
        })
    });
    if let Some((name, f)) = pick {
        forced.insert(name, f);
        return Ok(());
    }
    // Digits of one count: the parents' keys, and an enum's labels.
    let labels = |c: &ColumnInfo| match c.ty.kind() {
        tokio_postgres::types::Kind::Enum(l) if !l.is_empty() && c.references.is_none() => Some(l.len() as u64),
        _ => None,
    };
    let parents: Option<Vec<(String, u64, Option<KeyKind>)>> = members
        .iter()
        .map(|c| {
            if let Some(n) = labels(c) {
                return Some((c.name.clone(), n, None));
            }
            let parent = c.references.clone()?;
            let n = rows_of(sizes, &parent)?.max(1);
            Some((c.name.clone(), n, Some(key_kind(c, &parent)?)))
        })
        .collect();
    let Some(parents) = parents else {
        return Err(format!(
            "cannot keep the unique key ({}) of `{}` unique: describe one of its columns in `columns` (a `sequence`, say)",
            key.join(", "),
            t.name
        ));
    };
    let mut place = 1u64;
    for (name, radix, k) in parents {
        let f = match k {
            Some(key) => Forced::Key { radix, place, key },
            None => Forced::Label { place },
        };
        forced.insert(name, f);
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
    Ok(())
}

/// `g`, the generator of `c`, made to be what `f` says.
pub fn apply(c: &ColumnInfo, g: ValueGen, f: Forced) -> ValueGen {
    match f {
        Forced::SpacedDays => ValueGen::spaced_days(),
        Forced::Label { place } => match c.ty.kind() {
            tokio_postgres::types::Kind::Enum(labels) => ValueGen::label_digit(labels, place),
            _ => g,
        },
        Forced::Unique => g.with_unique(true),
        Forced::Key { radix, place, key } => ValueGen::digit(radix, place, key),
        Forced::RandomKey { rows, key } => ValueGen::typed_key(rows, key),
        Forced::Spaced => ValueGen::spaced(0),
    }
}
