//! The terminal summary of `rehearse predict`: per step and figure, the
//! points measured at each scale, the growth order fitted, its error, the
//! held-out check and the prediction at the target; then the migration's
//! whole duration, whether it can be trusted and why not, and, with
//! `--verify`, the figure measured at the target beside it.

use std::fmt::Write;

use super::predict::{Figure, GrowthOrder, Metric, Prediction, ms_label};
use crate::units::thousands;

fn value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::RowsPerS => thousands(v.round().max(0.0) as u64),
        _ => ms_label(v),
    }
}

fn pct(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{p:+.0}%"))
}

/// One row of the table: the figure's points, fit and prediction.
fn row(o: &mut String, f: &Figure, label: &str, rows: &[u64], verified: bool) {
    let _ = write!(o, "  {label:<24}");
    for n in rows {
        let cell = f.points.iter().find(|p| p.rows == *n).map_or("-".into(), |p| value(f.metric, p.value));
        let _ = write!(o, " {cell:>10}");
    }
    let (order, err) = match &f.fit {
        Some(fit) => {
            let k = fit.exponent.map_or(String::new(), |k| format!(" n^{k:.2}"));
            (format!("{}{k}", fit.order.label()), format!("{:.0}%", fit.error_pct))
        }
        None => ("-".into(), "-".into()),
    };
    let predicted = f.predicted.map_or("-".into(), |p| value(f.metric, p));
    let mark = if f.trusted { "" } else { " ?" };
    let range = f.range.map_or("-".into(), |[l, h]| format!("{}–{}", value(f.metric, l), value(f.metric, h)));
    let _ = write!(
        o,
        "  {order:<17} {err:>5} {:>9} {:>11} {range:>19}",
        pct(f.holdout_error_pct),
        format!("{predicted}{mark}")
    );
    if verified {
        let actual = f.actual.map_or("-".into(), |a| value(f.metric, a));
        let off = f.actual.zip(f.predicted).map(|(a, p)| (p - a) / a.abs().max(1e-9) * 100.0);
        let _ = write!(o, " {actual:>10} {:>6}", pct(off));
    }
    let _ = writeln!(o);
}

/// What the other growth orders predict, when one is far from the chosen.
fn others(o: &mut String, f: &Figure) {
    let Some(fit) = &f.fit else { return };
    let far: Vec<String> = fit
        .alternatives
        .iter()
        .filter(|a| a.order != GrowthOrder::Constant && (a.predicted - fit.predicted).abs() > 0.2 * fit.predicted)
        .map(|a| format!("{} {} (err {:.0}%)", a.order.label(), value(f.metric, a.predicted), a.error_pct))
        .collect();
    if !far.is_empty() {
        let _ = writeln!(o, "  {:<24} a + b·f(n): {}", "", far.join(" · "));
    }
}

/// Renders the prediction.
pub fn render_prediction(p: &Prediction) -> String {
    let mut o = String::new();
    let rows: Vec<u64> = p.runs.iter().map(|r| r.rows).collect();
    let scales: Vec<String> = p.runs.iter().map(|r| r.scale.to_string()).collect();
    let _ = writeln!(
        o,
        "\npredict `{}`: fitted on {} at {} rows (scales {}), predicted at {} rows (scale {})\n",
        p.strategy,
        p.table,
        rows.iter().map(|n| thousands(*n)).collect::<Vec<_>>().join(" · "),
        scales.join(", "),
        thousands(p.target_rows),
        p.target_scale
    );
    let verified = p.verified.is_some();
    let _ = write!(o, "  {:<24}", "step / figure");
    for n in &rows {
        let _ = write!(o, " {:>10}", thousands(*n));
    }
    let _ = write!(o, "  {:<17} {:>5} {:>9} {:>11} {:>19}", "growth", "err", "held-out", "predicted", "range");
    if verified {
        let _ = write!(o, " {:>10} {:>6}", "measured", "off");
    }
    let _ = writeln!(o);
    let mut last = None;
    for f in &p.figures {
        if f.step != last {
            let _ = writeln!(o, "  {} {}", f.step.unwrap_or(0), f.name);
            last = f.step;
        }
        row(&mut o, f, &format!("  {}", f.metric.label()), &rows, verified);
        if f.metric == Metric::Duration || f.metric == Metric::LockHeld {
            others(&mut o, f);
        }
    }
    row(&mut o, &p.total, "the migration", &rows, verified);
    let _ = writeln!(
        o,
        "\n  growth: the power law n^k fitted, and the order nearest k · err: scatter about the fit · held-out: the fit without the largest scale, at it · range: the slopes between neighbouring scales, carried to the target · ? not trusted"
    );
    let range = p.total.range.map_or(String::new(), |[l, h]| format!(" (range {}–{})", ms_label(l), ms_label(h)));
    let total = p.total.predicted.map_or("-".into(), ms_label);
    match &p.total.why_not {
        None => {
            let _ = writeln!(
                o,
                "\nprediction: the migration takes about {total}{range} at {} rows of {}",
                thousands(p.target_rows),
                p.table
            );
        }
        Some(why) => {
            let _ = writeln!(
                o,
                "\nprediction: NOT TRUSTED (about {total}{range} at {} rows): {why}",
                thousands(p.target_rows)
            );
        }
    }
    if let (Some(v), Some(a)) = (&p.verified, p.total.actual) {
        let off = p.total.predicted.map(|p| (p - a) / a * 100.0);
        let _ = writeln!(
            o,
            "verified at scale {}: measured {}, predicted {total} ({} off)",
            v.scale,
            ms_label(a),
            pct(off)
        );
    } else if let Some(v) = &p.verified {
        let outcome = v.outcome.map_or("never started".into(), |o| o.to_string());
        let _ = writeln!(o, "verified at scale {}: the migration {outcome}; no duration to compare", v.scale);
    }
    for n in &p.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}
