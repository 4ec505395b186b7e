//! Postgres in a throwaway container, started through testcontainers with
//! the postgres image of `testcontainers-modules` under the name the user
//! gave (`--pg-image`, the scenario's `image` or `version`). Any image with
//! the official image's interface works: `POSTGRES_PASSWORD`, port 5432,
//! and the line "database system is ready to accept connections" on
//! stdout (the entrypoint's temporary server) and on stderr (the real
//! one), which is what the harness waits for. `scripts/build-postgres-image`
//! builds such an image from Debian's packages where nothing can be pulled.
//!
//! Scenario settings become `-c name=value` arguments. The container is
//! removed when the [`ContainerServer`] is dropped: after success, an
//! error, Ctrl-C or SIGTERM (the run's future is dropped), or a panic.
//! A container created by a start that was interrupted before it returned
//! is removed by its slot label. After a SIGKILL, `rehearse clean` finds
//! the container by label.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testcontainers::core::logs::LogFrame;
use testcontainers::{ContainerAsync, ImageExt, runners::AsyncRunner};
use testcontainers_modules::postgres::Postgres;

use super::docker::{labels, split_image, sweep_slot_blocking};
use super::{BackendKind, ProvisionError, Server};

mod standby;

/// How long the image may take from start to the ready line.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the server may take to accept a session after the ready line.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Shared memory for the container: Docker's default of 64 MB is too
/// little for parallel queries over large tables.
const SHM_BYTES: u64 = 1 << 30;
/// Lines of the container's log kept to explain a failed start.
const LOG_LINES: usize = 40;

/// A running throwaway container. Dropping it removes the container.
pub struct ContainerServer {
    container: Option<ContainerAsync<Postgres>>,
    /// Sweeps, by label, what the start may have left; dropped last.
    _slot: Slot,
    image: String,
    config: tokio_postgres::Config,
    target: String,
    /// The Docker engine's root directory, where the container's data is,
    /// when the engine is on this machine.
    root: Option<std::path::PathBuf>,
}

/// Removes every container of one start, by label, when dropped, even if
/// the start never returned.
struct Slot(String);

impl Slot {
    fn new() -> Slot {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        Slot(format!("{}-{}", super::run_tag(), NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        sweep_slot_blocking(&self.0);
    }
}

/// The end of the container's log, kept while it starts.
#[derive(Clone, Default)]
struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    fn push(&self, frame: &LogFrame) {
        let bytes = match frame {
            LogFrame::StdOut(b) | LogFrame::StdErr(b) => b,
        };
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for line in String::from_utf8_lossy(bytes).lines() {
            if lines.len() == LOG_LINES {
                lines.pop_front();
            }
            lines.push_back(line.to_string());
        }
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl ContainerServer {
    /// Starts `image` with `settings` as `-c` arguments and waits until the
    /// server accepts a session. The image must be on the machine or
    /// pullable.
    pub async fn start(image: &str, settings: &[(String, String)]) -> Result<Self, ProvisionError> {
        let slot = Slot::new();
        let tail = LogTail::default();
        let password = super::random_password();
        let (name, tag) = split_image(image);
        let mut cmd = vec!["postgres".to_string()];
        for (k, v) in settings {
            cmd.push("-c".into());
            cmd.push(format!("{k}={v}"));
        }
        let keep = tail.clone();
        let request = Postgres::default()
            .with_password(&password)
            .with_name(name)
            .with_tag(tag)
            .with_cmd(cmd)
            .with_labels(labels(&slot.0))
            .with_shm_size(SHM_BYTES)
            .with_startup_timeout(START_TIMEOUT)
            .with_log_consumer(move |frame: &LogFrame| keep.push(frame));
        let failed = |reason: String| ProvisionError::Container { image: image.to_string(), reason, log: tail.text() };
        let container = request.start().await.map_err(|e| failed(e.to_string()))?;
        let host = container.get_host().await.map_err(|e| failed(e.to_string()))?;
        let port = container.get_host_port_ipv4(5432).await.map_err(|e| failed(e.to_string()))?;
        let host = match host.to_string().as_str() {
            // Docker publishes on every address; IPv4 is always among them.
            "localhost" => "127.0.0.1".to_string(),
            h => h.to_string(),
        };

        let mut config = tokio_postgres::Config::new();
        config.host(&host).port(port).user("postgres").password(password).dbname("postgres");
        config.connect_timeout(Duration::from_secs(5));
        let deadline = Instant::now() + ACCEPT_TIMEOUT;
        loop {
            match super::probe(&config).await {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(failed(format!("the server logged that it is ready but refuses sessions: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let short: String = container.id().chars().take(12).collect();
        let target = format!("postgres://postgres@{host}:{port}/postgres (container {short} of {image})");
        let root = super::docker::root_dir().await.filter(|p| p.is_dir());
        Ok(ContainerServer { container: Some(container), _slot: slot, image: image.to_string(), config, target, root })
    }

    /// The image the container runs.
    pub fn image(&self) -> &str {
        &self.image
    }
}

impl Drop for ContainerServer {
    fn drop(&mut self) {
        let Some(container) = self.container.take() else { return };
        // `rm` marks the container removed, so its own Drop (which would
        // need the caller's runtime) does nothing.
        super::block_on_own_thread(async move {
            let _ = tokio::time::timeout(Duration::from_secs(60), container.rm()).await;
        });
        // `self._slot` drops next and sweeps whatever is left by label.
    }
}

impl Server for ContainerServer {
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
    fn data_dir(&self) -> Option<std::path::PathBuf> {
        self.root.clone()
    }
    fn standby<'a>(&'a self, settings: &'a [(String, String)]) -> super::Standby<'a> {
        Box::pin(async move { Ok(Some(Box::new(ContainerServer::standby(self, settings).await?) as Box<dyn Server>)) })
    }
    fn connect_url(&self) -> String {
        // The password is the container's own, made for this run and gone
        // with it; without it nobody could connect.
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let password = String::from_utf8_lossy(self.config.get_password().unwrap_or_default()).to_string();
        format!("postgres://postgres:{password}@{host}:{port}/postgres")
    }
}
