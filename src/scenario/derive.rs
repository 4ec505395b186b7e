//! A scenario derived from a migration and a schema, for a rehearsal with
//! no scenario file (`rehearse run --migration m.sql --schema dump.sql`)
//! and for `rehearse init`, which writes it out to be edited.
//!
//! For each table the migration touches (that exists before it): point
//! reads by its integer primary key, updates of one row and inserts that
//! copy one, open loop, through a pool; and a long transaction on those
//! tables that starts before the migration and holds its lock across its
//! start, as in the post-mortem, since without one almost every migration
//! looks safe. No `[thresholds]`: the rehearsal is judged against the
//! defaults, and says so. The scenario is TOML validated like a file the
//! user wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::shapes::{self, TableShape};
use super::{Location, ScenarioError, Strategy, sql_parse, sql_split};

/// Rows of a table the migration touches when `--rows` does not say.
pub const DEFAULT_ROWS: u64 = 100_000;
/// Rows of a table those point at by foreign key, when `--rows` does not
/// say.
pub const DEFAULT_PARENT_ROWS: u64 = 10_000;
/// Point reads per second of each table the migration touches.
pub const READ_RATE: u32 = 200;
/// Updates per second of each.
pub const UPDATE_RATE: u32 = 50;
/// Inserts per second of each (where a copied row fits its keys).
pub const INSERT_RATE: u32 = 20;

/// How the migration is named in the derived scenario.
#[derive(Debug, Clone)]
pub enum MigrationSource {
    /// A folder: its path, format (`auto`) and `from` version.
    Folder {
        /// The folder.
        dir: PathBuf,
        /// The format, or `auto`.
        format: String,
        /// The first candidate's version, if not the last.
        from: Option<String>,
    },
    /// Files, in order, and their format.
    Files {
        /// The files.
        files: Vec<PathBuf>,
        /// The format.
        format: String,
    },
}

/// What a derived scenario is built from.
pub struct Inputs<'a> {
    /// The migration, read.
    pub strategy: &'a Strategy,
    /// How to name it in the scenario.
    pub source: MigrationSource,
    /// The schema's statements: a dump's, or the earlier migrations'.
    pub schema: Vec<String>,
    /// A dump given with `--schema`, if one was.
    pub schema_file: Option<PathBuf>,
    /// `--rows TABLE=N`.
    pub rows: &'a [(String, u64)],
    /// `--workload-from CSV`, `--top` and `--load-scale`: the load replayed
    /// from pg_stat_statements instead of derived.
    pub workload_from: Option<(PathBuf, u16, f64)>,
    /// The command line, for the header.
    pub command: String,
}

/// Reads a dump's statements (meta-commands left out).
pub fn dump_statements(path: &Path) -> Result<Vec<String>, ScenarioError> {
    let text = super::read_text(path, super::limits::MAX_SCHEMA_BYTES, "schema file")?;
    Ok(sql_split::split(&text).into_iter().filter(|p| !p.meta).map(|p| text[p.range].to_string()).collect())
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn path_text(p: &Path) -> String {
    quoted(&std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string())
}

fn invalid(message: String) -> ScenarioError {
    ScenarioError::Invalid { at: Location { path: PathBuf::from("(command line)"), line: 1, column: 1 }, message }
}

/// An identifier for SQL: as it is when Postgres would read it so
/// unquoted, else in double quotes.
fn ident(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_string() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

/// A table name (`orders`, `shop.Orders`) for SQL.
fn relation(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, table)) => format!("{}.{}", ident(schema), ident(table)),
        None => ident(name),
    }
}

/// The tables the migration touches that exist before it, in order.
fn touched(strategy: &Strategy, shapes: &BTreeMap<String, TableShape>) -> Vec<String> {
    let mut out = Vec::new();
    for step in &strategy.steps {
        let Ok(parsed) = sql_parse::parse(&step.sql.text) else { continue };
        for t in parsed.tables() {
            let t = t.strip_prefix("public.").unwrap_or(&t).to_string();
            if shapes.contains_key(&t) && !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// The rows of each table to fill: `--rows`, the touched tables, and the
/// tables they reference (transitively).
fn rows_of(
    touched: &[String],
    given: &[(String, u64)],
    shapes: &BTreeMap<String, TableShape>,
) -> Result<BTreeMap<String, u64>, ScenarioError> {
    let mut rows: BTreeMap<String, u64> = BTreeMap::new();
    for (t, n) in given {
        let t = t.strip_prefix("public.").unwrap_or(t);
        if !shapes.contains_key(t) {
            let names: Vec<&str> = shapes.keys().map(String::as_str).collect();
            return Err(invalid(format!(
                "--rows {t}=…: the schema creates no table `{t}` (it creates {})",
                names.join(", ")
            )));
        }
        rows.insert(t.to_string(), *n);
    }
    let mut queue: Vec<(String, u64)> = touched.iter().map(|t| (t.clone(), DEFAULT_ROWS)).collect();
    let mut seen = BTreeSet::new();
    while let Some((t, default)) = queue.pop() {
        if !seen.insert(t.clone()) {
            continue;
        }
        rows.entry(t.clone()).or_insert(default);
        for parent in shapes.get(&t).map(|s| s.references.clone()).unwrap_or_default() {
            if shapes.contains_key(&parent) {
                queue.push((parent, DEFAULT_PARENT_ROWS));
            }
        }
    }
    Ok(rows)
}

/// The derived queries of one table, as TOML, or why there are none.
fn queries(t: &TableShape, rows: u64, out: &mut String) -> Result<(), String> {
    let Some(key) = t.integer_key() else {
        keyless(t, rows, out);
        return Ok(());
    };
    let short = t.name.replace('.', "_");
    let (k, table) = (ident(&key.name), t.name.clone());
    let rel = relation(&table);
    let q = |name: &str, sql: String, rate: u32, comment: &str, out: &mut String| {
        let _ = write!(
            out,
            "\n# {comment}\n[[workload.query]]\nname = {}\nsql = {}\nparams = [{{ key_of = {} }}]\nrate = {rate}\n",
            quoted(name),
            quoted(&sql),
            quoted(&table)
        );
    };
    q(
        &format!("read_{short}"),
        format!("SELECT * FROM {rel} WHERE {k} = $1"),
        READ_RATE,
        "a point read by primary key",
        out,
    );
    let plain: Vec<&shapes::ColumnShape> =
        t.columns.iter().filter(|c| c.name != key.name && !c.generated_always).collect();
    // A column no foreign key is likely to be on: the update stays cheap.
    let target = plain.iter().find(|c| !c.name.ends_with("_id")).or(plain.first());
    if let Some(c) = target {
        let c = ident(&c.name);
        let sql = format!("UPDATE {rel} SET {c} = {c} WHERE {k} = $1");
        q(
            &format!("update_{short}"),
            sql,
            UPDATE_RATE,
            "an update of one row (its row lock and the table's ROW EXCLUSIVE)",
            out,
        );
    }
    if key.defaulted && !t.other_unique && !plain.is_empty() {
        let cols: Vec<String> = plain.iter().map(|c| ident(&c.name)).collect();
        let cols = cols.join(", ");
        let sql = format!("INSERT INTO {rel} ({cols}) SELECT {cols} FROM {rel} WHERE {k} = $1");
        q(&format!("insert_{short}"), sql, INSERT_RATE, "an insert: a copy of one row, with a new key", out);
    }
    Ok(())
}

/// The derived queries of a table without an integer primary key (a text
/// or UUID key, a join table, no key at all): a read of its first row and
/// an update of one of its first rows (up to 1,000, so that updates seldom
/// queue on one row's lock) by its `ctid`. They take the table's locks as
/// the application's reads and writes do, which is what the rehearsal
/// measures; their plans are not the application's.
fn keyless(t: &TableShape, rows: u64, out: &mut String) {
    let short = t.name.replace('.', "_");
    let rel = relation(&t.name);
    let q = |name: &str, sql: String, rate: u32, comment: &str, out: &mut String| {
        let _ = write!(
            out,
            "\n# {comment}\n[[workload.query]]\nname = {}\nsql = {}\nrate = {rate}\n",
            quoted(name),
            quoted(&sql)
        );
    };
    let why = "no integer primary key to pick rows by";
    q(
        &format!("read_{short}"),
        format!("SELECT * FROM {rel} LIMIT 1"),
        READ_RATE,
        &format!("{why}: a read of its first row"),
        out,
    );
    let plain: Vec<&shapes::ColumnShape> =
        t.columns.iter().filter(|c| !c.generated_always && !t.primary_key.contains(&c.name)).collect();
    let target = plain.iter().find(|c| !c.name.ends_with("_id")).or(plain.first());
    if let Some(c) = target {
        let c = ident(&c.name);
        let spread = rows.clamp(1, 1000);
        let sql = format!(
            "UPDATE {rel} SET {c} = {c} WHERE ctid = (SELECT ctid FROM {rel} OFFSET floor(random() * {spread})::int LIMIT 1)"
        );
        q(&format!("update_{short}"), sql, UPDATE_RATE, &format!("{why}: an update of one row, by its ctid"), out);
    }
}

/// The derived scenario, as commented TOML.
pub fn derive(inputs: &Inputs<'_>) -> Result<String, ScenarioError> {
    let shapes = shapes::tables(inputs.schema.iter().map(String::as_str));
    if shapes.is_empty() {
        return Err(invalid(
            "no table to rehearse on: give the schema with --schema dump.sql (pg_dump --schema-only), or a migrations folder whose earlier migrations create the tables".into(),
        ));
    }
    let touched = touched(inputs.strategy, &shapes);
    let rows = rows_of(&touched, inputs.rows, &shapes)?;
    let mut o = String::new();
    let _ = writeln!(o, "# Derived by `{}`.", inputs.command);
    o.push_str("# Edit it, then: rehearse run THIS_FILE\n");
    let _ = writeln!(o, "name = {}\nseed = 1", quoted(&inputs.strategy.name));
    if let Some(dump) = &inputs.schema_file {
        let _ = writeln!(o, "schema = {}", path_text(dump));
    }
    let rows_toml: Vec<String> = rows.iter().map(|(t, n)| format!("{} = {n}", quoted(t))).collect();
    let _ = writeln!(
        o,
        "# rows to fill: --rows, else {DEFAULT_ROWS} for a table the migration touches and {DEFAULT_PARENT_ROWS} for one it points at\nrows = {{ {} }}",
        rows_toml.join(", ")
    );
    o.push_str(
        "\n[workload]\npool_size = 20\npool_timeout = \"2s\"   # a request that waits longer for a connection fails\n",
    );
    let mut skipped = Vec::new();
    for t in &touched {
        if let Err(why) = queries(&shapes[t], rows.get(t).copied().unwrap_or(DEFAULT_ROWS), &mut o) {
            skipped.push(why);
        }
    }
    for why in &skipped {
        let _ = writeln!(o, "# no request derived for {why}: write one");
    }
    if skipped.len() == touched.len() {
        let why = if touched.is_empty() {
            "the migration touches no table the schema creates".to_string()
        } else {
            skipped.join("; ")
        };
        return Err(invalid(format!(
            "no workload could be derived ({why}): write a scenario (`rehearse init` with the same flags gives one to start from)"
        )));
    }
    let held: Vec<String> = touched.iter().map(|t| format!("(SELECT 1 FROM {} LIMIT 1)", relation(t))).collect();
    let _ = write!(
        o,
        "\n# A long transaction on the tables the migration touches (a report, a backup, a stuck worker):\n\
         # it holds their ACCESS SHARE lock from 5s to 20s, across the migration's start at 10s.\n\
         [[interference]]\nname = \"long-transaction\"\nat = \"5s\"\nsql = {}\n",
        quoted(&format!("SELECT {}, pg_sleep(15)", held.join(", ")))
    );
    o.push_str("\n[timeline]\nmigrate_at = \"10s\"\ncooldown = \"10s\"\nmax_duration = \"10m\"\n");
    let _ = write!(o, "\n[[strategy]]\nname = {}\n", quoted(&inputs.strategy.name));
    match &inputs.source {
        MigrationSource::Folder { dir, format, from } => {
            let from = from.as_ref().map(|f| format!(", from = {}", quoted(f))).unwrap_or_default();
            let _ = writeln!(o, "migrations = {{ dir = {}, format = {}{from} }}", path_text(dir), quoted(format));
        }
        MigrationSource::Files { files, format } => {
            let list: Vec<String> = files.iter().map(|f| path_text(f)).collect();
            let _ = writeln!(o, "migrations = {{ files = [{}], format = {} }}", list.join(", "), quoted(format));
        }
    }
    o.push_str(
        "\n# No [thresholds]: judged against the defaults (a workload request's lock wait at most 1s,\n\
         # each query's p99 during the migration at most 5x its baseline, at most 1% of requests failed).\n",
    );
    Ok(o)
}
