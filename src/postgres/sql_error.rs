//! A SQL error as the user needs to see it: SQLSTATE, message, and the
//! position in the statement Postgres pointed at.

use std::fmt;

use serde::Serialize;
use tokio_postgres::error::ErrorPosition;

/// An error from the server (or the connection), flattened for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SqlError {
    /// The five-character SQLSTATE; `None` when the error did not come from
    /// the server (a dropped connection, say).
    pub sqlstate: Option<String>,
    /// The primary message.
    pub message: String,
    /// 1-based character position in the statement, when Postgres gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// DETAIL, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// HINT, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl SqlError {
    /// Flattens a driver error.
    pub fn from_pg(e: &tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => SqlError {
                sqlstate: Some(db.code().code().to_string()),
                message: db.message().to_string(),
                position: match db.position() {
                    Some(ErrorPosition::Original(p)) => Some(*p),
                    _ => None,
                },
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
            },
            None => SqlError { sqlstate: None, message: describe(e), position: None, detail: None, hint: None },
        }
    }

    /// An error the harness itself raises (no SQLSTATE), such as a
    /// statement abandoned because the server stopped.
    pub fn harness(message: impl Into<String>) -> Self {
        SqlError { sqlstate: None, message: message.into(), position: None, detail: None, hint: None }
    }

    /// Whether the session was lost: no SQLSTATE (the socket closed), or
    /// the server ending it (57P01 admin shutdown, 57P02 crash shutdown,
    /// 57P03 cannot connect now) or a connection exception (08…).
    pub fn is_connection_lost(&self) -> bool {
        match self.sqlstate.as_deref() {
            None => true,
            Some(code) => matches!(code, "57P01" | "57P02" | "57P03") || code.starts_with("08"),
        }
    }

    /// Whether the error is the given SQLSTATE.
    pub fn is(&self, sqlstate: &str) -> bool {
        self.sqlstate.as_deref() == Some(sqlstate)
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sqlstate {
            Some(code) => write!(f, "ERROR {code}: {}", self.message)?,
            None => write!(f, "{}", self.message)?,
        }
        if let Some(p) = self.position {
            write!(f, " (at character {p})")?;
        }
        if let Some(d) = &self.detail {
            write!(f, "; DETAIL: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; HINT: {h}")?;
        }
        Ok(())
    }
}

/// A driver error with its whole chain of causes: tokio-postgres' own
/// message names only the kind ("db error", "error connecting to server").
pub fn describe(e: &tokio_postgres::Error) -> String {
    if e.as_db_error().is_some() {
        return SqlError::from_pg(e).to_string();
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// Why a session could not be opened, in the user's terms: the server's
/// error with its SQLSTATE, or a missing password said as such, with where
/// the password came from (`password_from`) when the server refused it.
pub fn connect_error(e: &tokio_postgres::Error, password_from: Option<&str>) -> String {
    const HOW: &str = "give it in PGPASSWORD, a ~/.pgpass file (PGPASSFILE) or a URL in --url-file";
    let text = describe(e);
    if text.contains("password missing") {
        return format!("the server asks for a password and none was given: {HOW}");
    }
    match (e.as_db_error().map(|d| d.code().code()), password_from) {
        (Some("28P01"), Some(from)) => format!("{text} (the password came from {from})"),
        (Some("28P01"), None) => format!("{text}; no password was given: {HOW}"),
        _ => text,
    }
}

/// SQLSTATE of `lock_timeout` expiring.
pub const LOCK_NOT_AVAILABLE: &str = "55P03";
/// SQLSTATE of a cancelled statement (`statement_timeout`, cancel request).
pub const QUERY_CANCELED: &str = "57014";
