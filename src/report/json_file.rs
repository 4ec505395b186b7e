//! Where `--json` goes: stdout (`-`), or a file whose directory is checked
//! when the command starts, so that a report is never lost at the end of a
//! long run to a typo in its path. The file is written whole or not at
//! all: into a temporary file beside it, renamed over it once complete.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A place for the JSON report, checked and held from the start.
pub enum JsonOut {
    /// `--json -`
    Stdout,
    /// A file, with the temporary file beside it that becomes it.
    File {
        /// The path asked for.
        path: PathBuf,
        /// Where the report is written first.
        temp: tempfile::NamedTempFile,
    },
}

/// Why the report's path cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {}: {reason}", path.display())]
pub struct JsonPathError {
    /// The flag that named it: `--json`, `--markdown`, `--junit`.
    pub flag: &'static str,
    /// The path.
    pub path: PathBuf,
    /// Why not.
    pub reason: String,
}

impl JsonOut {
    /// Checks that a report can be written at `path` (`-` for stdout).
    pub fn open(path: &Path) -> Result<JsonOut, JsonPathError> {
        Self::open_as("--json", path)
    }

    /// Checks that the report in the format of `flag` can be written at
    /// `path` (`-` for stdout).
    pub fn open_as(flag: &'static str, path: &Path) -> Result<JsonOut, JsonPathError> {
        if path.as_os_str() == "-" {
            return Ok(JsonOut::Stdout);
        }
        let bad = |reason: String| JsonPathError { flag, path: path.to_path_buf(), reason };
        if path.is_dir() {
            return Err(bad("is a directory; give a file name".into()));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(bad(format!("the directory {} does not exist", dir.display())));
        }
        let temp = tempfile::Builder::new()
            .prefix(".rehearse-report-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(&dir)
            .map_err(|e| bad(format!("cannot write in {}: {e}", dir.display())))?;
        Ok(JsonOut::File { path: path.to_path_buf(), temp })
    }

    /// Whether the report goes to stdout (the summary then goes to stderr).
    pub fn is_stdout(&self) -> bool {
        matches!(self, JsonOut::Stdout)
    }

    /// Writes `text` whole to the file now (a fresh temporary file beside
    /// it, renamed over it), keeping the place for later writes: a long
    /// command's report so far. Nothing goes to stdout before the end.
    pub fn checkpoint(&self, text: &str) -> std::io::Result<()> {
        let JsonOut::File { path, temp } = self else { return Ok(()) };
        let dir = temp.path().parent().unwrap_or(Path::new("."));
        let mut next = tempfile::Builder::new()
            .prefix(".rehearse-report-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(dir)?;
        next.write_all(text.as_bytes())?;
        next.write_all(b"\n")?;
        next.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Writes the report.
    pub fn write(self, json: &str) -> std::io::Result<()> {
        match self {
            JsonOut::Stdout => {
                println!("{json}");
                Ok(())
            }
            JsonOut::File { path, mut temp } => {
                temp.write_all(json.as_bytes())?;
                temp.write_all(b"\n")?;
                temp.persist(&path).map_err(|e| e.error)?;
                Ok(())
            }
        }
    }
}

/// Reads the reports of a `--json` file: one report, or the `reports` of
/// a side-by-side run, a comparison or a merge. `Err` names the file and
/// says why it is not one.
pub fn read_reports(path: &Path) -> Result<Vec<super::Report>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{shown}: not a JSON report ({e})"))?;
    let all = match json.get("reports") {
        Some(serde_json::Value::Array(all)) => all.clone(),
        _ if json.get("scenario").is_some() => vec![json],
        _ => return Err(format!("{shown}: not a rehearse report (written by --json)")),
    };
    let read = |(i, v): (usize, serde_json::Value)| {
        serde_json::from_value(v)
            .map_err(|e| format!("{shown}: report {} is not one this version of rehearse reads ({e})", i + 1))
    };
    all.into_iter().enumerate().map(read).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_refused_at_once_and_a_good_path_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let e = JsonOut::open(&dir.path().join("nope/report.json")).err().unwrap();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(JsonOut::open(dir.path()).err().unwrap().to_string().contains("is a directory"));
        let path = dir.path().join("report.json");
        let out = JsonOut::open(&path).unwrap();
        assert!(!path.exists(), "nothing is written before the report");
        out.write("{}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "the temporary file became the report");
    }
}
