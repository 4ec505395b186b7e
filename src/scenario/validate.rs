//! Raw scenario → validated [`Scenario`]. Every error names the file, line
//! and column of the value at fault.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::calendar::{parse_date, parse_timestamp};
use super::raw::{RawGen, RawGenTable, RawScenario, RawStep};
use super::source::{SourceFile, SqlText};
use super::{
    ColumnOverride, FakeKind, GenSpec, InterferenceSpec, Literal, LoadOptions, PostgresSpec, Scenario, ScenarioError,
    StepSpec, Strategy, TableSpec, Thresholds, ValueSpec,
};

pub(super) struct Validator {
    pub(super) src: Arc<SourceFile>,
    scale: f64,
    /// (name, scaled rows) of every table, for `key_of`.
    tables: Vec<(String, u64)>,
}

pub(super) fn validate(src: Arc<SourceFile>, opts: &LoadOptions) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = toml::from_str(&src.text).map_err(|e| ScenarioError::Invalid {
        at: src.location(e.span().map_or(0, |s| s.start)),
        message: e.message().trim().to_string(),
    })?;
    let mut v = Validator { src, scale: opts.scale, tables: Vec::new() };
    if !(opts.scale.is_finite() && opts.scale > 0.0) {
        return v.err(0..0, format!("--scale must be a positive number, got {}", opts.scale));
    }
    v.scenario(raw)
}

impl Validator {
    pub(super) fn err<T>(&self, span: Range<usize>, message: impl Into<String>) -> Result<T, ScenarioError> {
        Err(ScenarioError::Invalid { at: self.src.location(span.start), message: message.into() })
    }

    pub(super) fn sql(&self, s: Spanned<String>, what: &str) -> Result<SqlText, ScenarioError> {
        let span = s.span();
        let text = s.into_inner();
        if text.trim().is_empty() {
            return self.err(span, format!("{what} is empty"));
        }
        Ok(SqlText::new(&self.src, text, span))
    }

    pub(super) fn name(
        &self,
        s: Spanned<String>,
        what: &str,
        seen: &mut HashSet<String>,
    ) -> Result<String, ScenarioError> {
        let span = s.span();
        let name = s.into_inner();
        if name.trim().is_empty() {
            return self.err(span, format!("{what} name is empty"));
        }
        if !seen.insert(name.clone()) {
            return self.err(span, format!("{what} `{name}` is defined twice"));
        }
        Ok(name)
    }

    fn scenario(&mut self, raw: RawScenario) -> Result<Scenario, ScenarioError> {
        let images = self.images(&raw.postgres)?;
        let mut settings = Vec::new();
        for (name, value) in raw.postgres.settings {
            let span = value.span();
            let text = match value.into_inner() {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => if b { "on" } else { "off" }.to_string(),
                _ => return self.err(span, format!("setting `{name}` must be a string, number or boolean")),
            };
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                return self.err(span, format!("`{name}` is not a server setting name"));
            }
            settings.push((name, text));
        }

        // Names and sizes first: generators refer to tables by name.
        let mut seen = HashSet::new();
        for t in &raw.tables {
            let t = t.get_ref();
            let name = self.name(t.name.clone(), "table", &mut seen)?;
            let declared = *t.rows.get_ref();
            if declared < 0 {
                return self.err(t.rows.span(), "rows must be 0 or more");
            }
            let scaled = ((declared as f64) * self.scale).round() as u64;
            let rows = if declared > 0 { scaled.max(1) } else { 0 };
            self.tables.push((name, rows));
        }
        let schema_rows: Vec<(String, Spanned<i64>)> = match (&raw.schema, raw.rows) {
            (Some(_), Some(rows)) if rows.get_ref().is_empty() => {
                return self.err(rows.span(), "`rows` names no table to fill");
            }
            (Some(_), Some(rows)) => rows.into_inner().into_iter().collect(),
            (Some(schema), None) => {
                return self.err(schema.span(), "`schema` needs `rows = { table = count, … }`: the tables to fill");
            }
            (None, Some(rows)) => return self.err(rows.span(), "`rows` goes with `schema = \"file.sql\"`"),
            (None, None) => Vec::new(),
        };
        for (name, n) in &schema_rows {
            let name = self.name(Spanned::new(n.span(), name.clone()), "table", &mut seen)?;
            if *n.get_ref() < 0 {
                return self.err(n.span(), "rows must be 0 or more");
            }
            let scaled = ((*n.get_ref() as f64) * self.scale).round() as u64;
            self.tables.push((name, if *n.get_ref() > 0 { scaled.max(1) } else { 0 }));
        }
        let schema = match raw.schema {
            Some(path) => Some(self.schema_file(path)?),
            None => None,
        };
        let mut tables = Vec::new();
        for (i, t) in raw.tables.into_iter().enumerate() {
            let t = t.into_inner();
            let bloat = t.bloat.as_ref().map_or(0.0, |b| *b.get_ref());
            if !(0.0..1.0).contains(&bloat) {
                return self.err(t.bloat.expect("set").span(), "bloat is a fraction of the rows, from 0 up to (not) 1");
            }
            let mut columns = Vec::new();
            for (column, spec) in t.columns {
                let at = self.src.location(spec.span().start);
                columns.push(ColumnOverride { column, spec: self.value_spec(spec)?, at });
            }
            tables.push(TableSpec {
                name: self.tables[i].0.clone(),
                rows: self.tables[i].1,
                declared_rows: *t.rows.get_ref() as u64,
                ddl: self.sql(t.ddl, "ddl")?,
                columns,
                from_schema: false,
                bloat,
            });
        }
        for (name, n) in schema_rows {
            let (_, rows) = self.tables.iter().find(|(t, _)| *t == name).expect("named above");
            tables.push(TableSpec {
                rows: *rows,
                name,
                declared_rows: *n.get_ref() as u64,
                ddl: SqlText::new(&self.src, String::new(), n.span()),
                columns: Vec::new(),
                from_schema: true,
                bloat: 0.0,
            });
        }

        let load_only = raw.strategies.is_empty();
        let workload = self.workload(raw.workload, load_only)?;

        let mut seen = HashSet::new();
        let mut interference = Vec::new();
        for i in raw.interference {
            let i = i.into_inner();
            interference.push(InterferenceSpec {
                name: self.name(i.name, "interference", &mut seen)?,
                at: i.at.0,
                sql: self.sql(i.sql, "sql")?,
            });
        }

        let timeline = self.timeline(raw.timeline, load_only)?;

        let mut seen = HashSet::new();
        let mut strategies = Vec::new();
        for s in raw.strategies {
            let span = s.span();
            let s = s.into_inner();
            let name = self.name(s.name, "strategy", &mut seen)?;
            if s.steps.is_empty() {
                return self.err(span, format!("strategy `{name}` has no steps"));
            }
            let steps = s.steps.into_iter().map(|st| self.step(st)).collect::<Result<_, _>>()?;
            strategies.push(Strategy { name, description: s.description, steps });
        }

        let th = raw.thresholds;
        if let Some(rate) = &th.max_error_rate {
            if !(0.0..=1.0).contains(rate.get_ref()) {
                return self.err(rate.span(), "max_error_rate is a fraction between 0 and 1");
            }
        }
        Ok(Scenario {
            name: raw.name,
            description: raw.description,
            path: self.src.path.clone(),
            seed: raw.seed.unwrap_or(0),
            scale: self.scale,
            postgres: PostgresSpec { settings, images },
            tables,
            schema,
            workload,
            interference,
            timeline,
            strategies,
            thresholds: Thresholds {
                max_lock_wait: th.max_lock_wait.map(|d| d.0),
                max_p99: th.max_p99.map(|d| d.0),
                max_error_rate: th.max_error_rate.map(|r| r.into_inner()),
            },
        })
    }

    fn step(&self, st: Spanned<RawStep>) -> Result<StepSpec, ScenarioError> {
        let span = st.span();
        let st = st.into_inner();
        if st.retries.is_some_and(|r| r > 0) && st.lock_timeout.is_none() {
            return self.err(span, "`retries` applies when a step hits its lock_timeout; set `lock_timeout` too");
        }
        if st.backoff.is_some() && st.retries.is_none() {
            return self.err(span, "`backoff` is the pause between retries; set `retries` too");
        }
        if st.pause.is_some() && !st.repeat {
            return self.err(span, "`pause` is the pause between runs of a repeated step; set `repeat = true`");
        }
        let sql = self.sql(st.sql, "sql")?;
        let transactional = st.transaction.unwrap_or_else(|| !needs_own_transaction(&sql.text));
        Ok(StepSpec {
            name: st.name,
            lock_timeout: st.lock_timeout.map(|d| d.0),
            statement_timeout: st.statement_timeout.map(|d| d.0),
            retries: st.retries.unwrap_or(0),
            backoff: st.backoff.map_or(Duration::ZERO, |d| d.0),
            repeat: st.repeat.then(|| st.pause.map_or(Duration::ZERO, |d| d.0)),
            transactional,
            sql,
        })
    }

    pub(super) fn value_spec(&self, g: Spanned<RawGen>) -> Result<ValueSpec, ScenarioError> {
        let span = g.span();
        match g.into_inner() {
            RawGen::Named(name) => Ok(ValueSpec { kind: self.named_gen(&name, span)?, nulls: 0.0 }),
            RawGen::Table(t) => self.gen_table(*t, span),
        }
    }

    fn named_gen(&self, name: &str, span: Range<usize>) -> Result<GenSpec, ScenarioError> {
        if let Some(kind) = FakeKind::from_name(name) {
            return Ok(GenSpec::Fake(kind));
        }
        Ok(match name {
            "sequence" => GenSpec::Sequence { start: 1 },
            "uuid" => GenSpec::Uuid,
            "bool" | "boolean" => GenSpec::Bool,
            "words" | "text" => GenSpec::Words { min: 1, max: 5 },
            "timestamp" => GenSpec::default_timestamp(),
            "date" => GenSpec::default_date(),
            _ => {
                let mut known: Vec<&str> = FakeKind::NAMES.iter().map(|(n, _)| *n).collect();
                known.extend(["sequence", "uuid", "bool", "words", "timestamp", "date"]);
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

    fn timestamp_range(&self, lo: &str, hi: &str, span: Range<usize>) -> Result<GenSpec, ScenarioError> {
        let lo_us = parse_timestamp(lo).or_else(|e| self.err(span.clone(), e))?;
        let hi_us = parse_timestamp(hi).or_else(|e| self.err(span.clone(), e))?;
        if lo_us >= hi_us {
            return self.err(span, format!("timestamp range [{lo}, {hi}] is empty"));
        }
        Ok(GenSpec::Timestamp { lo: lo_us, hi: hi_us })
    }

    fn gen_table(&self, t: RawGenTable, span: Range<usize>) -> Result<ValueSpec, ScenarioError> {
        let nulls = t.nulls.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&nulls) {
            return self.err(span, "nulls is a fraction between 0 and 1");
        }
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
        if t.weights.is_some() && t.one_of.is_none() {
            return self.err(span, "`weights` goes with `one_of`");
        }
        if t.skew.is_some() && t.zipf.is_none() && t.key_of.is_none() {
            return self.err(span, "`skew` goes with `zipf` or `key_of`");
        }
        if let Some(skew) = t.skew
            && !(skew.is_finite() && skew > 0.0)
        {
            return self.err(span, format!("skew must be above 0 (1.0 is classic Zipf), not {skew}"));
        }
        if t.increasing.is_some() && t.timestamp.is_none() {
            return self.err(span, "`increasing` goes with `timestamp`");
        }
        if t.len.is_some() && t.array.is_none() {
            return self.err(span, "`len` goes with `array`");
        }
        let kind = if let Some([lo, hi]) = t.int {
            if lo > hi {
                return self.err(span, format!("int range [{lo}, {hi}] is empty"));
            }
            GenSpec::Int { lo, hi }
        } else if let Some([lo, hi]) = t.float {
            if !(lo < hi && lo.is_finite() && hi.is_finite()) {
                return self.err(span, format!("float range [{lo}, {hi}] is empty"));
            }
            GenSpec::Float { lo, hi }
        } else if let Some(table) = t.key_of {
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
            match t.skew {
                Some(skew) => GenSpec::Zipf { lo: 1, hi: *rows as i64, skew },
                None => GenSpec::KeyOf { table, rows: *rows },
            }
        } else if let Some(values) = t.one_of {
            if values.is_empty() {
                return self.err(span, "one_of needs at least one value");
            }
            let values = values.into_iter().map(|v| self.literal(v, span.clone())).collect::<Result<Vec<_>, _>>()?;
            if let Some(w) = &t.weights {
                if w.len() != values.len()
                    || w.iter().any(|x| !(x.is_finite() && *x >= 0.0))
                    || w.iter().sum::<f64>() <= 0.0
                {
                    return self.err(span, "weights needs one non-negative weight per value, not all zero");
                }
            }
            GenSpec::OneOf { values, weights: t.weights }
        } else if let Some([min, max]) = t.words {
            if min > max || max == 0 {
                return self.err(span, format!("words range [{min}, {max}] is empty"));
            }
            GenSpec::Words { min, max }
        } else if let Some([lo, hi]) = t.timestamp {
            match (self.timestamp_range(&lo, &hi, span)?, t.increasing) {
                (GenSpec::Timestamp { lo, hi }, Some(true)) => GenSpec::Increasing { lo, hi },
                (range, _) => range,
            }
        } else if let Some([lo, hi]) = t.zipf {
            if lo > hi {
                return self.err(span, format!("zipf range [{lo}, {hi}] is empty"));
            }
            GenSpec::Zipf { lo, hi, skew: t.skew.unwrap_or(1.0) }
        } else if let Some(fields) = t.json {
            let mut shape = Vec::with_capacity(fields.len());
            for (key, g) in fields {
                shape.push((key, self.value_spec(g)?));
            }
            GenSpec::Json(shape)
        } else if let Some(of) = t.array {
            let [min, max] = t.len.unwrap_or([0, 3]);
            if min > max || max > 10_000 {
                return self.err(span, format!("array len [{min}, {max}] must be a range within [0, 10000]"));
            }
            GenSpec::Array { of: Box::new(self.value_spec(*of)?), min, max }
        } else if let Some([lo, hi]) = t.date {
            let lo_d = parse_date(&lo).or_else(|e| self.err(span.clone(), e))?;
            let hi_d = parse_date(&hi).or_else(|e| self.err(span.clone(), e))?;
            if lo_d >= hi_d {
                return self.err(span, format!("date range [{lo}, {hi}] is empty"));
            }
            GenSpec::Date { lo: lo_d, hi: hi_d }
        } else if let Some(start) = t.sequence {
            GenSpec::Sequence { start }
        } else if let Some(name) = t.fake {
            match FakeKind::from_name(&name) {
                Some(kind) => GenSpec::Fake(kind),
                None => {
                    let known: Vec<&str> = FakeKind::NAMES.iter().map(|(n, _)| *n).collect();
                    return self.err(span, format!("unknown fake kind `{name}`; known: {}", known.join(", ")));
                }
            }
        } else {
            let value = t.value.expect("exactly one kind is set");
            GenSpec::Const(self.literal(value, span)?)
        };
        Ok(ValueSpec { kind, nulls })
    }

    fn literal(&self, v: toml::Value, span: Range<usize>) -> Result<Literal, ScenarioError> {
        Ok(match v {
            toml::Value::String(s) => Literal::Text(s),
            toml::Value::Integer(i) => Literal::Int(i),
            toml::Value::Float(f) => Literal::Float(f),
            toml::Value::Boolean(b) => Literal::Bool(b),
            other => return self.err(span, format!("`{other}` is not a value a generator can produce")),
        })
    }
}

/// Statements Postgres refuses to run inside a transaction block.
fn needs_own_transaction(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    let first = upper.split_whitespace().next().unwrap_or("");
    upper.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').any(|w| w == "CONCURRENTLY")
        || matches!(first, "VACUUM" | "CLUSTER")
        || upper.trim_start().starts_with("CREATE DATABASE")
        || upper.trim_start().starts_with("DROP DATABASE")
}
