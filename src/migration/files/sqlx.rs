//! sqlx-cli (`sqlx migrate run`): `<version>_<description>.sql`, or the
//! reversible pair `<version>_<description>.up.sql` and `.down.sql`, in
//! order of the version (a 64-bit integer). Each file is executed whole,
//! as one string, inside a transaction sqlx opens, unless the file starts
//! with `-- no-transaction`: then it is sent as one string on its own,
//! which Postgres runs as one implicit transaction when it holds several
//! statements.

use std::path::Path;
use std::sync::Arc;

use super::{Migration, Script, file_name, files, load, numbered, split};
use crate::scenario::ScenarioError;
use crate::scenario::source::SourceFile;

/// The migrations of a sqlx folder.
pub fn read(dir: &Path) -> Result<Vec<Migration>, ScenarioError> {
    let mut out = Vec::new();
    for path in files(dir)? {
        let name = file_name(&path);
        if name.ends_with(".down.sql") {
            continue;
        }
        let parsed = numbered(&name, "_", ".up.sql")
            .map(|v| (v, true))
            .or_else(|| numbered(&name, "_", ".sql").map(|v| (v, false)));
        let Some(((version, desc), reversible)) = parsed else { continue };
        let down = reversible.then(|| dir.join(format!("{version}_{desc}.down.sql"))).filter(|p| p.is_file());
        out.push(Migration {
            version: version.to_string(),
            key: (vec![version.parse().unwrap_or(u128::MAX)], String::new()),
            name: desc.to_string(),
            up: script(&load(&path)?)?,
            down: down.and_then(|d| load(&d).and_then(|s| script(&s)).ok()),
            path,
        });
    }
    Ok(out)
}

/// A sqlx file: whole, in a transaction unless it opts out.
pub fn script(source: &Arc<SourceFile>) -> Result<Script, ScenarioError> {
    if source.text.starts_with("-- no-transaction") {
        split::one_string(source, "`-- no-transaction`: sent as one string, outside a transaction sqlx opens")
    } else {
        split::in_transaction(source, "in the transaction sqlx opens for each file")
    }
}
