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
    /// Label `(row / place) % radix` of the column's enum (`radix` at most
    /// its labels): a digit of a count, beside foreign keys.
    Label {
        /// The product of the radices before it.
        place: u64,
        /// How many of its labels it takes.
        radix: u64,
    },
    /// A column of a foreign key over several columns: the value its
    /// parent wrote (by the parent's [`Forced::Key`] `radix`, `place`,
    /// `key`) in parent row `(row / group_place) % parent_rows`, so that
    /// the columns together name a row that exists.
    Follow {
        /// Which foreign key of the table (its columns share the row).
        fk: usize,
        /// The product of the radices before this key's in a unique key
        /// of the table (1 otherwise).
        group_place: u64,
        /// The parent's rows.
        parent_rows: u64,
        /// The parent column's radix.
        radix: u64,
        /// The parent column's place.
        place: u64,
        /// How the parent column's keys are written.
        key: KeyKind,
    },
}

/// The foreign keys over several columns that concern a table: those it
/// has (each column with what it must follow) and the columns of its own
/// that others' point at (each with how it is written).
#[derive(Debug, Default, Clone)]
pub struct MultiColumnKeys {
    /// This table's columns that others' multi-column foreign keys name.
    pub referenced: Vec<(String, Forced)>,
    /// This table's columns of its own multi-column foreign keys.
    pub following: Vec<(String, Forced)>,
}

/// How the columns `key` of `table` (the target of a multi-column foreign
/// key) are written from the row number: a column that is itself a
/// foreign key as a digit of its parent's keys, any other as each key once
/// (distinct); `None` when a column has a type keys are not written as.
fn referenced_rules(
    table: &str,
    cols: &[ColumnInfo],
    key: &[String],
    sizes: &[(String, u64)],
) -> Option<Vec<(String, Forced)>> {
    let mut place = 1u64;
    let mut out = Vec::new();
    for name in key {
        let c = cols.iter().find(|c| &c.name == name)?;
        let f = match c.references.as_deref().and_then(|p| Some((p, rows_of(sizes, p).filter(|n| *n > 0)?))) {
            Some((parent, radix)) => {
                let f = Forced::Key { radix, place, key: key_kind(c, parent)? };
                place = place.saturating_mul(radix);
                f
            }
            None => once(key_kind(c, table)?),
        };
        out.push((name.clone(), f));
    }
    Some(out)
}

/// Reads the multi-column foreign keys from and to `table` (a regclass
/// text, whose columns are `cols`) and decides how their columns are
/// written, given the tables' sizes.
pub async fn multi_column(
    client: &Client,
    table: &str,
    cols: &[ColumnInfo],
    sizes: &[(String, u64)],
) -> Result<MultiColumnKeys, tokio_postgres::Error> {
    let names = |side: &str| {
        format!(
            "ARRAY(SELECT a.attname::text FROM unnest(c.{side}key) WITH ORDINALITY k(n, o) \
             JOIN pg_attribute a ON a.attrelid = c.{side}relid AND a.attnum = k.n ORDER BY k.o)"
        )
    };
    let sql = format!(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text, {}, {} FROM pg_constraint c \
         WHERE c.contype = 'f' AND cardinality(c.conkey) > 1 \
           AND (c.conrelid = $1::text::regclass OR c.confrelid = $1::text::regclass) ORDER BY c.oid",
        names("con"),
        names("conf")
    );
    let mut out = MultiColumnKeys::default();
    for (fk, r) in client.query(&sql, &[&table]).await?.iter().enumerate() {
        let (child, parent): (String, String) = (r.get(0), r.get(1));
        let (columns, parent_columns): (Vec<String>, Vec<String>) = (r.get(2), r.get(3));
        if parent == table {
            out.referenced.extend(referenced_rules(table, cols, &parent_columns, sizes).unwrap_or_default());
        }
        let Some(parent_rows) = rows_of(sizes, &parent).filter(|n| *n > 0 && child == table) else { continue };
        let parent_cols = super::infer::columns(client, &parent).await?;
        let Some(rules) = referenced_rules(&parent, &parent_cols, &parent_columns, sizes) else { continue };
        for (column, (_, rule)) in columns.into_iter().zip(rules) {
            let Forced::Key { radix, place, key } = rule else { continue };
            out.following.push((column, Forced::Follow { fk, group_place: 1, parent_rows, radix, place, key }));
        }
    }
    Ok(out)
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
    multi: &MultiColumnKeys,
    sizes: &[(String, u64)],
) -> Result<BTreeMap<String, Forced>, String> {
    let described = |c: &str| t.columns.iter().any(|o| o.column == c);
    let mut forced = BTreeMap::new();
    // Multi-column foreign keys first: a column written as a parent wrote
    // it, or as the child will name it, is written so whatever else holds.
    for (name, f) in multi.referenced.iter().chain(&multi.following) {
        if !described(name) {
            forced.insert(name.clone(), *f);
        }
    }

    let multi_fk = |c: &&ColumnInfo| multi.referenced.iter().chain(&multi.following).any(|(name, _)| *name == c.name);
    for c in cols.iter().filter(|c| !described(&c.name) && !multi_fk(c)) {
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
        // A key whose columns others' multi-column foreign keys name is
        // already written from the row number (each key once, or as digits
        // of one count): the children reproduce it, so it must stay.
        let named = |k: &String| multi.referenced.iter().any(|(n, _)| n == k);
        if key.iter().any(named) {
            check_referenced(t, key, &forced)?;
            continue;
        }
        composite(t, cols, key, sizes, &described, &mut forced)?;
    }
    Ok(forced)
}

/// A unique key written as the digits of one count (every column of it a
/// foreign key that others' multi-column foreign keys name) holds only for
/// as many rows as the count has combinations.
fn check_referenced(t: &TableSpec, key: &[String], forced: &BTreeMap<String, Forced>) -> Result<(), String> {
    let mut combinations = 1u64;
    for k in key {
        match forced.get(k) {
            Some(Forced::Key { radix, .. }) => combinations = combinations.saturating_mul(*radix),
            _ => return Ok(()),
        }
    }
    fits(t, key, combinations)?;
    Ok(())
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
    let following = |c: &ColumnInfo| matches!(forced.get(&c.name), Some(Forced::Follow { .. }));
    let free = |c: &&&ColumnInfo| c.references.is_none() && !following(c);
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
    // Each digit: a parent's keys, an enum's labels, or the parent rows of
    // a multi-column foreign key (its columns one digit together).
    #[derive(Clone, Copy)]
    enum Digit {
        Key(KeyKind),
        Label,
        Group(usize),
    }
    let digits: Option<Vec<(String, u64, Digit)>> = members
        .iter()
        .map(|c| {
            if let Some(Forced::Follow { fk, parent_rows, .. }) = forced.get(&c.name) {
                return Some((c.name.clone(), *parent_rows, Digit::Group(*fk)));
            }
            if let Some(n) = labels(c) {
                return Some((c.name.clone(), n, Digit::Label));
            }
            let parent = c.references.clone()?;
            let n = rows_of(sizes, &parent)?.max(1);
            Some((c.name.clone(), n, Digit::Key(key_kind(c, &parent)?)))
        })
        .collect();
    let Some(digits) = digits else {
        return Err(format!(
            "cannot keep the unique key ({}) of `{}` unique: describe one of its columns in `columns` (a `sequence`, say)",
            key.join(", "),
            t.name
        ));
    };
    // One slot per digit; a multi-column foreign key's columns share one.
    let mut slots: Vec<(u64, Vec<(String, Digit)>)> = Vec::new();
    for (name, radix, d) in digits {
        let same = |s: &&mut (u64, Vec<(String, Digit)>)| matches!((s.1[0].1, d), (Digit::Group(a), Digit::Group(b)) if a == b);
        match slots.iter_mut().find(same) {
            Some(slot) => slot.1.push((name, d)),
            None => slots.push((radix, vec![(name, d)])),
        }
    }
    let capacity = slots.iter().fold(1u64, |a, s| a.saturating_mul(s.0));
    fits(t, key, capacity)?;
    // Each digit `row % m`, the moduli pairwise coprime: the combinations
    // stay distinct for their product of rows, and every digit takes as many
    // values as it can. When that product is too small, a count in mixed
    // radix, whose last digits vary slowly.
    let moduli = coprime(&slots.iter().map(|s| s.0).collect::<Vec<_>>());
    let spread = moduli.iter().fold(1u64, |a, m| a.saturating_mul(*m)) >= t.rows;
    let mut place = 1u64;
    for ((full, columns), m) in slots.into_iter().zip(moduli) {
        let (radix, at) = if spread { (m, 1) } else { (full, place) };
        for (name, d) in columns {
            let f = match d {
                Digit::Key(key) => Forced::Key { radix, place: at, key },
                Digit::Label => Forced::Label { place: at, radix },
                Digit::Group(fk) => {
                    let Some(Forced::Follow { radix: r, place: p, key, .. }) = forced.get(&name).copied() else {
                        unreachable!("a group digit is a Follow")
                    };
                    Forced::Follow { fk, group_place: at, parent_rows: radix, radix: r, place: p, key }
                }
            };
            forced.insert(name, f);
        }
        place = place.saturating_mul(full);
    }
    Ok(())
}

/// Whether `t`'s rows fit in the `combinations` its unique key `key` can
/// take, or what to change.
fn fits(t: &TableSpec, key: &[String], combinations: u64) -> Result<(), String> {
    if t.rows <= combinations {
        return Ok(());
    }
    Err(format!(
        "unique key ({}) of `{}` has only {combinations} combinations of its parents' keys, fewer than its {} rows (give the parents more rows or this table fewer)",
        key.join(", "),
        t.name,
        t.rows
    ))
}

/// For each radix, the largest modulus at most it that is coprime with the
/// moduli of the larger radices (1 at worst), in the order given.
fn coprime(radices: &[u64]) -> Vec<u64> {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let mut order: Vec<usize> = (0..radices.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(radices[*i]));
    let mut out = vec![1u64; radices.len()];
    let mut chosen: Vec<u64> = Vec::new();
    for i in order {
        let mut m = radices[i].max(1);
        while m > 1 && chosen.iter().any(|c| gcd(*c, m) != 1) {
            m -= 1;
        }
        chosen.push(m);
        out[i] = m;
    }
    out
}

/// `g`, the generator of `c`, made to be what `f` says.
pub fn apply(c: &ColumnInfo, g: ValueGen, f: Forced) -> ValueGen {
    match f {
        Forced::SpacedDays => ValueGen::spaced_days(),
        Forced::Label { place, radix } => match c.ty.kind() {
            tokio_postgres::types::Kind::Enum(labels) => ValueGen::label_digit(labels, place, radix),
            _ => g,
        },
        Forced::Unique => g.with_unique(true),
        Forced::Key { radix, place, key } => ValueGen::digit(radix, place, key),
        Forced::RandomKey { rows, key } => ValueGen::typed_key(rows, key),
        Forced::Follow { group_place, parent_rows, radix, place, key, .. } => {
            ValueGen::follow(group_place, parent_rows, radix, place, key)
        }
        Forced::Spaced => ValueGen::spaced(0),
    }
}

#[cfg(test)]
mod tests {
    use super::coprime;

    #[test]
    fn moduli_are_pairwise_coprime_and_as_large_as_they_can_be() {
        // 1000 keeps its size; 500 shares a factor with it, 499 does not.
        assert_eq!(coprime(&[1000, 500]), vec![1000, 499]);
        assert_eq!(coprime(&[500, 1000]), vec![499, 1000]);
        assert_eq!(coprime(&[7, 5, 3]), vec![7, 5, 3]);
        // Two equal radices cannot both keep their size.
        assert_eq!(coprime(&[10, 10]), vec![10, 9]);
        assert_eq!(coprime(&[1, 4]), vec![1, 4]);
    }
}
