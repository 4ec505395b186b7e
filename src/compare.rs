//! `rehearse compare`: every strategy of a scenario (or those named) on
//! one server and one data load, side by side.
//!
//! The data is loaded once and kept (see [`crate::postgres::Pristine`]);
//! before each timeline the rehearsed database is dropped and cloned from
//! the kept one, so that each strategy starts from the load's very files.
//! With `--repeat N` the strategies run in N rounds, each round rotated by
//! one place, so that each strategy runs in each position as often as the
//! rounds allow; the summary shows whether the position moved the figures.

use std::time::Duration;

use crate::live;
use crate::postgres::{self, BackendArg, BackendChoice, Pristine};
use crate::rehearsal::{RunOn, RunOptions, UsageError, run_timeline};
use crate::report::{self, CompareRun, Comparison, Report, ResetInfo, Spread};
use crate::scenario::duration::human;
use crate::scenario::{Scenario, Strategy};
use crate::setup;

/// What a comparison produced: one report per run, in the order run, and
/// the summary over them.
pub struct Compared {
    /// Every run's report.
    pub reports: Vec<Report>,
    /// The side-by-side summary.
    pub summary: Comparison,
}

/// The strategies `names` asks for (all of the scenario's when empty), in
/// the order given.
fn chosen<'a>(scenario: &'a Scenario, names: &[String]) -> Result<Vec<&'a Strategy>, UsageError> {
    if scenario.strategies.is_empty() {
        return Err(UsageError(format!(
            "{} has no [[strategy]]: there is nothing to compare",
            scenario.path.display()
        )));
    }
    if names.is_empty() {
        return Ok(scenario.strategies.iter().collect());
    }
    let mut out: Vec<&Strategy> = Vec::new();
    for n in names {
        let Some(s) = scenario.strategy(Some(n)) else {
            let all: Vec<&str> = scenario.strategies.iter().map(|s| s.name.as_str()).collect();
            return Err(UsageError(format!(
                "--strategies: no strategy `{n}` in {} (strategies: {})",
                scenario.path.display(),
                all.join(", ")
            )));
        };
        if out.iter().any(|o| o.name == s.name) {
            return Err(UsageError(format!("--strategies names `{n}` twice")));
        }
        out.push(s);
    }
    Ok(out)
}

/// The one throwaway server a comparison runs on.
async fn server(scenario: &Scenario, backend: &BackendArg, images: &[String]) -> anyhow::Result<RunOn> {
    if matches!(backend, BackendArg::Url(_)) {
        return Err(UsageError(
            "compare resets the database between strategies by dropping it and cloning the loaded one, which the harness does only on a server it started: use --backend local or docker (or `rehearse run --strategy` per strategy on --url)".into(),
        )
        .into());
    }
    let plan = postgres::plan(backend, images, &scenario.postgres.images).await?;
    let [choice] = plan.runs.as_slice() else {
        return Err(UsageError(format!(
            "compare runs every strategy on one server; this asks for {}: pass one --pg-image",
            plan.runs.len()
        ))
        .into());
    };
    eprintln!("rehearse: backend {}", plan.why);
    Ok(RunOn { choice: choice.clone(), why: plan.why.clone() })
}

/// Compares the strategies `names` (all when empty) of `scenario`, each
/// run `repeat` times, on one server with one load.
pub async fn compare(
    scenario: &Scenario,
    backend: &BackendArg,
    images: &[String],
    names: &[String],
    repeat: usize,
    opts: &RunOptions,
) -> anyhow::Result<Compared> {
    let strategies = chosen(scenario, names)?;
    if repeat == 0 {
        return Err(UsageError("--repeat must be at least 1".into()).into());
    }
    let on = server(scenario, backend, images).await?;
    debug_assert!(!matches!(on.choice, BackendChoice::Url(_)));
    let prepared = setup::prepare(scenario, &on, opts, &strategies).await?;
    let (pristine, keep) = Pristine::keep(&prepared.config, prepared.version.version_num).await?;
    let say = |line: String| {
        if opts.progress {
            live::println(&format!("rehearse: {line}"));
        }
    };
    say(format!("loaded in {}; kept as {} in {}", human(secs(prepared.load_s)), postgres::PRISTINE, human(keep)));
    let (mut reports, mut runs) = (Vec::new(), Vec::new());
    'rounds: for round in 0..repeat {
        for position in 0..strategies.len() {
            let strategy = strategies[(position + round) % strategies.len()];
            let reset = pristine.restore().await?;
            say(format!(
                "round {}/{repeat}, run {}/{}: {} (database reset in {})",
                round + 1,
                position + 1,
                strategies.len(),
                strategy.name,
                human(reset)
            ));
            let report = run_timeline(scenario, &prepared, Some(strategy), opts).await?;
            let faulted = report.fault.is_some();
            runs.push(CompareRun {
                strategy: strategy.name.clone(),
                round: round + 1,
                position: position + 1,
                reset_s: reset.as_secs_f64(),
                report: reports.len(),
            });
            reports.push(report);
            if faulted {
                // The server is gone: no later run could start.
                break 'rounds;
            }
        }
    }
    drop(pristine);
    let load_s = prepared.load_s;
    let notes = prepared.finish().await;
    for r in &mut reports {
        r.warnings.extend(notes.iter().cloned());
    }
    let resets = Spread::of(runs.iter().map(|r| r.reset_s));
    let reset = ResetInfo {
        method: "a file copy of the loaded database (CREATE DATABASE … TEMPLATE), kept by rename".into(),
        load_s,
        keep_s: keep.as_secs_f64(),
        load_over_reset: resets.filter(|r| r.median > 0.0).map(|r| load_s / r.median),
        reset_s: resets,
    };
    let names: Vec<String> = strategies.iter().map(|s| s.name.clone()).collect();
    let summary = report::summarize(&scenario.name, &names, repeat, runs, &reports, reset);
    Ok(Compared { reports, summary })
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}
