//! golang-migrate: `<version>_<title>.up.sql` and `.down.sql`, in order of
//! the version (an unsigned integer). The postgres driver sends each file
//! as one string (`Exec` of the whole file) and opens no transaction, so
//! Postgres runs a file of several statements as one implicit
//! transaction: `CREATE INDEX CONCURRENTLY` fails there unless it is the
//! file's only statement.

use std::path::Path;

use super::{Migration, file_name, files, load, numbered, split};
use crate::scenario::ScenarioError;

const WHY: &str = "sent as one string, as golang-migrate's postgres driver sends a file";

/// The migrations of a golang-migrate folder.
pub fn read(dir: &Path) -> Result<Vec<Migration>, ScenarioError> {
    let mut out = Vec::new();
    for path in files(dir)? {
        let name = file_name(&path);
        let Some((version, title)) = numbered(&name, "_", ".up.sql") else { continue };
        let down = dir.join(format!("{version}_{title}.down.sql"));
        let down = if down.is_file() { load(&down).and_then(|d| split::one_string(&d, WHY)).ok() } else { None };
        out.push(Migration {
            version: version.to_string(),
            key: (vec![version.parse().unwrap_or(u128::MAX)], String::new()),
            name: title.to_string(),
            up: split::one_string(&load(&path)?, WHY)?,
            down,
            path,
        });
    }
    Ok(out)
}
