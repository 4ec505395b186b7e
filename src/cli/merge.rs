//! `rehearse merge`: the JSON reports of several shards (CI jobs that each
//! rehearsed part of a matrix) joined into one report, written in every
//! format, as if one run had rehearsed them side by side.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::Value;

use super::formats::{FormatArgs, Formats, exit_code};
use crate::rehearsal::UsageError;
use crate::report::{JsonOut, read_reports, render, render_side_by_side, to_json_many};

/// `rehearse merge`
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' JSON reports (each written by `run --json`, or by an
    /// earlier merge), in the order they are shown.
    #[arg(required = true, value_name = "REPORTS")]
    pub reports: Vec<PathBuf>,
    /// Write the merged reports as one JSON document (`{"reports": [...]}`)
    /// to this file ("-" for stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The matrix the shards ran (`rehearse plan --matrix`, GitHub's or
    /// GitLab's): a shard with no report named after it (`<shard>.json`)
    /// is missing, named in every format, and fails the merge.
    #[arg(long, value_name = "MATRIX.json")]
    pub plan: Option<PathBuf>,
    /// The other formats.
    #[command(flatten)]
    pub formats: FormatArgs,
}

/// The shards of a matrix `rehearse plan --matrix` printed.
fn planned_shards(path: &Path) -> Result<Vec<String>, UsageError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| UsageError(format!("--plan {shown}: {e}")))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| UsageError(format!("--plan {shown}: not JSON ({e})")))?;
    // GitLab's child pipeline has an `include` too (of the job's file).
    let (entries, key) = match (doc.pointer("/rehearse-shard/parallel/matrix"), doc.get("include")) {
        (Some(Value::Array(gitlab)), _) => (gitlab.as_slice(), "SHARD"),
        (None, Some(Value::Array(github))) => (github.as_slice(), "shard"),
        _ => return Err(UsageError(format!("--plan {shown}: not a matrix of `rehearse plan --matrix`"))),
    };
    let names = entries.iter().map(|e| e[key].as_str().map(str::to_string));
    names.collect::<Option<Vec<_>>>().ok_or_else(|| UsageError(format!("--plan {shown}: a shard has no `{key}`")))
}

/// The planned shards that sent no report: none of `files` is named after
/// them.
fn missing(planned: &[String], files: &[PathBuf]) -> Vec<String> {
    let stems: Vec<String> =
        files.iter().filter_map(|f| f.file_stem()).map(|s| s.to_string_lossy().into_owned()).collect();
    planned.iter().filter(|p| !stems.contains(p)).cloned().collect()
}

/// What every format says of the missing shards.
fn missing_sentence(missing: &[String], planned: usize) -> String {
    format!(
        "{} of {planned} planned shards sent no report, so nothing was judged there: {}",
        missing.len(),
        missing.join(", ")
    )
}

/// Runs `rehearse merge`. Exit 0 when every report passed, 1 when one
/// failed, 3 when a server faulted in one, 2 when a file is no report.
pub(super) async fn run(args: MergeArgs) -> anyhow::Result<i32> {
    let formats = Formats::open(args.json.as_deref(), &args.formats, "(merged reports)".into())?;
    let out = args.json.as_deref().map(JsonOut::open).transpose()?;
    let planned = args.plan.as_deref().map(planned_shards).transpose()?;
    let mut reports = Vec::new();
    for path in &args.reports {
        reports.extend(read_reports(path).map_err(UsageError)?);
    }
    if reports.is_empty() {
        return Err(UsageError("the files hold no report".into()).into());
    }
    let missing = planned.as_ref().map(|p| (missing(p, &args.reports), p.len()));
    if let Some((missing, planned)) = missing.as_ref().filter(|(m, _)| !m.is_empty()) {
        let why = missing_sentence(missing, *planned);
        eprintln!("rehearse merge: {why}");
        for r in &mut reports {
            r.warnings.push(why.clone());
        }
        if let Some(first) = reports.first_mut() {
            first.verdict.pass = false;
            first.verdict.violations.push(crate::report::Violation {
                threshold: crate::report::Check::Shards,
                subject: "merge".into(),
                measured: Some(missing.len() as f64),
                limit: Some(0.0),
                message: why,
            });
        }
    }
    let summary = match reports.as_slice() {
        [one] => render(one),
        many => render_side_by_side(many),
    };
    let json = to_json_many(&reports);
    formats.finish(&reports, out, &summary, &json, &|f| f.to_string())?;
    Ok(exit_code(&reports))
}
