//! A throwaway cluster from the machine's own server binaries.
//!
//! `initdb` into a fresh temporary directory, `postgres` on a free port of
//! 127.0.0.1 with the scenario's settings as `-c` options. Postgres refuses
//! to run as root, so when the harness is root both run as an unprivileged
//! user (`postgres`, else `nobody`) through a uid/gid switch in the child,
//! never through sudo.
//!
//! Nobody but the harness can enter it. `initdb` sets a password made for
//! this cluster (from a file only the server's user can read, removed
//! right after) and `scram-sha-256` for every connection, host and local;
//! nothing is trusted. The server listens on 127.0.0.1 only and opens no
//! Unix socket at all, so the socket directory is no way in either. The
//! password lives in the harness's memory and in the connection settings it
//! hands its own sessions; `rehearse generate` prints it in the URL it
//! gives the user, as it does a container's.
//!
//! The server runs in a process group of its own, so a Ctrl-C at the
//! terminal reaches the harness only and the harness decides how the server
//! ends. [`LocalCluster`]'s `Drop` sends the postmaster SIGQUIT (immediate
//! shutdown: the data is throwaway, so no checkpoint), then ends every
//! process still working in the data directory, orphaned backends
//! included (see [`super::processes`]), and removes the directory. It runs
//! on success, on error, on Ctrl-C (the run's future is dropped) and during
//! a panic's unwinding. If the harness itself is SIGKILLed, the kernel
//! sends the postmaster SIGQUIT through `PR_SET_PDEATHSIG`, and `rehearse
//! clean` ends whatever is left.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Pid, Uid, User};

use super::binaries::{self, Binaries};
use super::{BackendKind, ProvisionError, Server};

mod pooler;
mod standby;

pub use pooler::{PgBouncer, PoolMode};

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running throwaway cluster. Dropping it stops the server and removes
/// its directory.
pub struct LocalCluster {
    /// The postmaster; shared with [`Server::stopped`], which looks
    /// whether it exited.
    child: Arc<Mutex<Option<Child>>>,
    /// Its pid, kept after the child is reaped so clean-up can name it.
    postmaster: Option<Pid>,
    dir: ClusterDir,
    config: tokio_postgres::Config,
    port: u16,
    password: String,
    /// The shared memory the server made at its start, noted then: if the
    /// postmaster is killed, nothing else would remove it.
    shared: super::processes::SharedMemory,
}

/// The cluster's temporary directory, removed on drop. Removal is retried:
/// a process killed a moment earlier (initdb interrupted by Ctrl-C) may
/// still be writing into it.
struct ClusterDir(PathBuf);

impl ClusterDir {
    /// A new directory of mode 0700 in the temporary directory, owned by
    /// the server's user, holding the harness's owner file (`rehearse
    /// clean` looks for it).
    fn new(user: &Option<RunAs>) -> Result<ClusterDir, ProvisionError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| ProvisionError::Io { what, source }
        };
        let dir = tempfile::Builder::new().prefix("rehearse-").tempdir().map_err(io("create a temporary directory"))?;
        let dir = ClusterDir(dir.keep());
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700))
            .map_err(io("set the temporary directory's mode"))?;
        if let Some(u) = user {
            nix::unistd::chown(&dir.0, Some(u.uid), Some(u.gid)).map_err(|e| ProvisionError::Io {
                what: format!("give the temporary directory to user {}", u.name),
                source: e.into(),
            })?;
        }
        std::fs::write(dir.0.join("rehearse.pid"), std::process::id().to_string())
            .map_err(io("write the owner file"))?;
        Ok(dir)
    }
}

impl Drop for ClusterDir {
    fn drop(&mut self) {
        for _ in 0..50 {
            let _ = std::fs::remove_dir_all(&self.0);
            if !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The unprivileged account the server runs as when the harness is root.
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: Uid,
    gid: Gid,
}

fn run_as() -> Result<Option<RunAs>, ProvisionError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let wanted = std::env::var("REHEARSE_PG_USER").ok();
    let names: Vec<&str> = match &wanted {
        Some(n) => vec![n.as_str()],
        None => vec!["postgres", "nobody"],
    };
    for name in &names {
        if let Ok(Some(user)) = User::from_name(name) {
            if !user.uid.is_root() {
                return Ok(Some(RunAs { name: user.name, uid: user.uid, gid: user.gid }));
            }
        }
    }
    Err(ProvisionError::NoUser { tried: names.join(", ") })
}

fn free_port() -> Result<u16, ProvisionError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| ProvisionError::Io { what: "find a free port on 127.0.0.1".into(), source: e })?;
    Ok(listener
        .local_addr()
        .map_err(|e| ProvisionError::Io { what: "find a free port on 127.0.0.1".into(), source: e })?
        .port())
}

/// Prepares a command to run as `user` (when root), in `dir`, in the C
/// locale.
fn command(program: &Path, user: &Option<RunAs>, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).env("LC_ALL", "C").env_remove("PGDATA");
    if let Some(u) = user {
        // std calls setgroups(0) before setgid/setuid when dropping root.
        cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        cmd.env("HOME", dir).env("USER", &u.name);
    }
    cmd
}

impl LocalCluster {
    /// Creates and starts a cluster with the given `-c` settings.
    pub async fn start(settings: &[(String, String)]) -> Result<Self, ProvisionError> {
        let bins = binaries::find().ok_or(ProvisionError::NoBinaries)?;
        let user = run_as()?;
        let dir = ClusterDir::new(&user)?;
        let password = super::random_password();
        initdb(&bins, &user, &dir.0, &password).await?;

        let mut cluster = LocalCluster {
            child: Arc::default(),
            postmaster: None,
            dir,
            config: tokio_postgres::Config::new(),
            port: 0,
            password,
            shared: Default::default(),
        };
        let mut last_error = None;
        // The port is free when chosen but another process may take it
        // before the server binds it; try a few.
        for _ in 0..3 {
            match cluster.spawn_server(&bins, &user, settings, free_port()?).await {
                Ok(()) => return Ok(cluster),
                Err(e @ ProvisionError::Start { port_in_use: true, .. }) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("loop ran"))
    }

    fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The data directory (`pg_hba.conf`, `postgresql.conf`, the log is
    /// beside it), for tests that reconfigure the server.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    /// The superuser's password, made for this cluster.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The postmaster's process id.
    pub fn postmaster_pid(&self) -> Option<i32> {
        self.postmaster.map(Pid::as_raw)
    }

    async fn spawn_server(
        &mut self,
        bins: &Binaries,
        user: &Option<RunAs>,
        settings: &[(String, String)],
        port: u16,
    ) -> Result<(), ProvisionError> {
        let dir = self.dir().to_path_buf();
        let log_path = dir.join("server.log");
        let log = File::create(&log_path)
            .map_err(|e| ProvisionError::Io { what: "create the server log".into(), source: e })?;
        let log_err =
            log.try_clone().map_err(|e| ProvisionError::Io { what: "open the server log".into(), source: e })?;
        let mut cmd = command(&bins.postgres(), user, &dir);
        cmd.arg("-D")
            .arg(dir.join("data"))
            .arg("-p")
            .arg(port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="]);
        for (name, value) in settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err).process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        // It must come after the uid switch, which clears the death signal.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| ProvisionError::Io { what: format!("start {}", bins.postgres().display()), source: e })?;
        self.postmaster = Some(Pid::from_raw(child.id() as i32));
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        self.port = port;
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user("postgres")
            .password(self.password.as_bytes())
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        self.config = config;

        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                self.stop();
                let log = log_tail(&log_path);
                return Err(ProvisionError::Start {
                    port_in_use: log.contains("could not bind") || log.contains("Address already in use"),
                    reason: format!("postgres exited with {status}"),
                    log,
                });
            }
            match super::probe(&self.config).await {
                Ok(()) => {
                    let data = self.data_dir();
                    self.shared =
                        super::processes::SharedMemory::of(&data, &super::processes::cluster_processes(&data));
                    return Ok(());
                }
                Err(_) if started.elapsed() < START_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    self.stop();
                    return Err(ProvisionError::Start {
                        port_in_use: false,
                        reason: format!("not accepting connections after {}s: {e}", START_TIMEOUT.as_secs()),
                        log: log_tail(&log_path),
                    });
                }
            }
        }
    }

    /// Restarts the server under `settings`, on the same port, with the
    /// same data and password: a fast shutdown (which checkpoints, so the
    /// new server starts without recovery), then a new postmaster. Every
    /// session open before is gone.
    pub async fn restart(&mut self, settings: &[(String, String)]) -> Result<(), ProvisionError> {
        let bins = binaries::find().ok_or(ProvisionError::NoBinaries)?;
        let user = run_as()?;
        if let Some(pm) = self.postmaster {
            let _ = nix::sys::signal::kill(pm, nix::sys::signal::Signal::SIGINT);
        }
        let asked = Instant::now();
        while self.exit_status().is_none() && asked.elapsed() < START_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Whatever is left (nothing, after a fast shutdown) goes the way
        // it goes at the end.
        self.stop();
        let log = self.dir().join("server.log");
        let _ = std::fs::rename(&log, self.dir().join("server-load.log"));
        self.spawn_server(&bins, &user, settings, self.port).await
    }

    /// How the postmaster exited, once it has.
    fn exit_status(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops the server: SIGQUIT to the postmaster, then SIGKILL to every
    /// process of the cluster left after a grace period (or at once, when
    /// the postmaster is gone and nobody else would end them), and waits
    /// until none is left.
    fn stop(&mut self) {
        let Some(postmaster) = self.postmaster.take() else { return };
        let child = self.child.clone();
        let exited = move || {
            let mut child = child.lock().unwrap_or_else(|p| p.into_inner());
            match child.as_mut() {
                Some(c) => c.try_wait().ok().flatten().is_some(),
                None => true,
            }
        };
        let known = std::mem::take(&mut self.shared);
        super::processes::end_cluster(&self.data_dir(), Some(postmaster), exited, Duration::from_secs(5), known);
        if let Some(mut c) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = c.wait();
        }
    }
}

async fn initdb(bins: &Binaries, user: &Option<RunAs>, dir: &Path, password: &str) -> Result<(), ProvisionError> {
    // What to check when the unprivileged user cannot work in the directory.
    let hint = |text: &mut String| {
        if let Some(u) = user {
            text.push_str(&format!(
                "\n(initdb runs as user {}, which must be able to enter {}; set TMPDIR to a directory it can reach)",
                u.name,
                dir.display()
            ));
        }
    };
    // The password reaches initdb in a file only the server's user can
    // read (the directory is its own, mode 0700), never on a command line.
    let pwfile = dir.join("pwfile");
    write_private(&pwfile, password, user)
        .map_err(|e| ProvisionError::Io { what: "write the password file for initdb".into(), source: e })?;
    let mut cmd = command(&bins.initdb(), user, dir);
    cmd.arg("-D").arg(dir.join("data")).arg(format!("--pwfile={}", pwfile.display())).args([
        "-U",
        "postgres",
        "--auth-host=scram-sha-256",
        "--auth-local=scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    // initdb runs postgres itself (bootstrap and single-user), which makes
    // shared memory: stopped half-way (Ctrl-C), the whole group gets
    // SIGTERM, on which both clean up, rather than SIGKILL, on which the
    // memory would stay; if the harness dies, the kernel sends it.
    cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = match tokio::process::Command::from(cmd).spawn() {
        Ok(child) => {
            let mut guard = InitdbGroup { pgid: child.id().map(|p| Pid::from_raw(p as i32)), data: dir.join("data") };
            let out = child.wait_with_output().await;
            guard.pgid = None;
            out
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&pwfile);
    let out = match out {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let mut text = format!("cannot start {}: {e}", bins.initdb().display());
            hint(&mut text);
            return Err(ProvisionError::Initdb(text));
        }
        Err(e) => return Err(ProvisionError::Io { what: format!("run {}", bins.initdb().display()), source: e }),
    };
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if text.is_empty() {
            text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        hint(&mut text);
        return Err(ProvisionError::Initdb(text));
    }
    Ok(())
}

/// An initdb still running: dropped (its future was), it ends initdb's
/// whole process group (see [`super::processes::end_group`]).
struct InitdbGroup {
    pgid: Option<Pid>,
    data: PathBuf,
}

impl Drop for InitdbGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            super::processes::end_group(pgid, &self.data, Duration::from_secs(5));
        }
    }
}

/// Writes `text` to a new file of mode 0600, owned by `user` when given.
fn write_private(path: &Path, text: &str, user: &Option<RunAs>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    if let Some(u) = user {
        nix::unistd::fchown(&f, Some(u.uid), Some(u.gid))?;
    }
    Ok(())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // The server first; its directory goes when `self.dir` drops next.
        self.stop();
    }
}

impl Server for LocalCluster {
    fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
    fn backend(&self) -> BackendKind {
        BackendKind::Local
    }
    fn target(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
    fn is_throwaway(&self) -> bool {
        true
    }
    fn connect_url(&self) -> String {
        // The password is the cluster's own, made for this run and gone
        // with it.
        format!("postgres://postgres:{}@127.0.0.1:{}/postgres", self.password, self.port)
    }
    fn data_dir(&self) -> Option<PathBuf> {
        Some(self.data_dir())
    }
    fn restart<'a>(&'a mut self, settings: &'a [(String, String)]) -> super::Restart<'a> {
        Box::pin(async move { LocalCluster::restart(self, settings).await.map(|()| true) })
    }
    fn standby<'a>(&'a self, settings: &'a [(String, String)]) -> super::Standby<'a> {
        Box::pin(async move { Ok(Some(Box::new(LocalCluster::standby(self, settings).await?) as Box<dyn Server>)) })
    }
    fn exit_probe(&self) -> Option<super::ExitProbe> {
        let child = self.child.clone();
        Some(std::sync::Arc::new(move || {
            let mut child = child.lock().unwrap_or_else(|p| p.into_inner());
            let status = child.as_mut().and_then(|c| c.try_wait().ok().flatten())?;
            Some(format!("the postmaster exited ({status})"))
        }))
    }
}
