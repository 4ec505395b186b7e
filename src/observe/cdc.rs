//! A change-data-capture consumer, as Debezium or a Kafka connector is: a
//! logical replication slot created before the load starts and read by the
//! harness at a set pace (`[cdc] rate`, changes per second; as fast as it
//! can without one), so that what the migration makes a connector go
//! through shows: the WAL the slot holds back (`restart_lsn`) and how far
//! its consumer is behind (`confirmed_flush_lsn`, measured as replica lag
//! is; see [`super::lag`]).
//!
//! Each read peeks at what the slot has (whole transactions, as logical
//! decoding hands them over), spends the time the pace gives that many
//! changes, and only then consumes them up to the last one peeked, so the
//! slot's position moves when a connector's would: a transaction of 30,000
//! changes at 2,000 changes/s holds the position for 15 s. The server
//! decodes each change twice (peek, then consume), which a connector does
//! not.
//!
//! The slot is temporary: it belongs to the consumer's session, and goes
//! with it however the run ends, a SIGKILL included. With `pgoutput`, the
//! harness publishes every table (`CREATE PUBLICATION … FOR ALL TABLES`),
//! on a server it started only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::postgres::{Role, connect};
use crate::scenario::{CdcPlugin, CdcSpec};
use crate::workload::Signal;

/// The slot's name.
pub const SLOT: &str = "rehearse_cdc";

/// How often the consumer reads the slot.
const POLL: Duration = Duration::from_millis(100);

/// The slot's consumer position, read on the primary, for the lag
/// observer.
pub const CONFIRMED_LSN: &str = "SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::float8 \
     FROM pg_replication_slots WHERE slot_name = 'rehearse_cdc'";

/// What the consumer did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Default)]
pub struct CdcStats {
    /// Changes read from the slot (rows of `pg_logical_slot_get_changes`:
    /// each change, and each transaction's BEGIN and COMMIT).
    pub changes: u64,
    /// The most WAL the slot held back at once (from its `restart_lsn`),
    /// in bytes.
    pub max_retained_bytes: u64,
    /// Reads of the slot that failed.
    pub failed_reads: u64,
}

/// A running consumer; dropping it ends its session, and the slot with it.
pub struct CdcConsumer {
    stats: Arc<Mutex<CdcStats>>,
    stop: Signal,
    task: tokio::task::JoinHandle<()>,
}

impl CdcConsumer {
    /// Creates the slot (and, for `pgoutput`, the publication) on a session
    /// of its own and starts reading it.
    pub async fn start(config: &tokio_postgres::Config, spec: &CdcSpec) -> Result<CdcConsumer, String> {
        let client = connect(config, &Role::Observer).await.map_err(|e| crate::postgres::describe(&e))?;
        let fail = |e: tokio_postgres::Error| crate::postgres::describe(&e);
        if spec.plugin == CdcPlugin::Pgoutput {
            let exists = client
                .query_opt("SELECT 1 FROM pg_publication WHERE pubname = 'rehearse_cdc'", &[])
                .await
                .map_err(fail)?;
            if exists.is_none() {
                client.batch_execute("CREATE PUBLICATION rehearse_cdc FOR ALL TABLES").await.map_err(fail)?;
            }
        }
        client
            .query_one("SELECT pg_create_logical_replication_slot($1, $2, true)", &[&SLOT, &spec.plugin.name()])
            .await
            .map_err(|e| format!("creating the CDC slot: {}", fail(e)))?;
        let (peek, get) = match spec.plugin {
            CdcPlugin::TestDecoding => (
                "SELECT count(*), max(lsn)::text FROM pg_logical_slot_peek_changes('rehearse_cdc', NULL, $1)",
                "SELECT count(*) FROM pg_logical_slot_get_changes('rehearse_cdc', $1::text::pg_lsn, NULL)",
            ),
            CdcPlugin::Pgoutput => (
                "SELECT count(*), max(lsn)::text FROM pg_logical_slot_peek_binary_changes('rehearse_cdc', NULL, $1, \
                 'proto_version', '1', 'publication_names', 'rehearse_cdc')",
                "SELECT count(*) FROM pg_logical_slot_get_binary_changes('rehearse_cdc', $1::text::pg_lsn, NULL, \
                 'proto_version', '1', 'publication_names', 'rehearse_cdc')",
            ),
        };
        let peek = client.prepare(peek).await.map_err(fail)?;
        let get = client.prepare(get).await.map_err(fail)?;
        let retained = client
            .prepare(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 \
                 FROM pg_replication_slots WHERE slot_name = 'rehearse_cdc'",
            )
            .await
            .map_err(fail)?;
        let stats = Arc::new(Mutex::new(CdcStats::default()));
        let stop = Signal::new();
        let (shared, stopped, rate) = (stats.clone(), stop.clone(), spec.rate);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.fired() => break,
                }
                // Look at what is there (whole transactions, about a
                // second's worth at the pace), take the time the pace
                // gives it, then confirm it: the slot's position moves only
                // once the changes are through, as a connector's does.
                let upto: Option<i32> = rate.map(|r| r.ceil().min(i32::MAX as f64) as i32);
                let seen = client.query_one(&peek, &[&upto]).await;
                let read = match seen {
                    Ok(row) if row.get::<_, i64>(0) == 0 => Ok(0),
                    Ok(row) => {
                        let (n, last): (i64, Option<String>) = (row.get(0), row.get(1));
                        if let Some(r) = rate {
                            // Busy with them; the WAL the slot holds back
                            // meanwhile is still sampled every poll.
                            let until = Instant::now() + Duration::from_secs_f64(n as f64 / r);
                            while Instant::now() < until {
                                tokio::select! {
                                    _ = tokio::time::sleep(POLL.min(until - Instant::now())) => {}
                                    _ = stopped.fired() => break,
                                }
                                note_retained(&client, &retained, &shared).await;
                            }
                            if stopped.is_fired() {
                                break;
                            }
                        }
                        client.query_one(&get, &[&last]).await.map(|row| row.get::<_, i64>(0))
                    }
                    Err(e) => Err(e),
                };
                note_retained(&client, &retained, &shared).await;
                let mut s = shared.lock().expect("not poisoned");
                match read {
                    Ok(n) => s.changes += n as u64,
                    Err(_) => s.failed_reads += 1,
                }
            }
        });
        Ok(CdcConsumer { stats, stop, task })
    }

    /// Stops reading and returns what was read; the slot goes with the
    /// session.
    pub async fn finish(mut self) -> CdcStats {
        self.stop.fire();
        if tokio::time::timeout(Duration::from_secs(2), &mut self.task).await.is_err() {
            self.task.abort();
        }
        self.stats.lock().expect("not poisoned").clone()
    }
}

/// Notes the WAL the slot holds back now, if it is the most yet.
async fn note_retained(client: &tokio_postgres::Client, sql: &tokio_postgres::Statement, into: &Mutex<CdcStats>) {
    let held = client.query_opt(sql, &[]).await.ok().flatten().and_then(|r| r.get::<_, Option<f64>>(0));
    let mut s = into.lock().expect("not poisoned");
    s.max_retained_bytes = s.max_retained_bytes.max(held.unwrap_or(0.0) as u64);
}

impl Drop for CdcConsumer {
    fn drop(&mut self) {
        self.stop.fire();
        self.task.abort();
    }
}
