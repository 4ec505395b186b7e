//! Columns as the catalog describes them, and the generator each one gets
//! when the scenario names none: from its name first (`email`, `city`,
//! `*_id` → a key of the matching table), then from its type.

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::generate::ValueGen;
use super::value::PgKind;
use crate::scenario::{FakeKind, GenSpec, Literal, ValueSpec};

/// The declared length of a `varchar(n)` or `char(n)` column, in
/// characters: generated text is cut to it, as the column cannot hold more.
pub fn max_len(col: &ColumnInfo) -> Option<usize> {
    match col.ty {
        Type::VARCHAR | Type::BPCHAR if col.typmod > 4 => Some((col.typmod - 4) as usize),
        _ => None,
    }
}

/// One column of a table to fill.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    /// Its name.
    pub name: String,
    /// Its name quoted for SQL.
    pub quoted: String,
    /// Its type, with enums and domains resolved.
    pub ty: Type,
    /// `atttypmod`: the n of `varchar(n)`, precision and scale of numeric.
    pub typmod: i32,
    /// Whether it is NOT NULL.
    pub not_null: bool,
    /// Whether it has a DEFAULT (which fills it when the COPY leaves it out).
    pub has_default: bool,
    /// The sequence behind an identity or serial column.
    pub sequence: Option<String>,
    /// Alone, it is the primary key or a unique key.
    pub unique_key: bool,
    /// Alone, it is a foreign key into this table (regclass text).
    pub references: Option<String>,
    /// Alone, a foreign key of some table points at it.
    pub referenced: bool,
    /// Its table (regclass text).
    pub table: String,
}

/// Reads the fillable columns of `table` (a regclass text): every column
/// but generated ones, in order.
pub async fn columns(client: &Client, table: &str) -> Result<Vec<ColumnInfo>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.attname, quote_ident(a.attname), a.atttypmod, a.attnotnull, \
                    pg_get_serial_sequence($1, a.attname), \
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique \
                            AND i.indnatts = 1 AND i.indkey[0] = a.attnum \
                            AND i.indpred IS NULL AND i.indexprs IS NULL), \
                    (SELECT k.confrelid::regclass::text FROM pg_constraint k \
                     WHERE k.conrelid = a.attrelid AND k.contype = 'f' AND k.conkey = ARRAY[a.attnum] LIMIT 1), \
                    EXISTS (SELECT 1 FROM pg_constraint k WHERE k.confrelid = a.attrelid AND k.contype = 'f' \
                            AND k.confkey = ARRAY[a.attnum]), \
                    a.atthasdef \
             FROM pg_attribute a \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
               AND a.attgenerated = '' \
             ORDER BY a.attnum",
            &[&table],
        )
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Let the driver resolve each column's type (enums, domains) the way it
    // will when it writes them.
    let list: Vec<String> = rows.iter().map(|r| r.get::<_, String>(1)).collect();
    let stmt = client.prepare(&format!("SELECT {} FROM {table} LIMIT 0", list.join(", "))).await?;
    Ok(rows
        .iter()
        .zip(stmt.columns())
        .map(|(r, c)| ColumnInfo {
            name: r.get(0),
            quoted: r.get(1),
            typmod: r.get(2),
            not_null: r.get(3),
            sequence: r.get(4),
            unique_key: r.get(5),
            references: r.get(6),
            referenced: r.get(7),
            has_default: r.get(8),
            table: table.to_string(),
            ty: c.type_().clone(),
        })
        .collect())
}

fn words_of(name: &str) -> Vec<&str> {
    name.split('_').filter(|w| !w.is_empty()).collect()
}

/// The table a `*_id` column points at: `customer_id` → `customers`,
/// `customer`, `categories` for `category_id`.
fn parent_table<'a>(column: &str, tables: &'a [(String, u64)]) -> Option<&'a (String, u64)> {
    let stem = column.strip_suffix("_id")?.to_ascii_lowercase();
    let mut names = vec![stem.clone(), format!("{stem}s"), format!("{stem}es")];
    if let Some(s) = stem.strip_suffix('y') {
        names.push(format!("{s}ies"));
    }
    tables.iter().find(|(t, rows)| {
        let last = t.rsplit('.').next().unwrap_or(t).trim_matches('"').to_ascii_lowercase();
        *rows > 0 && names.contains(&last)
    })
}

/// Why a NOT NULL column of a type the binary COPY cannot write stops the
/// load, and what to change.
pub fn unwritable(col: &ColumnInfo) -> String {
    format!(
        "{}column `{}` has type {}, which rehearse cannot write yet; give it a DEFAULT in the schema (the load then \
         leaves it to the server) or let it be NULL",
        if col.not_null { "NOT NULL " } else { "" },
        col.name,
        col.ty.name()
    )
}

fn spec(kind: GenSpec) -> ValueGen {
    ValueGen::from_spec(&ValueSpec { kind, nulls: 0.0 })
}

/// The generator for a column nobody described, or why there is none.
/// `tables` holds (name, rows) of every generated table.
pub fn infer(col: &ColumnInfo, tables: &[(String, u64)]) -> Result<ValueGen, String> {
    let kind = PgKind::of_column(&col.ty, col.typmod);
    let name = col.name.to_ascii_lowercase();
    let words = words_of(&name);
    let is_int = matches!(kind, Some(PgKind::Int2 | PgKind::Int4 | PgKind::Int8 | PgKind::Numeric));
    let has = |w: &str| words.contains(&w);

    if let Some(parent) = col.references.as_ref().filter(|_| is_int) {
        return match tables.iter().find(|(t, _)| t == parent) {
            Some((table, rows)) if *rows > 0 => Ok(spec(GenSpec::KeyOf { table: table.clone(), rows: *rows })),
            _ if !col.not_null => Ok(ValueGen::null()),
            _ => Err(format!(
                "NOT NULL column `{}` references table {parent}, which the scenario does not fill; give it rows",
                col.name
            )),
        };
    }
    if is_int && (col.sequence.is_some() || col.unique_key || name == "id") {
        return Ok(spec(GenSpec::Sequence { start: 1 }));
    }
    if is_int && name.ends_with("_id") {
        return Ok(match parent_table(&name, tables) {
            Some((table, rows)) => spec(GenSpec::KeyOf { table: table.clone(), rows: *rows }),
            None => spec(GenSpec::Int { lo: 1, hi: 100_000 }),
        });
    }
    let max_len = max_len(col);
    let Some(kind) = kind else {
        if !col.not_null {
            return Ok(ValueGen::null());
        }
        return Err(unwritable(col));
    };
    // An enum's labels are the only values it takes, whatever its name.
    if let tokio_postgres::types::Kind::Enum(labels) = col.ty.kind() {
        return Ok(spec(GenSpec::OneOf {
            values: labels.iter().map(|l| Literal::Text(l.clone())).collect(),
            weights: None,
        }));
    }
    let generator = match kind {
        PgKind::Text => {
            let fake = if has("email") || name.ends_with("email") {
                Some(FakeKind::Email)
            } else if name.contains("first_name") || name == "firstname" {
                Some(FakeKind::FirstName)
            } else if name.contains("last_name") || name == "lastname" || has("surname") {
                Some(FakeKind::LastName)
            } else if has("username") || has("login") || name == "user_name" {
                Some(FakeKind::Username)
            } else if has("company") || has("organization") || has("employer") {
                Some(FakeKind::Company)
            } else if has("name") {
                Some(FakeKind::Name)
            } else if has("city") || has("town") {
                Some(FakeKind::City)
            } else if has("country") {
                Some(FakeKind::Country)
            } else if has("street") || has("address") {
                Some(FakeKind::Street)
            } else if has("phone") || has("mobile") || has("tel") {
                Some(FakeKind::Phone)
            } else {
                None
            };
            match fake {
                Some(k) => spec(GenSpec::Fake(k)).with_unique(col.unique_key),
                None if has("status") || has("state") => spec(GenSpec::OneOf {
                    values: ["new", "active", "done"].map(|s| Literal::Text(s.into())).to_vec(),
                    weights: None,
                }),
                None => spec(GenSpec::Words { min: 1, max: 4 }).with_unique(col.unique_key),
            }
        }
        PgKind::Int2 => spec(GenSpec::Int { lo: 0, hi: 10_000 }),
        PgKind::Int4 | PgKind::Int8 => spec(GenSpec::Int { lo: 0, hi: 1_000_000 }),
        PgKind::Float4 | PgKind::Float8 => spec(GenSpec::Float { lo: 0.0, hi: 1000.0 }),
        PgKind::Numeric => {
            // numeric(p, s) holds values below 10^(p - s).
            let hi = if col.typmod > 4 {
                let precision = ((col.typmod - 4) >> 16) & 0xffff;
                let scale = (col.typmod - 4) & 0xffff;
                10f64.powi(precision - scale).min(10_000.0) - 1.0
            } else {
                10_000.0
            };
            spec(GenSpec::Float { lo: 0.0, hi: hi.max(0.5) })
        }
        PgKind::Bool => spec(GenSpec::Bool),
        PgKind::Uuid => spec(GenSpec::Uuid),
        PgKind::Xid8 => spec(GenSpec::Int { lo: 1, hi: 1_000_000_000 }),
        PgKind::Money => spec(GenSpec::Int { lo: 0, hi: 10_000_000 }),
        // 10.0.0.0/8 hosts, /24 networks of them.
        PgKind::Inet | PgKind::Cidr => spec(GenSpec::Int { lo: 0x0a00_0001, hi: 0x0aff_fffe }),
        PgKind::Macaddr => spec(GenSpec::Int { lo: 0x0800_2b00_0000, hi: 0x0800_2bff_ffff }),
        // Up to 30 days.
        PgKind::Interval => spec(GenSpec::Int { lo: 0, hi: 30 * 86_400 }),
        PgKind::Time => spec(GenSpec::Int { lo: 0, hi: 86_400_000_000 - 1 }),
        // Real words, so that a GIN index over them costs what it costs.
        PgKind::Tsvector => spec(GenSpec::Words { min: 5, max: 30 }),
        PgKind::Ltree | PgKind::Hstore | PgKind::Point | PgKind::Char => spec(GenSpec::Any),
        PgKind::Bit(_) | PgKind::Varbit(_) | PgKind::Macaddr8 => spec(GenSpec::Int { lo: 0, hi: i64::MAX }),
        // Row i gets the i-th of non-overlapping ranges, so an exclusion
        // constraint (`EXCLUDE USING gist (… WITH &&)`) holds.
        PgKind::Range(_) | PgKind::Multirange(_) => spec(GenSpec::Sequence { start: 0 }),
        PgKind::Snapshot => spec(GenSpec::Int { lo: 3, hi: 1_000_000_000 }),
        PgKind::Timetz => spec(GenSpec::Int { lo: 0, hi: 86_400_000_000 - 1 }),
        PgKind::Oid => spec(GenSpec::Int { lo: 1, hi: 1_000_000 }),
        // Rows are inserted over time: their creation time rises with them.
        PgKind::Timestamp | PgKind::Timestamptz if matches!(name.as_str(), "created_at" | "inserted_at") => {
            let GenSpec::Timestamp { lo, hi } = GenSpec::default_timestamp() else { unreachable!() };
            spec(GenSpec::Increasing { lo, hi })
        }
        PgKind::Timestamp | PgKind::Timestamptz => spec(GenSpec::default_timestamp()),
        PgKind::Date => spec(GenSpec::default_date()),
        PgKind::Json | PgKind::Jsonb => ValueGen::json(),
        PgKind::Bytea => ValueGen::bytes(),
        PgKind::Array { elem, .. } => {
            let labels = match col.ty.kind() {
                tokio_postgres::types::Kind::Array(e) => match e.kind() {
                    tokio_postgres::types::Kind::Enum(labels) => Some(labels.clone()),
                    _ => None,
                },
                _ => None,
            };
            let of = match elem {
                // An array of an enum holds its labels.
                PgKind::Text if labels.is_some() => GenSpec::OneOf {
                    values: labels.unwrap_or_default().into_iter().map(Literal::Text).collect(),
                    weights: None,
                },
                PgKind::Text => GenSpec::Words { min: 1, max: 1 },
                PgKind::Int2 | PgKind::Int4 | PgKind::Int8 => GenSpec::Int { lo: 0, hi: 1000 },
                PgKind::Float4 | PgKind::Float8 | PgKind::Numeric => GenSpec::Float { lo: 0.0, hi: 1000.0 },
                PgKind::Bool => GenSpec::Bool,
                PgKind::Uuid => GenSpec::Uuid,
                PgKind::Date => GenSpec::default_date(),
                PgKind::Timestamp | PgKind::Timestamptz => GenSpec::default_timestamp(),
                // Any other element: a random value of its type.
                _ => GenSpec::Any,
            };
            spec(GenSpec::Array { of: Box::new(ValueSpec { kind: of, nulls: 0.0 }), min: 0, max: 3 })
        }
    };
    Ok(generator.with_max_len(max_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: Type) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            quoted: name.into(),
            ty,
            typmod: -1,
            not_null: true,
            has_default: false,
            sequence: None,
            unique_key: false,
            references: None,
            referenced: false,
            table: "t".into(),
        }
    }

    fn first(g: &ValueGen) -> super::super::value::Value {
        g.generate(0, &mut super::super::generate::rng_for(1, 1, 1))
    }

    #[test]
    fn foreign_keys_follow_the_parent_tables_size() {
        let tables = vec![("customers".to_string(), 10), ("categories".to_string(), 5)];
        let g = infer(&col("customer_id", Type::INT8), &tables).unwrap();
        for i in 0..200 {
            let super::super::value::Value::Int(k) = g.generate(i, &mut super::super::generate::rng_for(1, 1, i))
            else {
                panic!()
            };
            assert!((1..=10).contains(&k));
        }
        assert!(parent_table("category_id", &tables).is_some());
        assert!(parent_table("vendor_id", &tables).is_none());
    }

    #[test]
    fn names_pick_realistic_text() {
        let super::super::value::Value::Text(e) = first(&infer(&col("email", Type::TEXT), &[]).unwrap()) else {
            panic!()
        };
        assert!(e.contains('@'));
    }

    #[test]
    fn unknown_not_null_types_are_an_error_nullable_ones_null() {
        assert!(infer(&col("shape", Type::BOX), &[]).unwrap_err().contains("give it a DEFAULT"));
        let mut c = col("shape", Type::BOX);
        c.not_null = false;
        assert!(infer(&c, &[]).unwrap().is_null());
    }
}
