//! The terminal summary of `rehearse compare`: one column per strategy,
//! each cell the median of its runs with their least and greatest, then
//! the reset's cost beside the load's, the position check, and the safest
//! strategy that passed.

use std::fmt::Write;

use super::Report;
use super::compare::{Comparison, Spread, StrategySummary};
use super::terminal::dur;
use crate::migration::Outcome;

/// `median (min–max)`, or the median alone when the runs agree as shown.
pub(super) fn spread(s: &Option<Spread>, show: &dyn Fn(f64) -> String) -> String {
    let Some(s) = s else { return "-".into() };
    let (median, min, max) = (show(s.median), show(s.min), show(s.max));
    if min == max { median } else { format!("{median} ({min}–{max})") }
}

fn outcomes(s: &StrategySummary) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for o in &s.outcomes {
        let name = match o {
            Some(Outcome::Ok) => "ok",
            Some(Outcome::Failed) => "FAILED",
            Some(Outcome::Cancelled) => "CANCELLED",
            Some(Outcome::Interrupted) => "INTERRUPTED",
            None => "not started",
        };
        match counts.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name.to_string(), 1)),
        }
    }
    let runs = s.outcomes.len();
    counts
        .iter()
        .map(|(n, c)| if runs == 1 { n.clone() } else { format!("{n} {c}/{runs}") })
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(s: &StrategySummary, safest: bool) -> String {
    let passed = s.passed.iter().filter(|p| **p).count();
    let mark = if safest { " ✓ safest" } else { "" };
    match (passed, s.passed.len()) {
        (_, 0) => "not run".into(),
        (p, n) if p == n => format!("PASS{}{mark}", if n > 1 { format!(" {p}/{n}") } else { String::new() }),
        (p, n) => format!("FAIL{}", if n > 1 { format!(" ({p}/{n} passed)") } else { String::new() }),
    }
}

/// Renders the comparison; `reports` are its runs' reports.
pub fn render_comparison(c: &Comparison, reports: &[Report]) -> String {
    let mut o = String::new();
    let w = &mut o;
    let first = reports.first();
    let server =
        first.map_or(String::new(), |r| r.postgres.version.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
    let _ = writeln!(
        w,
        "rehearse compare · {} · {} strateg{} × {} run{} · seed {} · scale {} · {server}",
        c.scenario,
        c.strategies.len(),
        if c.strategies.len() == 1 { "y" } else { "ies" },
        c.repeat,
        if c.repeat == 1 { "" } else { "s" },
        first.map_or(0, |r| r.seed),
        first.map_or(1.0, |r| r.scale),
    );
    reset_line(w, c);
    let _ = writeln!(w);
    table(w, c);
    let _ = writeln!(w);
    order_line(w, c);
    violations(w, c, reports);
    match &c.safest {
        Some(s) => {
            let _ = writeln!(w, "  safest strategy that passed every run: {s} ({})", c.safest_rule);
        }
        None => {
            let _ = writeln!(w, "  no strategy passed every run");
        }
    }
    if !c.complete {
        let _ =
            writeln!(w, "  INCOMPLETE: the server failed before every run was done; the figures cover the runs made");
    }
    o
}

fn reset_line(w: &mut String, c: &Comparison) {
    let r = &c.reset;
    let ratio = r.load_over_reset.map_or(String::new(), |x| format!(", {x:.1}× cheaper than the load"));
    let _ = writeln!(
        w,
        "  load (create, fill, index, analyze) {} · reset before each run (median, min–max) {}{ratio} · {}",
        dur(r.load_s * 1000.0),
        spread(&r.reset_s, &|s| dur(s * 1000.0)),
        r.method
    );
}

fn table(w: &mut String, c: &Comparison) {
    let heads: Vec<String> = c.strategies.iter().map(|s| s.name.clone()).collect();
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let ms = |v: f64| dur(v);
    let mut add = |label: &str, f: &dyn Fn(&StrategySummary) -> String| {
        rows.push((label.to_string(), c.strategies.iter().map(f).collect()));
    };
    add("", &|s| s.name.clone());
    add("migration outcome", &outcomes);
    add("migration duration", &|s| spread(&s.duration_ms, &ms));
    add("migration waiting for locks", &|s| spread(&s.migration_lock_wait_ms, &ms));
    add("longest workload lock wait", &|s| spread(&s.workload_longest_wait_ms, &ms));
    add("most backends waiting at once", &|s| spread(&s.max_waiting, &|v| format!("{v:.0}")));
    let queries: Vec<String> =
        c.strategies.first().map(|s| s.p99_ms.0.iter().map(|(q, _)| q.clone()).collect()).unwrap_or_default();
    for q in &queries {
        let p = |s: &StrategySummary| s.p99_ms.get(q).cloned();
        add(&format!("{q} p99 baseline"), &|s| p(s).map_or("-".into(), |p| spread(&p.baseline, &ms)));
        add(&format!("{q} p99 during"), &|s| p(s).map_or("-".into(), |p| spread(&p.during, &ms)));
        add(&format!("{q} p99 after"), &|s| p(s).map_or("-".into(), |p| spread(&p.after, &ms)));
    }
    add("errors, migration start on", &|s| spread(&s.error_rate, &|v| format!("{:.2}%", v * 100.0)));
    add("time with the pool full", &|s| spread(&s.pool_full_s, &|v| dur(v * 1000.0)));
    add("verdict", &|s| verdict(s, c.safest.as_deref() == Some(s.name.as_str())));
    let width = rows
        .iter()
        .flat_map(|(_, cells)| cells.iter().map(|c| c.chars().count()))
        .max()
        .unwrap_or(0)
        .max(heads.iter().map(|h| h.chars().count()).max().unwrap_or(0))
        .max(14);
    let label_width = rows.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0).max(30);
    for (label, cells) in rows {
        let mut line = format!("  {label:<label_width$}");
        for cell in cells {
            let _ = write!(line, "  {cell:<width$}");
        }
        let _ = writeln!(w, "{}", line.trim_end());
    }
}

fn order_line(w: &mut String, c: &Comparison) {
    let o = &c.order;
    let list = |v: &[Option<f64>]| {
        v.iter().map(|x| x.map_or("-".into(), |x| format!("{x:.2}×"))).collect::<Vec<_>>().join(", ")
    };
    if !o.assessed {
        let _ = writeln!(
            w,
            "  position bias: not assessed (it needs two strategies and --repeat 2 or more, so that each runs in more than one position)"
        );
        return;
    }
    let verdict = if o.biased {
        "BIASED: the figures moved with the position; read the comparison with care"
    } else {
        "no sign of bias"
    };
    let _ = writeln!(
        w,
        "  position bias: {verdict} · by position, over each strategy's median: baseline p99 {}; duration {}",
        list(&o.baseline_p99_ratio),
        list(&o.duration_ratio)
    );
}

fn violations(w: &mut String, c: &Comparison, reports: &[Report]) {
    for s in &c.strategies {
        // One line per threshold and subject: the first run's words, and in
        // how many runs it failed.
        let mut seen: Vec<(String, String, usize)> = Vec::new();
        for run in c.runs.iter().filter(|r| r.strategy == s.name) {
            for v in &reports[run.report].verdict.violations {
                let key = format!("{}/{}", v.threshold, v.subject);
                match seen.iter_mut().find(|(k, _, _)| *k == key) {
                    Some((_, _, n)) => *n += 1,
                    None => seen.push((key, format!("{}: {}", v.threshold, v.message), 1)),
                }
            }
        }
        for (_, line, n) in seen {
            let times = if c.repeat > 1 { format!(" (in {n} of {} runs)", s.passed.len()) } else { String::new() };
            let _ = writeln!(w, "  ✗ {}: {line}{times}", s.name);
        }
    }
}
