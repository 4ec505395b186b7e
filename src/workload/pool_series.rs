//! The application pool's fill over the run, for the charts: connections
//! checked out and requests queued for one, sampled every 100 ms and kept
//! as the most of each second.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Pool, Signal};

/// Time between samples.
pub const EVERY: Duration = Duration::from_millis(100);

/// One second of the pool's fill.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq)]
pub struct PoolPoint {
    /// Seconds from the start of the load.
    pub second: u64,
    /// The most connections checked out in a sample of that second.
    pub max_in_use: usize,
    /// The most requests queued for a connection in a sample of it.
    pub max_queued: usize,
}

/// Samples `pool` from `start` until `stop` fires, into `out`.
pub(super) async fn sample(pool: Arc<Pool>, start: Instant, stop: Signal, out: Arc<Mutex<Vec<PoolPoint>>>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.fired() => return,
            _ = tick.tick() => {}
        }
        let second = start.elapsed().as_secs();
        let (in_use, queued) = (pool.in_use(), pool.queued());
        let mut points = out.lock().unwrap_or_else(|p| p.into_inner());
        match points.last_mut() {
            Some(p) if p.second == second => {
                p.max_in_use = p.max_in_use.max(in_use);
                p.max_queued = p.max_queued.max(queued);
            }
            _ => points.push(PoolPoint { second, max_in_use: in_use, max_queued: queued }),
        }
    }
}
