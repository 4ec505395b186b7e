//! The phases of a rehearsal and the clock that tells them apart.
//!
//! - baseline: from the start of the load to the start of the migration;
//! - during: from the start of the migration to its end;
//! - after: from the end of the migration to the end of the run, or to the
//!   start of the rollback when one is rehearsed (`--rollback`);
//! - rollback: from the start of the down migration to its end;
//! - after rollback: from its end to the end of the run.
//!
//! A request belongs to the phase in which it was *due*, so a request due
//! during the migration and stuck behind its lock counts against the
//! migration, however late it completes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// A phase of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the migration.
    Baseline,
    /// While the migration runs.
    During,
    /// After the migration (and before its rollback, if one runs).
    After,
    /// While the rollback (the down migration) runs.
    Rollback,
    /// After the rollback.
    AfterRollback,
}

/// Which of the two migrations of a run a mark is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The migration (the up).
    Migration,
    /// Its rollback (the down), rehearsed after it.
    Rollback,
}

impl Phase {
    /// All phases, in order.
    pub const ALL: [Phase; 5] = [Phase::Baseline, Phase::During, Phase::After, Phase::Rollback, Phase::AfterRollback];

    /// Index into per-phase arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

const UNSET: u64 = u64::MAX;

/// When the load started, and when the migration and its rollback
/// started and ended. Shared by every task of a run; lock-free.
#[derive(Debug)]
pub struct PhaseClock {
    start: Instant,
    /// Start and end of each [`Window`], in nanoseconds from `start`.
    marks: [[AtomicU64; 2]; 2],
}

impl PhaseClock {
    /// A clock whose time zero is `start`.
    pub fn new(start: Instant) -> Self {
        let unset = || [AtomicU64::new(UNSET), AtomicU64::new(UNSET)];
        Self { start, marks: [unset(), unset()] }
    }

    /// Time zero: the start of the load.
    pub fn start(&self) -> Instant {
        self.start
    }

    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Marks the migration (or its rollback) as started now; call before
    /// its first statement is sent.
    pub fn mark_start(&self, window: Window) -> Instant {
        let now = Instant::now();
        self.marks[window as usize][0].store(self.nanos(now), Ordering::SeqCst);
        now
    }

    /// Marks the migration (or its rollback) as ended now.
    pub fn mark_end(&self, window: Window) -> Instant {
        let now = Instant::now();
        self.marks[window as usize][1].store(self.nanos(now), Ordering::SeqCst);
        now
    }

    /// The phase an instant falls in.
    pub fn phase_of(&self, t: Instant) -> Phase {
        let n = self.nanos(t);
        let mark = |w: Window, i: usize| self.marks[w as usize][i].load(Ordering::SeqCst);
        // Each mark, once set, moves the instants at or after it on.
        let before = |m: u64| m == UNSET || n < m;
        if before(mark(Window::Migration, 0)) {
            Phase::Baseline
        } else if before(mark(Window::Migration, 1)) {
            Phase::During
        } else if before(mark(Window::Rollback, 0)) {
            Phase::After
        } else if before(mark(Window::Rollback, 1)) {
            Phase::Rollback
        } else {
            Phase::AfterRollback
        }
    }

    /// Seconds from time zero to `t`.
    pub fn offset(&self, t: Instant) -> f64 {
        crate::units::secs(t.saturating_duration_since(self.start))
    }

    /// When the migration (or its rollback) started and ended, from time
    /// zero.
    pub fn window(&self, window: Window) -> (Option<Duration>, Option<Duration>) {
        let get = |a: &AtomicU64| match a.load(Ordering::SeqCst) {
            UNSET => None,
            n => Some(Duration::from_nanos(n)),
        };
        let [start, end] = &self.marks[window as usize];
        (get(start), get(end))
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
        let s = clock.mark_start(Window::Migration);
        assert_eq!(clock.phase_of(s), Phase::During);
        assert_eq!(clock.phase_of(s - Duration::from_nanos(1)), Phase::Baseline);
        std::thread::sleep(Duration::from_millis(2));
        let e = clock.mark_end(Window::Migration);
        assert_eq!(clock.phase_of(e - Duration::from_micros(500)), Phase::During);
        assert_eq!(clock.phase_of(e), Phase::After);
        std::thread::sleep(Duration::from_millis(2));
        let r = clock.mark_start(Window::Rollback);
        assert_eq!(clock.phase_of(r - Duration::from_micros(500)), Phase::After);
        assert_eq!(clock.phase_of(r), Phase::Rollback);
        std::thread::sleep(Duration::from_millis(2));
        let f = clock.mark_end(Window::Rollback);
        assert_eq!(clock.phase_of(f - Duration::from_micros(500)), Phase::Rollback);
        assert_eq!(clock.phase_of(f), Phase::AfterRollback);
    }
}
