//! Migration folders and files, read as their runner reads them: which
//! files are migrations, in which order, their up (and down) parts, and how
//! the runner sends each to the server (one transaction per file,
//! statement by statement, or the whole file as one string, which Postgres
//! runs as one implicit transaction). One file per format.
//!
//! A folder becomes a [`Strategy`]: the candidate migrations' statements
//! as steps, each named `file:line KEYWORD`, each knowing the transaction
//! it shares with the rest of its file; the migrations before the
//! candidate become the schema they build on.

mod atlas;
mod dbmate;
mod detect;
mod diesel;
mod flyway;
mod golang_migrate;
mod goose;
mod plain;
mod prisma;
mod refinery;
mod select;
mod split;
mod sqlx;
mod steps;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use detect::detect;
pub use select::{Candidates, Selection};
pub use steps::{Folder, from_files, from_folder};

use crate::scenario::source::SourceFile;
use crate::scenario::{Location, ScenarioError};

/// A migration runner's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `.sql` files run as `psql -f` runs them, in name order: statement by
    /// statement, each in its own transaction unless the file opens one.
    Plain,
    /// sqlx-cli: `<version>_<name>.sql` (or `.up.sql`/`.down.sql`), each
    /// file in a transaction unless it starts with `-- no-transaction`.
    Sqlx,
    /// refinery: `V<n>__<name>.sql`, each file in a transaction (refinery
    /// has no opt-out).
    Refinery,
    /// Flyway: `V<version>__<name>.sql`, `R__<name>.sql` after them, `U`
    /// files as undo; each script in a transaction unless it holds a
    /// statement that cannot run in one.
    Flyway,
    /// golang-migrate: `<version>_<name>.up.sql`, each file sent as one
    /// string.
    GolangMigrate,
    /// goose: `<version>_<name>.sql` with `-- +goose Up`/`Down`, statements
    /// run one by one in a transaction unless `-- +goose NO TRANSACTION`.
    Goose,
    /// dbmate: `<version>_<name>.sql` with `-- migrate:up`/`down`, the up
    /// part in a transaction unless `transaction:false`.
    Dbmate,
    /// diesel: `<version>_<name>/up.sql`, in a transaction unless its
    /// `metadata.toml` says `run_in_transaction = false`.
    Diesel,
    /// Prisma Migrate: `<timestamp>_<name>/migration.sql`, each sent as one
    /// string.
    Prisma,
    /// Atlas: `<version>_<name>.sql` beside `atlas.sum`, each file in a
    /// transaction unless `-- atlas:txmode none`.
    Atlas,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        f.write_str(self.to_possible_value().expect("no skipped variant").get_name())
    }
}

/// How a runner sends a script to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sending {
    /// The runner opens a transaction, sends the script's pieces, and
    /// commits: every lock is held until the end of the file.
    Transaction,
    /// Each piece is sent on its own, outside any transaction the runner
    /// opens; a piece of several statements is one implicit transaction.
    Separately,
}

/// The up (or down) part of one migration file.
#[derive(Debug, Clone)]
pub struct Script {
    /// The file, for locations.
    pub source: Arc<SourceFile>,
    /// How the runner sends it.
    pub sending: Sending,
    /// Why it is sent so: the runner's default or the directive that says.
    pub why: String,
    /// What the runner sends, in order: each piece is one call to the
    /// server (`Exec`), holding one statement or several.
    pub pieces: Vec<Piece>,
}

/// One call to the server: its text, and the statements in it.
#[derive(Debug, Clone)]
pub struct Piece {
    /// Byte range of the whole piece in the file.
    pub range: std::ops::Range<usize>,
    /// Byte ranges of its statements, without their `;`.
    pub statements: Vec<std::ops::Range<usize>>,
}

/// One migration: its version, name, file and parts.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The version as written in the file name (`20240101120000`, `1.2`).
    pub version: String,
    /// How versions sort: numeric parts, then the name (Flyway's
    /// repeatable migrations sort after every versioned one).
    pub key: (Vec<u128>, String),
    /// The name after the version.
    pub name: String,
    /// The file (for diesel and Prisma, the folder's SQL file).
    pub path: PathBuf,
    /// What it does.
    pub up: Script,
    /// How it is undone, where the format has that. Downs are read, not
    /// rehearsed: one the parser refuses (projects keep broken downs they
    /// never run) is left out rather than stopping the rehearsal of the up.
    pub down: Option<Script>,
}

/// A folder's migrations in the order their runner applies them.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The folder.
    pub dir: PathBuf,
    /// Its format.
    pub format: Format,
    /// Why this format (detected, or given).
    pub why: String,
    /// The migrations, in order.
    pub migrations: Vec<Migration>,
}

/// Reads the migrations of `dir` in `format` (detected when `None`).
pub fn read(dir: &Path, format: Option<Format>) -> Result<Catalog, ScenarioError> {
    let meta = std::fs::metadata(dir).map_err(|source| ScenarioError::Read { path: dir.to_path_buf(), source })?;
    if !meta.is_dir() {
        return Err(ScenarioError::Read {
            path: dir.to_path_buf(),
            source: std::io::Error::other("not a folder: give a migration file with --migration"),
        });
    }
    let (format, why) = match format {
        Some(f) => (f, "as --format says".to_string()),
        None => detect(dir)?,
    };
    let mut migrations = match format {
        Format::Plain => plain::read(dir)?,
        Format::Sqlx => sqlx::read(dir)?,
        Format::Refinery => refinery::read(dir)?,
        Format::Flyway => flyway::read(dir)?,
        Format::GolangMigrate => golang_migrate::read(dir)?,
        Format::Goose => goose::read(dir)?,
        Format::Dbmate => dbmate::read(dir)?,
        Format::Diesel => diesel::read(dir)?,
        Format::Prisma => prisma::read(dir)?,
        Format::Atlas => atlas::read(dir)?,
    };
    if migrations.is_empty() {
        return Err(ScenarioError::Read {
            path: dir.to_path_buf(),
            source: std::io::Error::other(format!("no {format} migration in this folder")),
        });
    }
    migrations.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(pair) = migrations.windows(2).find(|w| w[0].key == w[1].key) {
        return Err(invalid_at(
            &pair[1].up.source,
            0,
            format!("version {} is also the version of {}", pair[1].version, pair[0].path.display()),
        ));
    }
    Ok(Catalog { dir: dir.to_path_buf(), format, why, migrations })
}

/// Reads one migration file as `format` reads it (plain when `None`).
pub fn read_file(path: &Path, format: Option<Format>) -> Result<Migration, ScenarioError> {
    let source = load(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (up, down) = match format.unwrap_or(Format::Plain) {
        Format::Goose => goose::parts(&source)?,
        Format::Dbmate => dbmate::parts(&source)?,
        Format::Sqlx => (sqlx::script(&source)?, None),
        Format::Refinery => (refinery::script(&source)?, None),
        Format::Flyway => (flyway::script(&source)?, None),
        Format::Atlas => (atlas::script(&source)?, None),
        Format::GolangMigrate | Format::Prisma => (split::one_string(&source, "sent as one string")?, None),
        Format::Diesel => (diesel::script(&source, path.parent())?, None),
        Format::Plain => (plain::script(&source)?, None),
    };
    Ok(Migration { version: name.clone(), key: (Vec::new(), name.clone()), name, path: path.to_path_buf(), up, down })
}

/// Reads a migration file (UTF-8, bounded).
pub(crate) fn load(path: &Path) -> Result<Arc<SourceFile>, ScenarioError> {
    let text = crate::scenario::read_text(path, crate::scenario::limits::MAX_SCHEMA_BYTES, "migration file")?;
    Ok(SourceFile::new(path, text))
}

/// An error at byte `offset` of a migration file.
pub(crate) fn invalid_at(source: &Arc<SourceFile>, offset: usize, message: String) -> ScenarioError {
    ScenarioError::Invalid { at: source.location(offset), message }
}

/// The files of `dir` (not recursing), sorted by name.
pub(crate) fn files(dir: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let read = |source| ScenarioError::Read { path: dir.to_path_buf(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// The migrations of a folder of `<version>_<name>.sql` files that hold
/// their up and down parts together, read by `parts`; `numeric` says
/// whether versions sort as numbers (else file names sort as text).
pub(crate) fn one_file_each(
    dir: &Path,
    numeric: bool,
    parts: impl Fn(&Arc<SourceFile>) -> Result<(Script, Option<Script>), ScenarioError>,
) -> Result<Vec<Migration>, ScenarioError> {
    let mut out = Vec::new();
    for path in files(dir)? {
        let name = file_name(&path);
        let Some((version, desc)) = numbered(&name, "_", ".sql") else { continue };
        let (up, down) = parts(&load(&path)?)?;
        let key = if numeric {
            (vec![version.parse().unwrap_or(u128::MAX)], String::new())
        } else {
            (Vec::new(), name.clone())
        };
        out.push(Migration { version: version.to_string(), key, name: desc.to_string(), up, down, path });
    }
    Ok(out)
}

/// The file name of `path`, as text.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `<digits><sep><name><suffix>`: the version as digits and the name.
pub(crate) fn numbered<'a>(file: &'a str, sep: &str, suffix: &str) -> Option<(&'a str, &'a str)> {
    let stem = file.strip_suffix(suffix)?;
    let digits = stem.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let rest = stem[digits..].strip_prefix(sep)?;
    Some((&stem[..digits], rest))
}

/// A version of digits as its sort key: its parts (split at `.` and `_`)
/// as numbers, trailing zero parts dropped, so that 1 = 1.0 = 001 as
/// Flyway compares them.
pub(crate) fn numeric_key(version: &str) -> Vec<u128> {
    let mut key: Vec<u128> = version.split(['.', '_']).map(|p| p.parse::<u128>().unwrap_or(u128::MAX)).collect();
    while key.len() > 1 && key.last() == Some(&0) {
        key.pop();
    }
    key
}

/// Where a location points, for messages about a folder.
pub(crate) fn at_start(path: &Path) -> Location {
    Location { path: path.to_path_buf(), line: 1, column: 1 }
}

#[cfg(test)]
mod tests;
