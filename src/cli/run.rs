//! `rehearse run`: the scenario, from its file or derived from a migration
//! and a schema, rehearsed and judged.

use anyhow::Context;

use super::{
    EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_PASS, RunArgs, default_streams, migrations, suggest, warn_if_password_in,
};
use crate::postgres::{self, PoolMode};
use crate::rehearsal::{RunOptions, UsageError, rehearse_all};
use crate::report::{JsonOut, Report, github, junit, markdown_many, render, render_side_by_side, to_json_many};
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
    let reports = rehearse_all(&scenario, &requested, &args.server.pg_images, args.strategy.as_deref(), &opts).await?;
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
}

impl Formats {
    /// Checks each path now, so that a long run's report is never lost to a
    /// typo; at most one format may go to stdout.
    fn open(args: &RunArgs) -> anyhow::Result<Formats> {
        let paths = [args.json.as_deref(), args.markdown.as_deref(), args.junit.as_deref()];
        if paths.iter().flatten().filter(|p| p.as_os_str() == "-").count() > 1 {
            return Err(UsageError("only one of --json, --markdown and --junit can be \"-\" (stdout)".into()).into());
        }
        let markdown = args.markdown.as_deref().map(|p| JsonOut::open_as("--markdown", p)).transpose()?;
        let junit = args.junit.as_deref().map(|p| JsonOut::open_as("--junit", p)).transpose()?;
        Ok(Formats { markdown, junit })
    }

    fn to_stdout(&self) -> bool {
        self.markdown.iter().chain(&self.junit).any(JsonOut::is_stdout)
    }

    fn write(self, reports: &[Report], stdout_free: bool, path: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
        let md = markdown_many(reports);
        if let Some(out) = self.markdown {
            out.write(&md).context("writing the Markdown report")?;
        }
        if let Some(out) = self.junit {
            out.write(&junit(reports)).context("writing the JUnit report")?;
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
