//! The binary formats of values made of parts: a tsvector's lexemes and
//! an hstore's pairs.

use bytes::{BufMut, BytesMut};

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
