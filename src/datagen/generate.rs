//! Value generators: the runtime form of a scenario's [`ValueSpec`].
//!
//! Determinism: every random choice comes from an RNG seeded by
//! ([`rng_for`]) the scenario seed, a stream id (table or query) and an
//! index (a chunk of rows, or the query's request sequence). Rows are
//! generated in fixed chunks, so the same seed gives the same table
//! whatever the number of COPY streams.

use fake::Fake;
use fake::faker::address::en::{CityName, CountryName, StreetName};
use fake::faker::company::en::CompanyName;
use fake::faker::internet::en::{SafeEmail, Username};
use fake::faker::lorem::en::Words;
use fake::faker::name::en::{FirstName, LastName, Name};
use fake::faker::phone_number::en::PhoneNumber;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::styles::unique_text;
pub use super::styles::{KeyKind, TextStyle};
use super::value::Value;
use crate::scenario::{FakeKind, GenSpec, Literal, ValueSpec};

/// The RNG behind every generated value: fast, seedable, and the same on
/// every platform.
pub type DataRng = Xoshiro256PlusPlus;

/// The RNG for `index` within `stream` under `seed`.
pub fn rng_for(seed: u64, stream: u64, index: u64) -> DataRng {
    fn mix(mut z: u64) -> u64 {
        // splitmix64's finalizer: spreads nearby inputs far apart.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let s =
        mix(seed ^ mix(stream.wrapping_add(0x9e37_79b9_7f4a_7c15)) ^ mix(index.wrapping_mul(0x2545_f491_4f6c_dd1d)));
    DataRng::seed_from_u64(s)
}

/// The first number a workload request weaves into distinct text: no
/// table is loaded with 10^15 rows, so a request's number is never a
/// loaded row's (nor, having no leading zero, the tail of one).
const REQUEST_TAGS: u64 = 1_000_000_000_000_000;
/// Numbers per pacing loop: each loop's requests count within a range of
/// their own.
const LANE_TAGS: u64 = 10_000_000_000;

/// Produces the values of one column or parameter.
#[derive(Debug, Clone)]
pub struct ValueGen {
    kind: Kind,
    nulls: f64,
    max_len: Option<usize>,
    unique: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Int {
        lo: i64,
        hi: i64,
    },
    Float {
        lo: f64,
        hi: f64,
    },
    Sequence {
        start: i64,
    },
    /// Key number `(m / place) % radix + 1`, where m is
    /// `(row / group.0) % group.1`: the row itself, or the parent row a
    /// multi-column foreign key points at.
    Digit {
        radix: u64,
        place: u64,
        key: KeyKind,
        group: (u64, u64),
    },
    /// Distinct timestamps, a second apart, `offset` seconds on.
    Spaced {
        offset: i64,
    },
    /// Text of a shape a CHECK asks for, with the row number in it.
    Styled(TextStyle),
    /// `n` random bytes.
    BytesLen(usize),
    /// Distinct dates, a day apart.
    SpacedDays,
    /// Label number `(row / place) % labels.len()`: one digit of a count
    /// whose base is an enum's labels.
    LabelDigit {
        labels: Vec<Value>,
        place: u64,
        radix: u64,
    },
    /// A random key of a parent whose keys are not integers.
    TypedKey {
        rows: u64,
        key: KeyKind,
    },
    Any,
    Key {
        rows: u64,
    },
    OneOf {
        values: Vec<Value>,
        weights: Option<WeightedIndex<f64>>,
    },
    Words {
        min: u32,
        max: u32,
    },
    Fake(FakeKind),
    Timestamp {
        lo: i64,
        hi: i64,
    },
    Date {
        lo: i32,
        hi: i32,
    },
    Bool,
    Uuid,
    Json,
    Bytes,
    Const(Value),
    Zipf {
        lo: i64,
        dist: rand_distr::Zipf<f64>,
    },
    /// `rows` is the table's row count, 0 where there is none (parameters).
    Increasing {
        lo: i64,
        hi: i64,
        rows: u64,
    },
    Object(Vec<(String, ValueGen)>),
    Array {
        of: Box<ValueGen>,
        min: u32,
        max: u32,
    },
}

fn literal(l: &Literal) -> Value {
    match l {
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(f) => Value::Float(*f),
        Literal::Text(s) => Value::Text(s.clone()),
        Literal::Bool(b) => Value::Bool(*b),
    }
}

impl ValueGen {
    /// The generator a scenario spec describes.
    pub fn from_spec(spec: &ValueSpec) -> Self {
        let kind = match &spec.kind {
            GenSpec::Int { lo, hi } => Kind::Int { lo: *lo, hi: *hi },
            GenSpec::Float { lo, hi } => Kind::Float { lo: *lo, hi: *hi },
            GenSpec::Sequence { start } => Kind::Sequence { start: *start },
            GenSpec::KeyOf { rows, .. } => Kind::Key { rows: *rows },
            GenSpec::OneOf { values, weights } => Kind::OneOf {
                values: values.iter().map(literal).collect(),
                // Validation checked the weights (non-negative, not all zero).
                weights: weights.as_ref().and_then(|w| WeightedIndex::new(w.iter().copied()).ok()),
            },
            GenSpec::Words { min, max } => Kind::Words { min: *min, max: *max },
            GenSpec::Fake(k) => Kind::Fake(*k),
            GenSpec::Timestamp { lo, hi } => Kind::Timestamp { lo: *lo, hi: *hi },
            GenSpec::Date { lo, hi } => Kind::Date { lo: *lo, hi: *hi },
            GenSpec::Bool => Kind::Bool,
            GenSpec::Uuid => Kind::Uuid,
            GenSpec::Any => Kind::Any,
            GenSpec::Const(l) => Kind::Const(literal(l)),
            GenSpec::Zipf { lo, hi, skew } => Kind::Zipf {
                lo: *lo,
                // Validation checked the range and the exponent.
                dist: rand_distr::Zipf::new((hi - lo + 1) as f64, *skew).expect("a valid Zipf distribution"),
            },
            GenSpec::Increasing { lo, hi } => Kind::Increasing { lo: *lo, hi: *hi, rows: 0 },
            GenSpec::Json(shape) => {
                Kind::Object(shape.iter().map(|(k, v)| (k.clone(), ValueGen::from_spec(v))).collect())
            }
            GenSpec::Array { of, min, max } => {
                Kind::Array { of: Box::new(ValueGen::from_spec(of)), min: *min, max: *max }
            }
        };
        Self { kind, nulls: spec.nulls, max_len: None, unique: false }
    }

    /// Tells the generator how many rows its table has, for values that
    /// depend on a row's place in the table (increasing timestamps).
    pub fn with_rows(mut self, rows: u64) -> Self {
        if let Kind::Increasing { rows: r, .. } = &mut self.kind {
            *r = rows;
        }
        self
    }

    /// Key number `(row / place) % radix + 1`, as `key` writes it: one
    /// digit of the row number in mixed radix (see `keys::Forced::Digit`);
    /// with a radix of `u64::MAX` and a place of 1, key `row + 1`.
    pub fn digit(radix: u64, place: u64, key: KeyKind) -> Self {
        Self::plain(Kind::Digit { radix: radix.max(1), place: place.max(1), key, group: (1, u64::MAX) })
    }

    /// The digit `radix`, `place` of parent row m, written as `key`, where
    /// m is `(row / group_place) % parent_rows`: one column of a
    /// multi-column foreign key, written as the parent wrote that row.
    pub fn follow(group_place: u64, parent_rows: u64, radix: u64, place: u64, key: KeyKind) -> Self {
        let group = (group_place.max(1), parent_rows.max(1));
        Self::plain(Kind::Digit { radix: radix.max(1), place: place.max(1), key, group })
    }

    /// Timestamps a second apart from 2020-01-01 plus `offset` seconds, in
    /// row order: distinct.
    pub fn spaced(offset: i64) -> Self {
        Self::plain(Kind::Spaced { offset })
    }

    /// Text of `style`.
    pub fn styled(style: TextStyle) -> Self {
        Self::plain(Kind::Styled(style))
    }

    /// `n` random bytes.
    pub fn bytes_len(n: usize) -> Self {
        Self::plain(Kind::BytesLen(n))
    }

    /// Dates a day apart from 1990-01-01, in row order: distinct.
    pub fn spaced_days() -> Self {
        Self::plain(Kind::SpacedDays)
    }

    /// Label `(row / place) % radix` of `labels` (not empty; `radix` at
    /// most their number).
    pub fn label_digit(labels: &[String], place: u64, radix: u64) -> Self {
        let radix = radix.clamp(1, labels.len().max(1) as u64);
        let labels = labels.iter().map(|l| Value::Text(l.clone())).collect();
        Self::plain(Kind::LabelDigit { labels, place: place.max(1), radix })
    }

    /// A random one of the `rows` keys of a parent, as `key` writes them.
    pub fn typed_key(rows: u64, key: KeyKind) -> Self {
        Self::plain(Kind::TypedKey { rows: rows.max(1), key })
    }

    /// Small JSON objects, for json/jsonb columns nobody described.
    pub fn json() -> Self {
        Self::plain(Kind::Json)
    }

    /// Random bytes, for bytea columns nobody described.
    pub fn bytes() -> Self {
        Self::plain(Kind::Bytes)
    }

    /// Always NULL.
    pub fn null() -> Self {
        Self { kind: Kind::Const(Value::Null), nulls: 0.0, max_len: None, unique: false }
    }

    fn plain(kind: Kind) -> Self {
        Self { kind, nulls: 0.0, max_len: None, unique: false }
    }

    /// Cuts text values to `chars` characters (for `varchar(n)`).
    pub fn with_max_len(mut self, chars: Option<usize>) -> Self {
        self.max_len = chars;
        self
    }

    /// Makes text values unique within the table by weaving in the row
    /// number (for a column under a unique key).
    pub fn with_unique(mut self, unique: bool) -> Self {
        self.unique = unique;
        self
    }

    /// Whether this generator always yields NULL.
    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Const(Value::Null))
    }

    /// The value for row number `row`, zero-based.
    pub fn generate(&self, row: u64, rng: &mut DataRng) -> Value {
        self.generate_tagged(row, row, rng)
    }

    /// The value for request `n` of the workload's pacing loop `lane` (each
    /// loop counts its requests from 0). Text that must be distinct (an
    /// email, a value under a unique key) carries a number of the request's
    /// own, past any row a table could have, so that an insert the
    /// workload makes never repeats a loaded row's value, nor another
    /// loop's.
    pub fn draw(&self, n: u64, lane: u64, rng: &mut DataRng) -> Value {
        self.generate_tagged(n, REQUEST_TAGS + lane * LANE_TAGS + n % LANE_TAGS, rng)
    }

    /// The value for `row`, with `tag` woven into text that must be
    /// distinct.
    fn generate_tagged(&self, row: u64, tag: u64, rng: &mut DataRng) -> Value {
        if self.nulls > 0.0 && rng.random::<f64>() < self.nulls {
            return Value::Null;
        }
        let v = match &self.kind {
            Kind::Int { lo, hi } => Value::Int(rng.random_range(*lo..=*hi)),
            Kind::Float { lo, hi } => Value::Float(rng.random_range(*lo..*hi)),
            Kind::Sequence { start } => Value::Int(start.wrapping_add(row as i64)),
            Kind::Digit { radix, place, key, group } => key.value((row / group.0 % group.1 / place) % radix + 1),
            Kind::TypedKey { rows, key } => key.value(rng.random_range(1..=*rows)),
            // 2020-01-01 in microseconds since 2000-01-01.
            Kind::Spaced { offset } => Value::Timestamp(631_152_000_000_000 + (row as i64 + offset) * 1_000_000),
            Kind::Styled(style) => Value::Text(style.text(row, rng)),
            Kind::BytesLen(n) => Value::Bytes((0..*n).map(|_| rng.random()).collect()),
            // From 1990-01-01 (days since 2000-01-01).
            Kind::SpacedDays => Value::Date(-3652 + row as i32),
            Kind::LabelDigit { labels, place, radix } => labels[((row / place) % radix) as usize].clone(),
            Kind::Any => Value::Any(rng.random()),
            Kind::Key { rows } => Value::Int(rng.random_range(1..=*rows) as i64),
            Kind::OneOf { values, weights } => {
                let i = match weights {
                    Some(w) => w.sample(rng),
                    None => rng.random_range(0..values.len()),
                };
                values[i].clone()
            }
            Kind::Words { min, max } => {
                let words: Vec<String> = Words(*min as usize..*max as usize + 1).fake_with_rng(rng);
                Value::Text(words.join(" "))
            }
            Kind::Fake(k) => Value::Text(fake_text(*k, rng)),
            Kind::Timestamp { lo, hi } => Value::Timestamp(rng.random_range(*lo..*hi)),
            Kind::Date { lo, hi } => Value::Date(rng.random_range(*lo..*hi)),
            Kind::Bool => Value::Bool(rng.random()),
            Kind::Uuid => {
                let mut b: [u8; 16] = rng.random();
                b[6] = (b[6] & 0x0f) | 0x40; // version 4
                b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
                Value::Uuid(b)
            }
            Kind::Json => {
                let tag: Vec<String> = Words(1..2).fake_with_rng(rng);
                Value::Json(format!("{{\"n\": {}, \"tag\": \"{}\"}}", rng.random_range(0..1000), tag.join("")))
            }
            Kind::Bytes => Value::Bytes(rng.random::<[u8; 16]>().to_vec()),
            Kind::Const(v) => v.clone(),
            // Rank 1 is `lo`; the rank stays within the width validation allowed.
            Kind::Zipf { lo, dist } => Value::Int(lo + (dist.sample(rng) as i64 - 1)),
            Kind::Increasing { lo, hi, rows } => {
                if *rows <= 1 {
                    Value::Timestamp(rng.random_range(*lo..*hi))
                } else {
                    // Row r sits at r/rows of the way through [lo, hi), give or
                    // take half a step.
                    let step = (hi - lo) as f64 / *rows as f64;
                    let at = *lo as f64 + step * (row as f64 + 0.5 + rng.random_range(-0.5..0.5));
                    Value::Timestamp((at as i64).clamp(*lo, *hi - 1))
                }
            }
            Kind::Object(fields) => {
                let mut object = serde_json::Map::with_capacity(fields.len());
                for (key, g) in fields {
                    object.insert(key.clone(), g.generate_tagged(row, tag, rng).to_json());
                }
                Value::Json(serde_json::Value::Object(object).to_string())
            }
            Kind::Array { of, min, max } => {
                let n = rng.random_range(*min..=*max);
                Value::Array((0..n).map(|_| of.generate_tagged(row, tag, rng)).collect())
            }
        };
        // An email stands for one person, and production's are distinct: a
        // migration that adds a unique index on one must not fail on data
        // that a handful of first names made repeat.
        let distinct = self.unique || matches!(self.kind, Kind::Fake(FakeKind::Email));
        let v = match (v, distinct) {
            (Value::Text(s), true) => Value::Text(unique_text(&s, tag, self.max_len)),
            (v, _) => v,
        };
        match (v, self.max_len) {
            (Value::Text(mut s), Some(n)) if s.chars().count() > n => {
                s = s.chars().take(n).collect();
                Value::Text(s)
            }
            (v, _) => v,
        }
    }
}

fn fake_text(kind: FakeKind, rng: &mut DataRng) -> String {
    match kind {
        FakeKind::Email => SafeEmail().fake_with_rng(rng),
        FakeKind::Name => Name().fake_with_rng(rng),
        FakeKind::FirstName => FirstName().fake_with_rng(rng),
        FakeKind::LastName => LastName().fake_with_rng(rng),
        FakeKind::City => CityName().fake_with_rng(rng),
        FakeKind::Street => StreetName().fake_with_rng(rng),
        FakeKind::Country => CountryName().fake_with_rng(rng),
        FakeKind::Phone => PhoneNumber().fake_with_rng(rng),
        FakeKind::Company => CompanyName().fake_with_rng(rng),
        FakeKind::Username => Username().fake_with_rng(rng),
    }
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
