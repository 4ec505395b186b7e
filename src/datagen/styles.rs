//! How generated keys and shaped text are written: a table's keys (integers,
//! or UUIDs and text made from the key number, so that the tables pointing
//! at it write the same ones), text of a shape a CHECK asks for, and text
//! kept unique by the row number woven in.

use rand::RngExt;

use super::generate::DataRng;
use super::value::Value;

/// How key number n (1-based) of a table is written, the same in the
/// table and in every table that points at it: an integer, or a UUID or
/// text made from the number and the table's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// n itself.
    Int,
    /// A version-4-shaped UUID from n and the table's salt.
    Uuid(u64),
    /// `k<n>-<salt>`.
    Text(u64),
}

impl KeyKind {
    /// The salt of a table's keys, from its name.
    pub fn salt(table: &str) -> u64 {
        table.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
    }

    /// Key number `n`.
    pub fn value(self, n: u64) -> Value {
        match self {
            KeyKind::Int => Value::Int(n as i64),
            KeyKind::Uuid(salt) => {
                let mix = |x: u64| {
                    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    z ^ (z >> 31)
                };
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&mix(salt).to_be_bytes());
                // The key number itself in the low half keeps keys distinct.
                b[8..].copy_from_slice(&(n ^ (mix(salt ^ 1) & 0xffff_0000_0000_0000)).to_be_bytes());
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                Value::Uuid(b)
            }
            KeyKind::Text(salt) => Value::Text(format!("k{n}-{:04x}", salt & 0xffff)),
        }
    }
}

/// A shape of text a CHECK may ask for; every one holds the row number,
/// so values are distinct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextStyle {
    /// `<prefix><word>-<row>` (for `LIKE 'prefix%'`).
    Prefixed(String),
    /// `<word>-<row>`
    Slug,
    /// `<word><row>`
    Code,
    /// `<row>`
    Digits,
    /// `https://<word>.example.com/<row>`
    Url,
    /// `<word><row>@example.com`
    Email,
    /// `<Word> <row>`
    Title,
}

impl TextStyle {
    /// The styles tried against a regular expression, in order.
    pub const TRIED: [TextStyle; 6] =
        [TextStyle::Slug, TextStyle::Code, TextStyle::Digits, TextStyle::Url, TextStyle::Email, TextStyle::Title];

    pub(super) fn text(&self, row: u64, rng: &mut DataRng) -> String {
        const WORDS: [&str; 8] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"];
        let w = WORDS[rng.random_range(0..WORDS.len())];
        match self {
            TextStyle::Prefixed(p) => format!("{p}{w}-{row}"),
            TextStyle::Slug => format!("{w}-{row}"),
            TextStyle::Code => format!("{w}{row}"),
            TextStyle::Digits => format!("{row}"),
            TextStyle::Url => format!("https://{w}.example.com/{row}"),
            TextStyle::Email => format!("{w}{row}@example.com"),
            TextStyle::Title => {
                let mut c = w.chars();
                let first = c.next().map(|f| f.to_ascii_uppercase()).unwrap_or('A');
                format!("{first}{} {row}", c.as_str())
            }
        }
    }
}

/// `s` with `number` woven in (the row's, or a workload request's: see
/// `ValueGen::draw`), which keeps a unique column unique: before the `@` of
/// an email, else at the end; within `max_len` characters, cutting `s`
/// rather than the number, and when even the number does not fit, keeping
/// its low digits.
pub(super) fn unique_text(s: &str, number: u64, max_len: Option<usize>) -> String {
    let (head, tail) = match s.split_once('@') {
        Some((user, domain)) => (user, format!("{number}@{domain}")),
        None => (s, format!("-{number}")),
    };
    let cut = |t: &str, room: usize| -> String { t.chars().take(room).collect() };
    // The number's low digits, which differ from one row to the next.
    let last = |digits: &str, room: usize| -> String { digits[digits.len().saturating_sub(room)..].to_string() };
    match max_len {
        Some(n) if head.chars().count() + tail.chars().count() > n => {
            let room = n.saturating_sub(tail.chars().count());
            if room == 0 { last(&number.to_string(), n) } else { format!("{}{tail}", cut(head, room)) }
        }
        _ => format!("{head}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::unique_text;

    #[test]
    fn the_row_number_survives_a_length_limit() {
        assert_eq!(unique_text("dolorum minus", 12345, Some(14)), "dolorum -12345");
        // No room for the domain: the number alone, still unique.
        assert_eq!(unique_text("ann@example.com", 7, Some(12)), "7");
        assert_eq!(unique_text("ann@ex.io", 7, Some(20)), "ann7@ex.io");
        assert_eq!(unique_text("abc", 123456, Some(4)), "3456");
    }
}
