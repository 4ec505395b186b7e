//! Raw scenario → validated [`Scenario`]. Every error names the file, line
//! and column of the value at fault. Every SQL text is parsed here by
//! Postgres' own parser, so a syntax error is found before any server
//! starts; and every value is held to the caps of [`super::limits`].

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::duration::{Dur, human};
use super::limits;
use super::raw::{RawInterference, RawMigrations, RawPostgres, RawScenario, RawStep, RawStrategy, RawTable};
use super::source::{SourceFile, SqlText};
use super::sql_parse;
use super::{
    ColumnOverride, InterferenceSpec, LoadOptions, PostgresSpec, Rollback, Scenario, ScenarioError, SchemaFile,
    Setting, StepSpec, StepTx, Strategy, TableSpec, Thresholds,
};
use crate::migration::files;

pub(super) struct Validator {
    pub(super) src: Arc<SourceFile>,
    scale: f64,
    /// (name, scaled rows) of every table, for `key_of`.
    pub(super) tables: Vec<(String, u64)>,
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

    /// A SQL text, parsed: a syntax error points at its character in the
    /// file (or at the string's start when the string held escapes).
    pub(super) fn sql(&self, s: Spanned<String>, what: &str) -> Result<SqlText, ScenarioError> {
        let span = s.span();
        let text = s.into_inner();
        if text.trim().is_empty() {
            return self.err(span, format!("{what} is empty"));
        }
        let sql = SqlText::new(&self.src, text, span.clone());
        match sql_parse::parse(&sql.text) {
            Err(e) => Err(ScenarioError::Invalid {
                at: sql.location_of(e.position),
                message: format!("{what}: {}", e.message),
            }),
            Ok(p) if p.is_empty() => self.err(span, format!("{what} holds no SQL statement, only comments")),
            Ok(_) => Ok(sql),
        }
    }

    /// A SQL text that must be exactly one statement (a query, a statement
    /// of a transaction: each is prepared on its own).
    pub(super) fn one_statement(&self, s: Spanned<String>, what: &str) -> Result<SqlText, ScenarioError> {
        let span = s.span();
        let sql = self.sql(s, what)?;
        let count = sql_parse::parse(&sql.text).map(|p| p.len()).unwrap_or(1);
        if count > 1 {
            return self.err(
                span,
                format!(
                    "{what} holds {count} statements; a query is one (give several as `transaction = [\"…\", \"…\"]`)"
                ),
            );
        }
        Ok(sql)
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

    /// A duration no longer than `max`.
    pub(super) fn at_most(&self, d: &Spanned<Dur>, max: Duration, what: &str) -> Result<Duration, ScenarioError> {
        let value = d.get_ref().0;
        if value > max {
            return self.err(d.span(), format!("{what} is {}; it may be at most {}", human(value), human(max)));
        }
        Ok(value)
    }

    fn scenario(&mut self, raw: RawScenario) -> Result<Scenario, ScenarioError> {
        let postgres = self.postgres(raw.postgres)?;
        let mut seen = HashSet::new();
        // Names and sizes first: generators refer to tables by name.
        for t in &raw.tables {
            let t = t.get_ref();
            let name = self.name(t.name.clone(), "table", &mut seen)?;
            let rows = self.rows(&name, &t.rows)?;
            self.tables.push((name, rows));
        }
        let folders = raw.strategies.iter().any(|s| s.get_ref().migrations.is_some());
        let schema_rows = self.schema_rows(&raw.schema, raw.rows, folders, &mut seen)?;
        let schema = match raw.schema {
            Some(path) => Some(self.schema_file(path)?),
            None => None,
        };
        let mut tables = Vec::new();
        let has_schema = schema.is_some() || folders;
        for (i, t) in raw.tables.into_iter().enumerate() {
            tables.push(self.table(t.into_inner(), i, has_schema)?);
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
        let interference = self.interference(raw.interference)?;
        let timeline = self.timeline(raw.timeline, load_only)?;
        let (strategies, folder_schema) = self.strategies(raw.strategies)?;
        let schema = schema.or(folder_schema);
        // What the tables are, for binding replayed queries' keys.
        let ddl = tables.iter().map(|t: &TableSpec| t.ddl.text.as_str());
        let dumped = schema.iter().flat_map(|s| s.statements.iter().map(|t| t.text.as_str()));
        let shapes = super::shapes::tables(dumped.chain(ddl));
        let workload = self.workload(raw.workload, load_only, &shapes)?;
        let th = raw.thresholds;
        if let Some(rate) = &th.max_error_rate
            && !(0.0..=1.0).contains(rate.get_ref())
        {
            return self.err(rate.span(), "max_error_rate is a fraction between 0 and 1");
        }
        if let Some(r) = &th.max_p99_ratio
            && !(r.get_ref().is_finite() && *r.get_ref() >= 1.0)
        {
            return self
                .err(r.span(), "max_p99_ratio is how many times its baseline p99 a query's p99 may be: 1 or more");
        }
        let lag_bytes = match &th.max_replica_lag_bytes {
            Some(b) if *b.get_ref() < 0 => {
                return self.err(b.span(), "max_replica_lag_bytes is a number of bytes: 0 or more");
            }
            b => b.as_ref().map(|b| *b.get_ref() as u64),
        };
        if let Some(r) = &th.max_regression
            && !(r.get_ref().is_finite() && *r.get_ref() >= 0.0)
        {
            return self.err(
                r.span(),
                "max_regression is how much worse than the baseline a figure may get: a fraction, 0 or more",
            );
        }
        let (replicas, replica_settings) = self.replicas(raw.replica)?;
        let cdc = self.cdc(raw.cdc)?;
        let pooler = self.pooler(raw.pooler)?;
        let max_broken = match &th.max_broken_queries {
            Some(n) if *n.get_ref() < 0 => {
                return self.err(n.span(), "max_broken_queries is a number of queries: 0 or more");
            }
            n => n.as_ref().map_or(0, |n| *n.get_ref() as u64),
        };
        let max_lost = match &th.max_lost_writes {
            Some(n) if *n.get_ref() < 0 => {
                return self.err(n.span(), "max_lost_writes is a number of writes: 0 or more");
            }
            n => n.as_ref().map_or(0, |n| *n.get_ref() as u64),
        };
        let scenario = Scenario {
            name: raw.name,
            description: raw.description,
            path: self.src.path.clone(),
            seed: raw.seed.unwrap_or(0),
            scale: self.scale,
            postgres,
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
                max_p99_ratio: th.max_p99_ratio.map(|r| r.into_inner()),
                max_broken_queries: max_broken,
                max_lost_writes: max_lost,
                max_replica_lag: th.max_replica_lag.map(|d| d.0),
                max_replica_lag_bytes: lag_bytes,
                max_regression: th.max_regression.map(|r| r.into_inner()),
                defaults: false,
            }
            .or_defaults(),
            replicas,
            replica_settings,
            cdc,
            pooler,
        };
        self.connections(&scenario)?;
        Ok(scenario)
    }

    /// A table's row count after `--scale`, within [`limits::MAX_ROWS`].
    fn rows(&self, table: &str, declared: &Spanned<i64>) -> Result<u64, ScenarioError> {
        let n = *declared.get_ref();
        if n < 0 {
            return self.err(declared.span(), "rows must be 0 or more");
        }
        let scaled = (n as f64 * self.scale).round();
        if scaled > limits::MAX_ROWS as f64 {
            let scale = if self.scale == 1.0 { String::new() } else { format!(" × --scale {}", self.scale) };
            return self.err(
                declared.span(),
                format!(
                    "table `{table}`: {n} rows{scale} is {scaled:e}; a PostgreSQL table (32 TB at most) holds at most about 1e12 rows"
                ),
            );
        }
        Ok(if n > 0 { (scaled as u64).max(1) } else { 0 })
    }

    /// `rows = { … }` beside `schema = "…"`.
    fn schema_rows(
        &mut self,
        schema: &Option<Spanned<String>>,
        rows: Option<Spanned<std::collections::BTreeMap<String, Spanned<i64>>>>,
        folders: bool,
        seen: &mut HashSet<String>,
    ) -> Result<Vec<(String, Spanned<i64>)>, ScenarioError> {
        let list: Vec<(String, Spanned<i64>)> = match (schema, rows) {
            (_, Some(rows)) if rows.get_ref().is_empty() => {
                return self.err(rows.span(), "`rows` names no table to fill");
            }
            (Some(_), Some(rows)) => rows.into_inner().into_iter().collect(),
            (None, Some(rows)) if folders => rows.into_inner().into_iter().collect(),
            (Some(schema), None) => {
                return self.err(schema.span(), "`schema` needs `rows = { table = count, … }`: the tables to fill");
            }
            (None, Some(rows)) => {
                return self.err(rows.span(), "`rows` goes with `schema = \"file.sql\"` or a strategy's `migrations`");
            }
            (None, None) => Vec::new(),
        };
        for (name, n) in &list {
            let name = self.name(Spanned::new(n.span(), name.clone()), "table", seen)?;
            let rows = self.rows(&name, n)?;
            self.tables.push((name, rows));
        }
        Ok(list)
    }

    fn table(&self, t: RawTable, i: usize, has_schema: bool) -> Result<TableSpec, ScenarioError> {
        let bloat = t.bloat.as_ref().map_or(0.0, |b| *b.get_ref());
        if !(0.0..1.0).contains(&bloat) {
            return self.err(t.bloat.expect("set").span(), "bloat is a fraction of the rows, from 0 up to (not) 1");
        }
        let mut columns = Vec::new();
        for (column, spec) in t.columns {
            let at = self.src.location(spec.span().start);
            columns.push(ColumnOverride { column, spec: self.value_spec(spec)?, at });
        }
        let (name, rows) = self.tables[i].clone();
        let (ddl, from_schema) = match t.ddl {
            Some(ddl) => (self.sql(ddl, &format!("the ddl of table `{name}`"))?, false),
            None if has_schema => (SqlText::new(&self.src, String::new(), t.name.span()), true),
            None => {
                return self.err(
                    t.name.span(),
                    format!("table `{name}` has no `ddl`: give one, or a `schema = \"dump.sql\"` (or a strategy's `migrations`) that creates it"),
                );
            }
        };
        Ok(TableSpec { ddl, name, rows, declared_rows: *t.rows.get_ref() as u64, columns, from_schema, bloat })
    }

    /// `[postgres]`: images and settings.
    fn postgres(&self, raw: RawPostgres) -> Result<PostgresSpec, ScenarioError> {
        let images = self.images(&raw)?;
        let settings = self.settings(raw.settings)?;
        Ok(PostgresSpec { settings, images })
    }

    /// Server settings as written (`[postgres] settings`, `[replica]
    /// settings`), each a string, number or boolean under a setting's name.
    pub(super) fn settings(&self, raw: BTreeMap<String, Spanned<toml::Value>>) -> Result<Vec<Setting>, ScenarioError> {
        let mut settings = Vec::new();
        for (name, value) in raw {
            let span = value.span();
            let text = match value.into_inner() {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) if f.is_finite() => f.to_string(),
                toml::Value::Boolean(b) => if b { "on" } else { "off" }.to_string(),
                _ => return self.err(span, format!("setting `{name}` must be a string, number or boolean")),
            };
            let valid_name = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                && !name.starts_with('.')
                && !name.ends_with('.');
            if !valid_name {
                return self.err(span, format!("`{name}` is not a server setting name"));
            }
            if text.contains('\0') || text.len() > 4096 {
                return self.err(span, format!("setting `{name}`: not a value a server setting can take"));
            }
            settings.push(Setting { name, value: text, at: self.src.location(span.start) });
        }
        Ok(settings)
    }

    fn interference(&self, raw: Vec<Spanned<RawInterference>>) -> Result<Vec<InterferenceSpec>, ScenarioError> {
        let mut seen = HashSet::new();
        let mut interference = Vec::new();
        for i in raw {
            let i = i.into_inner();
            let name = self.name(i.name, "interference", &mut seen)?;
            interference.push(InterferenceSpec {
                at: self.at_most(&i.at, limits::MAX_RUN, "an interference's `at`")?,
                sql: self.sql(i.sql, &format!("the sql of interference `{name}`"))?,
                optional: i.optional,
                name,
            });
        }
        Ok(interference)
    }

    /// The strategies, and the schema built by the migrations before a
    /// folder's candidate (the first folder's), if any.
    fn strategies(&self, raw: Vec<Spanned<RawStrategy>>) -> Result<(Vec<Strategy>, Option<SchemaFile>), ScenarioError> {
        let mut seen = HashSet::new();
        let mut strategies = Vec::new();
        let mut schema = None;
        for s in raw {
            let span = s.span();
            let s = s.into_inner();
            let name = self.name(s.name, "strategy", &mut seen)?;
            if let Some(m) = s.migrations {
                if !s.steps.is_empty() {
                    return self.err(m.span(), format!("strategy `{name}` gives `steps` and `migrations`: give one"));
                }
                if let Some(r) = &s.rollback {
                    let message = format!(
                        "strategy `{name}` gives `rollback` and `migrations`: the rollback of migration files is their down part"
                    );
                    return self.err(r.span(), message);
                }
                let at = m.span();
                let folder = self.migrations(m.into_inner(), at)?;
                schema = schema.or(folder.schema);
                let description = s.description.or(folder.strategy.description);
                strategies.push(Strategy { name, description, ..folder.strategy });
                continue;
            }
            if s.steps.is_empty() {
                return self.err(span, format!("strategy `{name}` has no steps (give `steps` or `migrations`)"));
            }
            let steps = s
                .steps
                .into_iter()
                .enumerate()
                .map(|(i, st)| self.step(st, &format!("step {} of strategy `{name}`", i + 1)))
                .collect::<Result<_, _>>()?;
            let rollback = self.rollback(&name, s.rollback)?;
            let (description, files) = (s.description, Vec::new());
            strategies.push(Strategy { name, description, steps, files, source: None, rollback });
        }
        Ok((strategies, schema))
    }

    /// A strategy's `rollback = [ … ]` steps, as a strategy of their own.
    fn rollback(&self, name: &str, raw: Option<Spanned<Vec<Spanned<RawStep>>>>) -> Result<Rollback, ScenarioError> {
        let Some(raw) = raw else {
            return Ok(Rollback::Missing(format!("strategy `{name}` has no `rollback` steps")));
        };
        let span = raw.span();
        let steps: Vec<StepSpec> = raw
            .into_inner()
            .into_iter()
            .enumerate()
            .map(|(i, st)| self.step(st, &format!("rollback step {} of strategy `{name}`", i + 1)))
            .collect::<Result<_, _>>()?;
        if steps.is_empty() {
            return self.err(span, format!("strategy `{name}` has an empty `rollback`"));
        }
        Ok(Rollback::Steps(Box::new(Strategy {
            name: format!("{name} (rollback)"),
            description: Some(format!("the rollback of `{name}`")),
            steps,
            files: Vec::new(),
            source: None,
            rollback: Rollback::Missing("a rollback is not rolled back".into()),
        })))
    }

    /// A strategy's `migrations = { … }`: the folder read as its runner
    /// reads it (relative to the scenario's directory).
    fn migrations(&self, m: RawMigrations, at: Range<usize>) -> Result<files::Folder, ScenarioError> {
        use clap::ValueEnum;
        let format = match &m.format {
            None => None,
            Some(f) if f.get_ref() == "auto" => None,
            Some(f) => match files::Format::from_str(f.get_ref(), true) {
                Ok(format) => Some(format),
                Err(_) => {
                    let names: Vec<String> = files::Format::value_variants().iter().map(|v| v.to_string()).collect();
                    return self
                        .err(f.span(), format!("format `{}` is not one of auto, {}", f.get_ref(), names.join(", ")));
                }
            },
        };
        let resolve = |p: &str| {
            let p = std::path::PathBuf::from(p);
            match self.src.path.parent() {
                Some(base) if p.is_relative() => base.join(p),
                _ => p,
            }
        };
        let (result, span) = match (&m.dir, &m.files) {
            (Some(dir), None) => {
                let how = m.from.clone().map_or(files::Selection::Last, files::Selection::From);
                (files::from_folder(&resolve(dir.get_ref()), format, &how), dir.span())
            }
            (None, Some(list)) if !list.get_ref().is_empty() && m.from.is_none() => {
                let paths: Vec<_> = list.get_ref().iter().map(|p| resolve(p)).collect();
                (files::from_files(&paths, format), list.span())
            }
            (None, Some(list)) if m.from.is_some() => return self.err(list.span(), "`from` goes with `dir`"),
            (None, Some(list)) => return self.err(list.span(), "`files` is empty"),
            (Some(dir), Some(_)) => return self.err(dir.span(), "give `dir` or `files`, not both"),
            (None, None) => {
                return Err(ScenarioError::Invalid {
                    at: self.src.location(at.start),
                    message: "`migrations` needs `dir` (a folder) or `files` (a list)".into(),
                });
            }
        };
        result.map_err(|e| match e {
            ScenarioError::Read { path, source } => ScenarioError::Invalid {
                at: self.src.location(span.start),
                message: format!("cannot read migrations {}: {source}", path.display()),
            },
            other => other,
        })
    }

    fn step(&self, st: Spanned<RawStep>, what: &str) -> Result<StepSpec, ScenarioError> {
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
        let timeout = |d: &Option<Spanned<Dur>>, key: &str| match d {
            Some(d) if d.get_ref().0.is_zero() => self.err(d.span(), format!("{key} must be more than 0")),
            Some(d) => self.at_most(d, limits::MAX_PG_TIMEOUT, key).map(Some),
            None => Ok(None),
        };
        let pause = |d: &Option<Spanned<Dur>>, key: &str| match d {
            Some(d) => self.at_most(d, limits::MAX_PAUSE, key),
            None => Ok(Duration::ZERO),
        };
        let (lock_timeout, statement_timeout) =
            (timeout(&st.lock_timeout, "lock_timeout")?, timeout(&st.statement_timeout, "statement_timeout")?);
        let (backoff, repeat_pause) = (pause(&st.backoff, "backoff")?, pause(&st.pause, "pause")?);
        let sql = self.sql(st.sql, &format!("the sql of {what}"))?;
        let own = sql_parse::parse(&sql.text).is_ok_and(|p| p.needs_own_transaction());
        let tx = match st.transaction {
            Some(t) if *t.get_ref() && own => {
                return self.err(
                    t.span(),
                    format!("{what} cannot run inside a transaction block (CONCURRENTLY, VACUUM, …): drop `transaction = true`"),
                );
            }
            Some(t) => *t.get_ref(),
            None => !own,
        };
        let tx = if tx { StepTx::Own } else { StepTx::Alone };
        Ok(StepSpec {
            name: st.name,
            lock_timeout,
            statement_timeout,
            retries: st.retries.unwrap_or(0),
            backoff,
            repeat: st.repeat.then_some(repeat_pause),
            keyset: None,
            tx,
            origin: None,
            sql,
        })
    }

    /// A scenario that sets `max_connections` leaves room for the pool,
    /// the interference sessions and the harness's own.
    fn connections(&self, s: &Scenario) -> Result<(), ScenarioError> {
        let Some(setting) = s.postgres.settings.iter().find(|x| x.name == "max_connections") else { return Ok(()) };
        let Ok(max) = setting.value.trim().parse::<u64>() else { return Ok(()) };
        let needed = s.sessions_needed() as u64;
        if max < needed {
            return Err(ScenarioError::Invalid {
                at: setting.at.clone(),
                message: format!(
                    "max_connections = {max} is too few: the pool ({}), the interference sessions ({}) and the harness's own ({}) need {needed}",
                    s.workload.pool_size,
                    s.interference.len(),
                    super::HARNESS_SESSIONS
                ),
            });
        }
        Ok(())
    }
}
