//! Provisioning: where the rehearsal's Postgres comes from.
//!
//! Every backend yields a [`Server`]: connection settings plus what the
//! harness may do there. A throwaway server (the local cluster, a
//! container) is the harness's own; a server the user names (`--url`) is
//! not, and the harness never drops or overwrites what it did not create
//! there. Dropping the `Server` releases whatever the backend started.
//!
//! Every session the harness opens carries an `application_name` naming
//! its [`Role`], which is how the lock observer tells who blocked whom.

mod binaries;
pub mod bulk;
mod choice;
mod clean;
mod cleanup;
mod container;
pub mod docker;
mod local;
pub mod passfile;
mod pristine;
pub mod processes;
mod settings;
mod sql_error;
pub mod state;
mod url;
mod watch;

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

pub use choice::{BackendArg, Plan, plan};
pub use clean::{Cleaned, clean, clean_url};
pub use cleanup::Cleanup;
pub use container::ContainerServer;
pub use docker::{DEFAULT_IMAGE, check_image_ref, official_image};
pub use local::{LocalCluster, PgBouncer, PoolMode};
pub use pristine::{PRISTINE, Pristine, ResetError};
pub use settings::{check_room, settings_fault};
pub use sql_error::{LOCK_NOT_AVAILABLE, QUERY_CANCELED, SqlError, connect_error, describe};
pub use url::{UrlServer, redacted};
pub use watch::{ExitProbe, Fault, FaultKind, ServerWatch};

/// A program of the machine's PostgreSQL installation, such as `pgbench`,
/// from the directory the local backend takes its server from.
pub fn server_program(name: &str) -> Option<std::path::PathBuf> {
    let path = binaries::find()?.bindir.join(name);
    path.exists().then_some(path)
}

/// Which kind of backend a server came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A throwaway cluster from the machine's binaries.
    Local,
    /// A server the user named with `--url`.
    Url,
    /// A throwaway container.
    Docker,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Local => "local",
            BackendKind::Url => "url",
            BackendKind::Docker => "docker",
        })
    }
}

/// A Postgres server the rehearsal runs against.
pub trait Server: Send + Sync {
    /// Connection settings for a new session.
    fn config(&self) -> &tokio_postgres::Config;
    /// The backend it came from.
    fn backend(&self) -> BackendKind;
    /// How to reach it, for people: never holds a password.
    fn target(&self) -> String;
    /// Whether the harness owns everything on it (and may create and drop
    /// freely), as opposed to a server the user named.
    fn is_throwaway(&self) -> bool;
    /// The container image it runs, for a container.
    fn image(&self) -> Option<&str> {
        None
    }
    /// A URL a person can connect with. Like [`Server::target`], it never
    /// holds the password of a server the user named.
    fn connect_url(&self) -> String {
        self.target()
    }
    /// Where the server keeps its data on this machine, when the harness
    /// knows (the local cluster's directory, the Docker engine's root):
    /// the load checks the free space there.
    fn data_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
    /// A probe of whether the server's process has exited, and how, where
    /// the backend can tell (the local backend's postmaster is the
    /// harness's child); `None` elsewhere.
    fn exit_probe(&self) -> Option<ExitProbe> {
        None
    }
    /// Restarts a throwaway server under `settings`, keeping its data, its
    /// address and its password, where the backend can (the local
    /// cluster). `Ok(false)` where it cannot: the server keeps running as
    /// it was started.
    fn restart<'a>(&'a mut self, settings: &'a [(String, String)]) -> Restart<'a> {
        let _ = settings;
        Box::pin(async { Ok(false) })
    }
    /// Starts a hot standby of this throwaway server, streaming from it,
    /// under `settings`, and returns once it streams; `Ok(None)` where the
    /// backend cannot (a server the user named). Drop the standby before
    /// this server.
    fn standby<'a>(&'a self, settings: &'a [(String, String)]) -> Standby<'a> {
        let _ = settings;
        Box::pin(async { Ok(None) })
    }
}

/// What [`Server::standby`] returns: the standby, or `None` where the
/// backend cannot start one.
pub type Standby<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<Box<dyn Server>>, ProvisionError>> + Send + 'a>>;

/// What [`Server::restart`] returns: whether the server was restarted.
pub type Restart<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, ProvisionError>> + Send + 'a>>;

/// A password for a throwaway server's superuser, new for every server and
/// never printed but in the URL `rehearse generate` gives its user.
pub(crate) fn random_password() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..24).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])).collect()
}

/// Where to get a server.
#[derive(Debug, Clone)]
pub enum BackendChoice {
    /// Start a throwaway cluster from the machine's binaries.
    Local,
    /// Use the server at this URL.
    Url(String),
    /// Start a throwaway container of this image.
    Docker(String),
}

/// Starts or reaches the server the choice names. Server settings apply
/// where the harness starts the server.
pub async fn provision(
    choice: &BackendChoice,
    settings: &[(String, String)],
) -> Result<Box<dyn Server>, ProvisionError> {
    match choice {
        BackendChoice::Local => Ok(Box::new(LocalCluster::start(settings).await?)),
        BackendChoice::Url(url) => Ok(Box::new(UrlServer::open(url).await?)),
        BackendChoice::Docker(image) => Ok(Box::new(ContainerServer::start(image, settings).await?)),
    }
}

/// Why a server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// No `initdb`/`postgres` on this machine.
    #[error(
        "no PostgreSQL server binaries found (looked on PATH, in `pg_config --bindir` and under /usr/lib/postgresql/*/bin); install the server package (Debian: apt-get install postgresql) or set REHEARSE_PG_BINDIR"
    )]
    NoBinaries,
    /// Running as root with no unprivileged account to run the server as.
    #[error(
        "Postgres refuses to run as root and no unprivileged user was found to run it as (tried: {tried}); create one or set REHEARSE_PG_USER"
    )]
    NoUser {
        /// The names tried.
        tried: String,
    },
    /// `initdb` failed.
    #[error("initdb failed: {0}")]
    Initdb(String),
    /// The server did not come up.
    #[error("the server did not start: {reason}\n--- server log ---\n{log}")]
    Start {
        /// What happened.
        reason: String,
        /// The end of the server's log.
        log: String,
        /// Whether it failed because the port was taken (worth a retry).
        port_in_use: bool,
    },
    /// The `--url` could not be parsed.
    #[error("invalid --url: {0}")]
    BadUrl(String),
    /// The server could not be reached.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// The target, without password.
        target: String,
        /// Why.
        reason: String,
    },
    /// The flags or the scenario ask for something no backend can give.
    #[error("{0}")]
    Usage(String),
    /// `--backend docker` (or several versions) without a daemon.
    #[error("{0}; the docker backend needs a running Docker daemon (or use --backend local)")]
    Docker(String),
    /// The image is neither on the machine nor pullable.
    #[error(
        "{reason}; build one from this machine's packages with scripts/build-postgres-image and pass it with --pg-image"
    )]
    ImageUnavailable {
        /// The image.
        image: String,
        /// Why it cannot be had.
        reason: String,
    },
    /// The container did not come up.
    #[error("the container of {image} did not start: {reason}\n--- container log ---\n{log}")]
    Container {
        /// The image.
        image: String,
        /// What happened.
        reason: String,
        /// The end of the container's log.
        log: String,
    },
    /// A hot standby of the throwaway primary could not be started.
    #[error("cannot start a replica: {0}")]
    Standby(String),
    /// PgBouncer could not be started.
    #[error("cannot start PgBouncer: {0}")]
    Pooler(String),
    /// A server the user named has too few free connections for the run.
    #[error("{0}")]
    NoRoom(String),
    /// The server stopped while the harness was setting the run up.
    #[error("the server stopped during {during}: {detail}")]
    Stopped {
        /// What the harness was doing.
        during: String,
        /// What it saw.
        detail: String,
    },
    /// An operating system call failed.
    #[error("cannot {what}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ProvisionError {
    /// The process exit code this error maps to: 2 for bad input, 3 for an
    /// environment failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProvisionError::BadUrl(_) | ProvisionError::Usage(_) => 2,
            _ => 3,
        }
    }
}

/// How long a started standby may take to stream from its primary.
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until the standby at `config` streams WAL from its primary; on
/// failure the error carries `log()`, the end of the standby's log.
pub(crate) async fn await_streaming(
    config: &tokio_postgres::Config,
    log: impl Fn() -> String,
) -> Result<(), ProvisionError> {
    let started = std::time::Instant::now();
    let client = connect(config, &Role::Harness)
        .await
        .map_err(|e| ProvisionError::Standby(format!("cannot connect to the standby: {e}\n{}", log())))?;
    loop {
        let status = client
            .query_opt("SELECT status FROM pg_stat_wal_receiver", &[])
            .await
            .map_err(|e| ProvisionError::Standby(format!("reading the standby's WAL receiver: {e}")))?
            .map(|row| row.get::<_, String>(0));
        if status.as_deref() == Some("streaming") {
            return Ok(());
        }
        if started.elapsed() > STREAM_TIMEOUT {
            let status = status.unwrap_or_else(|| "no WAL receiver".into());
            return Err(ProvisionError::Standby(format!(
                "the standby did not stream from its primary within {}s ({status})\n--- standby log ---\n{}",
                STREAM_TIMEOUT.as_secs(),
                log()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a session of the harness is for; set as its `application_name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A connection of the application's pool.
    Workload,
    /// The connection applying the migration.
    Migration,
    /// An interfering statement, by name.
    Interference(String),
    /// The lock observer.
    Observer,
    /// A data loader.
    Loader,
    /// Setup and catalog queries of the harness.
    Harness,
    /// A session the harness did not open (another application, autovacuum).
    Other(String),
}

const PREFIX: &str = "rehearse@";

/// A tag unique to this process, carried in every `application_name`
/// (`rehearse@1a2b3c-workload`), so that the harness can tell its own
/// sessions from those of another run on the same server.
pub fn run_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as u64);
        let mixed = (std::process::id() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ nanos;
        format!("{:06x}", mixed & 0xff_ffff)
    })
}

impl Role {
    /// The `application_name` for sessions of this role.
    pub fn application_name(&self) -> String {
        let role = match self {
            Role::Workload => "workload".to_string(),
            Role::Migration => "migration".to_string(),
            Role::Interference(n) => format!("interference:{n}"),
            Role::Observer => "observer".to_string(),
            Role::Loader => "loader".to_string(),
            Role::Harness => "harness".to_string(),
            Role::Other(n) => return n.clone(),
        };
        format!("{PREFIX}{}-{role}", run_tag())
    }

    /// The role of a session from its `application_name`. Sessions of
    /// another run of the harness count as [`Role::Other`].
    pub fn from_application_name(name: &str) -> Role {
        let ours = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_prefix(run_tag()))
            .and_then(|rest| rest.strip_prefix('-'));
        match ours {
            Some("workload") => Role::Workload,
            Some("migration") => Role::Migration,
            Some("observer") => Role::Observer,
            Some("loader") => Role::Loader,
            Some("harness") => Role::Harness,
            Some(rest) if rest.starts_with("interference:") => {
                Role::Interference(rest["interference:".len()..].to_string())
            }
            _ => Role::Other(name.to_string()),
        }
    }

    /// A `LIKE` pattern matching every session of this run.
    pub fn run_pattern() -> String {
        format!("{PREFIX}{}-%", run_tag())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Workload => f.write_str("workload"),
            Role::Migration => f.write_str("migration"),
            Role::Interference(n) => write!(f, "interference {n}"),
            Role::Observer => f.write_str("observer"),
            Role::Loader => f.write_str("loader"),
            Role::Harness => f.write_str("harness"),
            Role::Other(n) if n.is_empty() => f.write_str("other session"),
            Role::Other(n) => write!(f, "{n}"),
        }
    }
}

/// Opens a session with `role` as its `application_name`. The connection
/// runs on a task of its own until the client is dropped.
pub async fn connect(config: &tokio_postgres::Config, role: &Role) -> Result<Client, tokio_postgres::Error> {
    let mut config = config.clone();
    config.application_name(role.application_name());
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // A connection error surfaces on the client's next call.
        let _ = connection.await;
    });
    Ok(client)
}

/// Succeeds once the server accepts a session.
pub(crate) async fn probe(config: &tokio_postgres::Config) -> Result<(), tokio_postgres::Error> {
    let client = connect(config, &Role::Harness).await?;
    client.simple_query("SELECT 1").await.map(|_| ())
}

/// What the server is: `version()`, the numeric version, and the one
/// setting a report reads from it (`deadlock_timeout`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServerVersion {
    /// `SELECT version()`
    pub version: String,
    /// `server_version_num`, e.g. 150018.
    pub version_num: i32,
    /// `deadlock_timeout`, in milliseconds: how long a lock request waits
    /// before the server checks for a deadlock, and so before it cancels
    /// an autovacuum in the way.
    pub deadlock_timeout_ms: f64,
}

/// Reads the server's version (and its `deadlock_timeout`).
pub async fn server_version(client: &Client) -> Result<ServerVersion, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT version(), current_setting('server_version_num')::int, \
             (SELECT setting::float8 FROM pg_settings WHERE name = 'deadlock_timeout')",
            &[],
        )
        .await?;
    Ok(ServerVersion { version: row.get(0), version_num: row.get(1), deadlock_timeout_ms: row.get(2) })
}

/// Runs `work` to completion on a thread of its own with its own runtime,
/// and waits for it. For `Drop`s that must talk to a server or the Docker
/// daemon: they cannot await, and may run on a runtime's thread (where no
/// runtime can start), outside any runtime, or while a panic unwinds.
/// `None` when no runtime could be built or the work panicked.
pub(crate) fn block_on_own_thread<F>(work: F) -> Option<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        Some(rt.block_on(work))
    })
    .join()
    .ok()
    .flatten()
}

/// Default connect timeout for servers the user names.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
