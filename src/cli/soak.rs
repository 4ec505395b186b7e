//! `rehearse soak`: the flags, the files written after every run, and the
//! exit code of the whole soak.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::compare::{OutputArgs, print_summary};
use super::{EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_PASS, ServerArgs};
use crate::report::{JsonOut, SoakSummary, github, render_soak, soak_junit, soak_markdown};
use crate::scenario::LoadOptions;
use crate::soak::{SoakOptions, load_all, scenario_files, soak};

/// `rehearse soak`
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Scenario files, or directories whose `*.toml` files are each one.
    #[arg(required = true, value_name = "DIR_OR_FILES")]
    pub paths: Vec<PathBuf>,
    /// How long to go on (e.g. 2h, 15m). Every scenario × strategy runs
    /// once whatever this says; then cycles start again while time is left,
    /// and the rehearsal under way when it is up finishes.
    #[arg(long, value_parser = parse_soak_duration)]
    pub duration: Duration,
    /// Where Postgres comes from; repeat --pg-image to cycle servers.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Multiply every table's row count, e.g. 0.05 for a quick soak.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Write the summary as Markdown (a PR comment or a job summary).
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
    /// Write the summary as JUnit XML: a testcase per scenario × strategy.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// The JSON summary, and each run's options.
    #[command(flatten)]
    pub out: OutputArgs,
}

fn parse_soak_duration(s: &str) -> Result<Duration, String> {
    let d = crate::scenario::duration::parse_duration(s)?;
    if d.is_zero() {
        return Err("the soak's duration must be above zero".into());
    }
    Ok(d)
}

/// How the summary is rendered for one file.
type Render = fn(&SoakSummary) -> String;

/// The soak's files: each written after every run, whole, so that an
/// interrupted soak leaves what it measured.
struct Outputs {
    json: Option<JsonOut>,
    markdown: Option<JsonOut>,
    junit: Option<JsonOut>,
}

impl Outputs {
    fn open(args: &SoakArgs) -> anyhow::Result<Outputs> {
        let paths = [&args.out.json, &args.markdown, &args.junit];
        if paths.iter().filter(|p| p.as_deref().is_some_and(|p| p.as_os_str() == "-")).count() > 1 {
            let why = "only one of --json, --markdown and --junit can be \"-\" (stdout)";
            return Err(crate::rehearsal::UsageError(why.into()).into());
        }
        Ok(Outputs {
            json: args.out.open()?,
            markdown: args.markdown.as_deref().map(|p| JsonOut::open_as("--markdown", p)).transpose()?,
            junit: args.junit.as_deref().map(|p| JsonOut::open_as("--junit", p)).transpose()?,
        })
    }

    fn each(&self) -> [(&Option<JsonOut>, Render); 3] {
        [(&self.json, SoakSummary::to_json), (&self.markdown, soak_markdown), (&self.junit, soak_junit)]
    }

    fn checkpoint(&self, s: &SoakSummary) {
        for (out, render) in self.each() {
            if let Some(Err(e)) = out.as_ref().map(|o| o.checkpoint(&render(s))) {
                eprintln!("rehearse soak: warning: cannot write the summary so far: {e}");
            }
        }
    }

    fn to_stdout(&self) -> Option<&JsonOut> {
        [&self.json, &self.markdown, &self.junit].into_iter().flatten().find(|o| o.is_stdout())
    }

    fn write(self, s: &SoakSummary) -> anyhow::Result<()> {
        let rendered = self.each().map(|(_, render)| render(s));
        for (out, text) in [self.json, self.markdown, self.junit].into_iter().zip(rendered) {
            if let Some(out) = out {
                out.write(&text).context("writing the soak's summary")?;
            }
        }
        Ok(())
    }
}

/// Runs `rehearse soak`. Exit 0 when every scenario × strategy ran and
/// every run passed; 1 when a run failed; 3 when the server faulted or the
/// environment stopped the soak (2 for bad input found on the way).
pub(super) async fn run(args: SoakArgs) -> anyhow::Result<i32> {
    let requested = args.server.requested()?;
    let files = scenario_files(&args.paths)?;
    let scenarios = load_all(&files, &LoadOptions { scale: args.scale })?;
    let outputs = Outputs::open(&args)?;
    let opts = SoakOptions {
        duration: args.duration,
        backend: &requested,
        images: &args.server.pg_images,
        run: args.out.options(),
    };
    let (summary, error) = soak(&scenarios, &opts, |s| outputs.checkpoint(s)).await;
    print_summary(outputs.to_stdout(), &render_soak(&summary));
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        if let Err(e) = github::append_summary(std::path::Path::new(&path), &soak_markdown(&summary)) {
            eprintln!("rehearse: warning: GITHUB_STEP_SUMMARY {}: {e}", path.to_string_lossy());
        }
    }
    outputs.write(&summary)?;
    if let Some(e) = error {
        return Err(e.context("the soak stopped; its summary so far is written"));
    }
    let failed = summary.entries.iter().any(|e| e.runs - e.passes > e.faults);
    Ok(if summary.passed() {
        EXIT_PASS
    } else if failed || summary.entries.iter().all(|e| e.faults == 0) {
        EXIT_FAIL
    } else {
        EXIT_ENVIRONMENT
    })
}
