//! Plain `.sql` files, run as `psql -f FILE` runs each, in name order:
//! statement by statement, each its own transaction unless the file holds
//! its own `BEGIN` … `COMMIT`. Files named `*.down.sql` (or `*_down.sql`)
//! are the downs of the files of the same stem.

use std::path::Path;
use std::sync::Arc;

use super::{Migration, Script, Sending, file_name, files, load, split};
use crate::scenario::ScenarioError;
use crate::scenario::source::SourceFile;

/// The migrations of a folder of plain SQL files.
pub fn read(dir: &Path) -> Result<Vec<Migration>, ScenarioError> {
    let all = files(dir)?;
    let mut out = Vec::new();
    for path in &all {
        let name = file_name(path);
        let Some(stem) = name.strip_suffix(".sql") else { continue };
        if is_down(stem) || !path.is_file() {
            continue;
        }
        let stem = stem.strip_suffix(".up").or_else(|| stem.strip_suffix("_up")).unwrap_or(stem);
        let down = ["down.sql", "_down.sql"]
            .iter()
            .map(|s| dir.join(format!("{stem}{}{s}", if s.starts_with('_') { "" } else { "." })))
            .find(|p| p.is_file());
        let digits = stem.bytes().take_while(u8::is_ascii_digit).count();
        let key = if digits > 0 { vec![stem[..digits].parse().unwrap_or(u128::MAX)] } else { vec![u128::MAX] };
        out.push(Migration {
            version: if digits > 0 { stem[..digits].to_string() } else { stem.to_string() },
            key: (key, stem.to_string()),
            name: stem.to_string(),
            path: path.clone(),
            up: script(&load(path)?)?,
            down: down.and_then(|d| load(&d).and_then(|s| script(&s)).ok()),
        });
    }
    Ok(out)
}

fn is_down(stem: &str) -> bool {
    stem.ends_with(".down") || stem.ends_with("_down") || stem.ends_with(".undo")
}

/// A plain file: each statement sent on its own, as psql sends it.
pub fn script(source: &Arc<SourceFile>) -> Result<Script, ScenarioError> {
    Ok(Script {
        source: source.clone(),
        sending: Sending::Separately,
        why: "statement by statement, as `psql -f` runs a file".into(),
        pieces: split::each_statement(source, 0..source.text.len())?,
    })
}
