//! The summary of `rehearse compare`: every strategy's figures over its
//! repeated runs (median, min and max), the cost of a reset beside the
//! cost of the load, whether a run's position in the round biased it, and
//! the safest strategy that passed every run.

use serde::Serialize;

use super::{Named, Report};
use crate::migration::Outcome;

/// The median, least and greatest of one figure over a strategy's runs.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The least value.
    pub min: f64,
    /// The greatest value.
    pub max: f64,
    /// How many runs had the figure.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Spread { median, min: v[0], max: v[n - 1], n })
    }
}

/// One timeline of the comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CompareRun {
    /// The strategy rehearsed.
    pub strategy: String,
    /// The round, from 1.
    pub round: usize,
    /// Its place in the round, from 1.
    pub position: usize,
    /// Wall time of the reset before it: dropping the rehearsed database
    /// and cloning the loaded one, in seconds.
    pub reset_s: f64,
    /// Its report's index in `reports`.
    pub report: usize,
}

/// The cost of starting each timeline from the loaded data.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResetInfo {
    /// How the database was reset.
    pub method: String,
    /// Wall time of the load (create, fill, index, analyze), in seconds.
    pub load_s: f64,
    /// Wall time of keeping the loaded database (a rename), in seconds.
    pub keep_s: f64,
    /// The resets, one per run, in seconds.
    pub reset_s: Option<Spread>,
    /// The load's time over the median reset's.
    pub load_over_reset: Option<f64>,
}

/// Each query's p99 in one phase, over a strategy's runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseP99 {
    /// Before the migration.
    pub baseline: Option<Spread>,
    /// While it ran.
    pub during: Option<Spread>,
    /// After it, to the end of the run.
    pub after: Option<Spread>,
}

/// One strategy's figures over its runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StrategySummary {
    /// The strategy.
    pub name: String,
    /// How each run's migration ended, by round.
    pub outcomes: Vec<Option<Outcome>>,
    /// Whether each run passed every threshold, by round.
    pub passed: Vec<bool>,
    /// The migration's wall time, in ms.
    pub duration_ms: Option<Spread>,
    /// The migration's own wait for locks, in ms.
    pub migration_lock_wait_ms: Option<Spread>,
    /// The longest wait for a lock of one workload request, in ms.
    pub workload_longest_wait_ms: Option<Spread>,
    /// The most backends waiting for locks at once.
    pub max_waiting: Option<Spread>,
    /// Each query's p99 per phase, in ms.
    pub p99_ms: Named<PhaseP99>,
    /// Failed requests over all requests, from the migration's start on.
    pub error_rate: Option<Spread>,
    /// Time with every pool connection checked out, in seconds.
    pub pool_full_s: Option<Spread>,
}

impl StrategySummary {
    /// Every run passed.
    pub fn passed_all(&self) -> bool {
        !self.passed.is_empty() && self.passed.iter().all(|p| *p)
    }
}

/// Whether a run's place in its round moved its figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OrderCheck {
    /// Whether there was anything to compare: at least two strategies,
    /// each run in at least two positions.
    pub assessed: bool,
    /// Per position, from 1: the median over its runs of the busiest
    /// query's baseline p99 (measured before any migration, so it shows
    /// the server's drift, not the strategy), each divided by its
    /// strategy's median.
    pub baseline_p99_ratio: Vec<Option<f64>>,
    /// The same for the migration's duration.
    pub duration_ratio: Vec<Option<f64>>,
    /// The greatest difference between two positions' ratios.
    pub drift: Option<f64>,
    /// Whether that difference exceeds 25 %.
    pub biased: bool,
}

/// The summary of a comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    /// The scenario.
    pub scenario: String,
    /// Runs per strategy asked for.
    pub repeat: usize,
    /// Every strategy ran its runs: no fault of the server cut it short.
    pub complete: bool,
    /// The reset and the load.
    pub reset: ResetInfo,
    /// Every timeline, in the order run.
    pub runs: Vec<CompareRun>,
    /// The strategies, in the scenario's order.
    pub strategies: Vec<StrategySummary>,
    /// Position bias.
    pub order: OrderCheck,
    /// The safest strategy that passed every run, if any did.
    pub safest: Option<String>,
    /// How the safest is chosen.
    pub safest_rule: &'static str,
}

/// How [`Comparison::safest`] is chosen.
pub const SAFEST_RULE: &str = "of the strategies that passed every run: the least median workload lock wait, then the least median worst p99 during the migration, then the shortest median duration";

/// The runs of each strategy, in the order given.
fn by_strategy<'a>(names: &[String], runs: &[CompareRun], reports: &'a [Report]) -> Vec<Vec<&'a Report>> {
    names.iter().map(|n| runs.iter().filter(|r| &r.strategy == n).map(|r| &reports[r.report]).collect()).collect()
}

/// Summarizes the runs of a comparison.
pub fn summarize(
    scenario: &str,
    names: &[String],
    repeat: usize,
    runs: Vec<CompareRun>,
    reports: &[Report],
    reset: ResetInfo,
) -> Comparison {
    let grouped = by_strategy(names, &runs, reports);
    let strategies: Vec<StrategySummary> =
        names.iter().zip(&grouped).map(|(name, rs)| strategy_summary(name, rs)).collect();
    let complete = grouped.iter().all(|rs| rs.len() == repeat) && reports.iter().all(|r| r.fault.is_none());
    let order = order_check(names, &runs, reports);
    let safest = safest(&strategies, &grouped);
    Comparison {
        scenario: scenario.into(),
        repeat,
        complete,
        reset,
        runs,
        strategies,
        order,
        safest,
        safest_rule: SAFEST_RULE,
    }
}

fn strategy_summary(name: &str, rs: &[&Report]) -> StrategySummary {
    let of = |f: &dyn Fn(&Report) -> Option<f64>| Spread::of(rs.iter().filter_map(|r| f(r)));
    let queries: Vec<String> =
        rs.first().map(|r| r.workload.queries.iter().map(|q| q.name.clone()).collect()).unwrap_or_default();
    let p99 = queries
        .into_iter()
        .map(|q: String| {
            let at = |p: &dyn Fn(&Report) -> &super::PhaseReport| of(&|r| p(r).queries.get(&q).and_then(|s| s.p99_ms));
            let phase = PhaseP99 {
                baseline: at(&|r| &r.phases.baseline),
                during: at(&|r| &r.phases.during),
                after: at(&|r| &r.phases.after),
            };
            (q, phase)
        })
        .collect();
    StrategySummary {
        name: name.into(),
        outcomes: rs.iter().map(|r| r.migration.as_ref().map(|m| m.outcome)).collect(),
        passed: rs.iter().map(|r| r.verdict.pass).collect(),
        duration_ms: of(&|r| r.migration.as_ref().map(|m| m.total_ms)),
        migration_lock_wait_ms: of(&|r| r.migration.as_ref().map(|m| m.lock_wait_ms)),
        workload_longest_wait_ms: of(&|r| Some(r.locks.workload_longest_wait_ms)),
        max_waiting: of(&|r| Some(r.locks.max_waiting as f64)),
        p99_ms: Named(p99),
        error_rate: of(&error_rate),
        pool_full_s: of(&|r| Some(r.pool.full_seconds)),
    }
}

/// Failed over all requests from the migration's start on; `None` when
/// nothing ran then.
fn error_rate(r: &Report) -> Option<f64> {
    let (errors, total) = r.workload.queries.iter().fold((0, 0), |(e, t), q| {
        let (qe, qt, _) = r.failures_since_migration(&q.name);
        (e + qe, t + qt)
    });
    (total > 0).then(|| errors as f64 / total as f64)
}

/// The worst query p99 while the migration ran.
pub(crate) fn worst_during_p99(r: &Report) -> Option<f64> {
    r.phases.during.queries.0.iter().filter_map(|(_, s)| s.p99_ms).reduce(f64::max)
}

fn safest(strategies: &[StrategySummary], grouped: &[Vec<&Report>]) -> Option<String> {
    let key = |(s, rs): &(&StrategySummary, &Vec<&Report>)| {
        let median = |o: Option<Spread>| o.map_or(f64::INFINITY, |s| s.median);
        let during = Spread::of(rs.iter().filter_map(|r| worst_during_p99(r)));
        (median(s.workload_longest_wait_ms), median(during), median(s.duration_ms))
    };
    let passing = strategies.iter().zip(grouped).filter(|(s, _)| s.passed_all());
    passing.min_by(|a, b| key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)).map(|(s, _)| s.name.clone())
}

/// The baseline p99 of the query with the most baseline requests.
fn busiest_baseline_p99(r: &Report) -> Option<f64> {
    let queries = &r.phases.baseline.queries.0;
    queries.iter().max_by_key(|(_, s)| s.count).and_then(|(_, s)| s.p99_ms)
}

/// Each run's figures over its strategy's median, grouped by position.
fn order_check(names: &[String], runs: &[CompareRun], reports: &[Report]) -> OrderCheck {
    let positions = runs.iter().map(|r| r.position).max().unwrap_or(0);
    let ratios = |figure: &dyn Fn(&Report) -> Option<f64>| -> Vec<Option<f64>> {
        let medians: Vec<Option<Spread>> = names
            .iter()
            .map(|n| Spread::of(runs.iter().filter(|r| &r.strategy == n).filter_map(|r| figure(&reports[r.report]))))
            .collect();
        (1..=positions)
            .map(|p| {
                let at = runs.iter().filter(|r| r.position == p).filter_map(|r| {
                    let i = names.iter().position(|n| n == &r.strategy)?;
                    let m = medians[i]?.median;
                    figure(&reports[r.report]).filter(|_| m > 0.0).map(|v| v / m)
                });
                Spread::of(at).map(|s| s.median)
            })
            .collect()
    };
    let baseline = ratios(&busiest_baseline_p99);
    let duration = ratios(&|r| r.migration.as_ref().map(|m| m.total_ms));
    let each_moved = names.iter().all(|n| {
        let mut seen: Vec<usize> = runs.iter().filter(|r| &r.strategy == n).map(|r| r.position).collect();
        seen.dedup();
        seen.sort_unstable();
        seen.dedup();
        seen.len() >= 2
    });
    let assessed = names.len() >= 2 && each_moved;
    let spread = |v: &[Option<f64>]| Spread::of(v.iter().flatten().copied()).map(|s| s.max - s.min);
    let drift =
        if assessed { [spread(&baseline), spread(&duration)].into_iter().flatten().reduce(f64::max) } else { None };
    OrderCheck {
        assessed,
        baseline_p99_ratio: baseline,
        duration_ratio: duration,
        drift,
        biased: drift.is_some_and(|d| d > 0.25),
    }
}
