//! Finding the machine's PostgreSQL server binaries: on PATH, through
//! `pg_config --bindir`, or under `/usr/lib/postgresql/*/bin` (Debian),
//! highest major first.

use std::path::{Path, PathBuf};

/// The server binaries of one installation.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The directory holding them.
    pub bindir: PathBuf,
}

impl Binaries {
    /// `initdb`
    pub fn initdb(&self) -> PathBuf {
        self.bindir.join("initdb")
    }

    /// `postgres`
    pub fn postgres(&self) -> PathBuf {
        self.bindir.join("postgres")
    }

    /// `pg_basebackup`, which copies a running server to start a standby.
    pub fn pg_basebackup(&self) -> PathBuf {
        self.bindir.join("pg_basebackup")
    }
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

/// Finds server binaries, or `None` when the machine has none.
/// `REHEARSE_PG_BINDIR` overrides the search.
pub fn find() -> Option<Binaries> {
    if let Some(dir) = std::env::var_os("REHEARSE_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return has_server(&dir).then_some(Binaries { bindir: dir });
    }
    candidates().into_iter().find(|d| has_server(d)).map(|bindir| Binaries { bindir })
}

fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            // Resolve symlinks so that initdb and postgres come from the same
            // installation even when PATH holds links to them.
            let initdb = dir.join("initdb");
            if let Ok(real) = std::fs::canonicalize(&initdb) {
                if let Some(parent) = real.parent() {
                    dirs.push(parent.to_path_buf());
                }
            }
            dirs.push(dir);
        }
    }
    if let Ok(out) = std::process::Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !dir.is_empty() {
                dirs.push(PathBuf::from(dir));
            }
        }
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    debian.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs.extend(debian.into_iter().map(|(_, d)| d));
    dirs
}
