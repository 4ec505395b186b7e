//! Where the password of a server the user names comes from, when the URL
//! holds none: `PGPASSWORD`, then a password file in libpq's format
//! (`PGPASSFILE`, else `~/.pgpass`), as `psql` reads them. A password on the
//! command line is readable by every user of the machine in
//! `/proc/PID/cmdline` for as long as the run lasts; these are not.
//!
//! The file holds lines `hostname:port:database:username:password`, each of
//! the first four a value or `*`, with `\:` and `\\` escaping; the first
//! line that matches wins. Like libpq, a file that its group or others can
//! read is ignored, with a warning.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What a password is looked up for.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The host as given (a name or address; `localhost` for a socket).
    pub host: &'a str,
    /// The port.
    pub port: u16,
    /// The database.
    pub database: &'a str,
    /// The user.
    pub user: &'a str,
}

/// Where a password was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// In `PGPASSWORD`.
    Env(String),
    /// In this password file.
    File(PathBuf, String),
    /// Nowhere; with a warning when a file was there but ignored.
    None(Option<String>),
}

/// Looks the password up in `PGPASSWORD`, then in the password file.
pub fn find(lookup: Lookup<'_>) -> Found {
    if let Some(pw) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
        return Found::Env(pw.to_string_lossy().into_owned());
    }
    let path = match std::env::var_os("PGPASSFILE") {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(".pgpass"),
            None => return Found::None(None),
        },
    };
    from_file(&path, lookup)
}

/// Looks the password up in the file at `path`.
pub fn from_file(path: &Path, lookup: Lookup<'_>) -> Found {
    let Ok(meta) = std::fs::metadata(path) else { return Found::None(None) };
    if !meta.is_file() {
        return Found::None(Some(format!("password file {} is not a plain file; it was ignored", path.display())));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Found::None(Some(format!(
            "password file {} can be read by others (mode {:o}); it was ignored: chmod 0600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    let Ok(text) = std::fs::read_to_string(path) else { return Found::None(None) };
    match text.lines().find_map(|line| matches(line, lookup)) {
        Some(pw) => Found::File(path.to_path_buf(), pw),
        None => Found::None(None),
    }
}

/// The password of `line` if its fields match `lookup`.
fn matches(line: &str, lookup: Lookup<'_>) -> Option<String> {
    if line.trim_start().starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let fields = split(line);
    let [host, port, db, user, password] = <[String; 5]>::try_from(fields).ok()?;
    let port_text = lookup.port.to_string();
    let ok = |field: &str, value: &str| field == "*" || field == value;
    (ok(&host, lookup.host) && ok(&port, &port_text) && ok(&db, lookup.database) && ok(&user, lookup.user))
        .then_some(password)
}

/// Splits a line at unescaped colons into at most five fields; the last
/// takes the rest of the line.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Lookup<'static> = Lookup { host: "db.example", port: 5432, database: "shop", user: "app" };

    fn file(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let text = "# comment\nother:5432:shop:app:no\ndb.example:5432:*:app:p\\:w\\\\d:x\n*:*:*:*:fallback\n";
        let (_dir, path) = file(text, 0o600);
        assert_eq!(from_file(&path, AT), Found::File(path.clone(), "p:w\\d:x".into()));
        let elsewhere = Lookup { host: "h", port: 1, database: "d", user: "u" };
        assert_eq!(from_file(&path, elsewhere), Found::File(path.clone(), "fallback".into()));
    }

    #[test]
    fn no_line_matches() {
        let (_dir, path) = file("db.example:6543:shop:app:no\n", 0o600);
        assert_eq!(from_file(&path, AT), Found::None(None));
    }

    #[test]
    fn a_file_others_can_read_is_ignored_with_a_warning() {
        let (_dir, path) = file("*:*:*:*:pw\n", 0o644);
        let Found::None(Some(warning)) = from_file(&path, AT) else { panic!("not ignored") };
        assert!(warning.contains("chmod 0600"), "{warning}");
    }
}
