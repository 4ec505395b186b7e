//! Where Postgres comes from, as the flags say: `--backend`, `--pg-image`,
//! `--url` or `--url-file`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::postgres;
use crate::rehearsal::UsageError;

/// Where Postgres comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// Docker when a daemon answers and the image is there (or can be
    /// pulled), else local.
    Auto,
    /// A throwaway cluster from this machine's PostgreSQL binaries.
    Local,
    /// A throwaway container (testcontainers), of --pg-image or the
    /// scenario's image or version.
    Docker,
    /// A server you name with --url (e.g. staging).
    Url,
}

/// Where Postgres comes from, for `run` and `generate`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where Postgres comes from (default: auto, or url when --url is given).
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// The container image (docker backend); repeat it to rehearse on
    /// several servers, one after another, side by side in the report.
    #[arg(long = "pg-image", value_name = "IMAGE")]
    pub pg_images: Vec<String>,
    /// Connection URL of an existing server (with --backend url). A
    /// password in it is visible to every user of the machine while the
    /// run lasts: prefer PGPASSWORD, ~/.pgpass or --url-file.
    #[arg(long, conflicts_with = "url_file")]
    pub url: Option<String>,
    /// A file whose first line is the connection URL (keep it mode 0600).
    #[arg(long, value_name = "PATH")]
    pub url_file: Option<PathBuf>,
}

/// Reads the URL of `--url-file`: its first line that is not empty.
pub(super) fn url_from_file(path: &std::path::Path) -> Result<String, UsageError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| UsageError(format!("--url-file {shown}: {e}")))?;
    if !meta.is_file() || meta.len() > 64 * 1024 {
        return Err(UsageError(format!("--url-file {shown}: not a small plain file holding a URL")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| UsageError(format!("--url-file {shown}: {e}")))?;
    let url = text.lines().map(str::trim).find(|l| !l.is_empty());
    url.map(str::to_string).ok_or_else(|| UsageError(format!("--url-file {shown} is empty")))
}

/// Says, once, that a password on the command line can be read by others.
pub(super) fn warn_if_password_in(flag: &str, url: &str) {
    let has_password =
        std::str::FromStr::from_str(url).is_ok_and(|c: tokio_postgres::Config| c.get_password().is_some());
    if has_password {
        eprintln!(
            "rehearse: warning: the password in {flag} can be read by every user of this machine while the run lasts (/proc/PID/cmdline); prefer PGPASSWORD, ~/.pgpass or --url-file"
        );
    }
}

impl ServerArgs {
    /// The backend asked for, with `--url` (or `--url-file`) implying `url`.
    pub(super) fn requested(&self) -> Result<postgres::BackendArg, UsageError> {
        let url = match (&self.url, &self.url_file) {
            (Some(url), _) => {
                warn_if_password_in("--url", url);
                Some(url.clone())
            }
            (None, Some(path)) => Some(url_from_file(path)?),
            (None, None) => None,
        };
        Ok(match (self.backend, &url) {
            (Some(BackendArg::Url) | None, Some(url)) => postgres::BackendArg::Url(url.clone()),
            (Some(BackendArg::Url), None) => {
                return Err(UsageError("--backend url needs --url postgres://... or --url-file PATH".into()));
            }
            (Some(_), Some(_)) => return Err(UsageError("--url goes with --backend url".into())),
            (Some(BackendArg::Local), None) => postgres::BackendArg::Local,
            (Some(BackendArg::Docker), None) => postgres::BackendArg::Docker,
            (Some(BackendArg::Auto) | None, None) => postgres::BackendArg::Auto,
        })
    }
}
