//! How far a repeated step got when it was stopped (at `max_duration`, or
//! by a fault), and how long the rest would have taken at its recent pace.
//! The report knows the tables' sizes, so the estimate is made here.

use super::Spread;
use crate::datagen::LoadedTable;
use crate::migration::{BatchPoint, BatchProgress, LockMode, MigrationReport, StepReport};

/// Sets `progress` on every repeated step of `m` that did not finish.
pub fn annotate(m: &mut MigrationReport, tables: &[LoadedTable]) {
    for step in &mut m.steps {
        if step.error.is_some() && !step.batches_series.is_empty() {
            step.progress = Some(progress(step, tables));
        }
    }
}

/// The loaded table the step writes: the one it held ROW EXCLUSIVE on.
fn written<'a>(step: &StepReport, tables: &'a [LoadedTable]) -> Option<&'a LoadedTable> {
    let named = |relation: &str, t: &LoadedTable| {
        relation == t.name || relation.rsplit_once('.').is_some_and(|(_, n)| n.trim_matches('"') == t.name)
    };
    let writes = step.locks.iter().filter(|l| l.mode == LockMode::RowExclusive);
    writes.filter_map(|l| tables.iter().find(|t| named(&l.relation, t))).max_by_key(|t| t.rows)
}

/// The median batch time at the start, the middle and the end of the
/// series, a tenth of the batches each (at least one).
fn trend(s: &[BatchPoint]) -> [f64; 3] {
    let median = |p: &[BatchPoint]| Spread::of(p.iter().map(|b| b.duration_ms)).map_or(0.0, |s| s.median);
    let (n, tenth) = (s.len(), (s.len() / 10).max(1));
    let mid = (n / 2).saturating_sub(tenth / 2);
    [median(&s[..tenth.min(n)]), median(&s[mid..(mid + tenth).min(n)]), median(&s[n.saturating_sub(tenth)..])]
}

fn progress(step: &StepReport, tables: &[LoadedTable]) -> BatchProgress {
    let s = &step.batches_series;
    let n = s.len();
    let trend_ms = trend(s);
    let recent = &s[n - (n / 10).max(5).min(n)..];
    let (first, last) = (recent[0], recent[recent.len() - 1]);
    let span = last.at_s + last.duration_ms / 1000.0 - first.at_s;
    let rows: u64 = recent.iter().map(|p| p.rows).sum();
    let recent_rows_per_s = (span > 0.0 && rows > 0).then(|| rows as f64 / span);
    let table = written(step, tables);
    let rows_total = table.map(|t| t.rows);
    let eta_s = match (rows_total, recent_rows_per_s) {
        (Some(total), Some(rate)) if total > step.rows => Some((total - step.rows) as f64 / rate),
        _ => None,
    };
    BatchProgress {
        rows_done: step.rows,
        rows_total,
        table: table.map(|t| t.name.clone()),
        elapsed_s: step.ended_s - step.started_s,
        recent_rows_per_s,
        eta_s,
        trend_ms,
        slowing: trend_ms[0] > 0.0 && trend_ms[2] > 1.5 * trend_ms[0],
    }
}

/// The terminal's lines for a repeated step: its batch times over the run
/// and, when it was stopped, how far it got and the estimate of the rest.
pub(super) fn lines(step: &StepReport) -> Vec<String> {
    use super::terminal::{count, dur};
    let s = &step.batches_series;
    if s.len() < 2 {
        return Vec::new();
    }
    let trend = trend(s);
    let mut out = vec![format!(
        "batch time (median of a tenth of the batches): start {}, middle {}, end {}",
        dur(trend[0]),
        dur(trend[1]),
        dur(trend[2])
    )];
    if let Some(p) = &step.progress {
        let of = match (p.rows_total, &p.table) {
            (Some(total), Some(t)) => format!(" of {} ({t} as loaded)", count(total)),
            _ => String::new(),
        };
        let mut line = format!("stopped after {}: {} rows{of}", dur(p.elapsed_s * 1000.0), count(p.rows_done));
        match (p.eta_s, p.recent_rows_per_s) {
            (Some(eta), Some(rate)) => {
                line.push_str(&format!(
                    "; at the recent pace ({} rows/s) about {} more",
                    count(rate.round() as u64),
                    dur(eta * 1000.0)
                ));
                if p.slowing {
                    line.push_str(", likely more: its batches slowed as it went");
                }
            }
            _ => line.push_str("; the rest cannot be estimated (the table's size is not known)"),
        }
        out.push(line);
    }
    out
}
