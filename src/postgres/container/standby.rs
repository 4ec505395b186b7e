//! A hot standby of a throwaway container: a second container of the same
//! image that copies the running primary with `pg_basebackup` (`-X stream`,
//! `-R`) over Docker's bridge network, then runs `postgres` on the copy as
//! a hot standby. The primary is first told to take replication sessions
//! from the bridge (a `pg_hba.conf` line, then a reload): the official
//! image's entrypoint lets every database in with a password, but not
//! replication.
//!
//! The password reaches `pg_basebackup` in the container's environment
//! (`PGPASSWORD`), never on a command line; `-R` keeps it in the standby's
//! `postgresql.auto.conf`, inside the container. The container carries the
//! harness's labels, so it goes as the primary's does: on drop, and by
//! `rehearse clean` after a SIGKILL.

use std::time::Duration;

use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::{GenericImage, ImageExt, runners::AsyncRunner};

use super::super::docker::{labels, split_image};
use super::super::{BackendKind, ProvisionError, Server};
use super::{ContainerServer, LogTail, SHM_BYTES, START_TIMEOUT, Slot};

/// Copies the primary and starts the standby on the copy; `$@` are the
/// server's `-c` settings.
const SCRIPT: &str = r#"set -e
dir=/var/lib/postgresql/standby
pg_basebackup -h "$PRIMARY_HOST" -p 5432 -U postgres -w -D "$dir" -X stream -c fast -R
chmod 0700 "$dir"
exec postgres -D "$dir" -c listen_addresses='*' "$@""#;

/// A running standby container. Dropping it removes the container.
pub struct StandbyContainer {
    container: Option<testcontainers::ContainerAsync<GenericImage>>,
    _slot: Slot,
    image: String,
    config: tokio_postgres::Config,
    target: String,
}

impl ContainerServer {
    /// Starts a hot standby of this container under `settings` and returns
    /// once it streams.
    pub async fn standby(&self, settings: &[(String, String)]) -> Result<StandbyContainer, ProvisionError> {
        let failed = |reason: String| ProvisionError::Standby(reason);
        let primary = self.container.as_ref().ok_or_else(|| failed("the primary container is gone".into()))?;
        let host = super::super::docker::container_address(primary.id())
            .await
            .map_err(|e| failed(format!("the primary's address: {e}")))?;
        allow_replication(&self.config).await?;
        let password = String::from_utf8_lossy(self.config.get_password().unwrap_or_default()).to_string();
        let slot = Slot::new();
        let tail = LogTail::default();
        let keep = tail.clone();
        let (name, tag) = split_image(&self.image);
        let mut cmd = vec!["-c".to_string(), SCRIPT.to_string(), "standby".to_string()];
        for (k, v) in settings {
            cmd.push("-c".into());
            cmd.push(format!("{k}={v}"));
        }
        let request = GenericImage::new(name, tag)
            .with_entrypoint("sh")
            .with_exposed_port(ContainerPort::Tcp(5432))
            .with_wait_for(WaitFor::message_on_stderr("ready to accept read-only connections"))
            .with_cmd(cmd)
            .with_user("postgres")
            .with_env_var("PRIMARY_HOST", host)
            .with_env_var("PGPASSWORD", password.clone())
            .with_labels(labels(&slot.0))
            .with_shm_size(SHM_BYTES)
            .with_startup_timeout(START_TIMEOUT)
            .with_log_consumer(move |frame: &testcontainers::core::logs::LogFrame| keep.push(frame));
        let container =
            request.start().await.map_err(|e| failed(format!("the standby container: {e}\n{}", tail.text())))?;
        let port = container.get_host_port_ipv4(5432).await.map_err(|e| failed(e.to_string()))?;
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(port).user("postgres").password(password).dbname("postgres");
        config.connect_timeout(Duration::from_secs(5));
        super::super::await_streaming(&config, || tail.text()).await?;
        let short: String = container.id().chars().take(12).collect();
        let target = format!("postgres://postgres@127.0.0.1:{port}/postgres (standby container {short})");
        Ok(StandbyContainer { container: Some(container), _slot: slot, image: self.image.clone(), config, target })
    }
}

/// Lets replication sessions into the primary from any address, with a
/// password, as its other sessions are.
async fn allow_replication(config: &tokio_postgres::Config) -> Result<(), ProvisionError> {
    let fail = |e: tokio_postgres::Error| ProvisionError::Standby(format!("letting replication into the primary: {e}"));
    let client = super::super::connect(config, &super::super::Role::Harness).await.map_err(fail)?;
    let hba: String = client.query_one("SHOW hba_file", &[]).await.map_err(fail)?.get(0);
    let append = format!("cat >> '{}'", hba.replace('\'', "'\\''"));
    let sql =
        format!("COPY (SELECT 'host replication all all scram-sha-256') TO PROGRAM '{}'", append.replace('\'', "''"));
    client.batch_execute(&sql).await.map_err(fail)?;
    client.batch_execute("SELECT pg_reload_conf()").await.map_err(fail)?;
    Ok(())
}

impl Drop for StandbyContainer {
    fn drop(&mut self) {
        let Some(container) = self.container.take() else { return };
        super::super::block_on_own_thread(async move {
            let _ = tokio::time::timeout(Duration::from_secs(60), container.rm()).await;
        });
    }
}

impl Server for StandbyContainer {
    fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
    fn backend(&self) -> BackendKind {
        BackendKind::Docker
    }
    fn target(&self) -> String {
        self.target.clone()
    }
    fn is_throwaway(&self) -> bool {
        true
    }
    fn image(&self) -> Option<&str> {
        Some(&self.image)
    }
}
