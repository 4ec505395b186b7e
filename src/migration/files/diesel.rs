//! diesel: `<version>_<name>/up.sql` and `down.sql`, in order of the
//! version (the folder name up to its first `_`, compared as text with its
//! dashes taken out, as diesel compares them). Each
//! runs whole (`batch_execute`) in a transaction diesel opens, unless the
//! folder has a `metadata.toml` that does not say `run_in_transaction =
//! true`: diesel reads a missing key as false (and a file it cannot parse
//! as true).

use std::path::Path;
use std::sync::Arc;

use super::{Migration, Script, file_name, files, load, split};
use crate::scenario::ScenarioError;
use crate::scenario::source::SourceFile;

/// The migrations of a diesel folder.
pub fn read(dir: &Path) -> Result<Vec<Migration>, ScenarioError> {
    let mut out = Vec::new();
    for sub in files(dir)? {
        let up = sub.join("up.sql");
        if !up.is_file() {
            continue;
        }
        let folder = file_name(&sub);
        let (version, name) = folder.split_once('_').unwrap_or((&folder, ""));
        let down = sub.join("down.sql");
        let down = if down.is_file() { load(&down).and_then(|d| script(&d, Some(&sub))).ok() } else { None };
        out.push(Migration {
            version: version.to_string(),
            // Diesel compares versions with their dashes taken out, so that
            // `2017-09-23-182408` comes after `20170804200817`.
            key: (Vec::new(), version.replace('-', "")),
            name: name.to_string(),
            up: script(&load(&up)?, Some(&sub))?,
            down,
            path: up,
        });
    }
    Ok(out)
}

/// Whether the migration folder's `metadata.toml` turns the transaction
/// off.
fn runs_in_transaction(folder: Option<&Path>) -> Result<bool, ScenarioError> {
    let Some(meta) = folder.map(|f| f.join("metadata.toml")).filter(|p| p.is_file()) else { return Ok(true) };
    let source = super::load(&meta)?;
    #[derive(serde::Deserialize)]
    struct Metadata {
        run_in_transaction: Option<bool>,
    }
    Ok(match toml::from_str::<Metadata>(&source.text) {
        Ok(parsed) => parsed.run_in_transaction.unwrap_or(false),
        Err(_) => true,
    })
}

/// A diesel file: whole, in a transaction unless its folder opts out.
pub fn script(source: &Arc<SourceFile>, folder: Option<&Path>) -> Result<Script, ScenarioError> {
    if runs_in_transaction(folder)? {
        split::in_transaction(source, "in the transaction diesel opens for each migration")
    } else {
        split::one_string(
            source,
            "its metadata.toml does not say `run_in_transaction = true`: sent as one string, outside a transaction",
        )
    }
}
