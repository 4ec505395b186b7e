//! `rehearse tune`: one strategy rehearsed with each value of a knob (the
//! `lock_timeout` of its steps that set one, the pause between the batches
//! of its repeated steps), under the same contention, on one load, each
//! run from a fresh copy of it (see [`crate::compare`]). It reports what
//! each value did and recommends one.

use std::time::Duration;

use crate::compare::{Compared, compare};
use crate::migration::Outcome;
use crate::postgres::BackendArg;
use crate::rehearsal::{RunOptions, UsageError};
use crate::report::{Report, Spread, Trial, Tuning};
use crate::scenario::duration::human;
use crate::scenario::{Scenario, Strategy};

/// The values to try.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    /// `lock_timeout` values, for the steps that set one.
    pub lock_timeouts: Vec<Duration>,
    /// Pauses between batches, for the repeated steps.
    pub pauses: Vec<Duration>,
}

/// The variant's name: the strategy and the values it was given.
fn name(strategy: &str, lock_timeout: Option<Duration>, pause: Option<Duration>) -> String {
    let mut n = strategy.to_string();
    if let Some(t) = lock_timeout {
        n.push_str(&format!(" lock_timeout={}", human(t)));
    }
    if let Some(p) = pause {
        n.push_str(&format!(" pause={}", if p.is_zero() { "0".into() } else { human(p) }));
    }
    n
}

/// A variant of the strategy: it, with a `lock_timeout` and a pause.
pub type Variant = (Strategy, Option<Duration>, Option<Duration>);

/// The strategy with each combination of the knobs' values.
pub fn variants(strategy: &Strategy, knobs: &Knobs) -> Result<Vec<Variant>, UsageError> {
    if knobs.lock_timeouts.is_empty() && knobs.pauses.is_empty() {
        return Err(UsageError("tune needs values to try: --lock-timeout 50ms,100ms,... or --pause 0,50ms,...".into()));
    }
    if !knobs.lock_timeouts.is_empty() && !strategy.steps.iter().any(|s| s.lock_timeout.is_some()) {
        return Err(UsageError(format!(
            "--lock-timeout: no step of strategy `{}` sets a lock_timeout; tune varies the steps that set one",
            strategy.name
        )));
    }
    if !knobs.pauses.is_empty() && !strategy.steps.iter().any(|s| s.repeat.is_some()) {
        return Err(UsageError(format!("--pause: strategy `{}` has no repeated step (repeat = true)", strategy.name)));
    }
    let opt = |v: &[Duration]| if v.is_empty() { vec![None] } else { v.iter().copied().map(Some).collect() };
    let mut out = Vec::new();
    for t in opt(&knobs.lock_timeouts) {
        for p in opt(&knobs.pauses) {
            let mut s = strategy.clone();
            s.name = name(&strategy.name, t, p);
            for step in &mut s.steps {
                if let (Some(t), Some(_)) = (t, step.lock_timeout) {
                    step.lock_timeout = Some(t);
                }
                if let (Some(p), Some(_)) = (p, step.repeat) {
                    step.repeat = Some(p);
                }
            }
            out.push((s, t, p));
        }
    }
    Ok(out)
}

/// Tunes `strategy` of `scenario`: every variant `repeat` times, interleaved.
pub async fn tune(
    scenario: &Scenario,
    strategy: &str,
    knobs: &Knobs,
    backend: &BackendArg,
    images: &[String],
    repeat: usize,
    opts: &RunOptions,
) -> anyhow::Result<(Compared, Tuning)> {
    let Some(base) = scenario.strategy(Some(strategy)) else {
        let all: Vec<&str> = scenario.strategies.iter().map(|s| s.name.as_str()).collect();
        return Err(UsageError(format!("no strategy `{strategy}` (strategies: {})", all.join(", "))).into());
    };
    let tried = variants(base, knobs)?;
    let mut tuned = scenario.clone();
    tuned.strategies = tried.iter().map(|(s, _, _)| s.clone()).collect();
    let compared = compare(&tuned, backend, images, &[], repeat, opts).await?;
    let trials: Vec<Trial> = tried.iter().map(|(s, t, p)| trial(&s.name, *t, *p, &compared)).collect();
    let (recommended, why) = recommend(&trials, !knobs.pauses.is_empty());
    Ok((compared, Tuning { strategy: strategy.into(), trials, recommended, why }))
}

fn trial(name: &str, t: Option<Duration>, p: Option<Duration>, c: &Compared) -> Trial {
    let runs: Vec<&Report> =
        c.summary.runs.iter().filter(|r| r.strategy == name).map(|r| &c.reports[r.report]).collect();
    let ok = runs.iter().filter(|r| r.migration.as_ref().is_some_and(|m| m.outcome == Outcome::Ok)).count();
    let steps = |r: &&Report| r.migration.iter().flat_map(|m| &m.steps).cloned().collect::<Vec<_>>();
    let backfill = |r: &&Report| {
        let repeated: Vec<_> = steps(r).into_iter().filter(|s| s.batches.is_some()).collect();
        let (rows, ms) = repeated.iter().fold((0u64, 0f64), |(n, t), s| (n + s.rows, t + s.duration_ms));
        (ms > 0.0 && !repeated.is_empty()).then(|| rows as f64 / (ms / 1000.0))
    };
    Trial {
        name: name.into(),
        lock_timeout_ms: t.map(crate::units::millis),
        pause_ms: p.map(crate::units::millis),
        success_rate: if runs.is_empty() { 0.0 } else { ok as f64 / runs.len() as f64 },
        passed: runs.iter().filter(|r| r.verdict.pass).count(),
        runs: runs.len(),
        attempts: Spread::of(runs.iter().map(|r| steps(r).iter().map(|s| f64::from(s.attempts)).sum::<f64>())),
        worst_p99_during_ms: Spread::of(runs.iter().filter_map(|r| crate::report::worst_during_p99(r))),
        backfill_rows_per_s: Spread::of(runs.iter().filter_map(backfill)),
    }
}

/// Of the values whose every run passed: the fastest backfill when the
/// pause is tuned, else the least worst p99 during the migration (then the
/// fewest attempts). When none passed, none is recommended.
fn recommend(trials: &[Trial], by_speed: bool) -> (Option<String>, String) {
    let median = |s: &Option<Spread>| s.map_or(f64::INFINITY, |s| s.median);
    let passing: Vec<&Trial> = trials.iter().filter(|t| t.runs > 0 && t.passed == t.runs).collect();
    let best = if by_speed {
        passing.iter().max_by(|a, b| {
            let speed = |t: &Trial| t.backfill_rows_per_s.map_or(0.0, |s| s.median);
            speed(a).total_cmp(&speed(b))
        })
    } else {
        passing.iter().min_by(|a, b| {
            let key = |t: &Trial| (median(&t.worst_p99_during_ms), median(&t.attempts));
            key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)
        })
    };
    match best {
        Some(t) if by_speed => (Some(t.name.clone()), "the fastest backfill of the values whose every run passed every threshold".into()),
        Some(t) => (
            Some(t.name.clone()),
            "the least p99 during the migration (then the fewest attempts) of the values whose every run passed every threshold".into(),
        ),
        None => (None, "no value passed every threshold in every run".into()),
    }
}
