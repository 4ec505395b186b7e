//! A folder's candidate migrations as a strategy's steps: one step per
//! statement where the runner's transaction (or the file's own) holds
//! them together, one per piece the runner sends on its own; each named
//! `file:line KEYWORD`. The migrations before the candidate become the
//! schema, run statement by statement before the load.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Catalog, Format, Migration, Script, Selection, Sending, invalid_at};
use crate::scenario::{
    MigrationFileInfo, Rollback, ScenarioError, SchemaFile, SharedTx, SqlText, StepOrigin, StepSpec, StepTx, Strategy,
    TxControl, sql_parse,
};

/// A strategy read from migration files, and the schema the migrations
/// before it build.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The candidate migrations as a strategy.
    pub strategy: Strategy,
    /// The migrations before the candidate, as a schema to build first;
    /// `None` when there are none.
    pub schema: Option<SchemaFile>,
    /// What was read, for the terminal: the format and the candidate.
    pub note: String,
}

/// The candidate of a folder as a strategy, the migrations before it as
/// its schema.
pub fn from_folder(dir: &Path, format: Option<Format>, how: &Selection) -> Result<Folder, ScenarioError> {
    let catalog = super::read(dir, format)?;
    let chosen = catalog.select(how)?;
    let mut strategy = strategy(&catalog.dir, chosen.candidate, &catalog)?;
    let schema = schema(&catalog.dir, chosen.before);
    let note = format!(
        "{}: {} ({} migrations); rehearsing {}: {}",
        dir.display(),
        catalog.why,
        catalog.migrations.len(),
        chosen.why,
        chosen.candidate.iter().map(|m| rel(&catalog.dir, &m.path)).collect::<Vec<_>>().join(", ")
    );
    strategy.source = Some(note.clone());
    Ok(Folder { strategy, schema, note })
}

/// Migration files given one by one: each a candidate, in the order given.
pub fn from_files(paths: &[PathBuf], format: Option<Format>) -> Result<Folder, ScenarioError> {
    let migrations: Vec<Migration> = paths.iter().map(|p| super::read_file(p, format)).collect::<Result<_, _>>()?;
    let dir = paths.first().and_then(|p| p.parent()).unwrap_or(Path::new(".")).to_path_buf();
    let catalog = Catalog { dir: dir.clone(), format: format.unwrap_or(Format::Plain), why: String::new(), migrations };
    let mut strategy = strategy(&dir, &catalog.migrations, &catalog)?;
    let note = format!("rehearsing {} file(s) as {} migrations", paths.len(), catalog.format);
    strategy.source = Some(note.clone());
    Ok(Folder { strategy, schema: None, note })
}

fn rel(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

fn strategy(dir: &Path, candidate: &[Migration], catalog: &Catalog) -> Result<Strategy, ScenarioError> {
    let mut steps = Vec::new();
    let mut next_tx = 0u32;
    let mut files = Vec::new();
    for m in candidate {
        let file = rel(dir, &m.path);
        steps.extend(script_steps(&file, &m.up, &mut next_tx)?);
        files.push(MigrationFileInfo { file, version: m.version.clone(), sending: m.up.why.clone() });
    }
    if steps.is_empty() {
        let m = candidate.last().expect("a candidate");
        return Err(invalid_at(&m.up.source, 0, "the migration holds no SQL statement".into()));
    }
    let rollback = rollback(dir, candidate, catalog.format);
    let name = match candidate {
        [one] => Path::new(&one.path).file_stem().map_or(one.version.clone(), |s| s.to_string_lossy().into_owned()),
        [first, .., last] => format!("{} to {}", first.version, last.version),
        [] => unreachable!("a candidate"),
    };
    let name =
        if name == "up" || name == "migration" { rel(dir, candidate[0].path.parent().unwrap_or(dir)) } else { name };
    let rollback = match rollback {
        Ok((steps, files)) => Rollback::Steps(Box::new(Strategy {
            name: format!("{name} (rollback)"),
            description: Some(format!("the down part of {} migrations, last first", catalog.format)),
            steps,
            files,
            source: None,
            rollback: Rollback::Missing("a rollback is not rolled back".into()),
        })),
        Err(why) => Rollback::Missing(why),
    };
    let description = Some(format!("{} migrations", catalog.format));
    Ok(Strategy { name, description, steps, files, source: None, rollback })
}

/// The down parts of the candidate, last migration first, as steps; or why
/// there is no way back.
fn rollback(
    dir: &Path,
    candidate: &[Migration],
    format: Format,
) -> Result<(Vec<StepSpec>, Vec<MigrationFileInfo>), String> {
    let (mut steps, mut files, mut next_tx) = (Vec::new(), Vec::new(), 0u32);
    for m in candidate.iter().rev() {
        let Some(down) = &m.down else {
            let has_downs = !matches!(format, Format::Plain | Format::Refinery | Format::Prisma | Format::Atlas);
            return Err(if has_downs {
                format!("{} has no down part that rehearse can read", rel(dir, &m.path))
            } else {
                format!("{format} migrations have no down part ({} has none)", rel(dir, &m.path))
            });
        };
        let file = rel(dir, &down.source.path);
        steps.extend(script_steps(&file, down, &mut next_tx).map_err(|e| e.to_string())?);
        files.push(MigrationFileInfo { file, version: m.version.clone(), sending: down.why.clone() });
    }
    if steps.is_empty() {
        return Err("the down migration holds no SQL statement".into());
    }
    Ok((steps, files))
}

/// `CREATE INDEX`, `ALTER TABLE`, `INSERT`: a statement's first keywords.
pub fn keyword(sql: &str) -> String {
    let words: Vec<String> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .take(4)
        .map(str::to_ascii_uppercase)
        .collect();
    let object = |w: &str| w.chars().all(|c| c.is_ascii_alphabetic()) && !w.is_empty();
    let mut out = vec![words.first().cloned().unwrap_or_default()];
    if matches!(out[0].as_str(), "CREATE" | "ALTER" | "DROP" | "COMMENT") {
        for w in words.iter().skip(1) {
            if !object(w) {
                break;
            }
            out.push(w.clone());
            let modifier = matches!(
                w.as_str(),
                "OR" | "REPLACE" | "UNIQUE" | "TEMP" | "TEMPORARY" | "UNLOGGED" | "MATERIALIZED" | "ON"
            );
            if !modifier {
                break;
            }
        }
    }
    out.join(" ")
}

fn step(script: &Script, file: &str, range: std::ops::Range<usize>, tx: StepTx) -> StepSpec {
    let sql = SqlText::verbatim(&script.source, range.clone());
    let line = sql.at.line;
    StepSpec {
        name: Some(format!("{file}:{line} {}", keyword(&sql.text))),
        lock_timeout: None,
        statement_timeout: None,
        retries: 0,
        backoff: Duration::ZERO,
        repeat: None,
        keyset: None,
        tx,
        origin: Some(StepOrigin { file: file.to_string(), line }),
        sql,
    }
}

/// The steps of one script, numbering its transactions after `next_tx`.
fn script_steps(file: &str, script: &Script, next_tx: &mut u32) -> Result<Vec<StepSpec>, ScenarioError> {
    let text = &script.source.text;
    let mut steps: Vec<StepSpec> = Vec::new();
    // The transaction open now: its number, and whether the runner opened it.
    let mut open: Option<(u32, bool)> = None;
    let new_tx = |n: &mut u32| {
        *n += 1;
        *n
    };
    if script.sending == Sending::Transaction && !script.pieces.is_empty() {
        open = Some((new_tx(next_tx), true));
    }
    let mut first_of_runner_tx = open.is_some();
    for piece in &script.pieces {
        // Inside a transaction, a piece's statements are steps of their own:
        // the server runs them one after another in it either way.
        let units: Vec<std::ops::Range<usize>> =
            if open.is_some() || script.sending == Sending::Transaction || piece.statements.len() == 1 {
                piece.statements.clone()
            } else {
                vec![piece.range.clone()]
            };
        for range in units {
            let parsed = sql_parse::parse(&text[range.clone()]).ok();
            let control = if piece.statements.len() == 1 || open.is_some() || script.sending == Sending::Transaction {
                parsed.as_ref().and_then(|p| p.transaction_control())
            } else {
                None
            };
            let many = parsed.as_ref().is_some_and(|p| p.len() > 1);
            let outside = parsed.as_ref().is_some_and(|p| p.needs_own_transaction());
            let tx = match (open, control) {
                (None, Some(TxControl::Begin)) => {
                    let id = new_tx(next_tx);
                    open = Some((id, false));
                    StepTx::Shared(SharedTx { id, begin: false, commit: false, control })
                }
                (Some((id, _)), Some(TxControl::End)) => {
                    open = None;
                    StepTx::Shared(SharedTx { id, begin: false, commit: false, control })
                }
                (Some((id, _)), _) => {
                    let begin = std::mem::take(&mut first_of_runner_tx);
                    StepTx::Shared(SharedTx { id, begin, commit: false, control: None })
                }
                (None, _) if many || outside => StepTx::Alone,
                (None, _) => StepTx::Own,
            };
            steps.push(step(script, file, range, tx));
        }
    }
    match open {
        Some(_) if script.sending == Sending::Transaction => {
            if let Some(StepSpec { tx: StepTx::Shared(s), .. }) = steps.last_mut() {
                s.commit = true;
            }
        }
        Some(_) => {
            return Err(invalid_at(
                &script.source,
                0,
                "the file opens a transaction (BEGIN) it never ends: its runner would roll it back when the connection closes".into(),
            ));
        }
        None => {}
    }
    Ok(steps)
}

/// The migrations before the candidate as a schema: each statement run on
/// its own before the load.
fn schema(dir: &Path, before: &[Migration]) -> Option<SchemaFile> {
    let mut statements = Vec::new();
    for m in before {
        for piece in &m.up.pieces {
            for r in &piece.statements {
                statements.push(SqlText::verbatim(&m.up.source, r.clone()));
            }
        }
    }
    (!statements.is_empty()).then(|| SchemaFile { path: dir.to_path_buf(), statements, meta_commands: Vec::new() })
}
