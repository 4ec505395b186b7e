//! The model of `rehearse predict`: each step's figures (duration, the
//! time it held its locks, the batch rate of a repeated step) measured at
//! small scales, fitted against the row count, and predicted at the target
//! size, with the fit's error and how far it can be trusted.

use serde::Serialize;

use crate::migration::Outcome;

/// How a figure grows with the row count n: `y = a + b·f(n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrowthOrder {
    /// It does not grow with the table (`f(n) = 1`): a fixed cost, such as
    /// waiting for another session's lock, or a catalog-only change.
    Constant,
    /// `f(n) = n`: one pass over the rows.
    Linear,
    /// `f(n) = n·ln n`: a sort, or a B-tree built from the rows.
    NLogN,
    /// `f(n) = n²`: each part of the work rescans what came before.
    Quadratic,
}

impl GrowthOrder {
    /// The order nearest a power law's exponent over the sizes a
    /// rehearsal spans, where n log n grows about as n^1.1: below 0.25
    /// constant, below 1.05 linear, below 1.55 n log n, else quadratic.
    pub fn nearest(exponent: f64) -> GrowthOrder {
        match exponent {
            k if k < 0.25 => GrowthOrder::Constant,
            k if k < 1.05 => GrowthOrder::Linear,
            k if k < 1.55 => GrowthOrder::NLogN,
            _ => GrowthOrder::Quadratic,
        }
    }

    /// Every order, the simplest first.
    pub const ALL: [GrowthOrder; 4] =
        [GrowthOrder::Constant, GrowthOrder::Linear, GrowthOrder::NLogN, GrowthOrder::Quadratic];

    /// `f(n)`.
    pub fn basis(self, n: f64) -> f64 {
        match self {
            GrowthOrder::Constant => 1.0,
            GrowthOrder::Linear => n,
            GrowthOrder::NLogN => n * n.max(1.0).ln(),
            GrowthOrder::Quadratic => n * n,
        }
    }

    /// Its name in the terminal summary.
    pub fn label(self) -> &'static str {
        match self {
            GrowthOrder::Constant => "constant",
            GrowthOrder::Linear => "linear",
            GrowthOrder::NLogN => "n log n",
            GrowthOrder::Quadratic => "quadratic",
        }
    }
}

/// What a figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The step's wall time (the migration's, for the whole), in ms,
    /// retries and pauses included.
    Duration,
    /// How long the step held the locks it took, in ms (its longest batch,
    /// for a repeated step): what queries queued behind it can wait.
    LockHeld,
    /// A repeated step's mean batch time, in ms.
    BatchTime,
    /// A repeated step's rows per second, pauses included.
    RowsPerS,
}

impl Metric {
    /// Its name in the terminal summary.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Duration => "duration",
            Metric::LockHeld => "lock held",
            Metric::BatchTime => "batch time",
            Metric::RowsPerS => "rows/s",
        }
    }
}

/// What another growth order would have predicted.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Alternative {
    /// The order.
    pub order: GrowthOrder,
    /// Its prediction at the target.
    pub predicted: f64,
    /// Its relative standard error on the points, in percent.
    pub error_pct: f64,
}

/// The fit chosen for a figure: a power law `y = c·n^k` fitted in log
/// space, its exponent read as the nearest growth order; or, when some
/// value is zero (no log), the simplest order `y = a + b·f(n)` that fits.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fit {
    /// How it grows: the order nearest the exponent (see
    /// [`GrowthOrder::nearest`]), or the order fitted.
    pub order: GrowthOrder,
    /// `k` of the power law; `null` when the figure was fitted by its order.
    pub exponent: Option<f64>,
    /// `c` of the power law, or `b` of the order's fit.
    pub coefficient: f64,
    /// `a`: the order's fixed part (0 for the power law).
    pub intercept: f64,
    /// The relative standard error of the fit on its points, in percent
    /// (with the degrees of freedom the fit spends).
    pub error_pct: f64,
    /// Its prediction at the target.
    pub predicted: f64,
    /// The same model fitted without the largest scale: its prediction
    /// there (`null` with fewer than three scales)...
    pub holdout_predicted: Option<f64>,
    /// ...and what was measured there.
    pub holdout_actual: Option<f64>,
    /// What each order `y = a + b·f(n)` that fits would have predicted.
    pub alternatives: Vec<Alternative>,
}

/// One value measured at one scale.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Point {
    /// The `--scale` of the run.
    pub scale: f64,
    /// Rows of the reference table in that run.
    pub rows: u64,
    /// The value measured.
    pub value: f64,
}

/// One figure of one step (or of the whole migration), fitted.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Figure {
    /// The step's 1-based position; `null` for the whole migration.
    pub step: Option<usize>,
    /// The step's label, or its SQL's first words.
    pub name: String,
    /// What it measures.
    pub metric: Metric,
    /// The points measured, smallest scale first.
    pub points: Vec<Point>,
    /// The fit; `null` when the points cannot be fitted, and for a figure
    /// derived from others (rows/s, and the whole migration's duration,
    /// the sum of its steps' predictions).
    pub fit: Option<Fit>,
    /// The value predicted at the target.
    pub predicted: Option<f64>,
    /// `[low, high]`: what the slopes between neighbouring scales,
    /// carried from the largest to the target, predict (the sum of the
    /// steps', for the whole); `null` with fewer than three scales.
    pub range: Option<[f64; 2]>,
    /// The held-out check's error, in percent: the prediction at the
    /// largest scale from the smaller ones, against what was measured.
    pub holdout_error_pct: Option<f64>,
    /// Whether the prediction can be trusted.
    pub trusted: bool,
    /// Why not, when it cannot.
    pub why_not: Option<String>,
    /// With `--verify`: the value measured at the target.
    pub actual: Option<f64>,
}

/// One rehearsal made for the prediction.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScaleRun {
    /// Its `--scale`.
    pub scale: f64,
    /// Rows of the reference table.
    pub rows: u64,
    /// How its migration ended; `null` when it never started.
    pub outcome: Option<Outcome>,
    /// Whether it passed every threshold.
    pub pass: bool,
    /// The index of its report in `reports`.
    pub report: usize,
}

/// What `rehearse predict` found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Prediction {
    /// The strategy predicted.
    pub strategy: String,
    /// The table whose row count the figures are fitted against.
    pub table: String,
    /// The target: its scale...
    pub target_scale: f64,
    /// ...and the reference table's rows at it.
    pub target_rows: u64,
    /// The runs at the small scales, smallest first.
    pub runs: Vec<ScaleRun>,
    /// The whole migration's duration: the sum of its steps' predictions.
    pub total: Figure,
    /// Every step's figures, in step order.
    pub figures: Vec<Figure>,
    /// The scenario's `max_duration`, in ms.
    pub max_duration_ms: f64,
    /// Whether the migration is predicted to outlast `max_duration` at the
    /// target (and so to be cancelled there).
    pub exceeds_max_duration: bool,
    /// Whether every duration's prediction can be trusted.
    pub trusted: bool,
    /// With `--verify`: the run at the target.
    pub verified: Option<ScaleRun>,
    /// What the reader should know: extrapolation, failed runs, noise.
    pub notes: Vec<String>,
}

/// A time in ms as the terminal shows it (`12ms`, `3.4s`, `1m12s`).
pub fn ms_label(ms: f64) -> String {
    super::terminal::dur(ms)
}
