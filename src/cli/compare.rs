//! `rehearse compare`: the flags, and the exit code of a comparison.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::formats::Formats;
use super::{EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_PASS, ServerArgs, default_streams, parse_duration};
use crate::compare::{Compared, compare};
use crate::rehearsal::RunOptions;
use crate::report::{JsonOut, render_comparison};
use crate::scenario::{self, LoadOptions};

/// `rehearse compare`
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Where Postgres comes from: a server the harness starts (local or
    /// docker), since each run starts from a fresh copy of the load.
    #[command(flatten)]
    pub server: ServerArgs,
    /// The strategies to compare, comma-separated (default: all of them).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub strategies: Vec<String>,
    /// How the runs go.
    #[command(flatten)]
    pub runs: RunsArgs,
    /// The runs' reports in other formats (Markdown: one table of them).
    #[command(flatten)]
    pub formats: super::formats::FormatArgs,
}

/// What `compare` and `tune` share: how many runs, at which scale, and
/// where the result goes.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Runs of each strategy (or value), in rounds rotated by one place
    /// each, so that each runs in each position.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub repeat: u16,
    /// Multiply every table's row count, e.g. 0.05 for a quick run.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Where the result goes, and how each run goes.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// What `compare`, `tune` and `predict` share: where the result goes, and
/// the options of each run.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write the summary and every run's report as JSON to this file ("-"
    /// for stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Time between samples of the lock observer.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub observe_interval: Duration,
    /// COPY streams per table (default: half the CPUs, at least one).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub load_streams: Option<u16>,
    /// No progress bars or event lines; the summary only.
    #[arg(short, long)]
    pub quiet: bool,
}

impl OutputArgs {
    /// The options of each run.
    pub(super) fn options(&self) -> RunOptions {
        RunOptions {
            reuse_existing: false,
            keep_tables: false,
            observe_interval: self.observe_interval,
            replica_url: None,
            replicas: None,
            load_streams: self.load_streams.map_or_else(default_streams, usize::from),
            progress: !self.quiet,
            rollback: false,
        }
    }

    /// The JSON file, opened (checked) before anything runs.
    pub(super) fn open(&self) -> anyhow::Result<Option<JsonOut>> {
        Ok(self.json.as_deref().map(JsonOut::open).transpose()?)
    }
}

/// Prints a summary: to stderr when the JSON goes to stdout.
pub(super) fn print_summary(out: Option<&JsonOut>, text: &str) {
    print_summary_beside(out, None, text);
}

/// Prints a summary: to stderr when the JSON or another format goes to
/// stdout.
pub(super) fn print_summary_beside(out: Option<&JsonOut>, formats: Option<&Formats>, text: &str) {
    if out.is_some_and(JsonOut::is_stdout) || formats.is_some_and(Formats::to_stdout) {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// The comparison as one JSON document: `{"comparison": {...}, "reports":
/// [...]}`, the reports in the order run.
pub fn to_json(c: &Compared) -> String {
    let doc = serde_json::json!({ "comparison": c.summary, "reports": c.reports });
    serde_json::to_string_pretty(&doc).expect("the comparison serializes")
}

/// Runs `rehearse compare`. Exit 0 when some strategy passed every run
/// (there is a safe way), 1 when none did, 3 when the server failed.
pub(super) async fn run(args: CompareArgs) -> anyhow::Result<i32> {
    let requested = args.server.requested()?;
    let scenario = scenario::load(&args.scenario, &LoadOptions { scale: args.runs.scale })?;
    let formats = Formats::open(args.runs.out.json.as_deref(), &args.formats, args.scenario.display().to_string())?;
    let out = args.runs.out.open()?;
    let repeat = usize::from(args.runs.repeat);
    let (images, names, opts) = (&args.server.pg_images, &args.strategies, args.runs.out.options());
    let compared = compare(&scenario, &requested, images, names, repeat, &opts).await?;
    print_summary_beside(out.as_ref(), Some(&formats), &render_comparison(&compared.summary, &compared.reports));
    finish(&compared, out, formats)
}

/// Writes the JSON and the other formats, if asked, and returns the exit
/// code: 3 when the server failed, 0 when a strategy passed every run,
/// else 1.
pub(super) fn finish(compared: &Compared, out: Option<JsonOut>, formats: Formats) -> anyhow::Result<i32> {
    let stdout_free = !out.as_ref().is_some_and(JsonOut::is_stdout) && !formats.to_stdout();
    if let Some(out) = out {
        out.write(&to_json(compared)).context("writing the JSON report")?;
    }
    formats.write(&compared.reports, stdout_free, &|f| f.to_string())?;
    Ok(if compared.reports.iter().any(|r| r.fault.is_some()) {
        EXIT_ENVIRONMENT
    } else if compared.summary.safest.is_some() {
        EXIT_PASS
    } else {
        EXIT_FAIL
    })
}
