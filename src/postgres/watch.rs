//! Watching the server itself, so that a server that dies mid-run is
//! reported as the fault it is (exit 3, "the server stopped", and when),
//! never as a failed migration or a verdict on a half-run rehearsal.
//!
//! A session of its own asks for `pg_postmaster_start_time()` every quarter
//! of a second. When that session breaks, the watch tries to connect again:
//! refused, the server stopped; accepted with another start time, the
//! server crashed and restarted (every session was ended); accepted with
//! the same, only this session was ended (by a DBA, say) and the watch
//! goes on. A query that merely hangs (a frozen server) is no verdict: the
//! lock observer reports that time as a gap. Where the backend can tell
//! directly (the local backend's postmaster is a child of the harness), its
//! exit is noticed at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use super::{Role, connect};
use crate::workload::Signal;

/// How often the server is looked at.
const EVERY: Duration = Duration::from_millis(250);
/// Connection attempts after the session broke, before the server counts
/// as stopped.
const RECONNECTS: u32 = 3;

/// What went wrong with the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// It stopped and does not accept sessions.
    ServerStopped,
    /// It crashed and restarted: every session was ended.
    ServerRestarted,
}

/// A fault of the server, when it was noticed, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What happened.
    pub kind: FaultKind,
    /// When it was noticed.
    pub at: Instant,
    /// What the harness saw.
    pub detail: String,
}

/// A probe of the server's process where the backend has one: `Some(how)`
/// once it has exited.
pub type ExitProbe = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// A running watch; dropping it stops watching.
pub struct ServerWatch {
    fault: Arc<Mutex<Option<Fault>>>,
    fired: Signal,
    task: tokio::task::JoinHandle<()>,
}

impl ServerWatch {
    /// Connects and starts watching.
    pub async fn start(
        config: &tokio_postgres::Config,
        exited: Option<ExitProbe>,
    ) -> Result<ServerWatch, tokio_postgres::Error> {
        let client = connect(config, &Role::Harness).await?;
        let started = start_time(&client).await?;
        let (fault, fired) = (Arc::new(Mutex::new(None)), Signal::new());
        let (f, s, config) = (fault.clone(), fired.clone(), config.clone());
        let task = tokio::spawn(async move {
            let found = watch(client, &config, started, exited).await;
            *f.lock().expect("not poisoned") = Some(found);
            s.fire();
        });
        Ok(ServerWatch { fault, fired, task })
    }

    /// A signal that fires when a fault is found.
    pub fn signal(&self) -> Signal {
        self.fired.clone()
    }

    /// The fault, once one was found.
    pub fn fault(&self) -> Option<Fault> {
        self.fault.lock().expect("not poisoned").clone()
    }
}

impl Drop for ServerWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_time(client: &Client) -> Result<String, tokio_postgres::Error> {
    let row = client.query_one("SELECT pg_postmaster_start_time()::text", &[]).await?;
    Ok(row.get(0))
}

/// Watches until a fault, and returns it.
async fn watch(
    mut client: Client,
    config: &tokio_postgres::Config,
    started: String,
    exited: Option<ExitProbe>,
) -> Fault {
    let fault = |kind, detail: String| Fault { kind, at: Instant::now(), detail };
    loop {
        tokio::time::sleep(EVERY).await;
        if let Some(how) = exited.as_ref().and_then(|probe| probe()) {
            return fault(FaultKind::ServerStopped, how);
        }
        // A server that does not answer is not a verdict; a broken session is.
        match tokio::time::timeout(EVERY * 4, start_time(&client)).await {
            Ok(Ok(_)) | Err(_) => continue,
            Ok(Err(_)) if !client.is_closed() => continue,
            Ok(Err(_)) => {}
        }
        let mut reconnected = None;
        let mut last_error = String::new();
        for _ in 0..RECONNECTS {
            if let Some(how) = exited.as_ref().and_then(|probe| probe()) {
                return fault(FaultKind::ServerStopped, how);
            }
            match connect(config, &Role::Harness).await {
                Ok(c) => {
                    reconnected = Some(c);
                    break;
                }
                Err(e) => last_error = super::describe(&e),
            }
            tokio::time::sleep(EVERY).await;
        }
        let Some(c) = reconnected else {
            return fault(FaultKind::ServerStopped, format!("it accepts no session: {last_error}"));
        };
        match start_time(&c).await {
            Ok(now) if now == started => client = c,
            Ok(now) => return fault(FaultKind::ServerRestarted, format!("it started again at {now}")),
            Err(e) => return fault(FaultKind::ServerStopped, super::describe(&e)),
        }
    }
}
