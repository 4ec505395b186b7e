//! The summary of `rehearse tune`: what each value of a knob did under
//! the same contention, and the one recommended; rendered for the
//! terminal beside the comparison it was measured by.

use std::fmt::Write;

use serde::Serialize;

use super::Spread;
use super::compare_terminal::spread;
use super::terminal::dur;

/// One value (or pair of values) tried.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trial {
    /// The variant's name in the comparison.
    pub name: String,
    /// The `lock_timeout` tried, in ms.
    pub lock_timeout_ms: Option<f64>,
    /// The pause tried, in ms.
    pub pause_ms: Option<f64>,
    /// The rows per batch tried.
    pub batch_rows: Option<u64>,
    /// Runs whose migration completed, over all runs.
    pub success_rate: f64,
    /// Runs that passed every threshold.
    pub passed: usize,
    /// Runs made.
    pub runs: usize,
    /// Executions of the migration's steps, retries included, per run.
    pub attempts: Option<Spread>,
    /// The worst query p99 while the migration ran, in ms.
    pub worst_p99_during_ms: Option<Spread>,
    /// Rows per second of the repeated steps, pauses included.
    pub backfill_rows_per_s: Option<Spread>,
}

/// What `tune` found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tuning {
    /// The strategy tuned.
    pub strategy: String,
    /// Each value tried, in the order given.
    pub trials: Vec<Trial>,
    /// The value recommended, by its variant's name.
    pub recommended: Option<String>,
    /// Why that one.
    pub why: String,
}

/// The tuning's table: one row per value tried, then the recommendation.
pub fn render_tuning(t: &Tuning) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "tune · strategy {}", t.strategy);
    let width = t.trials.iter().map(|t| t.name.chars().count()).max().unwrap_or(0).max(10);
    let _ = writeln!(
        w,
        "  {:<width$}  {:<12}  {:<12}  {:<22}  {:<22}  backfill rows/s",
        "value", "completed", "passed", "attempts per run", "worst p99 during"
    );
    for tr in &t.trials {
        let line = format!(
            "  {:<width$}  {:<12}  {:<12}  {:<22}  {:<22}  {}",
            tr.name,
            format!("{:.0}%", tr.success_rate * 100.0),
            format!("{} of {}", tr.passed, tr.runs),
            spread(&tr.attempts, &|v| format!("{v:.0}")),
            spread(&tr.worst_p99_during_ms, &dur),
            spread(&tr.backfill_rows_per_s, &|v| format!("{v:.0}")),
        );
        let _ = writeln!(w, "{}", line.trim_end());
    }
    match &t.recommended {
        Some(r) => {
            let _ = writeln!(w, "  recommended: {r} ({})", t.why);
        }
        None => {
            let _ = writeln!(w, "  none recommended: {}", t.why);
        }
    }
    o
}
