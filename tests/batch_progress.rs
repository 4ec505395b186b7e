//! A repeated step's batches: the series the JSON carries, the trend the
//! terminal shows, and the estimate of the rest when `max_duration`
//! stopped it. The figures are made up, so that the arithmetic can be
//! checked by hand; the run that produces a real series is in
//! `migration_steps.rs`.

use rehearse::migration::{BatchPoint, LockMode, LockTaken, Outcome};
use rehearse::postgres::SqlError;
use rehearse::report::{annotate_progress, render};

use crate::report_render::naive;

/// 300 batches of 10,000 rows, 100 ms at the start growing by 3 ms a batch
/// (997 ms at the end), one after another, then `max_duration`.
fn cancelled_backfill() -> rehearse::report::Report {
    let mut r = naive();
    r.strategy = Some("expand-backfill".into());
    r.tables[0].rows = 40_000_000;
    let m = r.migration.as_mut().unwrap();
    m.outcome = Outcome::Cancelled;
    let step = &mut m.steps[0];
    step.sql = "UPDATE orders SET status_v2 = 'pending' WHERE id IN (SELECT id FROM orders WHERE status_v2 IS NULL LIMIT 10000)".into();
    step.locks = vec![LockTaken { relation: "orders".into(), mode: LockMode::RowExclusive }];
    let mut at = step.started_s;
    for i in 0..300 {
        let duration_ms = 100.0 + 3.0 * i as f64;
        step.batches_series.push(BatchPoint { at_s: at, duration_ms, rows: 10_000 });
        at += duration_ms / 1000.0;
    }
    step.batches = Some(300);
    step.rows = 3_000_000;
    step.ended_s = at;
    step.duration_ms = (at - step.started_s) * 1000.0;
    step.lock_wait_ms = 0.0;
    let (ended_s, total_ms) = (at, step.duration_ms);
    (m.ended_s, m.total_ms, m.lock_wait_ms) = (ended_s, total_ms, 0.0);
    step.error = Some(SqlError::harness("the migration reached max_duration between batches"));
    annotate_progress(m, &r.tables);
    r
}

#[test]
fn a_stopped_backfill_says_how_far_it_got_and_how_long_the_rest_would_take() {
    let r = cancelled_backfill();
    let step = &r.migration.as_ref().unwrap().steps[0];
    let p = step.progress.as_ref().expect("a stopped repeated step has its progress");
    assert_eq!(p.rows_done, 3_000_000);
    assert_eq!(p.rows_total, Some(40_000_000));
    assert_eq!(p.table.as_deref(), Some("orders"));
    // The last tenth, 30 batches: 10,000 rows each in 910..997 ms, back to
    // back, 953.5 ms on average.
    let rate = p.recent_rows_per_s.unwrap();
    assert!((rate - 10_000.0 / 0.9535).abs() < 0.5, "{rate}");
    let eta = p.eta_s.unwrap();
    assert!((eta - 37_000_000.0 / rate).abs() < 1e-6, "{eta}");
    assert!(p.slowing, "{:?}", p.trend_ms);
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    let s = &json["migration"]["steps"][0];
    assert_eq!(s["batches_series"].as_array().unwrap().len(), 300);
    assert_eq!(s["batches_series"][299]["rows"], 10_000);
    assert_eq!(s["progress"]["rows_total"], 40_000_000);

    let text = render(&r);
    let migration = text.split("LOCK QUEUE").next().unwrap();
    insta::assert_snapshot!("cancelled_backfill", migration);
}

#[test]
fn a_finished_step_has_no_estimate() {
    let mut r = cancelled_backfill();
    let m = r.migration.as_mut().unwrap();
    m.steps[0].error = None;
    m.steps[0].progress = None;
    annotate_progress(m, &[]);
    assert!(m.steps[0].progress.is_none());
}
