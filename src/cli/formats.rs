//! The report's formats beside `--json`, shared by `run` and `merge`:
//! `--markdown`, `--junit`, `--html`, `--codequality`, and in a GitHub
//! Actions job its step summary and annotations.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_PASS};
use crate::rehearsal::UsageError;
use crate::report::{JsonOut, Report, codequality, github, html, junit, markdown_many};

/// The flags of the formats.
#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Write the report as Markdown, for a pull-request comment (it opens
    /// with a fixed hidden marker and stays under 60,000 characters), to
    /// this file ("-" for stdout).
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
    /// Write the report as JUnit XML (a testcase per threshold and per
    /// step) to this file ("-" for stdout).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the report as one self-contained HTML page with charts
    /// (latency, failures, lock queue, pool, replica lag, WAL over time) to
    /// this file ("-" for stdout).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write a GitLab Code Quality report (a failing step on its migration
    /// file's line, other failures on the file rehearsed) to this file
    /// ("-" for stdout).
    #[arg(long, value_name = "PATH")]
    pub codequality: Option<PathBuf>,
}

/// The formats' files, checked when the command starts.
pub(super) struct Formats {
    markdown: Option<JsonOut>,
    junit: Option<JsonOut>,
    html: Option<JsonOut>,
    codequality: Option<JsonOut>,
    /// The file rehearsed, for Code Quality issues that have no line.
    rehearsed: String,
}

impl Formats {
    /// Checks each path now, so that a long run's report is never lost to a
    /// typo; at most one format (`--json` included) may go to stdout.
    pub(super) fn open(json: Option<&Path>, f: &FormatArgs, rehearsed: String) -> anyhow::Result<Formats> {
        let paths = [json, f.markdown.as_deref(), f.junit.as_deref(), f.html.as_deref(), f.codequality.as_deref()];
        if paths.iter().flatten().filter(|p| p.as_os_str() == "-").count() > 1 {
            let why = "only one of --json, --markdown, --junit, --html and --codequality can be \"-\" (stdout)";
            return Err(UsageError(why.into()).into());
        }
        let open = |flag, p: &Option<PathBuf>| p.as_deref().map(|p| JsonOut::open_as(flag, p)).transpose();
        Ok(Formats {
            markdown: open("--markdown", &f.markdown)?,
            junit: open("--junit", &f.junit)?,
            html: open("--html", &f.html)?,
            codequality: open("--codequality", &f.codequality)?,
            rehearsed,
        })
    }

    /// Whether one of the formats goes to stdout.
    pub(super) fn to_stdout(&self) -> bool {
        let all = [&self.markdown, &self.junit, &self.html, &self.codequality];
        all.into_iter().flatten().any(JsonOut::is_stdout)
    }

    /// Prints the terminal `summary` (to stderr when a report goes to
    /// stdout), writes the `json` and every format of `reports`; `path`
    /// turns a migration file as reports name it into its path.
    pub(super) fn finish(
        self,
        reports: &[Report],
        out: Option<JsonOut>,
        summary: &str,
        json: &str,
        path: &dyn Fn(&str) -> String,
    ) -> anyhow::Result<()> {
        let json_to_stdout = out.as_ref().is_some_and(JsonOut::is_stdout);
        // Workflow commands are read from stdout, unless a report is there.
        let stdout_free = !json_to_stdout && !self.to_stdout();
        if stdout_free {
            print!("{summary}");
        } else {
            eprint!("{summary}");
        }
        if let Some(out) = out {
            out.write(json).context("writing the JSON report")?;
        }
        self.write(reports, stdout_free, path)
    }

    /// Writes every format of `reports`; workflow commands go to stdout
    /// when `stdout_free`, else to stderr.
    pub(super) fn write(
        self,
        reports: &[Report],
        stdout_free: bool,
        path: &dyn Fn(&str) -> String,
    ) -> anyhow::Result<()> {
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
            if let Err(e) = github::append_summary(Path::new(&path), &md) {
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

/// The exit code of a set of reports: 3 when a server faulted, 0 when
/// every one passed, else 1.
pub(super) fn exit_code(reports: &[Report]) -> i32 {
    if reports.iter().any(|r| r.fault.is_some()) {
        EXIT_ENVIRONMENT
    } else if !reports.is_empty() && reports.iter().all(|r| r.verdict.pass) {
        EXIT_PASS
    } else {
        EXIT_FAIL
    }
}
