//! PgBouncer between the workload and the server, as most production
//! stacks have it: the machine's `pgbouncer` program, started by the
//! harness in a `rehearse-*` directory of its own, as the server's
//! unprivileged user when the harness is root.
//!
//! It listens on a free port of 127.0.0.1 and opens no Unix socket; every
//! client authenticates with SCRAM-SHA-256 against the one user it knows,
//! the harness's, whose password is in `userlist.txt` inside the 0700
//! directory (never on a command line). It forwards every database name to
//! the server the run rehearses on, and lets that user into its admin
//! console (`SHOW POOLS`).
//!
//! Dropping it sends SIGTERM (PgBouncer's immediate shutdown), then
//! SIGKILL after a grace period, and removes the directory. If the harness
//! is SIGKILLed, the kernel kills PgBouncer through `PR_SET_PDEATHSIG`, and
//! `rehearse clean` removes the directory.

use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{ClusterDir, ProvisionError, command, free_port, run_as, write_private};

/// How long PgBouncer may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How PgBouncer hands server connections to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolMode {
    /// A server connection per transaction (or per statement outside one).
    Transaction,
    /// A server connection per client session.
    Session,
}

impl PoolMode {
    /// Its name in PgBouncer's configuration.
    pub fn name(self) -> &'static str {
        match self {
            PoolMode::Transaction => "transaction",
            PoolMode::Session => "session",
        }
    }
}

/// A running PgBouncer.
pub struct PgBouncer {
    child: Option<Child>,
    dir: ClusterDir,
    /// How a client reaches the server through it.
    config: tokio_postgres::Config,
    /// Its admin console.
    admin: tokio_postgres::Config,
    /// `PgBouncer 1.18.0`.
    version: String,
    mode: PoolMode,
    pool_size: u32,
}

/// The `pgbouncer` program: `REHEARSE_PGBOUNCER`, else on the `PATH`, else
/// Debian's place.
fn program() -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var("REHEARSE_PGBOUNCER") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
}

impl PgBouncer {
    /// Starts PgBouncer in front of the server of `server` (its host, port,
    /// user and password), with `pool_size` server connections per
    /// database and user, in `mode`; returns once it accepts connections.
    pub async fn start(
        server: &tokio_postgres::Config,
        mode: PoolMode,
        pool_size: u32,
    ) -> Result<PgBouncer, ProvisionError> {
        let fail = |m: String| ProvisionError::Pooler(m);
        let program = program().ok_or_else(|| {
            fail("the `pgbouncer` program is not installed (Debian: apt-get install pgbouncer)".into())
        })?;
        let (host, port) = match (server.get_hosts().first(), server.get_ports().first()) {
            (Some(tokio_postgres::config::Host::Tcp(h)), Some(p)) => (h.clone(), *p),
            _ => return Err(fail("PgBouncer needs the server's TCP host and port".into())),
        };
        let user = server.get_user().unwrap_or("postgres").to_string();
        let password = server.get_password().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
        let run_as = run_as()?;
        let dir = ClusterDir::new(&run_as)?;
        let io = |what: &str| {
            let what = what.to_string();
            move |source| ProvisionError::Io { what, source }
        };
        let quote = |s: &str| s.replace('"', "\"\"");
        write_private(
            &dir.0.join("userlist.txt"),
            &format!("\"{}\" \"{}\"\n", quote(&user), quote(&password)),
            &run_as,
        )
        .map_err(io("write PgBouncer's user list"))?;
        let listen = free_port()?;
        let ini = ini(&dir.0, &host, port, listen, &user, mode, pool_size);
        write_private(&dir.0.join("pgbouncer.ini"), &ini, &run_as).map_err(io("write PgBouncer's configuration"))?;
        let log = std::fs::File::create(dir.0.join("stderr.log")).map_err(io("create PgBouncer's log"))?;
        let mut cmd = command(&program, &run_as, &dir.0);
        cmd.arg(dir.0.join("pgbouncer.ini"));
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours;
        // after the uid switch, which clears the death signal.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io(&format!("start {}", program.display())))?;
        let version = std::process::Command::new(&program)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
            .unwrap_or_else(|| "PgBouncer".into());
        // A new configuration: `host` and `port` add to a configuration's
        // lists, so the server's would stay first.
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(listen).user(&user).password(password.as_bytes());
        config.connect_timeout(server.get_connect_timeout().copied().unwrap_or(Duration::from_secs(5)));
        let mut admin = config.clone();
        config.dbname(server.get_dbname().unwrap_or(&user));
        admin.dbname("pgbouncer");
        let mut bouncer = PgBouncer { child: Some(child), dir, config, admin, version, mode, pool_size };
        bouncer.wait_ready().await?;
        Ok(bouncer)
    }

    /// Waits until its admin console answers.
    async fn wait_ready(&mut self) -> Result<(), ProvisionError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(ProvisionError::Pooler(format!("pgbouncer exited with {status}: {}", self.log())));
            }
            let attempt = self.admin.connect(tokio_postgres::NoTls).await;
            match attempt {
                Ok((client, conn)) => {
                    tokio::spawn(conn);
                    if client.simple_query("SHOW VERSION").await.is_ok() {
                        return Ok(());
                    }
                }
                Err(_) if started.elapsed() < START_TIMEOUT => {}
                Err(e) => {
                    let why =
                        format!("not accepting connections after {}s: {e}: {}", START_TIMEOUT.as_secs(), self.log());
                    return Err(ProvisionError::Pooler(why));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of its log.
    fn log(&self) -> String {
        let mut text = String::new();
        for f in ["pgbouncer.log", "stderr.log"] {
            text.push_str(&super::log_tail(&self.dir.0.join(f)));
        }
        text
    }

    /// How the workload reaches the server through it.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// Its admin console, for `SHOW POOLS`.
    pub fn admin(&self) -> &tokio_postgres::Config {
        &self.admin
    }

    /// `PgBouncer 1.18.0`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Its pool mode.
    pub fn mode(&self) -> PoolMode {
        self.mode
    }

    /// Server connections per database and user.
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }
}

/// Its configuration: every database forwarded to the server, one user,
/// SCRAM for every client, TCP on 127.0.0.1 only.
fn ini(dir: &std::path::Path, host: &str, port: u16, listen: u16, user: &str, mode: PoolMode, size: u32) -> String {
    let d = dir.display();
    format!(
        "[databases]\n\
         * = host={host} port={port}\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {listen}\n\
         unix_socket_dir =\n\
         auth_type = scram-sha-256\n\
         auth_file = {d}/userlist.txt\n\
         admin_users = {user}\n\
         stats_users = {user}\n\
         pool_mode = {}\n\
         default_pool_size = {size}\n\
         max_client_conn = 2000\n\
         max_db_connections = 0\n\
         server_login_retry = 1\n\
         ignore_startup_parameters = extra_float_digits,options\n\
         logfile = {d}/pgbouncer.log\n\
         log_connections = 0\n\
         log_disconnections = 0\n",
        mode.name()
    )
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let asked = Instant::now();
        while child.try_wait().ok().flatten().is_none() && asked.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
