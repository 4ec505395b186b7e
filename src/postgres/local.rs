//! A throwaway cluster from the machine's own server binaries.
//!
//! `initdb` into a fresh temporary directory, `postgres` on a free port of
//! 127.0.0.1 with the scenario's settings as `-c` options. Postgres refuses
//! to run as root, so when the harness is root both run as an unprivileged
//! user (`postgres`, else `nobody`) through a uid/gid switch in the child,
//! never through sudo.
//!
//! The server runs in a process group of its own, so a Ctrl-C at the
//! terminal reaches the harness only and the harness decides how the server
//! ends. [`LocalCluster`]'s `Drop` sends the whole group SIGQUIT (immediate
//! shutdown: the data is throwaway, so no checkpoint), waits until every
//! process of the group is gone, and removes the directory. It runs on
//! success, on error, on Ctrl-C (the run's future is dropped) and during a
//! panic's unwinding. If the harness itself is SIGKILLed, the kernel sends
//! the server SIGQUIT through `PR_SET_PDEATHSIG`.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Gid, Pid, Uid, User};

use super::binaries::{self, Binaries};
use super::{BackendKind, ProvisionError, Server};

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running throwaway cluster. Dropping it stops the server and removes
/// its directory.
pub struct LocalCluster {
    child: Option<Child>,
    dir: ClusterDir,
    config: tokio_postgres::Config,
    port: u16,
}

/// The cluster's temporary directory, removed on drop. Removal is retried:
/// a process killed a moment earlier (initdb interrupted by Ctrl-C) may
/// still be writing into it.
struct ClusterDir(PathBuf);

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
        let dir = tempfile::Builder::new()
            .prefix("rehearse-")
            .tempdir()
            .map_err(|e| ProvisionError::Io { what: "create a temporary directory".into(), source: e })?;
        let dir = ClusterDir(dir.keep());
        let io = |what: &str| {
            let what = what.to_string();
            move |source| ProvisionError::Io { what, source }
        };
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700))
            .map_err(io("set the temporary directory's mode"))?;
        if let Some(u) = &user {
            nix::unistd::chown(&dir.0, Some(u.uid), Some(u.gid)).map_err(|e| ProvisionError::Io {
                what: format!("give the temporary directory to user {}", u.name),
                source: e.into(),
            })?;
        }
        std::fs::write(dir.0.join("rehearse.pid"), std::process::id().to_string())
            .map_err(io("write the owner file"))?;
        initdb(&bins, &user, &dir.0).await?;

        let mut cluster = LocalCluster { child: None, dir, config: tokio_postgres::Config::new(), port: 0 };
        let mut last_error = None;
        // The port is free when chosen but another process may take it
        // before the server binds it; try a few.
        for _ in 0..3 {
            match cluster.spawn_server(&bins, &user, settings).await {
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

    async fn spawn_server(
        &mut self,
        bins: &Binaries,
        user: &Option<RunAs>,
        settings: &[(String, String)],
    ) -> Result<(), ProvisionError> {
        let port = free_port()?;
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
        self.child = Some(child);
        self.port = port;
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(port).user("postgres").dbname("postgres").connect_timeout(Duration::from_secs(5));
        self.config = config;

        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                let log = log_tail(&log_path);
                return Err(ProvisionError::Start {
                    port_in_use: log.contains("could not bind") || log.contains("Address already in use"),
                    reason: format!("postgres exited with {status}"),
                    log,
                });
            }
            match super::probe(&self.config).await {
                Ok(()) => return Ok(()),
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

    /// Stops the server: SIGQUIT to its process group, then waits until the
    /// group is empty, escalating to SIGKILL.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let group = Pid::from_raw(child.id() as i32);
        let _ = killpg(group, Signal::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut killed = false;
        loop {
            let _ = child.try_wait();
            // Signal 0 probes whether any process of the group is left.
            let alive = killpg(group, None).is_ok();
            if !alive {
                break;
            }
            if Instant::now() > deadline && !killed {
                let _ = killpg(group, Signal::SIGKILL);
                killed = true;
            } else if Instant::now() > deadline + Duration::from_secs(5) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.wait();
    }
}

async fn initdb(bins: &Binaries, user: &Option<RunAs>, dir: &Path) -> Result<(), ProvisionError> {
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
    let mut cmd = command(&bins.initdb(), user, dir);
    cmd.arg("-D").arg(dir.join("data")).args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true).stdin(Stdio::null());
    let out = match cmd.output().await {
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
}
