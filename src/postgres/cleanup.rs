//! What the harness leaves behind on a server it does not own, and how it
//! takes it back: its own sessions (found by this run's tag) and the tables
//! it created. Nothing else is touched: tables are dropped one by one
//! without CASCADE, so an object the user built on top of them makes the
//! drop fail (and is reported) rather than disappear.
//!
//! On a throwaway server there is nothing to do: the server goes.

use std::sync::{Arc, Mutex};

use super::{Role, connect};

/// Tracks what this run created on a server the user named, and removes
/// it at the end: explicitly through [`Cleanup::finish`], or from `Drop`
/// after an error, a Ctrl-C or a panic.
pub struct Cleanup {
    config: Option<tokio_postgres::Config>,
    tables: Arc<Mutex<Vec<String>>>,
    keep_tables: bool,
}

impl Cleanup {
    /// A cleanup for `config`'s server; `None` for a throwaway server.
    pub fn new(config: Option<tokio_postgres::Config>, keep_tables: bool) -> Self {
        Self { config, tables: Arc::default(), keep_tables }
    }

    /// Whether the server is one the user named (not throwaway).
    pub fn on_named_server(&self) -> bool {
        self.config.is_some()
    }

    /// Records a table the harness created.
    pub fn created(&self, qualified_name: &str) {
        if self.config.is_some() {
            self.tables.lock().expect("not poisoned").push(qualified_name.to_string());
        }
    }

    /// Ends this run's sessions and drops the tables it created. Returns
    /// warnings about what could not be removed.
    pub async fn finish(mut self) -> Vec<String> {
        let Some(config) = self.config.take() else { return Vec::new() };
        let tables = std::mem::take(&mut *self.tables.lock().expect("not poisoned"));
        run(&config, tables, self.keep_tables).await
    }
}

async fn run(config: &tokio_postgres::Config, tables: Vec<String>, keep_tables: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    let client = match connect(config, &Role::Harness).await {
        Ok(c) => c,
        Err(e) => return vec![format!("could not reconnect to clean up: {e}")],
    };
    // Our sessions may be waiting on locks, where a closed socket goes
    // unnoticed; end them so that nothing of ours lingers or blocks.
    if let Err(e) = client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1 AND pid <> pg_backend_pid()",
            &[&Role::run_pattern()],
        )
        .await
    {
        warnings.push(format!("could not end the harness's sessions: {e}"));
    }
    if keep_tables {
        return warnings;
    }
    for table in tables.iter().rev() {
        if let Err(e) = client.batch_execute(&format!("DROP TABLE IF EXISTS {table}")).await {
            warnings.push(format!(
                "could not drop table {table} that the harness created: {}",
                super::SqlError::from_pg(&e)
            ));
        }
    }
    warnings
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(config) = self.config.take() else { return };
        let tables = std::mem::take(&mut *self.tables.lock().unwrap_or_else(|p| p.into_inner()));
        let keep = self.keep_tables;
        let warnings = super::block_on_own_thread(async move { run(&config, tables, keep).await });
        for w in warnings.unwrap_or_default() {
            eprintln!("rehearse: {w}");
        }
    }
}
