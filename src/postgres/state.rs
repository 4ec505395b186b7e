//! What a run on a server the user names has created there, written down
//! as it happens, so that a run killed with SIGKILL (which nothing in the
//! process can answer) leaves a record `rehearse clean --url` can act on:
//! the tables it created, each with its oid, so that a table of the same
//! name made since by someone else is never taken for it.
//!
//! One JSON file per run in the state directory: `$XDG_STATE_HOME/rehearse`,
//! else `~/.local/state/rehearse`. A run that cleans up after itself
//! removes its file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A table a run created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTable {
    /// Its name as `regclass` prints it.
    pub name: String,
    /// Its oid when it was created.
    pub oid: u32,
}

/// What one run created on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The harness's process id.
    pub pid: i32,
    /// The run's tag, in its sessions' `application_name`.
    pub run_tag: String,
    /// The server, without password (`postgres://user@host:port/db`).
    pub target: String,
    /// The tables, in the order they were created.
    pub tables: Vec<CreatedTable>,
}

/// The directory run records are kept in.
pub fn state_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".local/state"),
    };
    Some(base.join("rehearse"))
}

impl RunRecord {
    /// The file of this run's record.
    pub fn path(&self) -> Option<PathBuf> {
        Some(state_dir()?.join(format!("url-{}-{}.json", self.run_tag, self.pid)))
    }

    /// Writes the record whole (a temporary file renamed over the old).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = self.path() else { return Ok(()) };
        let dir = path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir)?;
        let temp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer_pretty(&temp, self)?;
        temp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Removes the record.
    pub fn remove(&self) {
        if let Some(path) = self.path() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Every run record in the state directory, with its file.
pub fn records() -> Vec<(PathBuf, RunRecord)> {
    let Some(dir) = state_dir() else { return Vec::new() };
    records_in(&dir)
}

fn records_in(dir: &Path) -> Vec<(PathBuf, RunRecord)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if !(name.starts_with("url-") && name.ends_with(".json")) {
            continue;
        }
        let record = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok());
        if let Some(r) = record {
            found.push((path, r));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let r = RunRecord {
            pid: 42,
            run_tag: "abc123".into(),
            target: "postgres://app@db:5432/shop".into(),
            tables: vec![CreatedTable { name: "orders".into(), oid: 16384 }],
        };
        let path = dir.path().join("url-abc123-42.json");
        std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
        std::fs::write(dir.path().join("other.json"), "{}").unwrap();
        assert_eq!(records_in(dir.path()), vec![(path, r)]);
    }
}
