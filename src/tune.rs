//! `rehearse tune`: one strategy rehearsed with each value of a knob (the
//! `lock_timeout` of its steps that set one, the pause between the batches
//! of its repeated steps, the rows of each batch), under the same
//! contention, on one load, each run from a fresh copy of it (see
//! [`crate::compare`]). It reports what each value did and recommends one.

use std::time::Duration;

use crate::compare::{Compared, compare};
use crate::migration::Outcome;
use crate::postgres::BackendArg;
use crate::rehearsal::{RunOptions, UsageError};
use crate::report::{Report, Spread, Trial, Tuning};
use crate::scenario::duration::human;
use crate::scenario::{AFTER, Scenario, SqlText, StepSpec, Strategy};

/// The values to try.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    /// `lock_timeout` values, for the steps that set one.
    pub lock_timeouts: Vec<Duration>,
    /// Pauses between batches, for the repeated steps.
    pub pauses: Vec<Duration>,
    /// Rows per batch, for the repeated steps whose SQL has one `LIMIT n`.
    pub batches: Vec<u64>,
}

/// A variant of the strategy: it, with the values it was given.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The strategy, renamed after its values.
    pub strategy: Strategy,
    /// The `lock_timeout` given to the steps that set one.
    pub lock_timeout: Option<Duration>,
    /// The pause given to the repeated steps.
    pub pause: Option<Duration>,
    /// The rows per batch given to the repeated steps.
    pub batch: Option<u64>,
}

impl Variant {
    /// The variant's name: the strategy and the values it was given.
    fn name(&self, strategy: &str) -> String {
        let mut n = strategy.to_string();
        if let Some(t) = self.lock_timeout {
            n.push_str(&format!(" lock_timeout={}", human(t)));
        }
        if let Some(b) = self.batch {
            n.push_str(&format!(" batch={b}"));
        }
        if let Some(p) = self.pause {
            n.push_str(&format!(" pause={}", if p.is_zero() { "0".into() } else { human(p) }));
        }
        n
    }
}

/// Where a repeated step's batch size is: the byte range of the number of
/// its SQL's one `LIMIT n`, found by Postgres's own scanner (so a `LIMIT`
/// in a string or a comment is not taken). `None` for a step that does not
/// repeat, or whose SQL has no such `LIMIT` or more than one.
fn batch_at(step: &StepSpec) -> Option<std::ops::Range<usize>> {
    use pg_query::protobuf::Token;
    if step.repeat.is_none() && step.keyset.is_none() {
        return None;
    }
    // A keyset step's placeholder is no SQL; blanks keep the offsets.
    let scannable = step.sql.text.replace(AFTER, &" ".repeat(AFTER.len()));
    let tokens = pg_query::scan(&scannable).ok()?.tokens;
    let limits: Vec<_> = tokens
        .windows(2)
        .filter(|w| w[0].token == Token::Limit as i32 && w[1].token == Token::Iconst as i32)
        .map(|w| w[1].start as usize..w[1].end as usize)
        .collect();
    match limits.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The step with `rows` per batch, where [`batch_at`] finds its size.
fn with_batch(step: &mut StepSpec, rows: u64) {
    let Some(at) = batch_at(step) else { return };
    let text = format!("{}{rows}{}", &step.sql.text[..at.start], &step.sql.text[at.end..]);
    step.sql = SqlText::derived(text, step.sql.at.clone());
    if let Some(k) = &mut step.keyset {
        k.batch = rows;
    }
}

/// Refuses knobs that would change nothing in `strategy`.
fn check(strategy: &Strategy, knobs: &Knobs) -> Result<(), UsageError> {
    if knobs.lock_timeouts.is_empty() && knobs.pauses.is_empty() && knobs.batches.is_empty() {
        return Err(UsageError(
            "tune needs values to try: --lock-timeout 50ms,100ms,..., --pause 0,50ms,... or --batch 1000,10000,..."
                .into(),
        ));
    }
    if !knobs.lock_timeouts.is_empty() && !strategy.steps.iter().any(|s| s.lock_timeout.is_some()) {
        return Err(UsageError(format!(
            "--lock-timeout: no step of strategy `{}` sets a lock_timeout; tune varies the steps that set one",
            strategy.name
        )));
    }
    if !knobs.pauses.is_empty() && !strategy.steps.iter().any(|s| s.repeat.is_some()) {
        return Err(UsageError(format!("--pause: strategy `{}` has no repeated step (repeat = true)", strategy.name)));
    }
    if !knobs.batches.is_empty() && !strategy.steps.iter().any(|s| batch_at(s).is_some()) {
        return Err(UsageError(format!(
            "--batch: no repeated step of strategy `{}` has one `LIMIT n` in its SQL to vary",
            strategy.name
        )));
    }
    if knobs.batches.contains(&0) {
        return Err(UsageError("--batch: a batch of 0 rows would never end".into()));
    }
    Ok(())
}

/// The strategy with each combination of the knobs' values.
pub fn variants(strategy: &Strategy, knobs: &Knobs) -> Result<Vec<Variant>, UsageError> {
    check(strategy, knobs)?;
    fn opt<T: Copy>(v: &[T]) -> Vec<Option<T>> {
        if v.is_empty() { vec![None] } else { v.iter().copied().map(Some).collect() }
    }
    let mut out = Vec::new();
    for lock_timeout in opt(&knobs.lock_timeouts) {
        for batch in opt(&knobs.batches) {
            for pause in opt(&knobs.pauses) {
                let mut v = Variant { strategy: strategy.clone(), lock_timeout, pause, batch };
                v.strategy.name = v.name(&strategy.name);
                for step in &mut v.strategy.steps {
                    if let (Some(t), Some(_)) = (lock_timeout, step.lock_timeout) {
                        step.lock_timeout = Some(t);
                    }
                    if let (Some(p), Some(_)) = (pause, step.repeat) {
                        step.repeat = Some(p);
                    }
                    if let Some(rows) = batch {
                        with_batch(step, rows);
                    }
                }
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// Tunes `strategy` of `scenario`: every variant `repeat` times, interleaved.
pub async fn tune(
    scenario: &Scenario,
    strategy: &str,
    knobs: &Knobs,
    backend: &BackendArg,
    images: &[String],
    repeat: usize,
    opts: &RunOptions,
) -> anyhow::Result<(Compared, Tuning)> {
    let Some(base) = scenario.strategy(Some(strategy)) else {
        let all: Vec<&str> = scenario.strategies.iter().map(|s| s.name.as_str()).collect();
        return Err(UsageError(format!("no strategy `{strategy}` (strategies: {})", all.join(", "))).into());
    };
    let tried = variants(base, knobs)?;
    let mut tuned = scenario.clone();
    tuned.strategies = tried.iter().map(|v| v.strategy.clone()).collect();
    let compared = compare(&tuned, backend, images, &[], repeat, opts).await?;
    let trials: Vec<Trial> = tried.iter().map(|v| trial(v, &compared)).collect();
    let by_speed = !knobs.pauses.is_empty() || !knobs.batches.is_empty();
    let (recommended, why) = recommend(&trials, by_speed);
    Ok((compared, Tuning { strategy: strategy.into(), trials, recommended, why }))
}

fn trial(v: &Variant, c: &Compared) -> Trial {
    let name = v.strategy.name.as_str();
    let runs: Vec<&Report> =
        c.summary.runs.iter().filter(|r| r.strategy == name).map(|r| &c.reports[r.report]).collect();
    let ok = runs.iter().filter(|r| r.migration.as_ref().is_some_and(|m| m.outcome == Outcome::Ok)).count();
    let steps = |r: &&Report| r.migration.iter().flat_map(|m| &m.steps).cloned().collect::<Vec<_>>();
    let backfill = |r: &&Report| {
        let repeated: Vec<_> = steps(r).into_iter().filter(|s| s.batches.is_some()).collect();
        let (rows, ms) = repeated.iter().fold((0u64, 0f64), |(n, t), s| (n + s.rows, t + s.duration_ms));
        (ms > 0.0 && !repeated.is_empty()).then(|| rows as f64 / (ms / 1000.0))
    };
    Trial {
        name: name.into(),
        lock_timeout_ms: v.lock_timeout.map(crate::units::millis),
        pause_ms: v.pause.map(crate::units::millis),
        batch_rows: v.batch,
        success_rate: if runs.is_empty() { 0.0 } else { ok as f64 / runs.len() as f64 },
        passed: runs.iter().filter(|r| r.verdict.pass).count(),
        runs: runs.len(),
        attempts: Spread::of(runs.iter().map(|r| steps(r).iter().map(|s| f64::from(s.attempts)).sum::<f64>())),
        worst_p99_during_ms: Spread::of(runs.iter().filter_map(|r| crate::report::worst_during_p99(r))),
        backfill_rows_per_s: Spread::of(runs.iter().filter_map(backfill)),
    }
}

/// Of the values whose every run passed: the fastest backfill when the
/// pause or the batch is tuned, else the least worst p99 during the migration (then the
/// fewest attempts). When none passed, none is recommended.
fn recommend(trials: &[Trial], by_speed: bool) -> (Option<String>, String) {
    let median = |s: &Option<Spread>| s.map_or(f64::INFINITY, |s| s.median);
    let passing: Vec<&Trial> = trials.iter().filter(|t| t.runs > 0 && t.passed == t.runs).collect();
    let best = if by_speed {
        passing.iter().max_by(|a, b| {
            let speed = |t: &Trial| t.backfill_rows_per_s.map_or(0.0, |s| s.median);
            speed(a).total_cmp(&speed(b))
        })
    } else {
        passing.iter().min_by(|a, b| {
            let key = |t: &Trial| (median(&t.worst_p99_during_ms), median(&t.attempts));
            key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)
        })
    };
    match best {
        Some(t) if by_speed => (Some(t.name.clone()), "the fastest backfill of the values whose every run passed every threshold".into()),
        Some(t) => (
            Some(t.name.clone()),
            "the least p99 during the migration (then the fewest attempts) of the values whose every run passed every threshold".into(),
        ),
        None => (None, "no value passed every threshold in every run".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Keyset, Location, StepTx};

    fn step(sql: &str, repeat: bool) -> StepSpec {
        let at = Location { path: "s.toml".into(), line: 1, column: 1 };
        StepSpec {
            name: None,
            sql: SqlText::derived(sql.into(), at),
            lock_timeout: None,
            statement_timeout: None,
            retries: 0,
            backoff: Duration::ZERO,
            repeat: repeat.then_some(Duration::ZERO),
            keyset: None,
            tx: StepTx::Own,
            origin: None,
        }
    }

    fn batched(mut s: StepSpec, rows: u64) -> String {
        with_batch(&mut s, rows);
        s.sql.text
    }

    #[test]
    fn the_batch_is_the_one_limit_of_a_repeated_steps_sql() {
        let sql = "UPDATE orders SET v = 'pending' WHERE id IN (SELECT id FROM orders WHERE v IS NULL LIMIT 10000)";
        assert_eq!(batched(step(sql, true), 500), sql.replace("LIMIT 10000", "LIMIT 500"));
        let lower = "delete from events where id in (select id from events where at < now() limit 1000)";
        assert_eq!(batched(step(lower, true), 50), lower.replace("limit 1000", "limit 50"));
    }

    #[test]
    fn a_limit_in_a_string_or_a_comment_or_two_limits_are_left_alone() {
        for sql in [
            "UPDATE t SET note = 'LIMIT 5' WHERE id < 10",
            "UPDATE t SET v = 1 WHERE id < 10 -- LIMIT 5",
            "UPDATE t SET v = 1 WHERE id IN (SELECT id FROM t LIMIT 5) OR id IN (SELECT id FROM u LIMIT 5)",
        ] {
            assert_eq!(batch_at(&step(sql, true)), None, "{sql}");
        }
        let once = "UPDATE t SET v = 1 WHERE id IN (SELECT id FROM t LIMIT 5)";
        assert_eq!(batch_at(&step(once, false)), None, "a step that runs once has no batches");
    }

    #[test]
    fn a_keyset_walk_gets_the_new_batch_in_its_sql_and_its_end_test() {
        let sql =
            "WITH b AS (SELECT id FROM t {after} ORDER BY id LIMIT 1000) UPDATE t SET v = 1 FROM b WHERE t.id = b.id";
        let mut s = step(sql, true);
        s.keyset = Some(Keyset { key: "id".into(), batch: 1000 });
        with_batch(&mut s, 250);
        assert_eq!(s.sql.text, sql.replace("LIMIT 1000", "LIMIT 250"));
        assert_eq!(s.keyset.unwrap().batch, 250, "a batch shorter than 250 rows ends the walk");
    }

    fn strategy(steps: Vec<StepSpec>) -> Strategy {
        Strategy {
            name: "s".into(),
            description: None,
            steps,
            files: Vec::new(),
            source: None,
            rollback: crate::scenario::Rollback::Missing("none".into()),
        }
    }

    #[test]
    fn batch_variants_are_named_and_refused_where_nothing_would_change() {
        let update = "UPDATE t SET c = 0 WHERE id IN (SELECT id FROM t WHERE c IS NULL LIMIT 100)";
        let strategy = strategy(vec![step("ALTER TABLE t ADD c int", false), step(update, true)]);
        let knobs = Knobs { batches: vec![10, 1000], ..Default::default() };
        let names: Vec<String> = variants(&strategy, &knobs).unwrap().into_iter().map(|v| v.strategy.name).collect();
        assert_eq!(names, ["s batch=10", "s batch=1000"]);
        let once = self::strategy(vec![step("ALTER TABLE t ADD c int", false)]);
        assert!(variants(&once, &knobs).unwrap_err().0.contains("--batch"));
        let zero = Knobs { batches: vec![0], ..Default::default() };
        assert!(variants(&strategy, &zero).is_err());
    }
}
