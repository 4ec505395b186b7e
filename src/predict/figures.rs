//! From the reports of the small-scale runs to the fitted figures: per
//! step, its duration, the time it held its locks and, for a repeated
//! step, its batch time and rows per second; then the whole migration as
//! the sum of its steps, each judged by a held-out check.

use super::fit::{fit, range};
use crate::migration::StepReport;
use crate::report::{Figure, Metric, Point, Report};
use crate::scenario::Strategy;

/// A held-out miss this small (in ms) is timer and scheduler noise, not a
/// poor fit: the observer samples every 20 ms and a 2-core machine
/// schedules a load beside the migration.
pub const NOISE_FLOOR_MS: f64 = 25.0;
/// A held-out miss beyond this share of the measured value means the fit
/// does not extrapolate, and the prediction is not trusted.
pub const MAX_HOLDOUT: f64 = 0.20;
/// Points that scatter more than this about their fit (relative standard
/// error, in percent) are too noisy to trust.
pub const MAX_ERROR_PCT: f64 = 15.0;

/// One run at one scale: its scale, the reference table's rows, its report.
pub struct ScalePoint<'a> {
    /// `--scale`.
    pub scale: f64,
    /// Rows of the reference table.
    pub rows: u64,
    /// What it measured.
    pub report: &'a Report,
}

fn step(r: &Report, index: usize) -> Option<&StepReport> {
    r.migration.as_ref()?.steps.iter().find(|s| s.index == index)
}

/// A step's label, or its SQL's first words.
pub fn step_name(spec: &crate::scenario::StepSpec) -> String {
    spec.name.clone().unwrap_or_else(|| {
        let words: Vec<&str> = spec.sql.text.split_whitespace().take(5).collect();
        words.join(" ")
    })
}

/// Fits one figure from its points, judges it and predicts at `target`.
fn fitted(step: Option<usize>, name: &str, metric: Metric, points: Vec<Point>, missing: &[f64], target: f64) -> Figure {
    let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.rows as f64, p.value)).collect();
    let fit = fit(&xy, target);
    let mut f = Figure {
        step,
        name: name.into(),
        metric,
        points,
        predicted: fit.as_ref().map(|f| f.predicted),
        range: fit.as_ref().and_then(|f| range(&xy, target, f.predicted)).map(|(l, h)| [l, h]),
        holdout_error_pct: None,
        fit,
        trusted: false,
        why_not: None,
        actual: None,
    };
    let held = f.fit.as_ref().and_then(|f| Some((f.holdout_predicted?, f.holdout_actual?)));
    f.holdout_error_pct = held.map(|(p, a)| (p - a) / a.abs().max(1e-9) * 100.0);
    let mean = xy.iter().map(|p| p.1).sum::<f64>() / xy.len().max(1) as f64;
    f.why_not = if !missing.is_empty() {
        Some(format!("it did not complete at scale {}", list(missing)))
    } else if f.fit.is_none() {
        Some("fewer than two row counts to fit".into())
    } else if xy.len() < 3 {
        Some("fitted on two scales, which any curve fits: give three or more".into())
    } else if let Some(why) = held.and_then(|(p, a)| holdout_miss(p, a)) {
        Some(why)
    } else {
        let e = f.fit.as_ref().map_or(0.0, |f| f.error_pct);
        (e > MAX_ERROR_PCT && mean > NOISE_FLOOR_MS)
            .then(|| format!("the points scatter {e:.0}% about the fit: too noisy to trust"))
    };
    f.trusted = f.why_not.is_none();
    f
}

/// Why a held-out prediction `p` of the measured `a` is too far off.
fn holdout_miss(p: f64, a: f64) -> Option<String> {
    let off = (p - a).abs();
    (off > MAX_HOLDOUT * a.abs() && off > NOISE_FLOOR_MS).then(|| {
        format!(
            "fitted without the largest scale, it predicted {} there, where {} was measured ({:+.0}%)",
            crate::report::ms_label(p),
            crate::report::ms_label(a),
            (p - a) / a.abs().max(1e-9) * 100.0
        )
    })
}

fn list(scales: &[f64]) -> String {
    scales.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
}

/// Every step's figures, in step order.
pub fn steps(strategy: &Strategy, runs: &[ScalePoint], target: f64) -> Vec<Figure> {
    let mut out = Vec::new();
    for (i, spec) in strategy.steps.iter().enumerate() {
        let (index, name) = (i + 1, step_name(spec));
        let done: Vec<(&ScalePoint, &StepReport)> =
            runs.iter().filter_map(|r| Some((r, step(r.report, index).filter(|s| s.error.is_none())?))).collect();
        let missing: Vec<f64> =
            runs.iter().filter(|r| !done.iter().any(|(d, _)| d.scale == r.scale)).map(|r| r.scale).collect();
        let points = |value: &dyn Fn(&StepReport) -> Option<f64>| -> Vec<Point> {
            done.iter().filter_map(|(r, s)| Some(Point { scale: r.scale, rows: r.rows, value: value(s)? })).collect()
        };
        let duration = fitted(Some(index), &name, Metric::Duration, points(&|s| Some(s.duration_ms)), &missing, target);
        let held = fitted(Some(index), &name, Metric::LockHeld, points(&|s| Some(s.held_ms)), &missing, target);
        if spec.repeat.is_some() {
            let batch = |s: &StepReport| {
                let n = s.batches_series.len();
                (n > 0).then(|| s.batches_series.iter().map(|b| b.duration_ms).sum::<f64>() / n as f64)
            };
            let rate = rows_per_s(&duration, &done, target);
            out.push(duration);
            out.push(held);
            out.push(fitted(Some(index), &name, Metric::BatchTime, points(&batch), &missing, target));
            out.push(rate);
        } else {
            out.push(duration);
            out.push(held);
        }
    }
    out
}

/// A repeated step's rows per second: at each scale as measured, and at
/// the target as the rows it would touch there (in proportion to the
/// table's, as at the scales) over its predicted duration.
fn rows_per_s(duration: &Figure, done: &[(&ScalePoint, &StepReport)], target: f64) -> Figure {
    let points: Vec<Point> = done
        .iter()
        .filter(|(_, s)| s.duration_ms > 0.0)
        .map(|(r, s)| Point { scale: r.scale, rows: r.rows, value: s.rows as f64 / (s.duration_ms / 1000.0) })
        .collect();
    let share = done.iter().filter(|(r, _)| r.rows > 0).map(|(r, s)| s.rows as f64 / r.rows as f64).sum::<f64>()
        / done.len().max(1) as f64;
    let predicted = duration.predicted.filter(|d| *d > 0.0).map(|d| share * target / (d / 1000.0));
    Figure {
        step: duration.step,
        name: duration.name.clone(),
        metric: Metric::RowsPerS,
        points,
        fit: None,
        predicted,
        range: duration
            .range
            .filter(|r| r[0] > 0.0)
            .map(|[l, h]| [share * target / (h / 1000.0), share * target / (l / 1000.0)]),
        holdout_error_pct: None,
        trusted: duration.trusted,
        why_not: duration.why_not.clone(),
        actual: None,
    }
}

/// The whole migration: measured at each scale, predicted as the sum of
/// its steps' predicted durations, and checked the same way (the steps
/// fitted without the largest scale, summed, against its total).
pub fn total(runs: &[ScalePoint], steps: &[Figure]) -> Figure {
    let durations: Vec<&Figure> = steps.iter().filter(|f| f.metric == Metric::Duration).collect();
    let points: Vec<Point> = runs
        .iter()
        .filter_map(|r| {
            let m = r.report.migration.as_ref().filter(|m| m.outcome == crate::migration::Outcome::Ok)?;
            Some(Point { scale: r.scale, rows: r.rows, value: m.total_ms })
        })
        .collect();
    let predicted: Option<f64> = durations.iter().map(|f| f.predicted).sum();
    let low: Option<f64> = durations.iter().map(|f| f.range.map(|r| r[0])).sum();
    let high: Option<f64> = durations.iter().map(|f| f.range.map(|r| r[1])).sum();
    let held: Option<f64> = durations.iter().map(|f| f.fit.as_ref().and_then(|f| f.holdout_predicted)).sum();
    let largest = points.iter().max_by_key(|p| p.rows).map(|p| p.value);
    let held_pair = held.zip(largest).filter(|_| points.len() >= 3);
    // A step too small to move the whole by a twentieth does not make it
    // untrustworthy; one with no prediction does.
    let matters = |f: &&&Figure| f.predicted.zip(predicted).is_none_or(|(p, whole)| p > 0.05 * whole);
    let untrusted = durations.iter().filter(matters).find(|f| !f.trusted);
    let why_not = match untrusted {
        Some(f) => {
            Some(format!("step {} ({}): {}", f.step.unwrap_or(0), f.name, f.why_not.clone().unwrap_or_default()))
        }
        None if points.len() < runs.len() => Some("the migration did not complete at every scale".into()),
        None if durations.is_empty() => Some("the strategy has no steps".into()),
        None => held_pair.and_then(|(p, a)| holdout_miss(p, a)),
    };
    Figure {
        step: None,
        name: "the migration".into(),
        metric: Metric::Duration,
        points,
        fit: None,
        predicted,
        range: low.zip(high).map(|(l, h)| [l, h]),
        holdout_error_pct: held_pair.map(|(p, a)| (p - a) / a.abs().max(1e-9) * 100.0),
        trusted: why_not.is_none(),
        why_not,
        actual: None,
    }
}

/// Fills each figure's `actual` from the run at the target.
pub fn verify(total: &mut Figure, steps: &mut [Figure], report: &Report) {
    total.actual = report.migration.as_ref().filter(|m| m.outcome == crate::migration::Outcome::Ok).map(|m| m.total_ms);
    for f in steps {
        let Some(s) = f.step.and_then(|i| step(report, i)).filter(|s| s.error.is_none()) else { continue };
        let n = s.batches_series.len();
        f.actual = match f.metric {
            Metric::Duration => Some(s.duration_ms),
            Metric::LockHeld => Some(s.held_ms),
            Metric::BatchTime => {
                (n > 0).then(|| s.batches_series.iter().map(|b| b.duration_ms).sum::<f64>() / n as f64)
            }
            Metric::RowsPerS => (s.duration_ms > 0.0).then(|| s.rows as f64 / (s.duration_ms / 1000.0)),
        };
    }
}
