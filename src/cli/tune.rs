//! `rehearse tune`: the flags, and the exit code of a tuning.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::{EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_PASS, ServerArgs};
use crate::report::{render_comparison, render_tuning};
use crate::scenario::{self, LoadOptions};
use crate::tune::{Knobs, tune};

/// A duration of a list: `0` or a number with its unit.
fn knob_value(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    scenario::duration::parse_duration(s)
}

/// `rehearse tune`
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Where Postgres comes from (a server the harness starts).
    #[command(flatten)]
    pub server: ServerArgs,
    /// The strategy to tune.
    #[arg(long)]
    pub strategy: String,
    /// `lock_timeout` values to try on the steps that set one.
    #[arg(long, value_delimiter = ',', value_parser = knob_value, value_name = "50ms,100ms,...")]
    pub lock_timeout: Vec<Duration>,
    /// Pauses between batches to try on the repeated steps.
    #[arg(long, value_delimiter = ',', value_parser = knob_value, value_name = "0,50ms,...")]
    pub pause: Vec<Duration>,
    /// Rows per batch to try on the repeated steps: the number of the one
    /// `LIMIT n` in each one's SQL.
    #[arg(long, value_delimiter = ',', value_name = "1000,10000,...")]
    pub batch: Vec<u64>,
    /// How the runs go.
    #[command(flatten)]
    pub runs: super::compare::RunsArgs,
}

/// Runs `rehearse tune`. Exit 0 when a value is recommended, 1 when none
/// passed, 3 when the server failed.
pub(super) async fn run(args: TuneArgs) -> anyhow::Result<i32> {
    let requested = args.server.requested()?;
    let scenario = scenario::load(&args.scenario, &LoadOptions { scale: args.runs.scale })?;
    let out = args.runs.out.open()?;
    let knobs = Knobs { lock_timeouts: args.lock_timeout, pauses: args.pause, batches: args.batch };
    let (repeat, opts) = (usize::from(args.runs.repeat), args.runs.out.options());
    let (compared, tuning) =
        tune(&scenario, &args.strategy, &knobs, &requested, &args.server.pg_images, repeat, &opts).await?;
    let text = format!("{}\n{}", render_comparison(&compared.summary, &compared.reports), render_tuning(&tuning));
    super::compare::print_summary(out.as_ref(), &text);
    if let Some(out) = out {
        let doc = serde_json::json!({ "tuning": tuning, "comparison": compared.summary, "reports": compared.reports });
        out.write(&serde_json::to_string_pretty(&doc).expect("serializes")).context("writing the JSON report")?;
    }
    Ok(if compared.reports.iter().any(|r| r.fault.is_some()) {
        EXIT_ENVIRONMENT
    } else if tuning.recommended.is_some() {
        EXIT_PASS
    } else {
        EXIT_FAIL
    })
}
