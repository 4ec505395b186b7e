//! Which runner a folder is for, from its marker files and its file names
//! (`--format` overrides it).

use std::path::Path;

use super::{Format, file_name, files, flyway, numbered, refinery};
use crate::scenario::ScenarioError;

/// The format of `dir`, and why.
pub fn detect(dir: &Path) -> Result<(Format, String), ScenarioError> {
    let entries = files(dir)?;
    let names: Vec<String> = entries.iter().map(|p| file_name(p)).collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    let said = |f: Format, why: &str| Ok((f, format!("detected as {f}: {why} (say --format to change it)")));
    if has("atlas.sum") {
        return said(Format::Atlas, "the folder holds atlas.sum");
    }
    let subdir_with = |file: &str| entries.iter().any(|p| p.is_dir() && p.join(file).is_file());
    if has("migration_lock.toml") || subdir_with("migration.sql") {
        return said(Format::Prisma, "its folders hold migration.sql");
    }
    if subdir_with("up.sql") {
        return said(Format::Diesel, "its folders hold up.sql");
    }
    let sql: Vec<(&String, String)> = entries
        .iter()
        .zip(&names)
        .filter(|(p, n)| p.is_file() && n.ends_with(".sql"))
        .map(|(p, n)| (n, std::fs::read_to_string(p).unwrap_or_default()))
        .collect();
    if sql.iter().any(|(_, t)| t.lines().any(|l| l.trim_start().to_ascii_lowercase().starts_with("-- +goose"))) {
        return said(Format::Goose, "its files hold `-- +goose` annotations");
    }
    if sql.iter().any(|(_, t)| t.lines().any(|l| l.trim_start().starts_with("-- migrate:up"))) {
        return said(Format::Dbmate, "its files hold `-- migrate:up`");
    }
    let versioned = sql.iter().filter(|(n, _)| flyway::parse_name(n).is_some()).count();
    if versioned > 0 {
        let flyway_only = sql.iter().any(|(n, _)| {
            flyway::parse_name(n).is_some_and(|(k, v, _)| k == 'R' || v.contains(['.', '_']))
                && refinery::parse_name(n).is_none()
        });
        let rust = nearest_project(dir) == Some("Cargo.toml") || ancestors_hold(dir, &["refinery.toml"]);
        if rust && !flyway_only {
            return said(Format::Refinery, "its files are V<n>__<name>.sql, in a Rust package");
        }
        let why = if flyway_only {
            "its files are V<version>__<name>.sql, with versions or repeatable files only Flyway reads"
        } else {
            "its files are V<version>__<name>.sql (refinery names them so too: say --format refinery if it runs them)"
        };
        return said(Format::Flyway, why);
    }
    let up_down = sql.iter().any(|(n, _)| numbered(n, "_", ".up.sql").is_some());
    let project = nearest_project(dir);
    let (rust, go) = (project == Some("Cargo.toml"), project == Some("go.mod"));
    if up_down && !rust {
        let why = if go {
            "its files are <version>_<name>.up.sql, in a Go module"
        } else {
            "its files are <version>_<name>.up.sql"
        };
        return said(Format::GolangMigrate, why);
    }
    let crate_dir =
        std::fs::canonicalize(dir).ok().is_some_and(|d| d.ancestors().take(2).any(|a| a.join("Cargo.toml").is_file()));
    if rust && crate_dir && sql.iter().any(|(n, _)| numbered(n, "_", ".sql").is_some()) {
        return said(Format::Sqlx, "its files are <version>_<name>.sql, in a Rust package's folder");
    }
    said(Format::Plain, "plain .sql files, run as psql runs them")
}

/// The nearest of `go.mod` and `Cargo.toml` in `dir` or above it.
fn nearest_project(dir: &Path) -> Option<&'static str> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors().find_map(|d| ["go.mod", "Cargo.toml"].into_iter().find(|n| d.join(n).is_file()))
}

/// Whether `dir` or a folder above it (up to four levels) holds one of
/// `files`.
fn ancestors_hold(dir: &Path, names: &[&str]) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors().take(5).any(|d| names.iter().any(|n| d.join(n).is_file()))
}
