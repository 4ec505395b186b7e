//! `rehearse soak`: every scenario given, each of its strategies, on each
//! server, over and over until the duration is up. The first cycle always
//! completes, so that every scenario × strategy is judged at least once;
//! after it, a new rehearsal starts only while time is left (the one under
//! way finishes). Each report is folded into one [`SoakSummary`] and
//! dropped, so memory does not grow with the soak's length.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::postgres::BackendArg;
use crate::rehearsal::{RunOptions, UsageError, rehearse_all};
use crate::report::{Planned, SoakSummary};
use crate::scenario::{self, LoadOptions, Scenario};

/// What a soak is asked to do.
pub struct SoakOptions<'a> {
    /// How long to go on.
    pub duration: Duration,
    /// Where Postgres comes from.
    pub backend: &'a BackendArg,
    /// The images, one server each (docker backend).
    pub images: &'a [String],
    /// The options of each rehearsal.
    pub run: RunOptions,
}

/// The scenario files of `paths`: each file as given, and each directory's
/// `*.toml` files in name order. A path that is neither, or a directory
/// with no scenario, is bad input.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, UsageError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
                .collect();
            if found.is_empty() {
                return Err(UsageError(format!("{}: no scenario (*.toml) in this directory", path.display())));
            }
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(UsageError(format!("{}: no such scenario file or directory", path.display())));
        }
    }
    Ok(files)
}

/// Reads every scenario before anything runs: one that is wrong stops the
/// soak at once, with its file, line and column.
pub fn load_all(files: &[PathBuf], load: &LoadOptions) -> anyhow::Result<Vec<(String, Scenario)>> {
    files.iter().map(|f| Ok((f.display().to_string(), scenario::load(f, load)?))).collect()
}

/// The strategies of a scenario, in its order; a load-only scenario has
/// one run without.
fn strategies(s: &Scenario) -> Vec<Option<&str>> {
    if s.strategies.is_empty() { vec![None] } else { s.strategies.iter().map(|s| Some(s.name.as_str())).collect() }
}

/// The soak's plan: every scenario × strategy, in the order cycled.
pub fn plan(scenarios: &[(String, Scenario)], duration: Duration) -> SoakSummary {
    let planned = scenarios.iter().flat_map(|(file, s)| {
        strategies(s).into_iter().map(move |strategy| Planned {
            file: file.clone(),
            scenario: s.name.clone(),
            strategy: strategy.map(str::to_string),
        })
    });
    SoakSummary {
        files: scenarios.iter().map(|(f, _)| f.clone()).collect(),
        duration_s: duration.as_secs_f64(),
        planned: planned.collect(),
        ..Default::default()
    }
}

/// Runs the soak; `after_each` sees the summary after every rehearsal (to
/// write it, so that an interrupted soak leaves what it measured). An
/// error that is not the migration's (the environment, bad input found
/// only when a rehearsal starts) stops the soak: it is returned beside the
/// summary so far, which says so in `stopped`.
pub async fn soak(
    scenarios: &[(String, Scenario)],
    opts: &SoakOptions<'_>,
    mut after_each: impl FnMut(&SoakSummary),
) -> (SoakSummary, Option<anyhow::Error>) {
    let start = Instant::now();
    let mut summary = plan(scenarios, opts.duration);
    let time_is_up = |s: &SoakSummary| s.cycles > 0 && start.elapsed() >= opts.duration;
    let combos: Vec<(&String, &Scenario, Option<&str>)> =
        scenarios.iter().flat_map(|(f, s)| strategies(s).into_iter().map(move |st| (f, s, st))).collect();
    'soak: loop {
        for &(file, scenario, strategy) in &combos {
            if time_is_up(&summary) {
                break 'soak;
            }
            let at = start.elapsed().as_secs_f64();
            let began = Instant::now();
            let result = rehearse_all(scenario, opts.backend, opts.images, strategy, &opts.run).await;
            summary.elapsed_s = start.elapsed().as_secs_f64();
            match result {
                Ok(reports) => {
                    let wall = began.elapsed().as_secs_f64() / reports.len().max(1) as f64;
                    for r in &reports {
                        summary.add(file, r, at, wall);
                        say(&summary, file, r);
                    }
                }
                Err(e) => {
                    summary.stopped = Some(format!("{}: {e:#}", Path::new(file).display()));
                    after_each(&summary);
                    return (summary, Some(e));
                }
            }
            after_each(&summary);
        }
        summary.cycles += 1;
    }
    summary.elapsed_s = start.elapsed().as_secs_f64();
    summary.complete = true;
    (summary, None)
}

/// One line per run, always (even with `--quiet`): a soak is long, and
/// whoever watches it wants to know where it is.
fn say(s: &SoakSummary, file: &str, r: &crate::report::Report) {
    let verdict = if r.fault.is_some() {
        "FAULT"
    } else if r.verdict.pass {
        "PASS"
    } else {
        "FAIL"
    };
    let strategy = r.strategy.as_deref().unwrap_or("load only");
    eprintln!(
        "rehearse soak: run {} (cycle {}, {:.0}s in): {file} · {strategy} on PostgreSQL {}: {verdict}",
        s.runs,
        s.cycles + 1,
        s.elapsed_s,
        r.postgres.version.split_whitespace().nth(1).unwrap_or("?")
    );
}
