//! `rehearse predict`: the flags, and the exit code of a prediction.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::compare::{OutputArgs, print_summary};
use super::{EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_PASS, ServerArgs};
use crate::predict::{Request, Target, predict};
use crate::report::render_prediction;

/// `TABLE=ROWS`, the rows a plain number or with `_` separators.
fn table_rows(s: &str) -> Result<(String, u64), String> {
    let (table, rows) = s.split_once('=').ok_or_else(|| format!("expected TABLE=ROWS, got `{s}`"))?;
    let rows: u64 = rows.trim().replace('_', "").parse().map_err(|_| format!("`{rows}` is not a row count"))?;
    if table.trim().is_empty() {
        return Err(format!("expected TABLE=ROWS, got `{s}`"));
    }
    Ok((table.trim().to_string(), rows))
}

/// `rehearse predict`
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Where Postgres comes from: each scale runs on a server of its own.
    #[command(flatten)]
    pub server: ServerArgs,
    /// The strategy to predict.
    #[arg(long)]
    pub strategy: String,
    /// The scales to rehearse and fit, comma-separated (three or more
    /// to check the fit).
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,0.2", value_name = "S1,S2,S3")]
    pub scales: Vec<f64>,
    /// The scale to predict at.
    #[arg(long, default_value_t = 1.0, conflicts_with = "rows")]
    pub at: f64,
    /// Predict at this many rows of one table (the others in proportion),
    /// e.g. orders=40000000.
    #[arg(long, value_parser = table_rows, value_name = "TABLE=ROWS")]
    pub rows: Option<(String, u64)>,
    /// Then rehearse at the target too, and show the prediction beside
    /// what was measured.
    #[arg(long)]
    pub verify: bool,
    /// Where the result goes, and how each run goes.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Runs `rehearse predict`. Exit 0 when the prediction can be trusted,
/// every run passed and the migration is predicted to finish within
/// `max_duration`; 1 otherwise; 3 when a server failed.
pub(super) async fn run(args: PredictArgs) -> anyhow::Result<i32> {
    let requested = args.server.requested()?;
    let out = args.out.open()?;
    let target = match args.rows {
        Some((table, rows)) => Target::Rows(table, rows),
        None => Target::Scale(args.at),
    };
    let opts = args.out.options();
    let images = &args.server.pg_images;
    let req =
        Request { path: &args.scenario, strategy: &args.strategy, scales: &args.scales, target, verify: args.verify };
    let predicted = predict(&req, &requested, images, &opts).await?;
    let p = &predicted.prediction;
    print_summary(out.as_ref(), &render_prediction(p));
    if let Some(out) = out {
        let doc = serde_json::json!({ "prediction": p, "reports": predicted.reports });
        out.write(&serde_json::to_string_pretty(&doc).expect("serializes")).context("writing the JSON report")?;
    }
    Ok(if predicted.reports.iter().any(|r| r.fault.is_some()) {
        EXIT_ENVIRONMENT
    } else if p.trusted && !p.exceeds_max_duration && p.runs.iter().all(|r| r.pass) {
        EXIT_PASS
    } else {
        EXIT_FAIL
    })
}
