//! `rehearse run`: the scenario, from its file or derived from a migration
//! and a schema, rehearsed and judged.

use super::formats::{Formats, exit_code};
use super::{RunArgs, default_streams, migrations, suggest, warn_if_password_in};
use crate::postgres::{self, PoolMode};
use crate::rehearsal::{RunOptions, UsageError, rehearse_all};
use crate::report::{JsonOut, Report, regression, render, render_side_by_side, to_json_many};
use crate::scenario::{self, LoadOptions};

/// Runs `rehearse run`: the scenario (or the one derived from a migration
/// and a schema) on each server asked for, or with `--suggest` its derived
/// variants beside it.
pub(super) async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let requested = args.server.requested()?;
    let is_url = matches!(requested, postgres::BackendArg::Url(_));
    if (args.reuse_existing || args.keep_tables) && !is_url {
        return Err(UsageError("--reuse-existing and --keep-tables apply to --backend url".into()).into());
    }
    let load = LoadOptions { scale: args.scale };
    let scenario = match &args.scenario {
        Some(path) => {
            if args.tables.any() {
                return Err(UsageError(
                    "--schema and --rows describe the tables when there is no scenario file".into(),
                )
                .into());
            }
            let mut scenario = scenario::load(path, &load)?;
            if let Some(folder) = args.migrations.read()? {
                migrations::apply(&mut scenario, folder, args.quiet);
            }
            scenario
        }
        None => {
            let toml = migrations::derived(&args.migrations, &args.tables)?;
            if !args.quiet {
                eprintln!(
                    "rehearse: no scenario file; rehearsing this one (`rehearse init` with the same flags writes it):\n"
                );
                eprintln!("{toml}");
            }
            scenario::parse(std::path::Path::new("(derived scenario)"), toml, &load)?
        }
    };
    let mut scenario = scenario;
    if let Some(kind) = &args.pooler {
        let mode = if kind.ends_with(":session") { PoolMode::Session } else { PoolMode::Transaction };
        let pool_size = scenario.pooler.map_or(20, |p| p.pool_size);
        scenario.pooler = Some(scenario::PoolerSpec { mode, pool_size });
    }
    let out = args.json.as_deref().map(JsonOut::open).transpose()?;
    let formats = Formats::open(args.json.as_deref(), &args.formats, rehearsed(&args))?;
    let baseline = args.baseline.as_deref().map(read_baseline).transpose()?;
    if let Some(url) = &args.replica_url {
        warn_if_password_in("--replica-url", url);
    }
    let opts = RunOptions {
        reuse_existing: args.reuse_existing,
        keep_tables: args.keep_tables,
        observe_interval: args.observe_interval,
        replica_url: args.replica_url,
        replicas: args.replicas.map(usize::from),
        load_streams: args.load_streams.map_or_else(default_streams, usize::from),
        progress: !args.quiet,
        rollback: args.rollback,
    };
    if args.suggest {
        let (images, strategy) = (&args.server.pg_images, args.strategy.as_deref());
        return suggest::run(&scenario, &requested, images, strategy, out, formats, &opts).await;
    }
    let mut reports =
        rehearse_all(&scenario, &requested, &args.server.pg_images, args.strategy.as_deref(), &opts).await?;
    if let Some((path, baseline)) = &baseline {
        let tolerance = scenario.thresholds.max_regression.unwrap_or(regression::DEFAULT_TOLERANCE);
        for r in &mut reports {
            against_baseline(r, path, baseline, tolerance);
        }
    }
    let (summary, json) = match reports.as_slice() {
        [one] => (render(one), one.to_json()),
        many => (render_side_by_side(many), to_json_many(many)),
    };
    formats.finish(&reports, out, &summary, &json, &|f| args.migrations.path_of(f))?;
    Ok(exit_code(&reports))
}

/// The file rehearsed, for Code Quality issues that have no line.
fn rehearsed(args: &RunArgs) -> String {
    let m = &args.migrations;
    let rehearsed = args.scenario.clone().or_else(|| m.migrations.clone()).or_else(|| m.migration.first().cloned());
    rehearsed.map_or_else(|| "(derived scenario)".into(), |p| p.display().to_string())
}

/// The earlier report `--baseline` names, read now: a file that is not one
/// is refused before the run.
fn read_baseline(path: &std::path::Path) -> anyhow::Result<(String, Vec<Report>)> {
    let shown = path.display().to_string();
    let reports = crate::report::read_reports(path).map_err(|why| UsageError(format!("--baseline {why}")))?;
    Ok((shown, reports))
}

/// Compares `r` with its run in the baseline; a baseline without one fails
/// the verdict, since nothing was compared.
fn against_baseline(r: &mut Report, path: &str, baseline: &[Report], tolerance: f64) {
    let found = regression::pick(baseline, r).map(|b| regression::compare(r, b, path, tolerance));
    match found {
        Ok(regressions) => regression::apply(r, regressions),
        Err(why) => {
            r.verdict.pass = false;
            r.verdict.violations.push(crate::report::Violation {
                threshold: crate::report::Check::MaxRegression,
                subject: "run".into(),
                measured: None,
                limit: None,
                message: format!("--baseline {path}: {why}; nothing was compared"),
            });
            let none = regression::Regressions { baseline: path.into(), tolerance, compared: 0, regressed: vec![] };
            r.regressions = Some(none);
        }
    }
}
