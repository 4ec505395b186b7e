//! Atlas: `<version>_<name>.sql` in a folder with `atlas.sum`, in order of
//! the version. Atlas cuts a file into statements and runs them one by one
//! in a transaction of the file (`--tx-mode file`, its default), unless
//! the file's header says `-- atlas:txmode none`: then each statement is
//! sent on its own.

use std::path::Path;
use std::sync::Arc;

use super::{Migration, Script, Sending, file_name, files, load, split};
use crate::scenario::ScenarioError;
use crate::scenario::source::SourceFile;

/// The migrations of an Atlas folder.
pub fn read(dir: &Path) -> Result<Vec<Migration>, ScenarioError> {
    let mut out = Vec::new();
    for path in files(dir)? {
        let name = file_name(&path);
        let Some(stem) = name.strip_suffix(".sql") else { continue };
        let (version, desc) = stem.split_once('_').unwrap_or((stem, ""));
        if version.is_empty() {
            continue;
        }
        out.push(Migration {
            version: version.to_string(),
            key: (Vec::new(), name.clone()),
            name: desc.to_string(),
            up: script(&load(&path)?)?,
            down: None,
            path,
        });
    }
    Ok(out)
}

/// An Atlas file: statement by statement, in a transaction unless its
/// header opts out.
pub fn script(source: &Arc<SourceFile>) -> Result<Script, ScenarioError> {
    let pieces = split::each_statement(source, 0..source.text.len())?;
    let none = source.text.lines().take_while(|l| l.trim().is_empty() || l.trim_start().starts_with("--")).any(|l| {
        let l = l.trim();
        l == "-- atlas:txmode none" || l == "--atlas:txmode none"
    });
    let (sending, why) = if none {
        (Sending::Separately, "`-- atlas:txmode none`: each statement sent on its own")
    } else {
        (Sending::Transaction, "statement by statement in the transaction Atlas opens for the file")
    };
    Ok(Script { source: source.clone(), sending, why: why.into(), pieces })
}
