//! Fits of a figure against a table's row count. The prediction comes
//! from a power law `y = c·n^k`, fitted by least squares in log space:
//! its exponent is the growth the points show, fixed parts and all, and
//! its errors are relative, as the noise of a shared machine is. Beside
//! it, one fit per growth order (`y = a + b·f(n)` with `f` = 1, n,
//! n·ln n, n²), shown as what each would predict, and used when a value
//! is zero. A held-out check: the same model fitted without the largest
//! point must predict it.
//!
//! Why not the simplest order that fits: measured on expand-backfill
//! from 100k–400k rows to 2M, one slow point at the largest scale made
//! the quadratic fit best (scatter 7%) and it predicted 4m25s for a
//! backfill that took 1m09s. On those points the power law reads n^1.23
//! and says 1m24s; in the next run it read n^1.30 and said 1m30s for a
//! backfill that took 1m31s. Its weakness: a large fixed part bends the
//! exponent below 1, and it leans low (see the tests).

use crate::report::{Alternative, Fit, GrowthOrder};

/// One order's fit to the points: `(a, b, relative standard error)`;
/// `None` when the figure does not grow that way (the slope would be
/// negative) or the points cannot tell.
fn fit_order(points: &[(f64, f64)], order: GrowthOrder) -> Option<(f64, f64, f64)> {
    let n = points.len() as f64;
    if points.is_empty() {
        return None;
    }
    let (a, b) = if order == GrowthOrder::Constant {
        (points.iter().map(|p| p.1).sum::<f64>() / n, 0.0)
    } else {
        let f: Vec<f64> = points.iter().map(|p| order.basis(p.0)).collect();
        let mf = f.iter().sum::<f64>() / n;
        let my = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sff: f64 = f.iter().map(|x| (x - mf).powi(2)).sum();
        if points.len() < 2 || sff <= 0.0 {
            return None;
        }
        let sfy: f64 = f.iter().zip(points).map(|(x, p)| (x - mf) * (p.1 - my)).sum();
        let b = sfy / sff;
        if b <= 0.0 {
            return None;
        }
        let a = my - b * mf;
        if a >= 0.0 {
            (a, b)
        } else {
            // A fixed cost below zero means nothing: through the origin.
            let b = f.iter().zip(points).map(|(x, p)| x * p.1).sum::<f64>() / f.iter().map(|x| x * x).sum::<f64>();
            (0.0, b)
        }
    };
    let params = if order == GrowthOrder::Constant { 1.0 } else { 2.0 };
    let sse: f64 = points.iter().map(|p| relative(a + b * order.basis(p.0), p.1).powi(2)).sum();
    let se = (sse / (n - params).max(1.0)).sqrt();
    Some((a, b, se))
}

/// `(predicted - actual) / actual`, with a floor under tiny actual values.
fn relative(predicted: f64, actual: f64) -> f64 {
    (predicted - actual) / actual.abs().max(1e-9)
}

/// The power law through the points: `(c, k, relative standard error)`;
/// `None` when a value is not positive (no log) or the points do not
/// span two row counts. A figure that shrinks is held constant (`k = 0`).
fn power_law(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    if points.iter().any(|p| !(p.0 > 0.0 && p.1 > 0.0)) {
        return None;
    }
    let logs: Vec<(f64, f64)> = points.iter().map(|p| (p.0.ln(), p.1.ln())).collect();
    let n = logs.len() as f64;
    let (mx, my) = (logs.iter().map(|l| l.0).sum::<f64>() / n, logs.iter().map(|l| l.1).sum::<f64>() / n);
    let sxx: f64 = logs.iter().map(|l| (l.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let k = (logs.iter().map(|l| (l.0 - mx) * (l.1 - my)).sum::<f64>() / sxx).max(0.0);
    let c = (my - k * mx).exp();
    let sse: f64 = points.iter().map(|p| relative(c * p.0.powf(k), p.1).powi(2)).sum();
    Some((c, k, (sse / (n - 2.0).max(1.0)).sqrt()))
}

/// How far the points alone can pin the prediction: the exponent read
/// from each pair of neighbouring row counts (their mean values), carried
/// from the largest point to `target`, beside the fit's own prediction;
/// the least and the greatest of these. `None` with fewer than three row
/// counts, or a value that is not positive.
pub fn range(points: &[(f64, f64)], target: f64, predicted: f64) -> Option<(f64, f64)> {
    let mut rows: Vec<f64> = points.iter().map(|p| p.0).collect();
    rows.sort_by(f64::total_cmp);
    rows.dedup();
    let means: Vec<(f64, f64)> = rows
        .iter()
        .map(|&n| {
            let at: Vec<f64> = points.iter().filter(|p| p.0 == n).map(|p| p.1).collect();
            (n, at.iter().sum::<f64>() / at.len() as f64)
        })
        .collect();
    if means.len() < 3 || means.iter().any(|m| !(m.0 > 0.0 && m.1 > 0.0)) {
        return None;
    }
    let &(last_n, last_y) = means.last()?;
    let carried = means.windows(2).map(|w| {
        let k = ((w[1].1 / w[0].1).ln() / (w[1].0 / w[0].0).ln()).max(0.0);
        last_y * (target / last_n).powf(k)
    });
    let all: Vec<f64> = carried.chain([predicted]).collect();
    Some((all.iter().copied().fold(f64::INFINITY, f64::min), all.iter().copied().fold(f64::NEG_INFINITY, f64::max)))
}

/// The row counts the points span.
fn distinct(points: &[(f64, f64)]) -> usize {
    let mut x: Vec<f64> = points.iter().map(|p| p.0).collect();
    x.sort_by(f64::total_cmp);
    x.dedup();
    x.len()
}

/// The simplest order whose error is within 10% (plus half a percentage
/// point) of the best one's, since more curve is only worth having when
/// the points ask for it.
fn simplest(fits: &[(GrowthOrder, (f64, f64, f64))]) -> Option<(GrowthOrder, (f64, f64, f64))> {
    let best = fits.iter().map(|(_, f)| f.2).fold(f64::INFINITY, f64::min);
    fits.iter().find(|(_, f)| f.2 <= best * 1.1 + 0.005).copied()
}

/// Fits `points` (rows, value) and predicts the value at `target` rows,
/// by the power law, or by the simplest order when a value is zero.
/// `None` without two points at different row counts.
pub fn fit(points: &[(f64, f64)], target: f64) -> Option<Fit> {
    if distinct(points) < 2 {
        return None;
    }
    let fits: Vec<(GrowthOrder, (f64, f64, f64))> =
        GrowthOrder::ALL.iter().filter_map(|&o| fit_order(points, o).map(|f| (o, f))).collect();
    let alternatives = fits
        .iter()
        .map(|&(o, (a, b, se))| Alternative { order: o, predicted: a + b * o.basis(target), error_pct: se * 100.0 })
        .collect();
    let holdout = holdout(points);
    if let Some((c, k, se)) = power_law(points) {
        return Some(Fit {
            order: GrowthOrder::nearest(k),
            exponent: Some(k),
            coefficient: c,
            intercept: 0.0,
            error_pct: se * 100.0,
            predicted: c * target.powf(k),
            holdout_predicted: holdout.map(|h| h.0),
            holdout_actual: holdout.map(|h| h.1),
            alternatives,
        });
    }
    let (order, (a, b, se)) = simplest(&fits)?;
    Some(Fit {
        order,
        exponent: None,
        coefficient: b,
        intercept: a,
        error_pct: se * 100.0,
        predicted: a + b * order.basis(target),
        holdout_predicted: holdout.map(|h| h.0),
        holdout_actual: holdout.map(|h| h.1),
        alternatives,
    })
}

/// The model fitted without the largest point, and what it predicts
/// there beside what was measured: `None` when fewer than two row counts
/// remain.
fn holdout(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let largest = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let rest: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0 < largest).collect();
    if distinct(&rest) < 2 {
        return None;
    }
    let at: Vec<f64> = points.iter().filter(|p| p.0 == largest).map(|p| p.1).collect();
    let actual = at.iter().sum::<f64>() / at.len() as f64;
    let predicted = fit(&rest, largest)?.predicted;
    Some((predicted, actual))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        [100_000.0, 200_000.0, 400_000.0].iter().map(|&n| (n, f(n))).collect()
    }

    #[test]
    fn a_linear_cost_is_linear_and_extrapolates() {
        let fit = fit(&points(|n| n / 100.0), 2_000_000.0).unwrap();
        assert_eq!(fit.order, GrowthOrder::Linear);
        assert!((fit.exponent.unwrap() - 1.0).abs() < 1e-9);
        assert!((fit.predicted - 20_000.0).abs() < 1e-6, "{}", fit.predicted);
        assert!((fit.holdout_predicted.unwrap() - 4_000.0).abs() < 1e-6);
    }

    #[test]
    fn a_fixed_part_bends_the_exponent_below_one_and_the_linear_order_is_shown_beside() {
        let fit = fit(&points(|n| 500.0 + n / 100.0), 2_000_000.0).unwrap();
        let k = fit.exponent.unwrap();
        assert!((0.5..1.0).contains(&k), "{k}");
        assert_eq!(fit.order, GrowthOrder::Linear);
        // The power law leans low on a large fixed part: within a third
        // at 5x, and the order that fits exactly says 20,500 beside it.
        assert!(fit.predicted < 20_500.0 && fit.predicted > 20_500.0 * 0.67, "{}", fit.predicted);
        let linear = fit.alternatives.iter().find(|a| a.order == GrowthOrder::Linear).unwrap();
        assert!((linear.predicted - 20_500.0).abs() < 1.0);
    }

    #[test]
    fn a_quadratic_cost_is_quadratic() {
        let fit = fit(&points(|n| 10.0 + (n / 1000.0).powi(2)), 2_000_000.0).unwrap();
        assert_eq!(fit.order, GrowthOrder::Quadratic);
        assert!((fit.predicted - 4_000_010.0).abs() / 4e6 < 0.01, "{}", fit.predicted);
        // Linear would have predicted far less; it is shown beside.
        let linear = fit.alternatives.iter().find(|a| a.order == GrowthOrder::Linear).unwrap();
        assert!(linear.predicted < fit.predicted / 2.0);
    }

    #[test]
    fn a_flat_noisy_figure_is_constant_not_a_growth_read_from_noise() {
        let noisy = [(100_000.0, 10_100.0), (200_000.0, 9_900.0), (400_000.0, 10_300.0)];
        let fit = fit(&noisy, 40_000_000.0).unwrap();
        assert_eq!(fit.order, GrowthOrder::Constant);
        assert!((fit.predicted - 10_100.0).abs() < 1_010.0, "{}", fit.predicted);
    }

    #[test]
    fn a_figure_that_shrinks_is_constant_and_the_holdout_shows_the_miss() {
        let fit = fit(&points(|n| 1e6 / n), 1e6).unwrap();
        assert_eq!(fit.order, GrowthOrder::Constant);
        assert_eq!(fit.exponent, Some(0.0));
        // Held constant at the geometric mean of 10 and 5, against 2.5.
        let (p, a) = (fit.holdout_predicted.unwrap(), fit.holdout_actual.unwrap());
        assert!((p - 50f64.sqrt()).abs() < 1e-9 && (a - 2.5).abs() < 1e-9, "{p} {a}");
    }

    #[test]
    fn a_zero_value_is_fitted_by_the_simplest_order_instead() {
        let fit = fit(&[(1e5, 0.0), (2e5, 10.0), (4e5, 30.0)], 1e6).unwrap();
        assert_eq!(fit.exponent, None);
        assert_eq!(fit.intercept + fit.coefficient * fit.order.basis(1e6), fit.predicted);
        assert!(fit.predicted > 30.0, "it grows: {}", fit.predicted);
    }

    #[test]
    fn n_log_n_is_told_from_linear_when_there_is_no_fixed_part() {
        let fit = fit(&[(1e3, 1e3 * 1e3f64.ln()), (1e4, 1e4 * 1e4f64.ln()), (1e5, 1e5 * 1e5f64.ln())], 1e6).unwrap();
        assert_eq!(fit.order, GrowthOrder::NLogN);
    }

    #[test]
    fn the_range_spans_the_slopes_of_neighbouring_scales() {
        // Growth that speeds up: n^1 from 100k to 200k, n^1.5 to 400k.
        let pts = [(1e5, 100.0), (2e5, 200.0), (4e5, 200.0 * 2f64.powf(1.5))];
        let f = fit(&pts, 2e6).unwrap();
        let (low, high) = range(&pts, 2e6, f.predicted).unwrap();
        let last = 200.0 * 2f64.powf(1.5);
        assert!((low - last * 5.0).abs() < 1e-6, "{low}");
        assert!((high - last * 5f64.powf(1.5)).abs() < 1e-6, "{high}");
        assert!(low <= f.predicted && f.predicted <= high);
        assert!(range(&pts[..2], 2e6, f.predicted).is_none(), "two points have one slope");
    }

    #[test]
    fn one_row_count_cannot_be_fitted() {
        assert!(fit(&[(1e5, 1.0), (1e5, 2.0)], 1e6).is_none());
        assert!(fit(&[], 1e6).is_none());
    }

    #[test]
    fn two_points_fit_but_cannot_be_held_out() {
        let fit = fit(&[(1e5, 100.0), (2e5, 200.0)], 1e6).unwrap();
        assert_eq!(fit.order, GrowthOrder::Linear);
        assert!(fit.holdout_predicted.is_none());
    }
}
