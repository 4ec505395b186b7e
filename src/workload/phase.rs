//! The three phases of a rehearsal and the clock that tells them apart.
//!
//! - baseline: from the start of the load to the start of the migration;
//! - during: from the start of the migration to its end;
//! - after: from the end of the migration to the end of the run.
//!
//! A request belongs to the phase in which it was *due*, so a request due
//! during the migration and stuck behind its lock counts against the
//! migration, however late it completes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// A phase of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the migration.
    Baseline,
    /// While the migration runs.
    During,
    /// After the migration.
    After,
}

impl Phase {
    /// All phases, in order.
    pub const ALL: [Phase; 3] = [Phase::Baseline, Phase::During, Phase::After];

    /// Index into per-phase arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

const UNSET: u64 = u64::MAX;

/// When the load started and when the migration started and ended.
/// Shared by every task of a run; lock-free.
#[derive(Debug)]
pub struct PhaseClock {
    start: Instant,
    migration_start: AtomicU64,
    migration_end: AtomicU64,
}

impl PhaseClock {
    /// A clock whose time zero is `start`.
    pub fn new(start: Instant) -> Self {
        Self { start, migration_start: AtomicU64::new(UNSET), migration_end: AtomicU64::new(UNSET) }
    }

    /// Time zero: the start of the load.
    pub fn start(&self) -> Instant {
        self.start
    }

    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Marks the migration as started now; call before its first statement
    /// is sent.
    pub fn mark_migration_start(&self) -> Instant {
        let now = Instant::now();
        self.migration_start.store(self.nanos(now), Ordering::SeqCst);
        now
    }

    /// Marks the migration as ended now.
    pub fn mark_migration_end(&self) -> Instant {
        let now = Instant::now();
        self.migration_end.store(self.nanos(now), Ordering::SeqCst);
        now
    }

    /// The phase an instant falls in.
    pub fn phase_of(&self, t: Instant) -> Phase {
        let n = self.nanos(t);
        let start = self.migration_start.load(Ordering::SeqCst);
        let end = self.migration_end.load(Ordering::SeqCst);
        if start == UNSET || n < start {
            Phase::Baseline
        } else if end == UNSET || n < end {
            Phase::During
        } else {
            Phase::After
        }
    }

    /// Seconds from time zero to `t`.
    pub fn offset(&self, t: Instant) -> f64 {
        crate::units::secs(t.saturating_duration_since(self.start))
    }

    /// When the migration started and ended, from time zero.
    pub fn migration_window(&self) -> (Option<Duration>, Option<Duration>) {
        let get = |a: &AtomicU64| match a.load(Ordering::SeqCst) {
            UNSET => None,
            n => Some(Duration::from_nanos(n)),
        };
        (get(&self.migration_start), get(&self.migration_end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_migration_marks() {
        let t0 = Instant::now();
        let clock = PhaseClock::new(t0);
        assert_eq!(clock.phase_of(t0 + Duration::from_secs(100)), Phase::Baseline);
        let s = clock.mark_migration_start();
        assert_eq!(clock.phase_of(s), Phase::During);
        assert_eq!(clock.phase_of(s - Duration::from_nanos(1)), Phase::Baseline);
        std::thread::sleep(Duration::from_millis(2));
        let e = clock.mark_migration_end();
        assert_eq!(clock.phase_of(e - Duration::from_micros(500)), Phase::During);
        assert_eq!(clock.phase_of(e), Phase::After);
    }
}
