//! `--migrations DIR` and `--migration FILE`: the user's migration, as
//! written, in place of the scenario's strategies.

use std::path::PathBuf;

use clap::Args;

use crate::migration::files::{self, Folder, Format, Selection};
use crate::scenario::{Scenario, ScenarioError};

/// Where the migration comes from, when not from the scenario.
#[derive(Debug, Args, Default)]
pub struct MigrationArgs {
    /// A folder of migrations (sqlx, refinery, Flyway, golang-migrate,
    /// goose, dbmate, diesel, Prisma, Atlas or plain .sql): the candidate
    /// (the last, unless --from or --changed-since) is rehearsed, run as
    /// its runner runs it; the migrations before it build the schema.
    #[arg(long, value_name = "DIR", conflicts_with = "migration")]
    pub migrations: Option<PathBuf>,
    /// A migration file to rehearse (repeatable, run in the order given).
    #[arg(long, value_name = "FILE")]
    pub migration: Vec<PathBuf>,
    /// The migration runner's format (default: detected from the folder;
    /// plain for --migration).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Rehearse every migration from this version on.
    #[arg(long, value_name = "VERSION", requires = "migrations", conflicts_with = "changed_since")]
    pub from: Option<String>,
    /// Rehearse the migrations changed since this git commit, and those
    /// after them.
    #[arg(long, value_name = "GITREF", requires = "migrations")]
    pub changed_since: Option<String>,
}

impl MigrationArgs {
    /// The path, as the user gave it, of a migration file a report names
    /// relative to its folder (for annotations on it).
    pub fn path_of(&self, file: &str) -> String {
        if let Some(dir) = &self.migrations {
            return dir.join(file).to_string_lossy().into_owned();
        }
        let given = self.migration.iter().find(|p| p.ends_with(file) || p.file_name().is_some_and(|n| n == file));
        given.map_or_else(|| file.to_string(), |p| p.to_string_lossy().into_owned())
    }

    /// The strategy the flags name, if they name one.
    pub fn read(&self) -> Result<Option<Folder>, ScenarioError> {
        if let Some(dir) = &self.migrations {
            let how = match (&self.from, &self.changed_since) {
                (Some(v), _) => Selection::From(v.clone()),
                (None, Some(r)) => Selection::ChangedSince(r.clone()),
                (None, None) => Selection::Last,
            };
            return files::from_folder(dir, self.format, &how).map(Some);
        }
        if !self.migration.is_empty() {
            return files::from_files(&self.migration, self.format).map(Some);
        }
        Ok(None)
    }
}

/// Puts the folder's strategy in place of the scenario's, and its earlier
/// migrations as the schema unless the scenario names one (then the schema
/// is the scenario's, and only the candidate runs).
pub fn apply(scenario: &mut Scenario, folder: Folder, quiet: bool) {
    match (&scenario.schema, folder.schema) {
        (None, Some(schema)) => scenario.schema = Some(schema),
        (Some(own), Some(_)) if !quiet => {
            eprintln!("rehearse: the schema is {}: the migrations before the candidate are not run", own.path.display())
        }
        _ => {}
    }
    scenario.strategies = vec![folder.strategy];
}

/// The tables, when there is no scenario file.
#[derive(Debug, Args, Default)]
pub struct TablesArgs {
    /// The schema (`pg_dump --schema-only`), when there is no scenario
    /// file; without it, a folder's earlier migrations are the schema.
    #[arg(long, value_name = "DUMP")]
    pub schema: Option<PathBuf>,
    /// Rows to fill a table with, when there is no scenario file
    /// (repeatable; default 100000 for each table the migration touches).
    #[arg(long, value_name = "TABLE=N", value_parser = parse_rows)]
    pub rows: Vec<(String, u64)>,
    /// The load, from a CSV export of pg_stat_statements (see the README
    /// for the export command), when there is no scenario file.
    #[arg(long, value_name = "CSV")]
    pub workload_from: Option<PathBuf>,
    /// With --workload-from: how many of its queries, by calls.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: u16,
    /// With --workload-from: multiply every query's rate.
    #[arg(long, default_value_t = 1.0)]
    pub load_scale: f64,
}

impl TablesArgs {
    /// Whether any flag is given.
    pub fn any(&self) -> bool {
        self.schema.is_some() || !self.rows.is_empty() || self.workload_from.is_some()
    }
}

fn parse_rows(s: &str) -> Result<(String, u64), String> {
    let (t, n) = s.split_once('=').ok_or_else(|| format!("`{s}` is not TABLE=N"))?;
    let n: String = n.chars().filter(|c| *c != '_').collect();
    let n = n.parse::<u64>().map_err(|_| format!("`{n}` is not a row count"))?;
    if t.trim().is_empty() {
        return Err(format!("`{s}` names no table"));
    }
    Ok((t.trim().to_string(), n))
}

/// The scenario derived from the flags, as TOML.
pub fn derived(m: &MigrationArgs, tables: &TablesArgs) -> Result<String, ScenarioError> {
    use crate::scenario::derive::{self, Inputs, MigrationSource};
    let Some(folder) = m.read()? else {
        return Err(ScenarioError::Invalid {
            at: crate::scenario::Location { path: "(command line)".into(), line: 1, column: 1 },
            message: "without a scenario file, give the migration: --migration FILE or --migrations DIR".into(),
        });
    };
    let format = m.format.map(|f| f.to_string());
    let source = match &m.migrations {
        Some(dir) => MigrationSource::Folder {
            dir: dir.clone(),
            format: format.unwrap_or_else(|| "auto".into()),
            from: match (&m.from, &m.changed_since) {
                (None, None) => None,
                _ => folder.strategy.files.first().map(|f| f.version.clone()),
            },
        },
        None => MigrationSource::Files { files: m.migration.clone(), format: format.unwrap_or_else(|| "plain".into()) },
    };
    let schema = match &tables.schema {
        Some(dump) => derive::dump_statements(dump)?,
        None => folder.schema.iter().flat_map(|s| s.statements.iter().map(|t| t.text.clone())).collect(),
    };
    let command =
        std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect::<Vec<_>>().join(" ");
    derive::derive(&Inputs {
        strategy: &folder.strategy,
        source,
        schema,
        schema_file: tables.schema.clone(),
        rows: &tables.rows,
        workload_from: tables.workload_from.as_ref().map(|p| (p.clone(), tables.top, tables.load_scale)),
        command,
    })
}
