//! Prisma Migrate: `<timestamp>_<name>/migration.sql` in a folder that
//! holds `migration_lock.toml`, applied in order of the folder names. Each
//! script is sent as one string with no transaction around it, so
//! Postgres runs a script of several statements as one implicit
//! transaction. Prisma has no down migrations.

use std::path::Path;

use super::{Migration, file_name, files, load, split};
use crate::scenario::ScenarioError;

/// The migrations of a Prisma folder.
pub fn read(dir: &Path) -> Result<Vec<Migration>, ScenarioError> {
    let mut out = Vec::new();
    for sub in files(dir)? {
        let script = sub.join("migration.sql");
        if !script.is_file() {
            continue;
        }
        let folder = file_name(&sub);
        let (version, name) = folder.split_once('_').unwrap_or((&folder, ""));
        out.push(Migration {
            version: version.to_string(),
            key: (Vec::new(), folder.clone()),
            name: name.to_string(),
            up: split::one_string(&load(&script)?, "sent as one string, as Prisma Migrate applies a script")?,
            down: None,
            path: script,
        });
    }
    Ok(out)
}
