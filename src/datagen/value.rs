//! Generated values and their binary wire format.
//!
//! A query parameter (`ToSql`) and a field of a binary COPY row carry the
//! same bytes: the type's binary `send` format. So one encoder serves both
//! the loader and the workload, and a value converts to whatever column or
//! parameter type it lands in (an integer into `numeric`, a string into an
//! enum, a timestamp into a date).

use std::error::Error as StdError;
use std::fmt;

use bytes::{BufMut, BytesMut};
use postgres_types::{IsNull, Kind, ToSql, Type, to_sql_checked};

/// A generated value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// Microseconds since 2000-01-01 00:00:00 UTC.
    Timestamp(i64),
    /// Days since 2000-01-01.
    Date(i32),
    /// A UUID's 16 bytes.
    Uuid([u8; 16]),
    /// A JSON document, as text.
    Json(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A one-dimensional array.
    Array(Vec<Value>),
    /// A random number that becomes a value of whatever type it is written
    /// as (see [`Value::any_as`]).
    Any(u64),
}

impl Value {
    /// The value as JSON, for a field of a generated JSON object:
    /// timestamps and dates as ISO 8601 text, UUIDs in their usual form.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Text(s) => J::String(s.clone()),
            Value::Bool(b) => J::Bool(*b),
            Value::Timestamp(us) => J::String(crate::scenario::calendar::format_timestamp(*us)),
            Value::Date(d) => J::String(crate::scenario::calendar::format_date(*d)),
            Value::Uuid(b) => J::String(format_uuid(b)),
            Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| J::String(s.clone())),
            Value::Bytes(b) => J::String(b.iter().map(|x| format!("{x:02x}")).collect()),
            Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Any(n) => J::from(*n % 1_000_000),
        }
    }
}

/// The binary formats the encoder writes, resolved from a Postgres type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgKind {
    /// `boolean`
    Bool,
    /// `smallint`
    Int2,
    /// `integer`
    Int4,
    /// `bigint`
    Int8,
    /// `real`
    Float4,
    /// `double precision`
    Float8,
    /// `numeric`
    Numeric,
    /// `text`, `varchar`, `char(n)`, `name`, enums and text-like types.
    Text,
    /// `json`
    Json,
    /// `jsonb`
    Jsonb,
    /// `timestamp`
    Timestamp,
    /// `timestamptz`
    Timestamptz,
    /// `date`
    Date,
    /// `uuid`
    Uuid,
    /// `bytea`
    Bytea,
    /// `xid8` (a 64-bit transaction id) and `pg_lsn`.
    Xid8,
    /// `money`: cents as a 64-bit integer.
    Money,
    /// `inet`: an IPv4 host address.
    Inet,
    /// `cidr`: an IPv4 /24 network.
    Cidr,
    /// `macaddr`
    Macaddr,
    /// `interval`: seconds.
    Interval,
    /// `time`: microseconds since midnight.
    Time,
    /// `tsvector`: the words of a text, as lexemes.
    Tsvector,
    /// `ltree` (the extension): a dotted label path.
    Ltree,
    /// `hstore` (the extension): key/value pairs.
    Hstore,
    /// `bit(n)`: exactly n bits (0: a parameter, any length).
    Bit(u32),
    /// `varbit(n)`: at most n bits (0: no limit).
    Varbit(u32),
    /// A range of `elem` (`int4range`, `tstzrange`, …).
    Range(&'static PgKind),
    /// A multirange of `elem` (`int4multirange`, …).
    Multirange(&'static PgKind),
    /// `pg_snapshot` and `txid_snapshot`: xmin, xmax and the running xids.
    Snapshot,
    /// `point`: two float8s.
    Point,
    /// `timetz`: microseconds since midnight and a zone offset.
    Timetz,
    /// `macaddr8`
    Macaddr8,
    /// `oid` and `xid`: an unsigned 32-bit integer.
    Oid,
    /// `"char"`: one byte.
    Char,
    /// A one-dimensional array of `elem`, whose type has `oid`.
    Array {
        /// The elements' format.
        elem: &'static PgKind,
        /// The element type's OID, written into every array.
        oid: u32,
    },
}

/// A `'static` reference to a scalar kind, for [`PgKind::Array`].
fn scalar(kind: PgKind) -> Option<&'static PgKind> {
    use PgKind as K;
    Some(match kind {
        K::Bool => &K::Bool,
        K::Int2 => &K::Int2,
        K::Int4 => &K::Int4,
        K::Int8 => &K::Int8,
        K::Float4 => &K::Float4,
        K::Float8 => &K::Float8,
        K::Numeric => &K::Numeric,
        K::Text => &K::Text,
        K::Json => &K::Json,
        K::Jsonb => &K::Jsonb,
        K::Timestamp => &K::Timestamp,
        K::Timestamptz => &K::Timestamptz,
        K::Date => &K::Date,
        K::Uuid => &K::Uuid,
        K::Bytea => &K::Bytea,
        K::Xid8 => &K::Xid8,
        K::Money => &K::Money,
        K::Inet => &K::Inet,
        K::Cidr => &K::Cidr,
        K::Macaddr => &K::Macaddr,
        K::Interval => &K::Interval,
        K::Time => &K::Time,
        K::Tsvector => &K::Tsvector,
        K::Ltree => &K::Ltree,
        K::Hstore => &K::Hstore,
        K::Bit(_) => &K::Bit(0),
        K::Varbit(_) => &K::Varbit(0),
        K::Snapshot => &K::Snapshot,
        K::Point => &K::Point,
        K::Timetz => &K::Timetz,
        K::Macaddr8 => &K::Macaddr8,
        K::Oid => &K::Oid,
        K::Char => &K::Char,
        K::Range(e) => match e {
            K::Int4 => &K::Range(&K::Int4),
            K::Int8 => &K::Range(&K::Int8),
            K::Numeric => &K::Range(&K::Numeric),
            K::Date => &K::Range(&K::Date),
            K::Timestamp => &K::Range(&K::Timestamp),
            _ => &K::Range(&K::Timestamptz),
        },
        K::Multirange(_) | K::Array { .. } => return None,
    })
}

impl PgKind {
    /// The format of a type, looking through domains; `None` for types the
    /// encoder does not write.
    pub fn of(ty: &Type) -> Option<PgKind> {
        Some(match *ty {
            Type::BOOL => PgKind::Bool,
            Type::INT2 => PgKind::Int2,
            Type::INT4 => PgKind::Int4,
            Type::INT8 => PgKind::Int8,
            Type::FLOAT4 => PgKind::Float4,
            Type::FLOAT8 => PgKind::Float8,
            Type::NUMERIC => PgKind::Numeric,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => PgKind::Text,
            Type::JSON => PgKind::Json,
            Type::JSONB => PgKind::Jsonb,
            Type::TIMESTAMP => PgKind::Timestamp,
            Type::TIMESTAMPTZ => PgKind::Timestamptz,
            Type::DATE => PgKind::Date,
            Type::UUID => PgKind::Uuid,
            Type::BYTEA => PgKind::Bytea,
            Type::XID8 | Type::PG_LSN => PgKind::Xid8,
            Type::MONEY => PgKind::Money,
            Type::INET => PgKind::Inet,
            Type::CIDR => PgKind::Cidr,
            Type::MACADDR => PgKind::Macaddr,
            Type::INTERVAL => PgKind::Interval,
            Type::TIME => PgKind::Time,
            Type::TS_VECTOR => PgKind::Tsvector,
            Type::BIT => PgKind::Bit(0),
            Type::VARBIT => PgKind::Varbit(0),
            Type::PG_SNAPSHOT | Type::TXID_SNAPSHOT => PgKind::Snapshot,
            Type::POINT => PgKind::Point,
            Type::TIMETZ => PgKind::Timetz,
            Type::MACADDR8 => PgKind::Macaddr8,
            Type::OID | Type::XID | Type::REGCLASS | Type::REGTYPE | Type::REGPROC => PgKind::Oid,
            Type::CHAR => PgKind::Char,
            _ => match ty.kind() {
                Kind::Enum(_) => PgKind::Text,
                Kind::Domain(inner) => return PgKind::of(inner),
                Kind::Array(elem) => PgKind::Array { elem: scalar(PgKind::of(elem)?)?, oid: elem.oid() },
                Kind::Range(elem) => PgKind::Range(range_of(PgKind::of(elem)?)?),
                Kind::Multirange(elem) => PgKind::Multirange(range_of(PgKind::of(elem)?)?),
                // citext and similar extension types receive text.
                _ if ty.name() == "citext" => PgKind::Text,
                _ if ty.name() == "ltree" => PgKind::Ltree,
                _ if ty.name() == "hstore" => PgKind::Hstore,
                _ => return None,
            },
        })
    }

    /// The format of a column's type: `PgKind::of`, with the length of a
    /// `bit(n)` or `varbit(n)` from the column's `atttypmod`.
    pub fn of_column(ty: &Type, typmod: i32) -> Option<PgKind> {
        let n = u32::try_from(typmod).unwrap_or(0);
        Some(match PgKind::of(ty)? {
            // A bare `bit` is `bit(1)`.
            PgKind::Bit(_) => PgKind::Bit(n.max(1)),
            PgKind::Varbit(_) => PgKind::Varbit(n),
            kind => kind,
        })
    }
}

/// The bound kinds a range can have, as `'static` references.
fn range_of(elem: PgKind) -> Option<&'static PgKind> {
    use PgKind as K;
    Some(match elem {
        K::Int4 => &K::Int4,
        K::Int8 => &K::Int8,
        K::Numeric => &K::Numeric,
        K::Date => &K::Date,
        K::Timestamp => &K::Timestamp,
        K::Timestamptz => &K::Timestamptz,
        _ => return None,
    })
}

/// A value that does not fit the type it is written as.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeError {
    /// The value, shortened.
    pub value: String,
    /// The target type.
    pub target: String,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write {} as {}", self.value, self.target)
    }
}

impl StdError for EncodeError {}

fn mismatch(value: &Value, kind: PgKind) -> EncodeError {
    let mut shown = format!("{value:?}");
    if shown.len() > 60 {
        shown.truncate(60);
        shown.push('…');
    }
    EncodeError { value: shown, target: format!("{kind:?}").to_lowercase() }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Value {
    /// Writes the value's binary format for `kind` (without the length
    /// prefix). Must not be called on `Null`.
    pub fn encode(&self, kind: PgKind, out: &mut BytesMut) -> Result<(), EncodeError> {
        use PgKind as K;
        let err = || mismatch(self, kind);
        match (self, kind) {
            (Value::Null, _) => return Err(err()),
            (Value::Any(n), _) => return Value::any_as(*n, kind).encode(kind, out),
            (Value::Bool(b), K::Bool) => out.put_u8(*b as u8),
            (Value::Int(i), K::Bool) => out.put_u8((*i != 0) as u8),
            (Value::Int(i), K::Int2) => out.put_i16(i16::try_from(*i).map_err(|_| err())?),
            (Value::Int(i), K::Int4) => out.put_i32(i32::try_from(*i).map_err(|_| err())?),
            (Value::Int(i), K::Int8) => out.put_i64(*i),
            (Value::Int(i), K::Float4) => out.put_f32(*i as f32),
            (Value::Int(i), K::Float8) => out.put_f64(*i as f64),
            (Value::Int(i), K::Numeric) => super::numeric::encode_numeric(&i.to_string(), out).ok_or_else(err)?,
            (Value::Float(f), K::Float4) => out.put_f32(*f as f32),
            (Value::Float(f), K::Float8) => out.put_f64(*f),
            (Value::Float(f), K::Numeric) if f.is_finite() => {
                super::numeric::encode_numeric(&format!("{f:.6}"), out).ok_or_else(err)?
            }
            (Value::Float(f), K::Int2 | K::Int4 | K::Int8) => Value::Int(f.round() as i64).encode(kind, out)?,
            (Value::Timestamp(us), K::Timestamp | K::Timestamptz) => out.put_i64(*us),
            (Value::Timestamp(us), K::Date) => out.put_i32(us.div_euclid(MICROS_PER_DAY) as i32),
            (Value::Date(d), K::Date) => out.put_i32(*d),
            (Value::Date(d), K::Timestamp | K::Timestamptz) => out.put_i64(*d as i64 * MICROS_PER_DAY),
            (Value::Uuid(b), K::Uuid) => out.put_slice(b),
            (Value::Uuid(b), K::Text) => out.put_slice(format_uuid(b).as_bytes()),
            (Value::Json(s), K::Json | K::Text) => out.put_slice(s.as_bytes()),
            (Value::Json(s), K::Jsonb) => {
                out.put_u8(1);
                out.put_slice(s.as_bytes());
            }
            (Value::Text(s), K::Text | K::Json) => out.put_slice(s.as_bytes()),
            (Value::Text(s), K::Jsonb) => {
                out.put_u8(1);
                out.put_slice(s.as_bytes());
            }
            (Value::Text(s), K::Bytea) => out.put_slice(s.as_bytes()),
            (Value::Text(s), K::Numeric) => super::numeric::encode_numeric(s.trim(), out).ok_or_else(err)?,
            (Value::Bytes(b), K::Bytea) => out.put_slice(b),
            (Value::Int(i), K::Xid8 | K::Money) => out.put_i64(*i),
            (Value::Int(i), K::Inet | K::Cidr) => {
                // family (PGSQL_AF_INET), bits, is_cidr, address length, address.
                let cidr = kind == K::Cidr;
                let mut addr = (*i as u32).to_be_bytes();
                if cidr {
                    addr[3] = 0;
                }
                out.put_slice(&[2, if cidr { 24 } else { 32 }, cidr as u8, 4]);
                out.put_slice(&addr);
            }
            (Value::Int(i), K::Macaddr) => out.put_slice(&(*i as u64).to_be_bytes()[2..]),
            (Value::Int(secs), K::Interval) => {
                out.put_i64(secs.saturating_mul(1_000_000));
                out.put_i32(0);
                out.put_i32(0);
            }
            (Value::Int(us), K::Time) => out.put_i64(us.rem_euclid(MICROS_PER_DAY)),
            (Value::Timestamp(us), K::Time) => out.put_i64(us.rem_euclid(MICROS_PER_DAY)),
            (Value::Text(s), K::Tsvector) => super::compound::encode_tsvector(s, out).ok_or_else(err)?,
            // ltree's binary format: a version byte, then the text.
            (Value::Text(s), K::Ltree) => {
                out.put_u8(1);
                out.put_slice(s.as_bytes());
            }
            (Value::Text(s), K::Hstore) => super::compound::encode_hstore(s, out).ok_or_else(err)?,
            (
                _,
                K::Bit(_)
                | K::Varbit(_)
                | K::Range(_)
                | K::Multirange(_)
                | K::Snapshot
                | K::Point
                | K::Timetz
                | K::Macaddr8
                | K::Oid
                | K::Char,
            ) => super::compound::encode(self, kind, out).ok_or_else(err)?,
            (Value::Array(items), K::Array { elem, oid }) => {
                // ndim, has-nulls flag, element type, then (length, lower
                // bound) per dimension, then each element with its length.
                out.put_i32(if items.is_empty() { 0 } else { 1 });
                out.put_i32(items.contains(&Value::Null) as i32);
                out.put_u32(oid);
                if !items.is_empty() {
                    out.put_i32(i32::try_from(items.len()).map_err(|_| err())?);
                    out.put_i32(1);
                }
                for item in items {
                    if *item == Value::Null {
                        out.put_i32(-1);
                        continue;
                    }
                    let at = out.len();
                    out.put_i32(0);
                    item.encode(*elem, out)?;
                    let len = (out.len() - at - 4) as i32;
                    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
                }
            }
            (Value::Array(_), K::Json | K::Jsonb | K::Text) => {
                return Value::Json(self.to_json().to_string()).encode(kind, out);
            }
            (Value::Text(s), _) => return parse_text(s, kind).ok_or_else(err)?.encode(kind, out),
            (Value::Int(i), K::Text) => out.put_slice(i.to_string().as_bytes()),
            (Value::Float(f), K::Text) => out.put_slice(f.to_string().as_bytes()),
            (Value::Bool(b), K::Text) => out.put_slice(if *b { b"true" } else { b"false" }),
            _ => return Err(err()),
        }
        Ok(())
    }
}

/// Reads a string as the value a typed column expects, so that
/// `one_of = ["2024-01-01"]` can fill a date and `"42"` an integer.
fn parse_text(s: &str, kind: PgKind) -> Option<Value> {
    use PgKind as K;
    match kind {
        K::Int2 | K::Int4 | K::Int8 => s.trim().parse().ok().map(Value::Int),
        K::Float4 | K::Float8 => s.trim().parse().ok().map(Value::Float),
        K::Bool => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "on" | "1" => Some(Value::Bool(true)),
            "false" | "f" | "no" | "off" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        K::Date => crate::scenario::calendar::parse_date(s).ok().map(Value::Date),
        K::Timestamp | K::Timestamptz => crate::scenario::calendar::parse_timestamp(s).ok().map(Value::Timestamp),
        K::Uuid => parse_uuid(s).map(Value::Uuid),
        _ => None,
    }
}

fn format_uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        if *self == Value::Null {
            return Ok(IsNull::Yes);
        }
        let kind = PgKind::of(ty).ok_or_else(|| format!("parameters of type {ty} are not supported"))?;
        self.encode(kind, out)?;
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        // Conversion is checked per value in `to_sql`.
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_to_their_target() {
        let mut b = BytesMut::new();
        Value::Int(7).encode(PgKind::Int4, &mut b).unwrap();
        assert_eq!(&b[..], &7i32.to_be_bytes());
        b.clear();
        Value::Text("2000-01-02".into()).encode(PgKind::Date, &mut b).unwrap();
        assert_eq!(&b[..], &1i32.to_be_bytes());
        b.clear();
        assert!(Value::Int(70_000).encode(PgKind::Int2, &mut b).is_err());
        assert!(Value::Bool(true).encode(PgKind::Uuid, &mut b).is_err());
    }

    #[test]
    fn uuid_round_trips_through_text() {
        let bytes = [0x12u8; 16];
        assert_eq!(parse_uuid(&format_uuid(&bytes)), Some(bytes));
    }
}
