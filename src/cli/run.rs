//! `rehearse run`: the scenario, from its file or derived from a migration
//! and a schema, rehearsed and judged.

use anyhow::Context;

use super::{
    EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_PASS, RunArgs, default_streams, migrations, suggest, warn_if_password_in,
};
use crate::postgres::{self, PoolMode};
use crate::rehearsal::{RunOptions, UsageError, rehearse_all};
use crate::report::{
    JsonOut, Report, codequality, github, html, junit, markdown_many, regression, render, render_side_by_side,
    to_json_many,
};
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
    let formats = Formats::open(&args)?;
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
        return suggest::run(&scenario, &requested, &args.server.pg_images, args.strategy.as_deref(), out, &opts).await;
    }
    let mut reports =
        rehearse_all(&scenario, &requested, &args.server.pg_images, args.strategy.as_deref(), &opts).await?;
    if let Some((path, json)) = &baseline {
        let tolerance = scenario.thresholds.max_regression.unwrap_or(regression::DEFAULT_TOLERANCE);
        for r in &mut reports {
            against_baseline(r, path, json, tolerance);
        }
    }
    let (summary, json) = match reports.as_slice() {
        [one] => (render(one), one.to_json()),
        many => (render_side_by_side(many), to_json_many(many)),
    };
    let json_to_stdout = out.as_ref().is_some_and(JsonOut::is_stdout);
    if json_to_stdout || formats.to_stdout() {
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    if let Some(out) = out {
        out.write(&json).context("writing the JSON report")?;
    }
    // Workflow commands are read from stdout, unless a report is there.
    let stdout_free = !json_to_stdout && !formats.to_stdout();
    formats.write(&reports, stdout_free, &|f| args.migrations.path_of(f))?;
    Ok(if reports.iter().any(|r| r.fault.is_some()) {
        EXIT_ENVIRONMENT
    } else if reports.iter().all(|r| r.verdict.pass) {
        EXIT_PASS
    } else {
        EXIT_FAIL
    })
}

/// The report's other formats: `--markdown`, `--junit`, and in a GitHub
/// Actions job its step summary and annotations.
struct Formats {
    markdown: Option<JsonOut>,
    junit: Option<JsonOut>,
    html: Option<JsonOut>,
    codequality: Option<JsonOut>,
    /// The file rehearsed, for Code Quality issues that have no line.
    rehearsed: String,
}

impl Formats {
    /// Checks each path now, so that a long run's report is never lost to a
    /// typo; at most one format may go to stdout.
    fn open(args: &RunArgs) -> anyhow::Result<Formats> {
        let paths = [&args.json, &args.markdown, &args.junit, &args.html, &args.codequality].map(|p| p.as_deref());
        if paths.iter().flatten().filter(|p| p.as_os_str() == "-").count() > 1 {
            let why = "only one of --json, --markdown, --junit, --html and --codequality can be \"-\" (stdout)";
            return Err(UsageError(why.into()).into());
        }
        let markdown = args.markdown.as_deref().map(|p| JsonOut::open_as("--markdown", p)).transpose()?;
        let junit = args.junit.as_deref().map(|p| JsonOut::open_as("--junit", p)).transpose()?;
        let html = args.html.as_deref().map(|p| JsonOut::open_as("--html", p)).transpose()?;
        let codequality = args.codequality.as_deref().map(|p| JsonOut::open_as("--codequality", p)).transpose()?;
        let m = &args.migrations;
        let rehearsed = args.scenario.clone().or_else(|| m.migrations.clone()).or_else(|| m.migration.first().cloned());
        let rehearsed = rehearsed.map_or_else(|| "(derived scenario)".into(), |p| p.display().to_string());
        Ok(Formats { markdown, junit, html, codequality, rehearsed })
    }

    fn to_stdout(&self) -> bool {
        let all = [&self.markdown, &self.junit, &self.html, &self.codequality];
        all.into_iter().flatten().any(JsonOut::is_stdout)
    }

    fn write(self, reports: &[Report], stdout_free: bool, path: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
        let md = markdown_many(reports);
        if let Some(out) = self.markdown {
            out.write(&md).context("writing the Markdown report")?;
        }
        if let Some(out) = self.junit {
            out.write(&junit(reports)).context("writing the JUnit report")?;
        }
        if let Some(out) = self.html {
            out.write(&html(reports)).context("writing the HTML report")?;
        }
        if let Some(out) = self.codequality {
            let json = codequality(reports, path, &self.rehearsed);
            out.write(&json).context("writing the Code Quality report")?;
        }
        if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
            if let Err(e) = github::append_summary(std::path::Path::new(&path), &md) {
                eprintln!("rehearse: warning: GITHUB_STEP_SUMMARY {}: {e}", path.to_string_lossy());
            }
        }
        if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
            for line in github::annotations(reports, path) {
                if stdout_free {
                    println!("{line}");
                } else {
                    eprintln!("{line}");
                }
            }
        }
        Ok(())
    }
}

/// The earlier report `--baseline` names, read now: a file that is not one
/// is refused before the run.
fn read_baseline(path: &std::path::Path) -> anyhow::Result<(String, serde_json::Value)> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| UsageError(format!("--baseline {shown}: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| UsageError(format!("--baseline {shown}: not a JSON report ({e})")))?;
    let one = json.get("scenario").is_some();
    let many = json.get("reports").is_some_and(serde_json::Value::is_array);
    if !one && !many {
        return Err(UsageError(format!("--baseline {shown}: not a rehearse report (written by --json)")).into());
    }
    Ok((shown, json))
}

/// Compares `r` with its run in the baseline; a baseline without one fails
/// the verdict, since nothing was compared.
fn against_baseline(r: &mut Report, path: &str, json: &serde_json::Value, tolerance: f64) {
    let found = regression::pick(json, r).map(|b| regression::compare(r, b, path, tolerance));
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
