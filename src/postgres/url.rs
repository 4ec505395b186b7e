//! A server the user names with `--url`, such as a staging box. The harness
//! connects to it and creates its tables in the given database; it never
//! prints the password, and it touches nothing it did not create unless
//! the user says `--reuse-existing`. A URL without a password takes one
//! from `PGPASSWORD` or a password file, as `psql` does (see
//! [`super::passfile`]).

use std::str::FromStr;

use tokio_postgres::config::Host;

use super::passfile::{self, Found, Lookup};
use super::{BackendKind, CONNECT_TIMEOUT, ProvisionError, Server};

/// A server reached through a connection URL.
pub struct UrlServer {
    config: tokio_postgres::Config,
    target: String,
}

/// The URL without its password: `postgres://user@host:port/db`.
pub fn redacted(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(h, p)| match h {
            Host::Tcp(h) => format!("{h}:{p}"),
            Host::Unix(path) => format!("{}:{p}", path.display()),
        })
        .collect();
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() { String::new() } else { format!("{user}@") };
    format!("postgres://{at}{}/{db}", hosts.join(","))
}

impl UrlServer {
    /// Parses the URL and checks that the server answers.
    pub async fn open(url: &str) -> Result<Self, ProvisionError> {
        // tokio-postgres' own parse errors never echo the URL, so they
        // cannot leak its password.
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| ProvisionError::BadUrl(e.to_string()))?;
        if config.get_hosts().is_empty() {
            return Err(ProvisionError::BadUrl("the URL names no host".into()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let source = fill_password(&mut config);
        let target = redacted(&config);
        super::probe(&config).await.map_err(|e| ProvisionError::Connect {
            target: target.clone(),
            reason: super::connect_error(&e, source.as_deref()),
        })?;
        Ok(Self { config, target })
    }
}

/// Takes the password from `PGPASSWORD` or a password file when the URL
/// holds none; returns where it came from, for error messages. A password
/// file that is ignored says why on stderr.
pub fn fill_password(config: &mut tokio_postgres::Config) -> Option<String> {
    if config.get_password().is_some() {
        return Some("the URL".into());
    }
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let user = config.get_user().map_or_else(default_user, str::to_string);
    if config.get_user().is_none() {
        config.user(&user);
    }
    let lookup = Lookup {
        host: &host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        database: config.get_dbname().unwrap_or(&user),
        user: &user,
    };
    match passfile::find(lookup) {
        Found::Env(pw) => {
            config.password(pw);
            Some("PGPASSWORD".into())
        }
        Found::File(path, pw) => {
            config.password(pw);
            Some(path.display().to_string())
        }
        Found::None(warning) => {
            if let Some(w) = warning {
                eprintln!("rehearse: {w}");
            }
            None
        }
    }
}

/// The user libpq would connect as: the operating system's.
fn default_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "postgres".into())
}

impl Server for UrlServer {
    fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
    fn backend(&self) -> BackendKind {
        BackendKind::Url
    }
    fn target(&self) -> String {
        self.target.clone()
    }
    fn is_throwaway(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_the_password() {
        let config = tokio_postgres::Config::from_str("postgres://app:s3cret@db.example:6432/shop").unwrap();
        let shown = redacted(&config);
        assert_eq!(shown, "postgres://app@db.example:6432/shop");
        assert!(!shown.contains("s3cret"));
    }
}
