//! What the harness leaves behind on a server it does not own, and how it
//! takes it back: its own sessions (found by this run's tag) and the tables
//! it created. Nothing else is touched: tables are dropped one by one
//! without CASCADE, so an object the user built on top of them makes the
//! drop fail (and is reported) rather than disappear.
//!
//! On a throwaway server there is nothing to do: the server goes.
//!
//! Every table created is also written down in the run's record (see
//! [`super::state`]) before the load starts, so that a run killed with
//! SIGKILL leaves `rehearse clean --url` what it needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::state::{CreatedTable, RunRecord};
use super::{Role, connect};

/// How long the clean-up may take on a server that does not answer.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Tracks what this run created on a server the user named, and removes
/// it at the end: explicitly through [`Cleanup::finish`], or from `Drop`
/// after an error, a Ctrl-C or a panic.
pub struct Cleanup {
    config: Option<tokio_postgres::Config>,
    record: Arc<Mutex<RunRecord>>,
    keep_tables: bool,
}

impl Cleanup {
    /// A cleanup for `config`'s server; `None` for a throwaway server.
    pub fn new(config: Option<tokio_postgres::Config>, keep_tables: bool) -> Self {
        let record = RunRecord {
            pid: std::process::id() as i32,
            run_tag: super::run_tag().to_string(),
            target: config.as_ref().map(super::redacted).unwrap_or_default(),
            tables: Vec::new(),
        };
        Self { config, record: Arc::new(Mutex::new(record)), keep_tables }
    }

    /// Whether the server is one the user named (not throwaway).
    pub fn on_named_server(&self) -> bool {
        self.config.is_some()
    }

    /// Records a table the harness created, in memory and in the run's
    /// record on disk.
    pub fn created(&self, qualified_name: &str, oid: u32) {
        if self.config.is_some() && !self.keep_tables {
            let mut r = self.record.lock().expect("not poisoned");
            r.tables.push(CreatedTable { name: qualified_name.to_string(), oid });
            if let Err(e) = r.save() {
                eprintln!(
                    "rehearse: warning: cannot write the run's record of what it created ({e}); a killed run's tables would need dropping by hand"
                );
            }
        }
    }

    /// Ends this run's sessions and drops the tables it created. Returns
    /// warnings about what could not be removed.
    pub async fn finish(mut self) -> Vec<String> {
        let Some(config) = self.config.take() else { return Vec::new() };
        let record = self.record.lock().expect("not poisoned").clone();
        bounded(run(&config, record, self.keep_tables)).await
    }
}

async fn bounded(work: impl std::future::Future<Output = Vec<String>>) -> Vec<String> {
    tokio::time::timeout(CLEANUP_TIMEOUT, work).await.unwrap_or_else(|_| {
        vec![format!(
            "the clean-up did not finish within {}s; `rehearse clean --url` can finish it",
            CLEANUP_TIMEOUT.as_secs()
        )]
    })
}

/// Ends the run's sessions and drops its tables (those whose oid is still
/// the one recorded), last created first; removes the record when nothing
/// is left of the run. Returns what could not be done, and notes of
/// tables of that name that are no longer the run's (left alone).
pub(super) async fn run_noting(
    config: &tokio_postgres::Config,
    record: RunRecord,
    keep_tables: bool,
) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    let warnings = run_with(config, record, keep_tables, &mut notes).await;
    (warnings, notes)
}

/// [`run_noting`], with the notes among the warnings.
pub(super) async fn run(config: &tokio_postgres::Config, record: RunRecord, keep_tables: bool) -> Vec<String> {
    let (mut warnings, notes) = run_noting(config, record, keep_tables).await;
    warnings.extend(notes);
    warnings
}

async fn run_with(
    config: &tokio_postgres::Config,
    record: RunRecord,
    keep_tables: bool,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let client = match connect(config, &Role::Harness).await {
        Ok(c) => c,
        Err(e) => return vec![format!("could not reconnect to clean up: {}", super::describe(&e))],
    };
    // The run's sessions may be waiting on locks, where a closed socket
    // goes unnoticed; end them so that nothing of the run lingers or
    // blocks.
    let pattern = format!("rehearse@{}-%", record.run_tag);
    // From PostgreSQL 14 the call waits (up to 5 s) until each session is
    // gone, so that nothing of the run is left when the harness exits.
    let waits = match client.query_one("SELECT current_setting('server_version_num')::int", &[]).await {
        Ok(row) => row.get::<_, i32>(0) >= 140_000,
        Err(_) => false,
    };
    let call = if waits { "pg_terminate_backend(pid, 5000)" } else { "pg_terminate_backend(pid)" };
    let terminate =
        format!("SELECT {call} FROM pg_stat_activity WHERE application_name LIKE $1 AND pid <> pg_backend_pid()");
    if let Err(e) = client.execute(&terminate, &[&pattern]).await {
        warnings.push(format!("could not end the harness's sessions: {}", super::describe(&e)));
    }
    if keep_tables {
        record.remove();
        return warnings;
    }
    let mut left = false;
    for table in record.tables.iter().rev() {
        let oid: Option<u32> = match client.query_one("SELECT to_regclass($1)::oid", &[&table.name]).await {
            Ok(row) => row.get(0),
            Err(e) => {
                warnings.push(format!("could not look up table {}: {}", table.name, super::describe(&e)));
                left = true;
                continue;
            }
        };
        match oid {
            None => {}
            Some(oid) if oid != table.oid => notes.push(format!(
                "table {} is not the one the harness created (it was made again since); it was left alone",
                table.name
            )),
            Some(_) => {
                if let Err(e) = client.batch_execute(&format!("DROP TABLE {}", table.name)).await {
                    left = true;
                    warnings.push(format!(
                        "could not drop table {} that the harness created: {}",
                        table.name,
                        super::SqlError::from_pg(&e)
                    ));
                }
            }
        }
    }
    if !left {
        record.remove();
    }
    warnings
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(config) = self.config.take() else { return };
        let record = self.record.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let keep = self.keep_tables;
        let warnings = super::block_on_own_thread(async move { bounded(run(&config, record, keep)).await });
        for w in warnings.unwrap_or_default() {
            eprintln!("rehearse: {w}");
        }
    }
}
