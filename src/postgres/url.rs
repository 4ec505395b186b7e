//! A server the user names with `--url`, such as a staging box. The harness
//! connects to it and creates its tables in the given database; it never
//! prints the password, and it touches nothing it did not create unless
//! the user says `--reuse-existing`.

use std::str::FromStr;

use tokio_postgres::config::Host;

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
        let target = redacted(&config);
        super::probe(&config)
            .await
            .map_err(|e| ProvisionError::Connect { target: target.clone(), reason: e.to_string() })?;
        Ok(Self { config, target })
    }
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
