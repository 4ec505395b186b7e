//! Every process of a local cluster, found by what it is rather than by
//! its process group, and ended with the shared memory it held.
//!
//! A postmaster puts each backend it forks in a session (and process
//! group) of its own, so a signal to the postmaster's group reaches only
//! the postmaster. When the postmaster dies first (killed, or crashed), its
//! backends live on: one in a CPU-bound statement runs until the statement
//! ends, minutes later. Every process of a cluster, though, works in the
//! cluster's data directory (the postmaster changes into it before it
//! forks anything), so `/proc/PID/cwd` names the cluster a process belongs
//! to, whoever its parent is now. That is how [`processes_of`] finds them,
//! and why `rehearse clean` can tell a postmaster of a harness's cluster
//! from an unrelated process that happens to have the pid a stale
//! `postmaster.pid` names.
//!
//! A postmaster that is killed cannot remove its shared memory: the System V
//! segment `postmaster.pid` records, and the POSIX segments under /dev/shm
//! its processes map. [`SharedMemory`] notes them while the processes run,
//! and removes those still there once every process is gone.

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The postgres processes of the cluster in `data_dir`: those working in
/// that directory that run a program called `postgres`. (Anything else
/// working there, a user's shell say, is not the cluster's to end.)
pub fn cluster_processes(data_dir: &Path) -> Vec<Pid> {
    processes_of(data_dir).into_iter().filter(|p| runs_postgres(p.as_raw())).collect()
}

fn runs_postgres(pid: i32) -> bool {
    let program = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    program.as_deref().and_then(Path::file_name).is_some_and(|n| n == "postgres")
}

/// The process ids whose working directory is `dir`.
pub fn processes_of(dir: &Path) -> Vec<Pid> {
    let data_dir = dir;
    let Ok(want) = std::fs::canonicalize(data_dir) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == want) {
            found.push(Pid::from_raw(pid));
        }
    }
    found
}

/// Whether `pid` is a postgres process of the cluster in `data_dir`: it
/// works in that directory and runs a program called `postgres`.
pub fn is_postgres_of(pid: i32, data_dir: &Path) -> bool {
    let Ok(want) = std::fs::canonicalize(data_dir) else { return false };
    let cwd_matches = std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == want);
    cwd_matches && runs_postgres(pid)
}

/// Shared memory of a cluster, noted while its processes run.
#[derive(Debug, Default)]
pub struct SharedMemory {
    /// The System V segment's id and key, from `postmaster.pid`.
    sysv: Option<(i32, i64)>,
    /// POSIX segments (`/dev/shm/PostgreSQL.N`) its processes map.
    posix: Vec<PathBuf>,
}

impl SharedMemory {
    /// Adds what `other` noted.
    pub fn merge(&mut self, other: SharedMemory) {
        self.sysv = self.sysv.or(other.sysv);
        for p in other.posix {
            if !self.posix.contains(&p) {
                self.posix.push(p);
            }
        }
    }

    /// Notes the segments of the cluster in `data_dir`, whose processes are
    /// `pids`.
    pub fn of(data_dir: &Path, pids: &[Pid]) -> SharedMemory {
        let sysv = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok().and_then(|text| {
            // Line 7: the segment's key and id.
            let line = text.lines().nth(6)?;
            let mut it = line.split_whitespace();
            let key: i64 = it.next()?.parse().ok()?;
            let id: i32 = it.next()?.parse().ok()?;
            Some((id, key))
        });
        let mut posix = Vec::new();
        for pid in pids {
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            for path in maps.lines().filter_map(|l| l.split_whitespace().nth(5)) {
                if path.starts_with("/dev/shm/PostgreSQL.") && !posix.iter().any(|p: &PathBuf| p == Path::new(path)) {
                    posix.push(PathBuf::from(path));
                }
            }
        }
        SharedMemory { sysv, posix }
    }

    /// Removes what is left: a System V segment nobody is attached to (and
    /// only if its key is still the one noted) and the POSIX segments.
    pub fn remove_leftovers(&self) {
        if let Some((id, key)) = self.sysv {
            // SAFETY: shmctl with IPC_STAT writes into the struct we pass;
            // IPC_RMID only marks a segment we identified for removal.
            unsafe {
                let mut ds: libc::shmid_ds = std::mem::zeroed();
                if libc::shmctl(id, libc::IPC_STAT, &mut ds) == 0
                    && i64::from(ds.shm_perm.__key) == key
                    && ds.shm_nattch == 0
                {
                    libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                }
            }
        }
        for path in &self.posix {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Ends every process of the cluster in `data_dir`. `postmaster` is asked
/// first with SIGQUIT (an immediate shutdown, in which it ends its
/// children and removes its shared memory itself); processes left after
/// `grace`, or orphaned because the postmaster is gone, get SIGKILL.
/// `postmaster_exited` tells whether the postmaster has exited (and been
/// reaped). Returns once no process of the cluster is left, or after
/// `grace` twice over, and removes the shared memory left: `known`, noted
/// while the server ran (a postmaster killed earlier took its own list
/// with it), and what the processes left map now.
pub fn end_cluster(
    data_dir: &Path,
    postmaster: Option<Pid>,
    mut postmaster_exited: impl FnMut() -> bool,
    grace: Duration,
    known: SharedMemory,
) {
    let mut shared = known;
    shared.merge(SharedMemory::of(data_dir, &cluster_processes(data_dir)));
    if let Some(pm) = postmaster {
        let _ = kill(pm, Signal::SIGQUIT);
    }
    let started = Instant::now();
    loop {
        let exited = postmaster_exited();
        let left = cluster_processes(data_dir);
        // A server still starting makes its segments while this runs.
        shared.merge(SharedMemory::of(data_dir, &left));
        if left.is_empty() && exited {
            break;
        }
        // With the postmaster gone nobody else will end its children.
        if exited || started.elapsed() > grace {
            for pid in &left {
                let _ = kill(*pid, Signal::SIGKILL);
            }
            if let Some(pm) = postmaster.filter(|_| !exited) {
                let _ = kill(pm, Signal::SIGKILL);
            }
        }
        if started.elapsed() > grace * 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    shared.remove_leftovers();
}

/// Whether a live (not zombie) process is in process group `pgid`.
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { return false };
        // pid (comm) state ppid pgrp ...: the fields after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { return false };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp: i32 = fields.nth(1).and_then(|f| f.parse().ok()).unwrap_or(0);
        pgrp == pgid && state != "Z" && state != "X"
    })
}

/// Ends process group `pgid` (initdb and the postgres it runs to build
/// the cluster in `data_dir`): SIGTERM, on which initdb and a single-user
/// postgres exit cleanly; SIGKILL to what is left after `grace`; then the
/// shared memory the group's postgres made and did not remove.
pub fn end_group(pgid: Pid, data_dir: &Path, grace: Duration) {
    let mut shared = SharedMemory::of(data_dir, &cluster_processes(data_dir));
    let _ = nix::sys::signal::killpg(pgid, Signal::SIGTERM);
    let started = Instant::now();
    let mut killed = false;
    while group_alive(pgid.as_raw()) {
        shared.merge(SharedMemory::of(data_dir, &cluster_processes(data_dir)));
        if started.elapsed() > grace && !killed {
            let _ = nix::sys::signal::killpg(pgid, Signal::SIGKILL);
            killed = true;
        }
        if started.elapsed() > grace * 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    shared.remove_leftovers();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_found_by_its_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep").arg("30").current_dir(dir.path()).spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        assert_eq!(processes_of(dir.path()), vec![pid]);
        assert!(cluster_processes(dir.path()).is_empty(), "sleep is no postgres process");
        assert!(!is_postgres_of(pid.as_raw(), dir.path()), "sleep is not postgres");
        assert!(!is_postgres_of(std::process::id() as i32, dir.path()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(processes_of(dir.path()).is_empty());
    }
}
