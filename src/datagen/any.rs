//! The generator `"any"`: a random number that becomes, when it is
//! written, a value of whatever type its column or placeholder has.

use super::value::{PgKind, Value};

impl Value {
    /// The value of kind `kind` that the random number `n` stands for: a
    /// key-sized integer, a word, a time within 2024, …
    pub fn any_as(n: u64, kind: PgKind) -> Value {
        use PgKind as K;
        const WORDS: [&str; 8] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"];
        match kind {
            K::Bool => Value::Bool(n & 1 == 1),
            K::Int2 => Value::Int((n % 10_000) as i64),
            K::Int4 | K::Int8 | K::Xid8 | K::Money | K::Numeric => Value::Int((n % 1_000_000) as i64 + 1),
            K::Float4 | K::Float8 => Value::Float((n % 1_000_000) as f64 / 100.0),
            K::Ltree => Value::Text(format!("{}.n{}", WORDS[(n % 8) as usize], n % 100_000)),
            K::Hstore => Value::Text(format!("{}=>{}", WORDS[(n % 8) as usize], n % 100_000)),
            K::Text | K::Tsvector => Value::Text(format!("{} {}", WORDS[(n % 8) as usize], n % 100_000)),
            K::Json | K::Jsonb => Value::Json(format!("{{\"n\": {}}}", n % 100_000)),
            // 2024-01-01 plus up to a year.
            K::Timestamp | K::Timestamptz => {
                Value::Timestamp(757_382_400_000_000 + (n % 31_536_000) as i64 * 1_000_000)
            }
            K::Date => Value::Date(8766 + (n % 365) as i32),
            K::Uuid => {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&n.to_be_bytes());
                b[8..].copy_from_slice(&n.rotate_left(17).to_be_bytes());
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                Value::Uuid(b)
            }
            K::Bytea => Value::Bytes(n.to_be_bytes().to_vec()),
            K::Inet | K::Cidr => Value::Int(0x0a00_0001 + (n % 0x00ff_fffe) as i64),
            K::Macaddr => Value::Int(0x0800_2b00_0000 + (n % 0x00ff_ffff) as i64),
            K::Interval => Value::Int((n % 86_400) as i64),
            K::Time => Value::Int((n % 86_400) as i64 * 1_000_000),
            K::Array { elem, .. } => Value::Array(vec![Value::any_as(n, *elem)]),
            K::Bit(_) | K::Varbit(_) | K::Macaddr8 => Value::Int(n as i64),
            K::Range(_) | K::Multirange(_) => Value::Int((n % 1_000_000) as i64),
            K::Snapshot => Value::Int((n % 1_000_000) as i64 + 3),
            K::Point => Value::Array(vec![
                Value::Float((n % 36_000) as f64 / 100.0 - 180.0),
                Value::Float((n / 36_000 % 18_000) as f64 / 100.0 - 90.0),
            ]),
            K::Timetz => Value::Int((n % 86_400) as i64 * 1_000_000),
            K::Oid => Value::Int((n % 1_000_000) as i64 + 1),
            K::Char => Value::Int((n % 26) as i64),
        }
    }
}
