//! Which of a folder's migrations are the candidate: the last (the
//! default), every one from a version on (`--from`), or those changed since
//! a git commit (`--changed-since`, as a pull request's pipeline wants).
//! The migrations before the first candidate build the schema the
//! candidate runs on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Catalog, Migration, at_start};
use crate::scenario::ScenarioError;

/// How the candidate is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    /// The last migration.
    #[default]
    Last,
    /// Every migration from this version on.
    From(String),
    /// The migrations whose files changed since this git commit (and every
    /// one after the first of them).
    ChangedSince(String),
}

/// A folder's migrations cut at the candidate.
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    /// The migrations that build the schema.
    pub before: &'a [Migration],
    /// The migrations rehearsed, in order.
    pub candidate: &'a [Migration],
    /// How they were chosen, for the report.
    pub why: String,
}

impl Catalog {
    /// Cuts the folder's migrations at the candidate.
    pub fn select(&self, how: &Selection) -> Result<Candidates<'_>, ScenarioError> {
        let n = self.migrations.len();
        let (first, why) = match how {
            Selection::Last => (n - 1, "the last migration".to_string()),
            Selection::From(v) => {
                let Some(i) = self.migrations.iter().position(|m| m.version == *v || version_at_least(m, v)) else {
                    return Err(self.invalid(format!("no migration has version {v} or later")));
                };
                (i, format!("every migration from version {v} on"))
            }
            Selection::ChangedSince(r) => {
                let changed = changed_files(&self.dir, r).map_err(|e| self.invalid(e))?;
                let Some(i) = self.migrations.iter().position(|m| {
                    let path = std::fs::canonicalize(&m.path).unwrap_or_else(|_| m.path.clone());
                    changed.contains(&path)
                }) else {
                    return Err(self.invalid(format!("no migration changed since {r}: nothing to rehearse")));
                };
                (i, format!("the migrations changed since {r}, and those after them"))
            }
        };
        Ok(Candidates { before: &self.migrations[..first], candidate: &self.migrations[first..], why })
    }

    fn invalid(&self, message: String) -> ScenarioError {
        ScenarioError::Invalid { at: at_start(&self.dir), message }
    }
}

/// Whether `m` sorts at or after version `v` (numerically where both are
/// numbers).
fn version_at_least(m: &Migration, v: &str) -> bool {
    let key = super::numeric_key(v);
    !m.key.0.is_empty() && !key.contains(&u128::MAX) && m.key.0 >= key
}

/// The files changed since `rev` in the git work tree of `dir` (committed,
/// staged, unstaged and untracked), as canonical paths.
fn changed_files(dir: &Path, rev: &str) -> Result<BTreeSet<PathBuf>, String> {
    if rev.starts_with('-') {
        return Err(format!("`{rev}` is not a git revision"));
    }
    let git = |args: &[&str]| -> Result<String, String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if !out.status.success() {
            return Err(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let top = PathBuf::from(top.trim());
    let mut names = git(&["diff", "--name-only", "--no-renames", rev, "--", "."])?;
    names.push_str(&git(&["ls-files", "--others", "--exclude-standard", "--full-name", "--", "."])?);
    Ok(names
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let p = top.join(l);
            std::fs::canonicalize(&p).unwrap_or(p)
        })
        .collect())
}
