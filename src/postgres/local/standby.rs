//! A hot standby of a throwaway cluster, on the same machine: a copy of
//! the running primary taken by `pg_basebackup` (`-X stream`, `-R`, so it
//! starts streaming from where the copy ends), started like the primary on
//! a port of its own, on 127.0.0.1 only and with no Unix socket.
//!
//! The copy runs as the server's user. Its password reaches
//! `pg_basebackup` in a password file inside the standby's own directory
//! (mode 0700), never on a command line or in an environment another user
//! could read; `-R` names that file in the standby's `primary_conninfo`, so
//! the standby's WAL receiver reads it there too. The primary's
//! `pg_hba.conf`, as initdb wrote it, already lets replication
//! connections in from 127.0.0.1 with a password (`scram-sha-256`).
//!
//! The standby is a [`LocalCluster`] like any other: its directory carries
//! the harness's owner file, so `rehearse clean` finds it, and dropping it
//! stops it and removes its directory. Drop it before its primary.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use super::{ClusterDir, LocalCluster, ProvisionError, binaries, command, free_port, run_as, write_private};

/// How long the copy may take before the harness gives up on it.
const BASEBACKUP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl LocalCluster {
    /// Starts a hot standby of this cluster under `settings` (the
    /// primary's: a standby needs at least its `max_connections`), and
    /// returns once it streams.
    pub async fn standby(&self, settings: &[(String, String)]) -> Result<LocalCluster, ProvisionError> {
        let bins = binaries::find().ok_or(ProvisionError::NoBinaries)?;
        let user = run_as()?;
        let dir = ClusterDir::new(&user)?;
        let passfile = dir.0.join("pgpass");
        let line = format!("127.0.0.1:{}:*:postgres:{}\n", self.port, self.password);
        write_private(&passfile, &line, &user)
            .map_err(|e| ProvisionError::Io { what: "write the standby's password file".into(), source: e })?;
        let mut cmd = command(&bins.pg_basebackup(), &user, &dir.0);
        cmd.arg("-D").arg(dir.0.join("data"));
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-w"]);
        cmd.args(["-X", "stream", "-c", "fast", "-R", "--no-sync"]);
        cmd.env("PGPASSFILE", &passfile).env_remove("PGPASSWORD");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let copy = cmd.output();
        let out = match tokio::time::timeout(BASEBACKUP_TIMEOUT, copy).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                return Err(ProvisionError::Io { what: format!("run {}", bins.pg_basebackup().display()), source: e });
            }
            Err(_) => {
                return Err(ProvisionError::Standby(format!("pg_basebackup took more than {BASEBACKUP_TIMEOUT:?}")));
            }
        };
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(ProvisionError::Standby(format!("pg_basebackup failed ({}): {text}", out.status)));
        }
        let mut standby = LocalCluster {
            child: Arc::default(),
            postmaster: None,
            dir,
            config: tokio_postgres::Config::new(),
            port: 0,
            password: self.password.clone(),
            shared: Default::default(),
        };
        let mut last_error = None;
        for _ in 0..3 {
            match standby.spawn_server(&bins, &user, settings, free_port()?).await {
                Ok(()) => {
                    let log = standby.dir().join("server.log");
                    crate::postgres::await_streaming(&standby.config, || super::log_tail(&log)).await?;
                    return Ok(standby);
                }
                Err(e @ ProvisionError::Start { port_in_use: true, .. }) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("loop ran"))
    }
}
