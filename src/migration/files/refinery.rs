//! refinery: `V<version>__<name>.sql` (versioned) and `U<version>__<name>.sql`
//! (unversioned, applied in the same order), the version an integer. Each
//! migration runs whole (`batch_execute`) in a transaction of its own.
//! refinery has no way to opt out (its `noTransaction` directive exists
//! only in unmerged proposals), so `CREATE INDEX CONCURRENTLY` always fails
//! in a refinery migration, as it does here.

use std::path::Path;
use std::sync::Arc;

use super::{Migration, Script, file_name, files, load, split};
use crate::scenario::ScenarioError;
use crate::scenario::source::SourceFile;

/// The migrations of a refinery folder.
pub fn read(dir: &Path) -> Result<Vec<Migration>, ScenarioError> {
    let mut out = Vec::new();
    for path in files(dir)? {
        let name = file_name(&path);
        let Some((_, version, desc)) = parse_name(&name) else { continue };
        out.push(Migration {
            version: version.to_string(),
            key: (vec![version.parse().unwrap_or(u128::MAX)], String::new()),
            name: desc.to_string(),
            up: script(&load(&path)?)?,
            down: None,
            path,
        });
    }
    Ok(out)
}

/// `V12__name.sql` → (`V`, `12`, `name`).
pub fn parse_name(name: &str) -> Option<(char, &str, &str)> {
    let prefix = name.chars().next().filter(|c| matches!(c, 'V' | 'U'))?;
    let (version, desc) = super::numbered(&name[1..], "__", ".sql")?;
    Some((prefix, version, desc))
}

/// A refinery file: whole, in the transaction refinery opens.
pub fn script(source: &Arc<SourceFile>) -> Result<Script, ScenarioError> {
    split::in_transaction(source, "in the transaction refinery opens for each migration (it has no opt-out)")
}
