//! The binary formats of values made of parts: a tsvector's lexemes, an
//! hstore's pairs, a bit string's bits and a range's bounds.

use bytes::{BufMut, BytesMut};

use super::value::{PgKind, Value};

/// Writes `k=>v, k2=>v2` in hstore's binary format: the pair count, then
/// each key and value with its length.
pub(super) fn encode_hstore(text: &str, out: &mut BytesMut) -> Option<()> {
    let pairs: Vec<(&str, &str)> = text
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.split_once("=>").map(|(k, v)| (k.trim().trim_matches('"'), v.trim().trim_matches('"'))))
        .collect::<Option<_>>()?;
    out.put_i32(i32::try_from(pairs.len()).ok()?);
    for (k, v) in pairs {
        out.put_i32(k.len() as i32);
        out.put_slice(k.as_bytes());
        out.put_i32(v.len() as i32);
        out.put_slice(v.as_bytes());
    }
    Some(())
}

/// Writes the words of `text` as a tsvector's lexemes (no positions), in
/// its binary format: their count, then each as a NUL-terminated string
/// and a position count of 0. The server sorts them and drops duplicates.
pub(super) fn encode_tsvector(text: &str, out: &mut BytesMut) -> Option<()> {
    let words: std::collections::BTreeSet<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.len() < 2048)
        .map(str::to_lowercase)
        .collect();
    out.put_i32(i32::try_from(words.len()).ok()?);
    for w in words {
        out.put_slice(w.as_bytes());
        out.put_u8(0);
        out.put_u16(0);
    }
    Some(())
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Writes `value` as one of the kinds made of parts (bit strings, ranges,
/// snapshots, points) or of the small fixed-size ones (timetz, macaddr8,
/// oid, "char"); `None` when the value does not fit.
pub(super) fn encode(value: &Value, kind: PgKind, out: &mut BytesMut) -> Option<()> {
    match (value, kind) {
        (Value::Int(_) | Value::Text(_), PgKind::Bit(_) | PgKind::Varbit(_)) => encode_bits(value, kind, out)?,
        (Value::Int(i), PgKind::Range(elem)) => encode_range(*i, elem, out)?,
        (Value::Int(i), PgKind::Multirange(elem)) => {
            out.put_i32(1);
            let at = out.len();
            out.put_i32(0);
            encode_range(*i, elem, out)?;
            let len = (out.len() - at - 4) as i32;
            out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        (Value::Int(i), PgKind::Snapshot) => {
            // No transaction in progress: xip count 0, xmin = xmax, a
            // normal xid (>= 3).
            out.put_i32(0);
            out.put_i64((*i).max(3));
            out.put_i64((*i).max(3));
        }
        (Value::Array(xy), PgKind::Point) if xy.len() == 2 => {
            for v in xy {
                match v {
                    Value::Float(f) => out.put_f64(*f),
                    Value::Int(i) => out.put_f64(*i as f64),
                    _ => return None,
                }
            }
        }
        (Value::Int(us) | Value::Timestamp(us), PgKind::Timetz) => {
            out.put_i64(us.rem_euclid(MICROS_PER_DAY));
            out.put_i32(0);
        }
        (Value::Int(i), PgKind::Macaddr8) => out.put_i64(*i),
        (Value::Int(i), PgKind::Oid) => out.put_u32(u32::try_from(*i).ok()?),
        (Value::Int(i), PgKind::Char) => out.put_u8(b'a' + i.rem_euclid(26) as u8),
        (Value::Text(s), PgKind::Char) if s.len() == 1 => out.put_slice(s.as_bytes()),
        _ => return None,
    }
    Some(())
}

/// Writes an integer (its low bits, repeated) or a `0101` string as a bit
/// string of the kind's length, in `bit`/`varbit`'s binary format: the bit
/// count, then the bits from the most significant, the last byte
/// zero-padded.
fn encode_bits(value: &Value, kind: PgKind, out: &mut BytesMut) -> Option<()> {
    let bits: Vec<bool> = match (value, kind) {
        (Value::Text(s), PgKind::Bit(n) | PgKind::Varbit(n)) => {
            let bits: Vec<bool> = s.chars().map(|c| matches!(c, '1')).collect();
            let fits = match kind {
                PgKind::Bit(_) => n == 0 || bits.len() == n as usize,
                _ => n == 0 || bits.len() <= n as usize,
            };
            (fits && s.chars().all(|c| matches!(c, '0' | '1'))).then_some(bits)?
        }
        (Value::Int(i), PgKind::Bit(n) | PgKind::Varbit(n)) => {
            // A parameter of unknown length gets 8 bits; a varbit(n) all n.
            let len = if n == 0 { 8 } else { n as usize };
            (0..len).map(|b| (*i as u64 >> (b % 64)) & 1 == 1).collect()
        }
        _ => return None,
    };
    out.put_i32(i32::try_from(bits.len()).ok()?);
    for byte in bits.chunks(8) {
        out.put_u8(byte.iter().enumerate().fold(0u8, |acc, (k, b)| acc | ((*b as u8) << (7 - k))));
    }
    Some(())
}

/// Writes slot `i` of a range column in the range binary format (flags,
/// then each bound with its length): `[start + i·width, start + (i+1)·width)`.
/// Slots never overlap, so an `EXCLUDE USING gist (… WITH &&)` holds
/// whatever the other columns are.
fn encode_range(i: i64, elem: &PgKind, out: &mut BytesMut) -> Option<()> {
    /// Lower bound inclusive, upper exclusive.
    const LB_INC: u8 = 0x02;
    let (lo, hi) = match elem {
        PgKind::Int4 | PgKind::Int8 | PgKind::Numeric => {
            (Value::Int(i.checked_mul(10)?), Value::Int(i.checked_mul(10)?.checked_add(10)?))
        }
        // Days from 2020-01-01.
        PgKind::Date => {
            let d = 7305i32.checked_add(i32::try_from(i).ok()?)?;
            (Value::Date(d), Value::Date(d.checked_add(1)?))
        }
        // Hours from 2020-01-01.
        PgKind::Timestamp | PgKind::Timestamptz => {
            let at = 631_152_000_000_000i64.checked_add(i.checked_mul(3_600_000_000)?)?;
            (Value::Timestamp(at), Value::Timestamp(at + 3_600_000_000))
        }
        _ => return None,
    };
    out.put_u8(LB_INC);
    for bound in [lo, hi] {
        let at = out.len();
        out.put_i32(0);
        bound.encode(*elem, out).ok()?;
        let len = (out.len() - at - 4) as i32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(value: Value, kind: PgKind) -> Option<Vec<u8>> {
        let mut out = BytesMut::new();
        encode(&value, kind, &mut out).map(|()| out.to_vec())
    }

    #[test]
    fn bit_strings_have_their_declared_length() {
        // 12 bits of 0b1010…: the count, then two bytes, the last padded.
        assert_eq!(bytes(Value::Text("101010101010".into()), PgKind::Bit(12)), Some(vec![0, 0, 0, 12, 0xaa, 0xa0]));
        assert_eq!(bytes(Value::Text("1010".into()), PgKind::Bit(12)), None, "bit(12) takes exactly 12");
        assert!(bytes(Value::Text("1010".into()), PgKind::Varbit(12)).is_some());
        assert_eq!(bytes(Value::Text("10a".into()), PgKind::Varbit(0)), None);
        assert_eq!(bytes(Value::Int(1), PgKind::Bit(3)).unwrap()[3..], [3, 0x80]);
    }

    #[test]
    fn range_slots_do_not_overlap() {
        // [10, 20): flags, then two int4 bounds with their lengths.
        let r = bytes(Value::Int(1), PgKind::Range(&PgKind::Int4)).unwrap();
        assert_eq!(r, [vec![2], vec![0, 0, 0, 4, 0, 0, 0, 10], vec![0, 0, 0, 4, 0, 0, 0, 20]].concat());
        assert_eq!(bytes(Value::Int(i64::MAX), PgKind::Range(&PgKind::Int8)), None);
        assert_eq!(bytes(Value::Int(1), PgKind::Range(&PgKind::Bool)), None);
    }
}
