//! Validation of `[workload]` and `[timeline]`: each query's statements,
//! its shape of load (exactly one of `rate`, `ramp`, `clients`), timeouts
//! and target; and a timeline that fits a migration run or a load-only run.

use std::collections::HashSet;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::duration::{Dur, human};
use super::limits;
use super::raw::{RawCdc, RawCheck, RawQuery, RawReplica, RawTimeline, RawWorkload};
use super::validate::Validator;
use super::{
    Arrival, CdcPlugin, CdcSpec, CheckSpec, Load, ParamSpec, QuerySpec, RateProfile, ScenarioError, Setting, Target,
    Timeline, WorkloadSpec,
};

const MAX_RATE: f64 = 1e6;

impl Validator {
    /// `[workload]`; a load-only scenario needs at least one query.
    pub(super) fn workload(
        &self,
        raw: Spanned<RawWorkload>,
        load_only: bool,
        shapes: &std::collections::BTreeMap<String, super::shapes::TableShape>,
    ) -> Result<WorkloadSpec, ScenarioError> {
        let span = raw.span();
        let w = raw.into_inner();
        let pool_size = *w.pool_size.get_ref();
        if !(1..=10_000).contains(&pool_size) {
            return self.err(w.pool_size.span(), "pool_size must be between 1 and 10000");
        }
        if w.pool_timeout.get_ref().0.is_zero() {
            return self.err(w.pool_timeout.span(), "pool_timeout must be more than 0");
        }
        let pool_timeout = self.at_most(&w.pool_timeout, limits::MAX_PAUSE, "pool_timeout")?;
        if load_only && w.query.is_empty() && w.from.is_none() {
            return self.err(span, "a scenario without [[strategy]] runs load only, so it needs a [[workload.query]]");
        }
        let mut seen = HashSet::new();
        let mut queries: Vec<QuerySpec> =
            w.query.into_iter().map(|q| self.query(q, &mut seen)).collect::<Result<_, _>>()?;
        let mut notes = Vec::new();
        if let Some(from) = &w.from {
            let replay = self.replay(from, &w.top, &w.load_scale, shapes)?;
            notes.push(format!(
                "workload from {}: {} queries replayed, {:.1}% of the calls of its {:.0}s window",
                from.get_ref(),
                replay.queries.len(),
                replay.share * 100.0,
                replay.window_s
            ));
            notes.extend(replay.skipped.iter().map(|s| format!("left out {s}")));
            for q in replay.queries {
                if !seen.insert(q.name.clone()) {
                    return self.err(
                        from.span(),
                        format!("a replayed query is named `{}`, as a [[workload.query]] is", q.name),
                    );
                }
                queries.push(q);
            }
            if queries.is_empty() {
                return self
                    .err(from.span(), format!("no query of {} can be replayed: {}", from.get_ref(), notes.join("; ")));
            }
        }
        let checks = w.check.into_iter().map(|c| self.check(c, &mut seen)).collect::<Result<_, _>>()?;
        Ok(WorkloadSpec { pool_size: pool_size as usize, pool_timeout, queries, notes, checks })
    }

    /// One `[[workload.check]]`: a name no query has, one statement, its
    /// parameters' generators.
    fn check(&self, c: Spanned<RawCheck>, seen: &mut HashSet<String>) -> Result<CheckSpec, ScenarioError> {
        let c = c.into_inner();
        let name = self.name(c.name, "check", seen)?;
        let statement = self.one_statement(c.sql, &format!("the sql of check `{name}`"))?;
        let params = self.params(c.params)?;
        Ok(CheckSpec { name, statement, params })
    }

    /// A query's or check's `params`: one generator per `$n`.
    fn params(&self, raw: Vec<Spanned<super::raw::RawGen>>) -> Result<Vec<ParamSpec>, ScenarioError> {
        raw.into_iter()
            .map(|p| {
                let at = self.src.location(p.span().start);
                self.value_spec(p).map(|spec| ParamSpec { spec, at })
            })
            .collect()
    }

    /// `from = "pgss.csv"` (relative to the scenario), with `top` and
    /// `load_scale`.
    fn replay(
        &self,
        from: &Spanned<String>,
        top: &Option<Spanned<i64>>,
        scale: &Option<Spanned<f64>>,
        shapes: &std::collections::BTreeMap<String, super::shapes::TableShape>,
    ) -> Result<super::pgss::Replay, ScenarioError> {
        let top = match top {
            Some(t) if !(1..=1000).contains(t.get_ref()) => {
                return self.err(t.span(), "top must be between 1 and 1000");
            }
            Some(t) => *t.get_ref() as usize,
            None => 20,
        };
        let scale = match scale {
            Some(s) if !(s.get_ref().is_finite() && *s.get_ref() > 0.0 && *s.get_ref() <= 1000.0) => {
                return self.err(s.span(), "load_scale must be more than 0 and at most 1000");
            }
            Some(s) => *s.get_ref(),
            None => 1.0,
        };
        let path = std::path::PathBuf::from(from.get_ref());
        let path = match self.src.path.parent() {
            Some(base) if path.is_relative() => base.join(path),
            _ => path,
        };
        super::pgss::read(&path, top, scale, shapes, &self.tables).map_err(|e| match e {
            ScenarioError::Read { path, source } => ScenarioError::Invalid {
                at: self.src.location(from.span().start),
                message: format!("cannot read {}: {source}", path.display()),
            },
            other => other,
        })
    }

    fn query(&self, q: Spanned<RawQuery>, seen: &mut HashSet<String>) -> Result<QuerySpec, ScenarioError> {
        let span = q.span();
        let q = q.into_inner();
        let name = self.name(q.name, "query", seen)?;
        let (statements, transaction) = match (q.sql, q.transaction) {
            (Some(sql), None) => (vec![self.one_statement(sql, &format!("the sql of query `{name}`"))?], false),
            (None, Some(list)) => {
                let list_span = list.span();
                let list = list.into_inner();
                if list.is_empty() {
                    return self.err(list_span, "transaction needs at least one statement");
                }
                let what = |i: usize| format!("statement {} of query `{name}`", i + 1);
                let statements = list.into_iter().enumerate().map(|(i, s)| self.one_statement(s, &what(i)));
                (statements.collect::<Result<_, _>>()?, true)
            }
            (Some(sql), Some(_)) => {
                return self.err(sql.span(), "give either `sql` (one statement) or `transaction = [...]`, not both");
            }
            (None, None) => {
                return self.err(span, format!("query `{name}` needs `sql` or `transaction = [\"…\", \"…\"]`"));
            }
        };
        let load = self.load(&q.rate, q.ramp, &q.arrival, &q.clients, &q.think_time, span.clone(), &name)?;
        let statement_timeout = self.positive(q.statement_timeout, limits::MAX_PG_TIMEOUT, "statement_timeout")?;
        let timeout = self.positive(q.timeout, limits::MAX_PAUSE, "timeout")?;
        let target = match q.target.as_ref().map(|t| (t.get_ref().as_str(), t.span())) {
            None | Some(("primary", _)) => Target::Primary,
            Some(("replica", _)) => Target::Replica,
            Some((other, at)) => {
                return self.err(at, format!("unknown target `{other}`: use \"primary\" or \"replica\""));
            }
        };
        let params = self.params(q.params)?;
        let read_only = statements.iter().all(|s| super::sql_parse::parse(&s.text).is_ok_and(|p| p.is_read_only()));
        let spec = QuerySpec {
            name,
            statements,
            transaction,
            params,
            load,
            statement_timeout,
            timeout,
            target,
            read_only,
            source: None,
        };
        if target == Target::Replica && !spec.is_read() {
            let at = q.target.expect("replica was given").span();
            return self.err(at, format!("query `{}` writes or locks rows, so it cannot run on a replica", spec.name));
        }
        Ok(spec)
    }

    #[allow(clippy::too_many_arguments)]
    fn load(
        &self,
        rate: &Option<Spanned<f64>>,
        ramp: Option<Spanned<Vec<Spanned<super::raw::RawRampPoint>>>>,
        arrival: &Option<Spanned<String>>,
        clients: &Option<Spanned<i64>>,
        think_time: &Option<Spanned<Dur>>,
        span: Range<usize>,
        name: &str,
    ) -> Result<Load, ScenarioError> {
        let given = [rate.is_some(), ramp.is_some(), clients.is_some()].iter().filter(|g| **g).count();
        if given != 1 {
            return self.err(
                span,
                format!(
                    "query `{name}` needs exactly one of `rate` (open loop), `ramp` (open loop, changing rate) \
                     or `clients` (closed loop)"
                ),
            );
        }
        if let Some(c) = clients {
            if let Some(a) = arrival {
                return self.err(a.span(), "`arrival` applies to open-loop queries (`rate` or `ramp`), not `clients`");
            }
            if !(1..=10_000).contains(c.get_ref()) {
                return self.err(c.span(), "clients must be between 1 and 10000");
            }
            let think_time = match think_time {
                Some(t) => self.at_most(t, limits::MAX_PAUSE, "think_time")?,
                None => Duration::ZERO,
            };
            return Ok(Load::Closed { clients: *c.get_ref() as usize, think_time });
        }
        if let Some(t) = think_time {
            return self.err(t.span(), "`think_time` applies to closed-loop queries (`clients = N`)");
        }
        let arrival = match arrival.as_ref().map(|a| (a.get_ref().as_str(), a.span())) {
            None | Some(("uniform", _)) => Arrival::Uniform,
            Some(("poisson", _)) => Arrival::Poisson,
            Some((other, at)) => {
                return self.err(at, format!("unknown arrival `{other}`: use \"uniform\" or \"poisson\""));
            }
        };
        let profile = match (rate, ramp) {
            (Some(r), _) => {
                let rate = *r.get_ref();
                if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
                    return self.err(r.span(), "rate must be more than 0 requests per second (and at most 1e6)");
                }
                RateProfile::constant(rate)
            }
            (None, Some(ramp)) => self.ramp(ramp)?,
            (None, None) => unreachable!("one of rate, ramp, clients was given"),
        };
        Ok(Load::Open { rate: profile, arrival })
    }

    fn ramp(&self, ramp: Spanned<Vec<Spanned<super::raw::RawRampPoint>>>) -> Result<RateProfile, ScenarioError> {
        let span = ramp.span();
        let mut points: Vec<(Duration, f64)> = Vec::new();
        for p in ramp.into_inner() {
            let at_span = p.span();
            let p = p.into_inner();
            let rate = *p.rate.get_ref();
            if !(rate.is_finite() && (0.0..=MAX_RATE).contains(&rate)) {
                return self.err(p.rate.span(), "a ramp's rate is from 0 to 1e6 requests per second");
            }
            let at = self.at_most(&p.at, limits::MAX_RUN, "a ramp point's `at`")?;
            if points.last().is_some_and(|(last, _)| at <= *last) {
                return self.err(at_span, "a ramp's points must be in increasing `at` order");
            }
            points.push((at, rate));
        }
        if points.is_empty() {
            return self
                .err(span, "a ramp needs points such as [{ at = \"0s\", rate = 100 }, { at = \"1m\", rate = 400 }]");
        }
        if points.iter().all(|(_, r)| *r == 0.0) {
            return self.err(span, "a ramp whose rate is 0 throughout sends nothing");
        }
        Ok(RateProfile { points })
    }

    fn positive(&self, d: Option<Spanned<Dur>>, max: Duration, what: &str) -> Result<Option<Duration>, ScenarioError> {
        match d {
            Some(d) if d.get_ref().0.is_zero() => self.err(d.span(), format!("{what} must be more than 0")),
            Some(d) => self.at_most(&d, max, what).map(Some),
            None => Ok(None),
        }
    }

    /// `[timeline]`: `migrate_at`, `cooldown` and `max_duration` with a
    /// migration; `duration` alone without one. The whole run is at most
    /// [`limits::MAX_RUN`].
    pub(super) fn timeline(&self, raw: Spanned<RawTimeline>, load_only: bool) -> Result<Timeline, ScenarioError> {
        let span = raw.span();
        let t = raw.into_inner();
        if load_only {
            let migration_keys =
                [("migrate_at", &t.migrate_at), ("cooldown", &t.cooldown), ("max_duration", &t.max_duration)];
            if let Some((key, _)) = migration_keys.iter().find(|(_, v)| v.is_some()) {
                return self.err(
                    span,
                    format!("[timeline] {key} needs a migration, but there is no [[strategy]]: a load-only scenario gives `duration`"),
                );
            }
            return match &t.duration {
                Some(d) if !d.get_ref().0.is_zero() => Ok(Timeline {
                    migrate_at: Duration::ZERO,
                    cooldown: Duration::ZERO,
                    max_duration: Duration::ZERO,
                    duration: Some(self.at_most(d, limits::MAX_RUN, "[timeline] duration")?),
                }),
                Some(d) => self.err(d.span(), "[timeline] duration must be more than 0"),
                None => self.err(span, "a scenario without [[strategy]] runs load only: [timeline] needs `duration`"),
            };
        }
        if let Some(d) = &t.duration {
            return self.err(
                d.span(),
                "[timeline] duration is for load-only scenarios; with a [[strategy]] the run lasts until the migration ends plus `cooldown`",
            );
        }
        let missing = |key: &str| format!("[timeline] needs `{key}` (the scenario has a [[strategy]])");
        let (Some(migrate_at), Some(cooldown), Some(max_duration)) = (&t.migrate_at, &t.cooldown, &t.max_duration)
        else {
            let key = if t.migrate_at.is_none() {
                "migrate_at"
            } else if t.cooldown.is_none() {
                "cooldown"
            } else {
                "max_duration"
            };
            return self.err(span, missing(key));
        };
        if max_duration.get_ref().0.is_zero() {
            return self.err(max_duration.span(), "[timeline] max_duration must be more than 0");
        }
        let (m, c, x) = (migrate_at.get_ref().0, cooldown.get_ref().0, max_duration.get_ref().0);
        if m + c + x > limits::MAX_RUN {
            let whole = human(m + c + x);
            // Point at the largest of the three.
            let largest =
                [migrate_at, cooldown, max_duration].into_iter().max_by_key(|d| d.get_ref().0).expect("three");
            return self.err(
                largest.span(),
                format!(
                    "migrate_at + max_duration + cooldown is {whole}; a rehearsal may run at most {}",
                    human(limits::MAX_RUN)
                ),
            );
        }
        Ok(Timeline { migrate_at: m, cooldown: c, max_duration: x, duration: None })
    }

    /// `[replica] count`: how many hot standbys to start, at most
    /// [`limits::MAX_REPLICAS`].
    /// `[replica] settings`: what the standbys run with beside (and over)
    /// the primary's settings.
    pub(super) fn replicas(&self, raw: Option<Spanned<RawReplica>>) -> Result<(usize, Vec<Setting>), ScenarioError> {
        let Some(raw) = raw else { return Ok((0, Vec::new())) };
        let RawReplica { count, settings } = raw.into_inner();
        let settings = self.settings(settings)?;
        match usize::try_from(*count.get_ref()) {
            Ok(n) if n <= limits::MAX_REPLICAS => Ok((n, settings)),
            _ => self.err(count.span(), format!("[replica] count is 0 to {}", limits::MAX_REPLICAS)),
        }
    }

    /// `[cdc]`: `slot` names the output plugin; `rate` is more than 0.
    pub(super) fn cdc(&self, raw: Option<Spanned<RawCdc>>) -> Result<Option<CdcSpec>, ScenarioError> {
        let Some(raw) = raw else { return Ok(None) };
        let RawCdc { slot, rate } = raw.into_inner();
        let plugin = match slot.get_ref().as_str() {
            "pgoutput" => CdcPlugin::Pgoutput,
            "test_decoding" => CdcPlugin::TestDecoding,
            other => {
                return self.err(
                    slot.span(),
                    format!("[cdc] slot is the output plugin, \"pgoutput\" or \"test_decoding\", not `{other}`"),
                );
            }
        };
        if let Some(r) = &rate
            && !(r.get_ref().is_finite() && *r.get_ref() > 0.0)
        {
            return self.err(r.span(), "[cdc] rate is changes per second, more than 0");
        }
        Ok(Some(CdcSpec { plugin, rate: rate.map(|r| r.into_inner()) }))
    }
}
