//! The pooler in the path: PgBouncer's clients waiting for a server
//! connection, per phase and per second, beside the server's lock waits
//! the lock observer reports.

use std::fmt::Write;

use serde::Serialize;

use super::terminal::dur as human_ms;
use crate::clock::Phase;
use crate::observe::pooler::{PoolSample, PoolerPhase, PoolerPoint, summarise};
use crate::postgres::PoolMode;
use crate::units::millis;

/// What the run measured of its pooler.
pub struct PoolerRun {
    /// `PgBouncer 1.18.0`.
    pub version: String,
    /// Its pool mode.
    pub mode: PoolMode,
    /// Server connections per database and user.
    pub pool_size: u32,
    /// `SHOW POOLS`, read over the run.
    pub samples: Vec<PoolSample>,
    /// Readings that failed.
    pub failed: u64,
}

/// The pooler's section of the report.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PoolerReport {
    /// `PgBouncer 1.18.0`.
    pub version: String,
    /// `transaction` or `session`.
    pub mode: PoolMode,
    /// Server connections per database and user (`default_pool_size`).
    pub pool_size: u32,
    /// Time between readings of `SHOW POOLS`, in milliseconds.
    pub interval_ms: f64,
    /// Readings taken.
    pub samples: usize,
    /// Readings that failed.
    pub failed_samples: u64,
    /// The most clients waiting for a server connection at once, over the
    /// run.
    pub max_waiting_clients: u64,
    /// The longest any client waited for one, in milliseconds.
    pub max_wait_ms: f64,
    /// Per phase.
    pub phases: Vec<PoolerPhase>,
    /// Per second.
    pub series: Vec<PoolerPoint>,
}

/// The report of `run` over `phases` (`(phase, start, end)` in seconds).
pub(super) fn build(run: PoolerRun, phases: &[(Phase, f64, f64)]) -> PoolerReport {
    let (per_phase, series) = summarise(&run.samples, phases);
    PoolerReport {
        version: run.version,
        mode: run.mode,
        pool_size: run.pool_size,
        interval_ms: millis(crate::observe::pooler::POOLER_INTERVAL),
        samples: run.samples.len(),
        failed_samples: run.failed,
        max_waiting_clients: run.samples.iter().map(|s| s.waiting).max().unwrap_or(0),
        max_wait_ms: run.samples.iter().map(|s| s.max_wait_ms).fold(0.0, f64::max),
        phases: per_phase,
        series,
    }
}

/// The terminal section, when a pooler was in the path.
pub(super) fn render(w: &mut String, pooler: Option<&PoolerReport>) {
    let Some(p) = pooler else { return };
    let _ = writeln!(
        w,
        "\nPOOLER  {}, {} mode, {} server connections · SHOW POOLS every {}, {} readings",
        p.version,
        p.mode.name(),
        p.pool_size,
        human_ms(p.interval_ms),
        p.samples
    );
    if p.samples == 0 {
        let _ = writeln!(w, "  not measured: no reading of SHOW POOLS succeeded ({} failed)", p.failed_samples);
        return;
    }
    let _ = writeln!(
        w,
        "  {:<10} {:>24} {:>16} {:>28}",
        "phase", "clients waiting (max)", "longest wait", "server connections in use"
    );
    for ph in &p.phases {
        let _ = writeln!(
            w,
            "  {:<10} {:>24} {:>16} {:>28}",
            super::replication::phase_name(ph.phase),
            ph.max_waiting_clients,
            human_ms(ph.max_wait_ms),
            ph.max_servers_active
        );
    }
    if p.max_waiting_clients > 0 {
        let _ = writeln!(
            w,
            "  requests waited in the pooler for a server connection: up to {} clients at once, the longest {}",
            p.max_waiting_clients,
            human_ms(p.max_wait_ms)
        );
    }
    if p.failed_samples > 0 {
        let _ = writeln!(w, "  {} readings of SHOW POOLS failed", p.failed_samples);
    }
}
