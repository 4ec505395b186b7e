//! `--baseline previous.json`: this run against an earlier one of the same
//! scenario and strategy. A figure that got worse by more than the
//! tolerance (`max_regression`, a fraction; 0.25 unless the scenario says)
//! and by more than a floor (a 2 ms p99 that becomes 4 ms is noise, not a
//! regression) is a regression, and fails the verdict.

use std::fmt::Write;

use serde::Serialize;

use super::{Check, Report, Violation};

/// The tolerance when the scenario sets no `max_regression`.
pub const DEFAULT_TOLERANCE: f64 = 0.25;

/// A figure compared with the baseline's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// The migration's wall time, in milliseconds.
    MigrationMs,
    /// The longest any workload request waited on a lock, in milliseconds.
    WorkloadLockWaitMs,
    /// Seconds the application's pool was full.
    PoolFullS,
    /// A query's p99 during the migration, in milliseconds.
    P99DuringMs,
    /// A query's fraction of failed requests from the migration's start on.
    ErrorRate,
}

impl Figure {
    /// How much worse a figure must also get, in its unit, to count.
    fn floor(self) -> f64 {
        match self {
            Figure::MigrationMs | Figure::WorkloadLockWaitMs | Figure::P99DuringMs => 50.0,
            Figure::PoolFullS => 0.1,
            Figure::ErrorRate => 0.001,
        }
    }

    /// What it is, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Figure::MigrationMs => "the migration's wall time",
            Figure::WorkloadLockWaitMs => "the longest lock wait of a workload request",
            Figure::PoolFullS => "time the pool was full",
            Figure::P99DuringMs => "p99 during the migration",
            Figure::ErrorRate => "failed requests since the migration began",
        }
    }

    /// A value of it, in its unit.
    pub fn show(self, v: f64) -> String {
        match self {
            Figure::MigrationMs | Figure::WorkloadLockWaitMs | Figure::P99DuringMs => super::terminal::dur(v),
            Figure::PoolFullS => format!("{v:.1}s"),
            Figure::ErrorRate => format!("{:.2}%", v * 100.0),
        }
    }
}

/// One figure that got worse.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Regression {
    /// Which figure.
    pub figure: Figure,
    /// What it is of: a query's name, or `run`.
    pub subject: String,
    /// The baseline's value.
    pub baseline: f64,
    /// This run's.
    pub now: f64,
}

/// This run against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Regressions {
    /// The baseline's file.
    pub baseline: String,
    /// How much worse (a fraction) a figure may get.
    pub tolerance: f64,
    /// Figures compared (those both runs measured).
    pub compared: usize,
    /// Those that got worse than the tolerance allows.
    pub regressed: Vec<Regression>,
}

/// The report in `baseline` (the reports of one `--json` file) of the same
/// scenario, strategy and server as `r`; `Err` says why there is none.
pub fn pick<'a>(baseline: &'a [Report], r: &Report) -> Result<&'a Report, String> {
    let same = |b: &&Report| b.scenario == r.scenario && b.strategy == r.strategy;
    let mut matching: Vec<&Report> = baseline.iter().filter(same).collect();
    if matching.len() > 1 {
        matching.retain(|b| b.postgres.image == r.postgres.image);
    }
    matching.first().copied().ok_or_else(|| {
        let strategy = r.strategy.as_deref().unwrap_or("(load only)");
        format!("it holds no report of scenario {} with strategy {strategy}", r.scenario)
    })
}

/// The figures of a report, by figure and subject (`run`, or a query's
/// name): what `--baseline` compares and `soak` spreads.
pub fn figures(r: &Report) -> Vec<(Figure, String, f64)> {
    let run = |f: Figure, x: f64| (f, "run".to_string(), x);
    let mut out = Vec::new();
    if let Some(m) = &r.migration {
        out.push(run(Figure::MigrationMs, m.total_ms));
    }
    out.push(run(Figure::WorkloadLockWaitMs, r.locks.workload_longest_wait_ms));
    out.push(run(Figure::PoolFullS, r.pool.full_seconds));
    if r.migration.is_some() {
        for (name, q) in &r.phases.during.queries.0 {
            if let Some(p) = q.p99_ms {
                out.push((Figure::P99DuringMs, name.clone(), p));
            }
        }
    }
    for (name, _) in &r.phases.baseline.queries.0 {
        let (errors, count, _) = r.failures_since_migration(name);
        if count > 0 {
            out.push((Figure::ErrorRate, name.clone(), errors as f64 / count as f64));
        }
    }
    out
}

/// Compares `r` with `baseline` (its report from [`pick`]), at `tolerance`.
pub fn compare(r: &Report, baseline: &Report, path: &str, tolerance: f64) -> Regressions {
    let before = figures(baseline);
    let mut compared = 0;
    let mut regressed = Vec::new();
    for (figure, subject, x) in figures(r) {
        let Some((_, _, b)) = before.iter().find(|(f, s, _)| *f == figure && *s == subject) else { continue };
        compared += 1;
        if x > b * (1.0 + tolerance) && x - b > figure.floor() {
            regressed.push(Regression { figure, subject, baseline: *b, now: x });
        }
    }
    Regressions { baseline: path.to_string(), tolerance, compared, regressed }
}

/// Sets `r.regressions`, and fails its verdict for each one, and when no
/// figure could be compared (nothing was judged).
pub fn apply(r: &mut Report, regressions: Regressions) {
    if regressions.compared == 0 {
        r.verdict.violations.push(Violation {
            threshold: Check::MaxRegression,
            subject: "run".into(),
            measured: None,
            limit: None,
            message: format!(
                "--baseline {}: no figure of this run is in it; nothing was compared",
                regressions.baseline
            ),
        });
        r.verdict.pass = false;
    }
    for g in &regressions.regressed {
        r.verdict.violations.push(Violation {
            threshold: Check::MaxRegression,
            subject: g.subject.clone(),
            measured: Some(g.now),
            limit: Some(g.baseline * (1.0 + regressions.tolerance)),
            message: sentence(g, regressions.tolerance),
        });
        r.verdict.pass = false;
    }
    r.regressions = Some(regressions);
}

/// `get_order: p99 during the migration 12.0ms → 80.0ms (+567%, limit +25%)`.
fn sentence(g: &Regression, tolerance: f64) -> String {
    let change = if g.baseline > 0.0 { format!("+{:.0}%", (g.now / g.baseline - 1.0) * 100.0) } else { "new".into() };
    let whose = if g.subject == "run" { String::new() } else { format!("{}: ", g.subject) };
    format!(
        "{whose}{} {} → {} ({change}, limit +{:.0}%)",
        g.figure.describe(),
        g.figure.show(g.baseline),
        g.figure.show(g.now),
        tolerance * 100.0
    )
}

/// The terminal section, with `--baseline`.
pub(super) fn render(w: &mut String, r: Option<&Regressions>) {
    let Some(r) = r else { return };
    let _ = writeln!(
        w,
        "\nREGRESSIONS  against {} (tolerance +{:.0}%): {} of {} figures got worse",
        r.baseline,
        r.tolerance * 100.0,
        r.regressed.len(),
        r.compared
    );
    for g in &r.regressed {
        let _ = writeln!(w, "  ✗ {}", sentence(g, r.tolerance));
    }
}
