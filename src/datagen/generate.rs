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

/// Produces the values of one column or parameter.
#[derive(Debug, Clone)]
pub struct ValueGen {
    kind: Kind,
    nulls: f64,
    max_len: Option<usize>,
}

#[derive(Debug, Clone)]
enum Kind {
    Int { lo: i64, hi: i64 },
    Float { lo: f64, hi: f64 },
    Sequence { start: i64 },
    Key { rows: u64 },
    OneOf { values: Vec<Value>, weights: Option<WeightedIndex<f64>> },
    Words { min: u32, max: u32 },
    Fake(FakeKind),
    Timestamp { lo: i64, hi: i64 },
    Date { lo: i32, hi: i32 },
    Bool,
    Uuid,
    Json,
    Bytes,
    Const(Value),
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
            GenSpec::Const(l) => Kind::Const(literal(l)),
        };
        Self { kind, nulls: spec.nulls, max_len: None }
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
        Self { kind: Kind::Const(Value::Null), nulls: 0.0, max_len: None }
    }

    fn plain(kind: Kind) -> Self {
        Self { kind, nulls: 0.0, max_len: None }
    }

    /// Cuts text values to `chars` characters (for `varchar(n)`).
    pub fn with_max_len(mut self, chars: Option<usize>) -> Self {
        self.max_len = chars;
        self
    }

    /// Whether this generator always yields NULL.
    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Const(Value::Null))
    }

    /// The value for row (or request) number `row`, zero-based.
    pub fn generate(&self, row: u64, rng: &mut DataRng) -> Value {
        if self.nulls > 0.0 && rng.random::<f64>() < self.nulls {
            return Value::Null;
        }
        let v = match &self.kind {
            Kind::Int { lo, hi } => Value::Int(rng.random_range(*lo..=*hi)),
            Kind::Float { lo, hi } => Value::Float(rng.random_range(*lo..*hi)),
            Kind::Sequence { start } => Value::Int(start.wrapping_add(row as i64)),
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
mod tests {
    use super::*;

    fn spec(kind: GenSpec, nulls: f64) -> ValueGen {
        ValueGen::from_spec(&ValueSpec { kind, nulls })
    }

    fn sample(g: &ValueGen, n: u64) -> Vec<Value> {
        let mut rng = rng_for(42, 1, 0);
        (0..n).map(|i| g.generate(i, &mut rng)).collect()
    }

    #[test]
    fn int_stays_in_range_and_covers_it() {
        let vals = sample(&spec(GenSpec::Int { lo: 10, hi: 19 }, 0.0), 5000);
        let mut seen = [0u32; 10];
        for v in vals {
            let Value::Int(i) = v else { panic!("{v:?}") };
            assert!((10..=19).contains(&i));
            seen[(i - 10) as usize] += 1;
        }
        // uniform: each of 10 values near 500
        assert!(seen.iter().all(|c| (400..600).contains(c)), "{seen:?}");
    }

    #[test]
    fn one_of_follows_its_weights() {
        let g = spec(
            GenSpec::OneOf {
                values: vec![Literal::Text("a".into()), Literal::Text("b".into())],
                weights: Some(vec![9.0, 1.0]),
            },
            0.0,
        );
        let a = sample(&g, 10_000).iter().filter(|v| **v == Value::Text("a".into())).count();
        assert!((8_700..9_300).contains(&a), "{a}");
    }

    #[test]
    fn null_fraction_is_respected() {
        let g = spec(GenSpec::Bool, 0.25);
        let nulls = sample(&g, 10_000).iter().filter(|v| **v == Value::Null).count();
        assert!((2_250..2_750).contains(&nulls), "{nulls}");
    }

    #[test]
    fn same_seed_same_values_other_seed_other_values() {
        let g = spec(GenSpec::Fake(FakeKind::Email), 0.0);
        let a: Vec<Value> = (0..50).map(|i| g.generate(i, &mut rng_for(7, 0, 3))).collect();
        let b: Vec<Value> = (0..50).map(|i| g.generate(i, &mut rng_for(7, 0, 3))).collect();
        let c: Vec<Value> = (0..50).map(|i| g.generate(i, &mut rng_for(8, 0, 3))).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let Value::Text(email) = &a[0] else { panic!() };
        assert!(email.contains('@'), "{email}");
    }

    #[test]
    fn keys_point_into_the_parent_table() {
        let g = spec(GenSpec::KeyOf { table: "t".into(), rows: 100 }, 0.0);
        for v in sample(&g, 2000) {
            let Value::Int(k) = v else { panic!() };
            assert!((1..=100).contains(&k));
        }
    }

    #[test]
    fn varchar_limit_cuts_text() {
        let g = spec(GenSpec::Words { min: 20, max: 30 }, 0.0).with_max_len(Some(12));
        for v in sample(&g, 50) {
            let Value::Text(s) = v else { panic!() };
            assert!(s.chars().count() <= 12);
        }
    }
}
