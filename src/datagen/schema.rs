//! A schema file (`schema = "dump.sql"`), built statement by statement on
//! a connection of its own (a dump sets `search_path` to nothing, which
//! must not leak into the harness's sessions).
//!
//! What cannot be built is skipped only where a real-world dump needs it
//! and always said: an extension this server cannot install (and the
//! `COMMENT ON EXTENSION` of it), and psql meta-commands. A role the schema
//! names (`OWNER TO`, `GRANT`, a policy's `TO`) that the server lacks is
//! created and said: without login (nobody can connect as it), as a
//! superuser (an owner's checks, such as a foreign key's, pass as they do
//! in production, where the owner has its rights). A schema file is only
//! ever built on a throwaway server. Any other failure stops the load with the statement's
//! file, line and column; when an extension was skipped before, the message
//! says so, since that is the likely cause.

use tokio_postgres::Client;

use super::LoadError;
use crate::postgres::{Role, SqlError, connect};
use crate::scenario::SchemaFile;

/// The first words of a statement, upper-cased, without comments.
fn head(sql: &str, words: usize) -> Vec<String> {
    let mut text = sql.trim_start();
    while let Some(rest) = text.strip_prefix("--") {
        text = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
    }
    text.split_whitespace().take(words).map(|w| w.trim_end_matches(';').to_ascii_uppercase()).collect()
}

/// The extension a `CREATE EXTENSION` or `COMMENT ON EXTENSION` names.
fn extension_of(sql: &str) -> Option<(bool, String)> {
    let words = head(sql, 6);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let (create, name) = match w.as_slice() {
        ["CREATE", "EXTENSION", "IF", "NOT", "EXISTS", name, ..] => (true, *name),
        ["CREATE", "EXTENSION", name, ..] => (true, *name),
        ["COMMENT", "ON", "EXTENSION", name, ..] => (false, *name),
        _ => return None,
    };
    Some((create, name.trim_matches('"').to_ascii_lowercase()))
}

/// Runs the schema's statements; returns what it skipped, each said once
/// on stderr as well.
pub async fn build(config: &tokio_postgres::Config, schema: &SchemaFile) -> Result<Vec<String>, LoadError> {
    let client = connect(config, &Role::Loader)
        .await
        .map_err(|e| LoadError::Db { table: "(schema)".into(), error: SqlError::from_pg(&e) })?;
    let mut skipped = Vec::new();
    for meta in &schema.meta_commands {
        skipped.push(format!("psql meta-command `{meta}` (not SQL)"));
    }
    let mut skipped_extensions: Vec<String> = Vec::new();
    let mut roles: Vec<String> = Vec::new();
    for stmt in &schema.statements {
        let Err(error) = run_creating_roles(&client, &stmt.text, &mut roles).await else { continue };
        match extension_of(&stmt.text) {
            Some((true, name)) => {
                skipped.push(format!("extension {name} at {} ({})", stmt.at, error.message));
                skipped_extensions.push(name);
            }
            Some((false, name)) if skipped_extensions.contains(&name) => {}
            _ => {
                let note = if skipped_extensions.is_empty() {
                    String::new()
                } else {
                    format!(" (skipped before: extension {})", skipped_extensions.join(", "))
                };
                return Err(LoadError::Schema { at: stmt.location_of(error.position), error, note });
            }
        }
    }
    for s in &skipped {
        eprintln!("rehearse: schema {}: skipped {s}", schema.path.display());
    }
    if !roles.is_empty() {
        eprintln!(
            "rehearse: schema {}: created the roles it names (no login): {}",
            schema.path.display(),
            roles.join(", ")
        );
    }
    drop(client);
    Ok(skipped)
}

/// The role a `role "x" does not exist` error names.
fn missing_role(error: &SqlError) -> Option<String> {
    if error.sqlstate.as_deref() != Some("42704") {
        return None;
    }
    let rest = error.message.strip_prefix("role \"")?;
    rest.strip_suffix("\" does not exist").map(str::to_string)
}

/// Runs `sql`; when it names a role the server lacks, creates the role
/// (`NOLOGIN SUPERUSER`: nobody can connect as it, and what it owns works)
/// and runs it again.
async fn run_creating_roles(client: &Client, sql: &str, created: &mut Vec<String>) -> Result<(), SqlError> {
    for _ in 0..16 {
        let Err(e) = client.batch_execute(sql).await else { return Ok(()) };
        let error = SqlError::from_pg(&e);
        let Some(role) = missing_role(&error).filter(|r| !created.contains(r)) else { return Err(error) };
        let quoted = format!("\"{}\"", role.replace('"', "\"\""));
        if client.batch_execute(&format!("CREATE ROLE {quoted} NOLOGIN SUPERUSER")).await.is_err() {
            return Err(error);
        }
        created.push(role);
    }
    client.batch_execute(sql).await.map_err(|e| SqlError::from_pg(&e))
}

/// Re-adds a CHECK constraint taken off for the load. When the generated
/// rows break it, it comes back `NOT VALID` (it holds for new rows, as
/// after `ADD CONSTRAINT … NOT VALID` in production), and the harness says
/// which constraint and how to make the data fit.
pub async fn add_check(client: &Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    match client.batch_execute(sql).await {
        Err(e) if e.code().map(|c| c.code()) == Some("23514") && !sql.ends_with("NOT VALID") => {
            client.batch_execute(&format!("{sql} NOT VALID")).await?;
            eprintln!(
                "rehearse: the generated rows break `{sql}`; it was added NOT VALID. Name generators for its columns in `columns` to make them fit"
            );
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_statements_are_recognised() {
        assert_eq!(
            extension_of("CREATE EXTENSION IF NOT EXISTS postgis WITH SCHEMA public"),
            Some((true, "postgis".into()))
        );
        assert_eq!(extension_of("-- c\nCREATE EXTENSION \"uuid-ossp\""), Some((true, "uuid-ossp".into())));
        assert_eq!(extension_of("COMMENT ON EXTENSION postgis IS 'x'"), Some((false, "postgis".into())));
        assert_eq!(extension_of("CREATE TABLE extension (a int)"), None);
    }
}
