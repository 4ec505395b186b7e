//! A workload from the application's own traffic: a CSV export of
//! `pg_stat_statements` (the README gives the export command), each row a
//! normalized query, its calls, and the window those calls cover
//! (`window_s`, seconds since the statistics were reset).
//!
//! The top queries by calls are replayed, open loop, each at its calls per
//! second over the window (times `load_scale`), evenly spaced so that the
//! rate replayed is the rate exported. A `$n` compared with a table's
//! integer primary key (`WHERE aid = $2`) is bound to a key of that table,
//! one compared with a foreign key's column to a key of the table it points
//! at; any other `$n` to a value of the type the server gives it when the query
//! is prepared (`"any"`). Utility statements (`BEGIN`, `SET`, …) and
//! queries on tables the schema lacks are left out, each named with why.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::shapes::TableShape;
use super::source::{SourceFile, SqlText};
use super::sql_parse::{self, StatementKind};
use super::workload::{Arrival, Load, ParamSpec, QuerySpec, RateProfile, Target};
use super::{GenSpec, ScenarioError, ValueSpec};

/// What a replayed query's parameter is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// A key of this table.
    KeyOf(String),
    /// A value of the placeholder's type.
    Any,
}

/// The queries of an export, chosen and bound.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The queries replayed.
    pub queries: Vec<QuerySpec>,
    /// Each query left out, and why.
    pub skipped: Vec<String>,
    /// The share of all calls of the export the replayed queries make.
    pub share: f64,
    /// The window the export covers, in seconds.
    pub window_s: f64,
}

/// One row of the export.
struct Row {
    queryid: String,
    query: String,
    calls: u64,
    window_s: f64,
    /// Byte offset of the record, for locations.
    at: usize,
}

fn invalid(source: &Arc<SourceFile>, at: usize, message: String) -> ScenarioError {
    ScenarioError::Invalid { at: source.location(at), message }
}

fn records(source: &Arc<SourceFile>) -> Result<Vec<Row>, ScenarioError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(source.text.as_bytes());
    let headers = reader.headers().map_err(|e| invalid(source, 0, format!("not a CSV file: {e}")))?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(query), Some(calls)) = (col("query"), col("calls")) else {
        return Err(invalid(
            source,
            0,
            "the CSV needs the columns `query` and `calls` (see the export command in the README)".into(),
        ));
    };
    let Some(window) = col("window_s") else {
        return Err(invalid(
            source,
            0,
            "the CSV has no `window_s` column: the seconds its calls were counted over (the export command in the README adds it)".into(),
        ));
    };
    let queryid = col("queryid");
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let at = e.position().map_or(0, |p| p.byte() as usize);
            invalid(source, at, format!("bad CSV record: {e}"))
        })?;
        let at = record.position().map_or(0, |p| p.byte() as usize);
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        let calls: u64 = field(calls)
            .parse()
            .map_err(|_| invalid(source, at, format!("calls `{}` is not a count", field(calls))))?;
        let window_s: f64 = field(window)
            .parse()
            .map_err(|_| invalid(source, at, format!("window_s `{}` is not a number", field(window))))?;
        if !(window_s.is_finite() && window_s > 0.0) {
            return Err(invalid(source, at, format!("window_s is {window_s}: it must be more than 0 seconds")));
        }
        out.push(Row {
            queryid: queryid.map(|i| field(i).to_string()).unwrap_or_default(),
            query: record.get(query).unwrap_or("").to_string(),
            calls,
            window_s,
            at,
        });
    }
    Ok(out)
}

/// The `$n` of `sql` compared with a column, as (n, column).
fn compared(parsed: &serde_json::Value) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    sql_parse::walk(parsed, &mut |k, v| {
        if k != "AExpr" {
            return;
        }
        // Nodes are `{"node": {"Kind": {…}}}` in the parse tree's JSON.
        let column = |side: &serde_json::Value| {
            let fields = side.get("node")?.get("ColumnRef")?.get("fields")?.as_array()?;
            fields.last()?.get("node")?.get("String")?.get("sval")?.as_str().map(str::to_string)
        };
        let param =
            |side: &serde_json::Value| side.get("node")?.get("ParamRef")?.get("number")?.as_u64().map(|n| n as usize);
        let (Some(l), Some(r)) = (v.get("lexpr"), v.get("rexpr")) else { return };
        if let (Some(c), Some(n)) = (column(l), param(r)) {
            out.push((n, c));
        } else if let (Some(n), Some(c)) = (param(l), column(r)) {
            out.push((n, c));
        }
    });
    out
}

/// The highest `$n` of the statement.
fn params_used(parsed: &serde_json::Value) -> usize {
    let mut n = 0;
    sql_parse::walk(parsed, &mut |k, v| {
        if k == "ParamRef" {
            n = n.max(v.get("number").and_then(serde_json::Value::as_u64).unwrap_or(0) as usize);
        }
    });
    n
}

/// How each `$n` of a statement on `tables` is bound.
pub fn bindings(sql: &str, tables: &[String], shapes: &BTreeMap<String, TableShape>) -> Vec<Binding> {
    let Ok(tree) = pg_query::parse(sql) else { return Vec::new() };
    let json = serde_json::to_value(&tree.protobuf).unwrap_or_default();
    let mut out = vec![Binding::Any; params_used(&json)];
    let integer_key =
        |t: &str, column: &str| shapes.get(t).and_then(|s| s.integer_key()).is_some_and(|k| k.name == column);
    for (n, column) in compared(&json) {
        // The table's own integer key, or a foreign key's column (`WHERE
        // customer_id = $1`), bound to a key of the table it points at.
        let own = tables.iter().find(|t| integer_key(t, &column)).cloned();
        let parent = || {
            tables.iter().find_map(|t| {
                let p = shapes.get(t)?.parent_of(&column)?;
                shapes.get(p)?.integer_key()?;
                Some(p.to_string())
            })
        };
        if let (Some(t), Some(slot)) = (own.or_else(parent), n.checked_sub(1).and_then(|i| out.get_mut(i))) {
            *slot = Binding::KeyOf(t);
        }
    }
    out
}

/// A readable name: `update_pgbench_accounts`, unique among `taken`.
fn name_of(sql: &str, tables: &[String], taken: &mut Vec<String>) -> String {
    let verb = sql.split_whitespace().next().unwrap_or("query").to_ascii_lowercase();
    let verb: String = verb.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let base = match tables.first() {
        Some(t) => format!("{verb}_{}", t.replace('.', "_")),
        None => verb,
    };
    let mut name = base.clone();
    let mut i = 2;
    while taken.contains(&name) {
        name = format!("{base}_{i}");
        i += 1;
    }
    taken.push(name.clone());
    name
}

/// Reads the export at `path`: the `top` queries by calls, their rates
/// times `scale`, bound against `shapes`; `rows` gives each fillable
/// table's rows (a key binds only to a table with rows).
pub fn read(
    path: &Path,
    top: usize,
    scale: f64,
    shapes: &BTreeMap<String, TableShape>,
    rows: &[(String, u64)],
) -> Result<Replay, ScenarioError> {
    let text = super::read_text(path, super::limits::MAX_SCHEMA_BYTES, "pg_stat_statements export")?;
    let source = SourceFile::new(path, text);
    let mut all = records(&source)?;
    all.sort_by_key(|r| std::cmp::Reverse(r.calls));
    let total: u64 = all.iter().map(|r| r.calls).sum();
    let window_s = all.iter().map(|r| r.window_s).fold(0.0, f64::max);
    let (mut queries, mut skipped, mut taken, mut replayed) = (Vec::new(), Vec::new(), Vec::new(), 0u64);
    for row in &all {
        if queries.len() == top {
            break;
        }
        let id = if row.queryid.is_empty() { String::new() } else { format!("queryid {} ", row.queryid) };
        let short: String = row.query.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(60).collect();
        let parsed = match sql_parse::parse(&row.query) {
            Ok(p) if p.len() == 1 => p,
            Ok(_) => {
                skipped.push(format!("{id}`{short}`: not one statement"));
                continue;
            }
            Err(e) => {
                skipped.push(format!("{id}`{short}`: {}", e.message));
                continue;
            }
        };
        if row.query.contains("pg_stat_statements") {
            skipped.push(format!("{id}`{short}`: a query on the statistics themselves"));
            continue;
        }
        if parsed.kinds() != [StatementKind::Query] {
            skipped.push(format!("{id}`{short}`: a utility statement, not replayed"));
            continue;
        }
        let tables: Vec<String> =
            parsed.tables().into_iter().map(|t| t.strip_prefix("public.").unwrap_or(&t).to_string()).collect();
        if let Some(missing) = tables.iter().find(|t| !shapes.contains_key(*t) && !rows.iter().any(|(n, _)| n == *t)) {
            skipped.push(format!("{id}`{short}`: the schema has no table {missing}"));
            continue;
        }
        let at = source.location(row.at);
        let params = bindings(&row.query, &tables, shapes)
            .into_iter()
            .map(|b| {
                let kind = match b {
                    Binding::KeyOf(t) => match rows.iter().find(|(n, _)| *n == t) {
                        Some((_, n)) if *n > 0 => GenSpec::KeyOf { table: t, rows: *n },
                        _ => GenSpec::Any,
                    },
                    Binding::Any => GenSpec::Any,
                };
                ParamSpec { spec: ValueSpec { kind, nulls: 0.0 }, at: at.clone() }
            })
            .collect();
        let rate = row.calls as f64 / row.window_s * scale;
        replayed += row.calls;
        queries.push(QuerySpec {
            name: name_of(&row.query, &tables, &mut taken),
            statements: vec![SqlText::new(&source, row.query.clone(), row.at..row.at + row.query.len())],
            transaction: false,
            params,
            load: Load::Open { rate: RateProfile::constant(rate), arrival: Arrival::Uniform },
            statement_timeout: None,
            timeout: None,
            target: Target::Primary,
            read_only: parsed.is_read_only(),
            source: Some(format!("pg_stat_statements {id}({} calls in {:.0}s)", row.calls, row.window_s)),
        });
    }
    let share = if total == 0 { 0.0 } else { replayed as f64 / total as f64 };
    Ok(Replay { queries, skipped, share, window_s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_foreign_keys_bind_to_the_keys_of_their_table() {
        let schema = [
            "CREATE TABLE customers (id bigint PRIMARY KEY, name text)",
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers (id), total int)",
        ];
        let shapes = super::super::shapes::tables(schema);
        let tables = vec!["orders".to_string()];
        let b = bindings("SELECT * FROM orders WHERE customer_id = $1 AND total > $2 AND id = $3", &tables, &shapes);
        assert_eq!(b, [Binding::KeyOf("customers".into()), Binding::Any, Binding::KeyOf("orders".into())]);
        // A foreign key a later migration dropped binds to nothing.
        let dropped = [schema[0], schema[1], "ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey"];
        let shapes = super::super::shapes::tables(dropped);
        assert_eq!(bindings("SELECT * FROM orders WHERE customer_id = $1", &tables, &shapes), [Binding::Any]);
    }
}
