//! The database as it was right after the load, kept so that every
//! timeline of `rehearse compare` starts from the same data.
//!
//! Keeping it is free: the loaded database is renamed to
//! `rehearse_pristine`, which then refuses connections. Each reset drops
//! the rehearsed database (`WITH (FORCE)`, which ends the sessions left on
//! it) and clones it again from the pristine one with `CREATE DATABASE …
//! TEMPLATE`, as a file-level copy (`STRATEGY FILE_COPY` on PostgreSQL 15
//! and later, whose default, `WAL_LOG`, would write the whole database to
//! the WAL). The clone is the load's files, byte for byte: the same heap
//! and index pages, visibility map and planner statistics; only the
//! cumulative statistics (`pg_stat_*`) start from zero, as they do for each
//! copy alike.
//!
//! Only on servers the harness started: on a server the user named it
//! would rename and drop a database the harness did not create.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, Config};

use super::{Role, connect};

/// The name the loaded database is kept under.
pub const PRISTINE: &str = "rehearse_pristine";

/// A failure to keep or restore the loaded database.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// A statement of the reset failed.
    #[error("resetting the database ({doing}): {source}")]
    Sql {
        /// What the harness was doing.
        doing: String,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// The loaded database, kept; restores copies of it on demand.
pub struct Pristine {
    /// A session on `template1`, which the reset never touches.
    admin: Client,
    /// The rehearsed database's name.
    db: String,
    /// `STRATEGY FILE_COPY` is understood (PostgreSQL 15+).
    strategy_clause: bool,
    /// `DROP DATABASE … WITH (FORCE)` is understood (PostgreSQL 13+).
    force_clause: bool,
}

/// `name` as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql(doing: &str) -> impl FnOnce(tokio_postgres::Error) -> ResetError + '_ {
    move |source| ResetError::Sql { doing: doing.to_string(), source }
}

impl Pristine {
    /// Keeps the database `config` names, as loaded: ends every session on
    /// it (the caller's included) and renames it. Returns the keeper and the
    /// time it took.
    pub async fn keep(config: &Config, version_num: i32) -> Result<(Pristine, Duration), ResetError> {
        let started = Instant::now();
        let db = config.get_dbname().unwrap_or("postgres").to_string();
        let mut on_template = config.clone();
        on_template.dbname("template1");
        let admin = connect(&on_template, &Role::Harness).await.map_err(sql("connecting to template1"))?;
        let keeper =
            Pristine { admin, db, strategy_clause: version_num >= 150_000, force_clause: version_num >= 130_000 };
        let rename = format!("ALTER DATABASE {} RENAME TO {}", ident(&keeper.db), ident(PRISTINE));
        keeper.retry_in_use(&keeper.db, &rename, "renaming the loaded database").await?;
        let lock = format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", ident(PRISTINE));
        keeper.admin.batch_execute(&lock).await.map_err(sql("closing the kept database to sessions"))?;
        Ok((keeper, started.elapsed()))
    }

    /// Drops the rehearsed database, if it is there, and clones it again
    /// from the kept one. Returns the time it took.
    pub async fn restore(&self) -> Result<Duration, ResetError> {
        let started = Instant::now();
        let db = ident(&self.db);
        if self.force_clause {
            let drop = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
            self.admin.batch_execute(&drop).await.map_err(sql("dropping the rehearsed database"))?;
        } else {
            let drop = format!("DROP DATABASE IF EXISTS {db}");
            self.retry_in_use(&self.db, &drop, "dropping the rehearsed database").await?;
        }
        let strategy = if self.strategy_clause { " STRATEGY FILE_COPY" } else { "" };
        let create = format!("CREATE DATABASE {db} TEMPLATE {}{strategy}", ident(PRISTINE));
        self.retry_in_use(PRISTINE, &create, "cloning the loaded database").await?;
        Ok(started.elapsed())
    }

    /// Runs `statement`, which needs `busy` free of sessions: ends them
    /// (an autovacuum worker may have entered even a database that refuses
    /// connections) and tries again while the server says "in use".
    async fn retry_in_use(&self, busy: &str, statement: &str, doing: &str) -> Result<(), ResetError> {
        let terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = $1 AND pid <> pg_backend_pid()";
        let mut attempt = 0;
        loop {
            self.admin.execute(terminate, &[&busy]).await.map_err(sql("ending the sessions on the database"))?;
            match self.admin.batch_execute(statement).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 50 && e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) => {
                    // A terminated backend takes a moment to exit.
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(sql(doing)(e)),
            }
        }
    }
}
