//! Validation of value generators, for `columns` and `params`: exactly one
//! kind per generator, its modifiers where they apply, and bounds that the
//! generator can honour without panicking, overflowing or allocating more
//! than a value can hold (see [`super::limits`]): finite float ranges whose
//! width is finite, integer ranges whose width fits, real calendar dates in
//! Postgres' range of years, text and arrays under their caps.

use std::ops::Range;

use super::calendar::{parse_date, parse_timestamp};
use super::limits;
use super::raw::{RawGen, RawGenTable};
use super::validate::Validator;
use super::{FakeKind, GenSpec, Literal, ScenarioError, ValueSpec};

impl Validator {
    /// A generator as the file writes it, validated.
    pub(super) fn value_spec(&self, g: toml::Spanned<RawGen>) -> Result<ValueSpec, ScenarioError> {
        let span = g.span();
        let spec = match g.into_inner() {
            RawGen::Named(name) => ValueSpec { kind: self.named_gen(&name, span.clone())?, nulls: 0.0 },
            RawGen::Table(t) => self.gen_table(*t, span.clone())?,
        };
        let bytes = limits::value_bytes(&spec.kind);
        if bytes > limits::MAX_VALUE_BYTES as f64 {
            return self.err(
                span,
                format!(
                    "this generator makes values of up to about {:.0} MB; a generated value is capped at {} MB",
                    bytes / 1e6,
                    limits::MAX_VALUE_BYTES / 1_000_000
                ),
            );
        }
        Ok(spec)
    }

    fn named_gen(&self, name: &str, span: Range<usize>) -> Result<GenSpec, ScenarioError> {
        if let Some(kind) = FakeKind::from_name(name) {
            return Ok(GenSpec::Fake(kind));
        }
        Ok(match name {
            "sequence" => GenSpec::Sequence { start: 1 },
            "uuid" => GenSpec::Uuid,
            "any" => GenSpec::Any,
            "bool" | "boolean" => GenSpec::Bool,
            "words" | "text" => GenSpec::Words { min: 1, max: 5 },
            "timestamp" => GenSpec::default_timestamp(),
            "date" => GenSpec::default_date(),
            _ => {
                let mut known: Vec<&str> = FakeKind::NAMES.iter().map(|(n, _)| *n).collect();
                known.extend(["sequence", "uuid", "any", "bool", "words", "timestamp", "date"]);
                return self.err(
                    span,
                    format!(
                        "unknown generator `{name}`; known: {}, or a table such as {{ int = [1, 100] }}",
                        known.join(", ")
                    ),
                );
            }
        })
    }

    fn gen_table(&self, t: RawGenTable, span: Range<usize>) -> Result<ValueSpec, ScenarioError> {
        let nulls = t.nulls.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&nulls) {
            return self.err(span, "nulls is a fraction between 0 and 1");
        }
        self.modifiers(&t, span.clone())?;
        let kind = self.kind(t, span)?;
        Ok(ValueSpec { kind, nulls })
    }

    /// Exactly one kind, and each modifier beside the kind it modifies.
    fn modifiers(&self, t: &RawGenTable, span: Range<usize>) -> Result<(), ScenarioError> {
        let set: Vec<&str> = [
            ("int", t.int.is_some()),
            ("float", t.float.is_some()),
            ("key_of", t.key_of.is_some()),
            ("one_of", t.one_of.is_some()),
            ("words", t.words.is_some()),
            ("timestamp", t.timestamp.is_some()),
            ("date", t.date.is_some()),
            ("sequence", t.sequence.is_some()),
            ("fake", t.fake.is_some()),
            ("value", t.value.is_some()),
            ("zipf", t.zipf.is_some()),
            ("json", t.json.is_some()),
            ("array", t.array.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        if set.len() != 1 {
            let found = if set.is_empty() { "none".to_string() } else { set.join(" and ") };
            return self.err(
                span,
                format!(
                    "a generator needs exactly one of int, float, key_of, one_of, words, timestamp, date, sequence, fake, value, zipf, json, array; found {found}"
                ),
            );
        }
        let misplaced = [
            (t.weights.is_some() && t.one_of.is_none(), "`weights` goes with `one_of`"),
            (t.skew.is_some() && t.zipf.is_none() && t.key_of.is_none(), "`skew` goes with `zipf` or `key_of`"),
            (t.increasing.is_some() && t.timestamp.is_none(), "`increasing` goes with `timestamp`"),
            (t.len.is_some() && t.array.is_none(), "`len` goes with `array`"),
        ];
        if let Some((_, message)) = misplaced.iter().find(|(bad, _)| *bad) {
            return self.err(span, *message);
        }
        if let Some(skew) = t.skew
            && !(skew.is_finite() && skew > 0.0 && skew <= 100.0)
        {
            return self.err(span, format!("skew must be above 0 and at most 100 (1.0 is classic Zipf), not {skew}"));
        }
        Ok(())
    }

    /// The one kind `t` names.
    fn kind(&self, t: RawGenTable, span: Range<usize>) -> Result<GenSpec, ScenarioError> {
        if let Some([lo, hi]) = t.int {
            if lo > hi {
                return self.err(span, format!("int range [{lo}, {hi}] is empty"));
            }
            return Ok(GenSpec::Int { lo, hi });
        }
        if let Some([lo, hi]) = t.float {
            return self.float(lo, hi, span);
        }
        if let Some(table) = t.key_of {
            return self.key_of(table, t.skew, span);
        }
        if let Some(values) = t.one_of {
            return self.one_of(values, t.weights, span);
        }
        if let Some([min, max]) = t.words {
            if min > max || max == 0 || max > limits::MAX_WORDS {
                return self.err(
                    span,
                    format!("words range [{min}, {max}] must be a range within [0, {}]", limits::MAX_WORDS),
                );
            }
            return Ok(GenSpec::Words { min, max });
        }
        if let Some([lo, hi]) = t.timestamp {
            return Ok(match (self.timestamp_range(&lo, &hi, span)?, t.increasing) {
                (GenSpec::Timestamp { lo, hi }, Some(true)) => GenSpec::Increasing { lo, hi },
                (range, _) => range,
            });
        }
        if let Some([lo, hi]) = t.zipf {
            return self.zipf(lo, hi, t.skew.unwrap_or(1.0), span);
        }
        if let Some(fields) = t.json {
            let mut shape = Vec::with_capacity(fields.len());
            for (key, g) in fields {
                shape.push((key, self.value_spec(g)?));
            }
            return Ok(GenSpec::Json(shape));
        }
        if let Some(of) = t.array {
            let [min, max] = t.len.unwrap_or([0, 3]);
            if min > max || max > limits::MAX_ARRAY_LEN {
                let cap = limits::MAX_ARRAY_LEN;
                return self.err(span, format!("array len [{min}, {max}] must be a range within [0, {cap}]"));
            }
            return Ok(GenSpec::Array { of: Box::new(self.value_spec(*of)?), min, max });
        }
        if let Some([lo, hi]) = t.date {
            return self.date_range(&lo, &hi, span);
        }
        if let Some(start) = t.sequence {
            return Ok(GenSpec::Sequence { start });
        }
        if let Some(name) = t.fake {
            return match FakeKind::from_name(&name) {
                Some(kind) => Ok(GenSpec::Fake(kind)),
                None => {
                    let known: Vec<&str> = FakeKind::NAMES.iter().map(|(n, _)| *n).collect();
                    self.err(span, format!("unknown fake kind `{name}`; known: {}", known.join(", ")))
                }
            };
        }
        let value = t.value.expect("exactly one kind is set");
        Ok(GenSpec::Const(self.literal(value, span)?))
    }

    fn float(&self, lo: f64, hi: f64, span: Range<usize>) -> Result<GenSpec, ScenarioError> {
        let range = format!("float range [{}, {}]", number(lo), number(hi));
        if !(lo.is_finite() && hi.is_finite()) {
            return self.err(span, format!("{range}: both ends must be finite numbers"));
        }
        if lo >= hi {
            return self.err(span, format!("{range} is empty"));
        }
        if !(hi - lo).is_finite() {
            return self.err(span, format!("{range} is wider than a double can hold ({:e}); narrow it", f64::MAX));
        }
        Ok(GenSpec::Float { lo, hi })
    }

    fn key_of(&self, table: String, skew: Option<f64>, span: Range<usize>) -> Result<GenSpec, ScenarioError> {
        let Some((_, rows)) = self.tables.iter().find(|(n, _)| *n == table) else {
            let names: Vec<&str> = self.tables.iter().map(|(n, _)| n.as_str()).collect();
            return self.err(
                span,
                format!("key_of = \"{table}\": no [[table]] named `{table}` (tables: {})", names.join(", ")),
            );
        };
        if *rows == 0 {
            return self.err(span, format!("key_of = \"{table}\": that table has no rows"));
        }
        Ok(match skew {
            Some(skew) => GenSpec::Zipf { lo: 1, hi: *rows as i64, skew },
            None => GenSpec::KeyOf { table, rows: *rows },
        })
    }

    fn one_of(
        &self,
        values: Vec<toml::Value>,
        weights: Option<Vec<f64>>,
        span: Range<usize>,
    ) -> Result<GenSpec, ScenarioError> {
        if values.is_empty() {
            return self.err(span, "one_of needs at least one value");
        }
        let values = values.into_iter().map(|v| self.literal(v, span.clone())).collect::<Result<Vec<_>, _>>()?;
        if let Some(w) = &weights {
            let sum: f64 = w.iter().sum();
            if w.len() != values.len()
                || w.iter().any(|x| !(x.is_finite() && *x >= 0.0))
                || !(sum > 0.0 && sum.is_finite())
            {
                return self.err(span, "weights needs one non-negative weight per value, not all zero");
            }
        }
        Ok(GenSpec::OneOf { values, weights })
    }

    fn zipf(&self, lo: i64, hi: i64, skew: f64, span: Range<usize>) -> Result<GenSpec, ScenarioError> {
        if lo > hi {
            return self.err(span, format!("zipf range [{lo}, {hi}] is empty"));
        }
        // The ranks are counted in a double: beyond 2^53 they are no longer
        // whole numbers.
        let width = (hi as i128) - (lo as i128) + 1;
        if width > limits::MAX_ZIPF_VALUES as i128 {
            return self.err(
                span,
                format!(
                    "zipf range [{lo}, {hi}] holds {width} values; at most 2^53 ({}) can be ranked",
                    limits::MAX_ZIPF_VALUES
                ),
            );
        }
        Ok(GenSpec::Zipf { lo, hi, skew })
    }

    fn timestamp_range(&self, lo: &str, hi: &str, span: Range<usize>) -> Result<GenSpec, ScenarioError> {
        let lo_us = parse_timestamp(lo).or_else(|e| self.err(span.clone(), e))?;
        let hi_us = parse_timestamp(hi).or_else(|e| self.err(span.clone(), e))?;
        if lo_us >= hi_us {
            return self.err(span, format!("timestamp range [{lo}, {hi}] is empty"));
        }
        Ok(GenSpec::Timestamp { lo: lo_us, hi: hi_us })
    }

    fn date_range(&self, lo: &str, hi: &str, span: Range<usize>) -> Result<GenSpec, ScenarioError> {
        let lo_d = parse_date(lo).or_else(|e| self.err(span.clone(), e))?;
        let hi_d = parse_date(hi).or_else(|e| self.err(span.clone(), e))?;
        if lo_d >= hi_d {
            return self.err(span, format!("date range [{lo}, {hi}] is empty"));
        }
        Ok(GenSpec::Date { lo: lo_d, hi: hi_d })
    }

    pub(super) fn literal(&self, v: toml::Value, span: Range<usize>) -> Result<Literal, ScenarioError> {
        Ok(match v {
            toml::Value::String(s) => Literal::Text(s),
            toml::Value::Integer(i) => Literal::Int(i),
            toml::Value::Float(f) if f.is_finite() => Literal::Float(f),
            toml::Value::Float(f) => return self.err(span, format!("`{f}`: a generator takes finite numbers only")),
            toml::Value::Boolean(b) => Literal::Bool(b),
            other => return self.err(span, format!("`{other}` is not a value a generator can produce")),
        })
    }
}

/// A number as a person writes it: `2.5`, `1e308`.
fn number(f: f64) -> String {
    if f.is_finite() && f != 0.0 && !(1e-4..1e15).contains(&f.abs()) { format!("{f:e}") } else { format!("{f}") }
}
