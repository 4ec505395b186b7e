//! The tables of a scenario, before any row: the schema file built, each
//! `[[table]]` created from its DDL (or, on a server the user names, found
//! already there and used as it is when allowed), in an order where a
//! table comes after the tables its foreign keys point at.

use tokio_postgres::Client;

use super::{Created, LoadError, LoadOptions, db, schema};
use crate::postgres::{Cleanup, SqlError};
use crate::scenario::{Scenario, TableSpec};

/// Creates the scenario's tables (and builds its schema file) on the
/// server of `config`, empty, with their indexes and constraints.
pub async fn create<'a>(
    admin: &Client,
    config: &tokio_postgres::Config,
    target: &str,
    scenario: &'a Scenario,
    opts: &LoadOptions,
    cleanup: &Cleanup,
) -> Result<Created<'a>, LoadError> {
    if let Some(schema) = &scenario.schema {
        if cleanup.on_named_server() {
            return Err(LoadError::SchemaOnNamedServer);
        }
        schema::build(config, schema).await?;
    }
    let mut created: Vec<(&TableSpec, String)> = Vec::new();
    let mut reused = Vec::new();
    for t in &scenario.tables {
        let existing = regclass(admin, &t.name).await?;
        if t.from_schema {
            let q = existing.ok_or_else(|| LoadError::NotInSchema { table: t.name.clone(), at: t.ddl.at.clone() })?;
            created.push((t, q));
            continue;
        }
        match existing {
            Some(q) if !opts.reuse_existing => {
                return Err(LoadError::Exists {
                    table: t.name.clone(),
                    target: target.to_string(),
                    hint: left_by_a_run(&q, target),
                });
            }
            Some(q) => reused.push((t, q)),
            None => {
                admin.batch_execute(&t.ddl.text).await.map_err(|e| {
                    let error = SqlError::from_pg(&e);
                    LoadError::Ddl { table: t.name.clone(), at: t.ddl.location_of(error.position), error }
                })?;
                let q = regclass(admin, &t.name)
                    .await?
                    .ok_or_else(|| LoadError::NotCreated { table: t.name.clone(), at: t.ddl.at.clone() })?;
                let oid: u32 =
                    admin.query_one("SELECT $1::text::regclass::oid", &[&q]).await.map_err(db(&t.name))?.get(0);
                cleanup.created(&q, oid);
                created.push((t, q));
            }
        }
    }
    if scenario.schema.is_some() {
        clear_seed_rows(admin, &created).await?;
    }
    parents_first(admin, &mut created).await.map_err(db("(foreign keys)"))?;
    Ok(Created { created, reused })
}

/// Empties the schema's tables that are to be filled, and the tables that
/// point at them: rows the schema's statements inserted (a migration's
/// seed data) would collide with the generated keys, or point at rows the
/// load replaces. Only a throwaway server builds a schema.
async fn clear_seed_rows(admin: &Client, created: &[(&TableSpec, String)]) -> Result<(), LoadError> {
    let filled: Vec<&str> = created.iter().filter(|(t, _)| t.rows > 0).map(|(_, q)| q.as_str()).collect();
    if filled.is_empty() {
        return Ok(());
    }
    let sql = format!("TRUNCATE {} CASCADE", filled.join(", "));
    admin.batch_execute(&sql).await.map_err(db("(schema)"))
}

/// When a run that is gone created `table` on `target` and could not drop
/// it (it was killed), how to drop it.
fn left_by_a_run(table: &str, target: &str) -> String {
    let left = crate::postgres::state::records()
        .into_iter()
        .find(|(_, r)| r.target == target && r.tables.iter().any(|t| t.name == table));
    match left {
        Some((_, r)) if !crate::postgres::docker::process_alive(r.pid) => format!(
            ". It was created by run {} (pid {}), which was killed before it could drop it: `rehearse clean --url {target}` drops it",
            r.run_tag, r.pid
        ),
        _ => String::new(),
    }
}

/// The table's name as `regclass` prints it, if it exists.
async fn regclass(admin: &Client, name: &str) -> Result<Option<String>, LoadError> {
    let find = |n: String| async move {
        let found: Option<String> = admin.query_one("SELECT to_regclass($1)::text", &[&n]).await?.get(0);
        Ok::<_, tokio_postgres::Error>(found)
    };
    if let Some(found) = find(name.to_string()).await.map_err(db(name))? {
        return Ok(Some(found));
    }
    // A name as the schema spells it (`AvatarImage`, as Prisma writes
    // tables), which Postgres would fold to lower case unquoted.
    if name.contains('"') || name == name.to_lowercase() {
        return Ok(None);
    }
    let quoted: Vec<String> = name.split('.').map(|p| format!("\"{}\"", p)).collect();
    find(quoted.join(".")).await.map_err(db(name))
}

/// Orders `tables` so that a table comes after every table its foreign
/// keys point at (cycles keep their order), stable otherwise.
async fn parents_first(admin: &Client, tables: &mut Vec<(&TableSpec, String)>) -> Result<(), tokio_postgres::Error> {
    let edges: Vec<(String, String)> = admin
        .query(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint \
             WHERE contype = 'f' AND conrelid <> confrelid",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut pending = std::mem::take(tables);
    while !pending.is_empty() {
        let ready = pending.iter().position(|(_, q)| {
            !edges.iter().any(|(child, parent)| child == q && pending.iter().any(|(_, p)| p == parent))
        });
        // A cycle: take the first; its foreign keys come back after all data.
        tables.push(pending.remove(ready.unwrap_or(0)));
    }
    Ok(())
}
