//! Helpers: run the binary in a private temporary directory, read its JSON
//! report, and look for anything a run left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// Rehearsals measure latency: two at once on a 2-core machine would skew
/// each other, so they take turns.
static HEAVY: Mutex<()> = Mutex::new(());

pub fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rehearse"))
}

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A temporary directory the server's unprivileged user can enter, used as
/// the run's TMPDIR so that what a run leaves behind is easy to see.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("rehearse-test-").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file into the sandbox and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The binary with `args`, its temporary files and its state (the
    /// records of runs on named servers) in the sandbox.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("TMPDIR", self.path())
            .env("XDG_STATE_HOME", self.path().join("state"))
            .current_dir(self.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Cluster directories the harness left in the sandbox.
    pub fn leftover_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("rehearse-"))
            .filter(|p| p.is_dir())
            .collect()
    }

    /// Processes whose command line or working directory is inside the
    /// sandbox: a server the harness left running.
    pub fn leftover_processes(&self) -> Vec<String> {
        let me = self.path().to_string_lossy().to_string();
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let cwd =
                std::fs::read_link(e.path().join("cwd")).map(|p| p.to_string_lossy().to_string()).unwrap_or_default();
            if (cmdline.contains(&me) && !cmdline.contains("rehearse run")) || cwd.starts_with(&me) {
                found.push(format!("pid {name}: {cmdline} (cwd {cwd})"));
            }
        }
        found
    }

    /// Asserts that nothing of a run is left: no directory, no process.
    pub fn assert_clean(&self) {
        // Backends exit right after their postmaster; give them a moment.
        for _ in 0..50 {
            if self.leftover_processes().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(self.leftover_processes(), Vec::<String>::new(), "server processes left behind");
        assert_eq!(self.leftover_dirs(), Vec::<PathBuf>::new(), "cluster directories left behind");
    }
}

/// Starts `rehearse generate` of `scenario` on the local backend and waits
/// for the connection string it prints; returns the running process, the
/// URL and the lines printed before it.
#[allow(clippy::zombie_processes, reason = "the caller waits for it")]
pub fn start_generate(sandbox: &Sandbox, scenario: &Path) -> (std::process::Child, String, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = sandbox
        .command(&["generate", scenario.to_str().unwrap(), "--backend", "local", "--quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    loop {
        let line = lines.next().expect("generate ended before printing a connection string").unwrap();
        if line.starts_with("postgres://") {
            return (child, line, printed);
        }
        printed.push(line);
    }
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

/// Runs a rehearsal of `scenario` with `extra` flags and returns the exit
/// code, stderr and parsed JSON report.
pub fn rehearse(
    sandbox: &Sandbox,
    scenario: &Path,
    extra: &[&str],
) -> (i32, String, String, Option<serde_json::Value>) {
    let json = sandbox.path().join("report.json");
    let mut args = vec!["run", scenario.to_str().unwrap(), "--quiet", "--json", json.to_str().unwrap()];
    // The local backend unless the test names another: `auto` would pick
    // Docker on a machine that has the default image.
    if !extra.iter().any(|a| *a == "--backend" || *a == "--url") {
        args.extend_from_slice(&["--backend", "local"]);
    }
    args.extend_from_slice(extra);
    let out = sandbox.run(&args);
    let report = std::fs::read_to_string(&json).ok().map(|t| serde_json::from_str(&t).unwrap());
    let _ = std::fs::remove_file(&json);
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr), report)
}

/// A small, quick scenario: one table, one query, migration at 1 s.
/// `query_sql` and `step_sql` replace the query and the migration step.
pub fn small_scenario(query_sql: &str, step_sql: &str) -> String {
    format!(
        r#"name = "small"
seed = 7

[[table]]
name = "items"
rows = 2000
ddl = """
CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL, price_cents int NOT NULL);
"""

[workload]
pool_size = 4
pool_timeout = "1s"

[[workload.query]]
name = "get_item"
sql = "{query_sql}"
params = [{{ key_of = "items" }}]
rate = 50

[timeline]
migrate_at = "1s"
cooldown = "1s"
max_duration = "30s"

[[strategy]]
name = "only"
steps = [{{ sql = "{step_sql}" }}]

[thresholds]
max_p99 = "5s"
"#
    )
}

/// The 1-based line and column of the first `needle` in `text`, plus
/// `offset` characters.
pub fn position_of(text: &str, needle: &str, offset: usize) -> (usize, usize) {
    let at = text.find(needle).unwrap_or_else(|| panic!("{needle} not in text"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1 + offset;
    (line, col)
}
