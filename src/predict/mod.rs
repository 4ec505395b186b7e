//! `rehearse predict`: one strategy rehearsed at small scales, each on a
//! server and load of its own, every step's figures fitted against the
//! row count (see [`fit`]) and predicted at the target size; with
//! `--verify`, rehearsed at the target too, to show how close it came.
//!
//! Each scale is a whole rehearsal (load, timeline, cooldown) under the
//! scenario's own load and interference, so a figure at a small scale is
//! what the user would see at that size, and the growth read off the
//! points is the growth of what was measured, waits included.

mod figures;
pub mod fit;

use std::path::Path;

use crate::postgres::{self, BackendArg};
use crate::rehearsal::{RunOn, RunOptions, UsageError, rehearse};
use crate::report::{Prediction, Report, ScaleRun};
use crate::scenario::{self, LoadOptions, Scenario};
use figures::ScalePoint;
pub use figures::{MAX_ERROR_PCT, MAX_HOLDOUT, NOISE_FLOOR_MS};

/// The size to predict at.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `--at S`: the scenario's row counts times S.
    Scale(f64),
    /// `--rows TABLE=N`: that table at N rows, the others in proportion.
    Rows(String, u64),
}

/// What to predict: the scenario, the strategy, the scales to rehearse
/// and the size to predict at.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The scenario file, loaded once per scale.
    pub path: &'a Path,
    /// The strategy to predict.
    pub strategy: &'a str,
    /// The scales to rehearse and fit.
    pub scales: &'a [f64],
    /// The size to predict at.
    pub target: Target,
    /// Rehearse at the target too, to show how close the prediction came.
    pub verify: bool,
}

/// What a prediction produced: the reports of its runs (the scales, then
/// the target's with `--verify`), and the prediction.
pub struct Predicted {
    /// Every run's report, in the order run.
    pub reports: Vec<Report>,
    /// The fitted figures and the prediction.
    pub prediction: Prediction,
}

/// The reference table and the target's scale: the table `--rows` names,
/// else the scenario's largest.
fn reference(scenario: &Scenario, target: &Target) -> Result<(String, f64), UsageError> {
    match target {
        Target::Scale(s) if !(s.is_finite() && *s > 0.0) => {
            Err(UsageError(format!("--at must be a positive scale, got {s}")))
        }
        Target::Scale(s) => {
            let largest = scenario.tables.iter().max_by_key(|t| t.declared_rows);
            let table = largest.ok_or_else(|| UsageError("the scenario fills no table: nothing grows".into()))?;
            Ok((table.name.clone(), *s))
        }
        Target::Rows(name, rows) => {
            let Some(t) = scenario.tables.iter().find(|t| &t.name == name) else {
                let all: Vec<&str> = scenario.tables.iter().map(|t| t.name.as_str()).collect();
                return Err(UsageError(format!("--rows: no table `{name}` (tables: {})", all.join(", "))));
            };
            if t.declared_rows == 0 || *rows == 0 {
                return Err(UsageError(format!("--rows {name}: a table of 0 rows does not scale")));
            }
            Ok((name.clone(), *rows as f64 / t.declared_rows as f64))
        }
    }
}

/// The scales, checked and sorted.
fn scales(given: &[f64]) -> Result<Vec<f64>, UsageError> {
    let mut s = given.to_vec();
    if let Some(bad) = s.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
        return Err(UsageError(format!("--scales: {bad} is not a positive scale")));
    }
    s.sort_by(f64::total_cmp);
    s.dedup();
    if s.len() < 2 {
        return Err(UsageError("--scales needs two different scales at least (three to check the fit)".into()));
    }
    Ok(s)
}

/// Rehearses `strategy` of the scenario at `path` at each scale, fits and
/// predicts at `target`; with `verify`, rehearses at the target too.
pub async fn predict(
    req: &Request<'_>,
    backend: &BackendArg,
    images: &[String],
    opts: &RunOptions,
) -> anyhow::Result<Predicted> {
    let (path, strategy, verify) = (req.path, req.strategy, req.verify);
    let scales = scales(req.scales)?;
    let base = scenario::load(path, &LoadOptions::default())?;
    let (table, target_scale) = reference(&base, &req.target)?;
    let chosen = crate::rehearsal::strategy(&base, Some(strategy))?
        .ok_or_else(|| UsageError("a load-only scenario has no migration to predict".into()))?
        .clone();
    if images.len() > 1 || base.postgres.images.len() > 1 {
        return Err(UsageError("predict runs on one server: name one --pg-image".into()).into());
    }
    let plan = postgres::plan(backend, images, &base.postgres.images).await?;
    eprintln!("rehearse: backend {}", plan.why);
    let on = RunOn { choice: plan.runs[0].clone(), why: plan.why.clone() };
    let mut runs = Vec::new();
    let mut plan_scales = scales.clone();
    if verify {
        plan_scales.push(target_scale);
    }
    for (i, &scale) in plan_scales.iter().enumerate() {
        if opts.progress {
            crate::live::println(&format!("rehearse: run {} of {}: scale {scale}", i + 1, plan_scales.len()));
        }
        let scenario = scenario::load(path, &LoadOptions { scale })?;
        let mut report = rehearse(&scenario, &on, Some(strategy), opts).await?;
        report.warnings.extend(plan.warnings.iter().cloned());
        let rows = report.tables.iter().find(|t| t.name == table).map_or(0, |t| t.rows);
        runs.push((scale, rows, report));
    }
    let target_rows = (base.tables.iter().find(|t| t.name == table).map_or(0, |t| t.declared_rows) as f64
        * target_scale)
        .round() as u64;
    let verified = verify.then(|| runs.pop()).flatten();
    let prediction = assemble(&chosen, &base, &table, target_scale, target_rows, &runs, verified.as_ref());
    let mut reports: Vec<Report> = runs.into_iter().map(|r| r.2).collect();
    reports.extend(verified.map(|r| r.2));
    Ok(Predicted { reports, prediction })
}

fn scale_run(i: usize, (scale, rows, r): &(f64, u64, Report)) -> ScaleRun {
    ScaleRun {
        scale: *scale,
        rows: *rows,
        outcome: r.migration.as_ref().map(|m| m.outcome),
        pass: r.verdict.pass,
        report: i,
    }
}

/// The prediction, from the runs at the scales (and the one at the
/// target, with `--verify`).
fn assemble(
    strategy: &crate::scenario::Strategy,
    base: &Scenario,
    table: &str,
    target_scale: f64,
    target_rows: u64,
    runs: &[(f64, u64, Report)],
    verified: Option<&(f64, u64, Report)>,
) -> Prediction {
    let points: Vec<ScalePoint> = runs.iter().map(|(s, n, r)| ScalePoint { scale: *s, rows: *n, report: r }).collect();
    let mut steps = figures::steps(strategy, &points, target_rows as f64);
    let mut total = figures::total(&points, &steps);
    if let Some(v) = verified {
        figures::verify(&mut total, &mut steps, &v.2);
    }
    let max_duration_ms = crate::units::millis(base.timeline.max_duration);
    let exceeds = total.predicted.is_some_and(|p| p > max_duration_ms);
    let mut notes = Vec::new();
    let largest = runs.iter().map(|r| r.1).max().unwrap_or(0);
    if largest > 0 && target_rows as f64 / largest as f64 > 10.0 {
        notes.push(format!(
            "the target is {:.0}× the largest table rehearsed: growth orders that fit the points alike part ways there; \
             each figure shows what the others predict",
            target_rows as f64 / largest as f64
        ));
    }
    for (scale, _, r) in runs {
        if !r.verdict.pass {
            let why: Vec<&str> = r.verdict.violations.iter().take(2).map(|v| v.message.as_str()).collect();
            notes.push(format!("at scale {scale} the run failed its thresholds: {}", why.join("; ")));
        }
    }
    if let Some(v) = verified {
        notes.extend(waits_at_target(runs, &v.2));
    }
    if exceeds {
        notes.push(format!(
            "at the target the migration would outlast max_duration ({}) and be cancelled",
            crate::report::ms_label(max_duration_ms)
        ));
    }
    Prediction {
        strategy: strategy.name.clone(),
        table: table.into(),
        target_scale,
        target_rows,
        runs: runs.iter().enumerate().map(|(i, r)| scale_run(i, r)).collect(),
        trusted: total.trusted,
        total,
        figures: steps,
        max_duration_ms,
        exceeds_max_duration: exceeds,
        verified: verified.map(|v| scale_run(runs.len(), v)),
        notes,
    }
}

/// Time a plain step spent not running its SQL: waiting for its lock and,
/// when it retried, its backoffs.
fn waiting_ms(s: &crate::migration::StepReport) -> f64 {
    if s.batches.is_some() { 0.0 } else { (s.duration_ms - s.held_ms).max(0.0) }
}

/// The steps that, at the target, waited for their lock for over a
/// second and more than twice as long as at any scale, and whom they
/// waited behind: a wait on what else ran then (autovacuum, after a large
/// backfill), which no fit of the smaller runs foresees.
fn waits_at_target(runs: &[(f64, u64, Report)], target: &Report) -> Vec<String> {
    let Some(m) = target.migration.as_ref() else { return Vec::new() };
    let at_scales = |index: usize| {
        let steps = runs.iter().filter_map(|r| r.2.migration.as_ref()?.steps.iter().find(|s| s.index == index));
        steps.map(waiting_ms).fold(0.0, f64::max)
    };
    let role = crate::postgres::Role::Migration.to_string();
    let mut notes = Vec::new();
    for s in &m.steps {
        let (waited, before) = (waiting_ms(s), at_scales(s.index));
        if waited < 1000.0 || waited < 2.0 * before {
            continue;
        }
        let during = |e: &&crate::observe::BlockEdge| e.seen_within(s.started_s, s.ended_s).is_some();
        let blockers: Vec<String> = (target.locks.blocking.iter().filter(|e| e.waiter == role).filter(during))
            .map(|e| format!("{} (`{}`)", e.blocker, e.blocker_query))
            .collect();
        let behind = if blockers.is_empty() { String::new() } else { format!(", behind {}", blockers.join(", ")) };
        notes.push(format!(
            "at the target, step {} ({}) spent {} of its {} waiting for its lock ({} attempts; at most {} at the \
             scales){behind}: a wait on what else ran then, which no fit of the smaller runs foresees",
            s.index,
            s.name.clone().unwrap_or_else(|| s.sql.split_whitespace().take(5).collect::<Vec<_>>().join(" ")),
            crate::report::ms_label(waited),
            crate::report::ms_label(s.duration_ms),
            s.attempts,
            crate::report::ms_label(before),
        ));
    }
    notes
}
