//! `rehearse clean`: removes what a run that could not clean up after
//! itself (SIGKILL, a power cut) left behind: containers labelled by the
//! harness, local cluster directories in the temporary directory (with any
//! server process still working in them), and, with `--url`, the tables a
//! run created on that server, as its record lists them (see
//! [`super::state`]). Whatever belongs to a harness process that still
//! runs is kept, unless the user says `--all`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::docker::{self, MANAGED_LABEL, process_alive};
use super::{processes, state};

/// What `clean` did.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// Containers removed: (id, name, image).
    pub containers: Vec<String>,
    /// Local cluster directories removed.
    pub dirs: Vec<PathBuf>,
    /// Tables dropped from a server the user named.
    pub tables: Vec<String>,
    /// Left alone because their run is still going: why.
    pub kept: Vec<String>,
    /// Records of runs on servers the user named, whose tables `--url`
    /// would drop: how.
    pub pending: Vec<String>,
    /// What could not be done: the daemon did not answer, a removal failed.
    pub problems: Vec<String>,
}

/// Removes leftovers of dead runs (of every run with `all`). Without a
/// Docker daemon only the directories are looked at, and the missing
/// daemon is reported as a problem only when `require_docker`.
pub async fn clean(all: bool, require_docker: bool) -> Cleaned {
    let mut done = Cleaned::default();
    match docker::daemon().await {
        Ok(client) => match docker::containers(&client, MANAGED_LABEL).await {
            Ok(found) => {
                for c in found {
                    let short: String = c.id.chars().take(12).collect();
                    if let Some(pid) = c.pid.filter(|p| !all && process_alive(*p)) {
                        done.kept.push(format!("container {short} ({}): its run, pid {pid}, is still going", c.name));
                        continue;
                    }
                    match docker::remove(&client, &c.id).await {
                        Ok(()) => done.containers.push(format!("{short} {} ({}, {})", c.name, c.image, c.state)),
                        Err(e) => done.problems.push(e),
                    }
                }
            }
            Err(e) => done.problems.push(e),
        },
        Err(e) if require_docker => done.problems.push(e),
        Err(_) => {}
    }
    clean_dirs(&std::env::temp_dir(), all, &mut done);
    for (_, r) in state::records() {
        if all || !process_alive(r.pid) {
            let tables: Vec<&str> = r.tables.iter().map(|t| t.name.as_str()).collect();
            done.pending.push(format!(
                "run {} (pid {}) left {} on {}: `rehearse clean --url {}` drops them",
                r.run_tag,
                r.pid,
                tables.join(", "),
                r.target,
                r.target
            ));
        }
    }
    done
}

/// Drops what runs that are gone (every run, with `all`) created on the
/// server of `config` and could not drop themselves: the tables their
/// records list, where each is still the table the run made.
pub async fn clean_url(config: &tokio_postgres::Config, all: bool) -> Cleaned {
    let mut done = Cleaned::default();
    let target = super::redacted(config);
    for (_, r) in state::records().into_iter().filter(|(_, r)| r.target == target) {
        if !all && process_alive(r.pid) {
            done.kept
                .push(format!("the tables of run {} on {target}: its process, {}, is still going", r.run_tag, r.pid));
            continue;
        }
        let names: Vec<String> = r.tables.iter().map(|t| t.name.clone()).collect();
        let (warnings, notes) = super::cleanup::run_noting(config, r, false).await;
        let untouched = |n: &String| warnings.iter().chain(&notes).any(|w| w.contains(&format!("table {n} ")));
        done.tables.extend(names.into_iter().filter(|n| !untouched(n)));
        done.problems.extend(warnings);
        done.kept.extend(notes);
    }
    done
}

/// Ends the server of a cluster directory whose run is gone: its
/// postmaster (only if the pid `postmaster.pid` names is a postgres
/// process of that very directory: after a reboot the pid may be anyone's)
/// and every backend still working there, orphaned or not.
fn end_orphaned_server(data: &Path) {
    let postmaster = pid_in(&data.join("postmaster.pid")).filter(|p| processes::is_postgres_of(*p, data));
    if postmaster.is_none() && processes::cluster_processes(data).is_empty() {
        return;
    }
    let gone = move || postmaster.is_none_or(|p| !process_alive(p));
    let known = processes::SharedMemory::default();
    processes::end_cluster(data, postmaster.map(nix::unistd::Pid::from_raw), gone, Duration::from_secs(5), known);
}

/// Kills a PgBouncer whose run is gone, still working in `dir` (its death
/// signal normally ends it with the harness).
fn end_orphaned_pooler(dir: &Path) {
    for pid in processes::processes_of(dir) {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        if exe.as_deref().and_then(Path::file_name).is_some_and(|n| n == "pgbouncer") {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The pid in the first line of `path`, if any.
fn pid_in(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.lines().next()?.trim().parse().ok()
}

fn clean_dirs(tmp: &Path, all: bool, done: &mut Cleaned) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let dir = entry.path();
        let named = entry.file_name().to_string_lossy().starts_with("rehearse-");
        // Only directories a local cluster made: they hold its owner file.
        let Some(owner) = pid_in(&dir.join("rehearse.pid")).filter(|_| named) else { continue };
        if !all && process_alive(owner) {
            done.kept.push(format!("{}: its run, pid {owner}, is still going", dir.display()));
            continue;
        }
        end_orphaned_server(&dir.join("data"));
        end_orphaned_pooler(&dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => done.dirs.push(dir),
            Err(e) => done.problems.push(format!("cannot remove {}: {e}", dir.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_of_dead_runs_go_and_those_of_live_runs_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = tmp.path().join("rehearse-dead");
        let live = tmp.path().join("rehearse-live");
        let foreign = tmp.path().join("rehearse-foreign");
        for d in [&dead, &live, &foreign] {
            std::fs::create_dir_all(d.join("data")).unwrap();
        }
        // A pid above the kernel's limit never runs.
        std::fs::write(dead.join("rehearse.pid"), "4194305").unwrap();
        std::fs::write(live.join("rehearse.pid"), std::process::id().to_string()).unwrap();
        let mut done = Cleaned::default();
        clean_dirs(tmp.path(), false, &mut done);
        assert_eq!(done.dirs, vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(live.exists(), "a running harness keeps its directory");
        assert!(foreign.exists(), "a directory without an owner file is not the harness's");
        assert_eq!(done.kept.len(), 1);

        let mut done = Cleaned::default();
        clean_dirs(tmp.path(), true, &mut done);
        assert_eq!(done.dirs, vec![live.clone()]);
        assert!(foreign.exists());
    }

    #[test]
    fn a_stale_postmaster_pid_naming_another_process_is_not_signalled() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = tmp.path().join("rehearse-stale");
        std::fs::create_dir_all(dead.join("data")).unwrap();
        std::fs::write(dead.join("rehearse.pid"), "4194305").unwrap();
        // After a reboot the pid is someone else's: here, a sleep.
        let mut other = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(dead.join("data/postmaster.pid"), format!("{}\n{}\n", other.id(), dead.display())).unwrap();
        let mut done = Cleaned::default();
        clean_dirs(tmp.path(), false, &mut done);
        assert_eq!(done.dirs, vec![dead.clone()]);
        assert!(other.try_wait().unwrap().is_none(), "the unrelated process was left alone");
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
