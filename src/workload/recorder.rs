//! The measurements of one query, fed by its requests from every shard.
//!
//! Each shard records into a slot of its own (per phase: successes,
//! failures by kind; the live view's interval; the seconds still open), so
//! a request touches no cache line that another core writes. Only what is
//! per second crosses shards: the latest second any request started in
//! (one atomic, raised once a second per shard), and a second's histogram
//! once its slot has closed it.
//!
//! A slot closes a second once requests two seconds later have started
//! anywhere and none of its own from that second is still in flight (one
//! second of slack: requests start on several threads, so one due just
//! before a boundary may start after one due just after it). Closed
//! seconds are merged across slots, and a merged second becomes a point of
//! the series once no slot holds that second or an earlier one open. Its
//! histogram is then freed, so memory stays bounded however long the run.
//! A request that starts later than the slack allows is added to its
//! second's point afterwards: to the count, errors and maximum, not to the
//! percentiles.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::shards::PerShard;
use super::stats::{Failure, LiveSample, QueryPhaseStats, SeriesPoint, histogram, ms, quantile_ms};
use crate::clock::Phase;

/// One phase of one slot.
struct PhaseHist {
    ok: Histogram<u64>,
    /// Exact maxima: a histogram's max is its bucket's upper edge.
    ok_max: u64,
    failed: Histogram<u64>,
    failed_max: u64,
    errors: BTreeMap<String, u64>,
}

impl PhaseHist {
    fn new() -> Self {
        Self { ok: histogram(3), ok_max: 0, failed: histogram(3), failed_max: 0, errors: BTreeMap::new() }
    }

    fn absorb(&mut self, other: &PhaseHist) {
        let _ = self.ok.add(&other.ok);
        let _ = self.failed.add(&other.failed);
        self.ok_max = self.ok_max.max(other.ok_max);
        self.failed_max = self.failed_max.max(other.failed_max);
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }
}

/// One second of the series, while it is open.
struct Second {
    ok: Histogram<u64>,
    ok_max: u64,
    count: u64,
    errors: u64,
    inflight: u64,
}

impl Second {
    fn new() -> Self {
        Self { ok: histogram(2), ok_max: 0, count: 0, errors: 0, inflight: 0 }
    }

    fn absorb(&mut self, other: &Second) {
        let _ = self.ok.add(&other.ok);
        self.ok_max = self.ok_max.max(other.ok_max);
        self.count += other.count;
        self.errors += other.errors;
    }

    fn point(&self, second: u64) -> SeriesPoint {
        SeriesPoint {
            second,
            count: self.count,
            errors: self.errors,
            p50_ms: quantile_ms(&self.ok, 0.5, self.ok_max),
            p99_ms: quantile_ms(&self.ok, 0.99, self.ok_max),
            max_ms: (!self.ok.is_empty()).then(|| ms(self.ok_max)),
        }
    }
}

/// What one shard's requests recorded.
struct Slot {
    phases: [PhaseHist; 5],
    /// Completed since the live view last looked.
    live: LiveSample,
    open: BTreeMap<u64, Second>,
    /// The latest second this slot has started a request in.
    through: u64,
}

impl Slot {
    fn oldest_open(&self) -> u64 {
        self.open.keys().next().copied().unwrap_or(u64::MAX)
    }
}

struct Cell {
    slot: Mutex<Slot>,
    /// The slot's oldest open second (`u64::MAX` when none), for merging
    /// without taking its lock.
    oldest_open: AtomicU64,
}

/// Seconds closed by some slots, and the series so far.
#[derive(Default)]
struct Merged {
    pending: BTreeMap<u64, Second>,
    points: Vec<SeriesPoint>,
}

impl Merged {
    /// Adds a slot's closed second, to a point already made if the series
    /// has passed it.
    fn add(&mut self, second: u64, s: Second) {
        let passed = self.points.last().is_some_and(|p| p.second >= second);
        if !passed {
            self.pending.entry(second).or_insert_with(Second::new).absorb(&s);
            return;
        }
        match self.points.binary_search_by_key(&second, |p| p.second) {
            Ok(i) => {
                let p = &mut self.points[i];
                p.count += s.count;
                p.errors += s.errors;
                if !s.ok.is_empty() {
                    p.max_ms = Some(p.max_ms.unwrap_or(0.0).max(ms(s.ok_max)));
                }
            }
            Err(i) => self.points.insert(i, s.point(second)),
        }
    }

    /// Makes points of the pending seconds before `floor`.
    fn finish_before(&mut self, floor: u64) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() >= floor {
                break;
            }
            let (second, s) = entry.remove_entry();
            self.points.push(s.point(second));
        }
    }
}

/// The measurements of one query.
pub struct QueryRecorder {
    cells: PerShard<Cell>,
    /// The latest second in which any slot has started a request.
    issued_through: AtomicU64,
    merged: Mutex<Merged>,
}

impl Default for QueryRecorder {
    /// A recorder with one slot.
    fn default() -> Self {
        Self::with_slots(1)
    }
}

impl QueryRecorder {
    /// A recorder with one slot per shard.
    pub fn with_slots(n: usize) -> Self {
        let cell = |_| Cell {
            slot: Mutex::new(Slot {
                phases: std::array::from_fn(|_| PhaseHist::new()),
                live: LiveSample::default(),
                open: BTreeMap::new(),
                through: 0,
            }),
            oldest_open: AtomicU64::new(u64::MAX),
        };
        Self { cells: PerShard::new(n, cell), issued_through: AtomicU64::new(0), merged: Mutex::default() }
    }

    /// A request due in `second` was issued; returns the slot that records
    /// it, to pass to [`QueryRecorder::completed`].
    pub fn issued(&self, second: u64) -> usize {
        self.issued_on(self.cells.here(), second)
    }

    /// A request due in `second` was issued on slot `index`.
    fn issued_on(&self, index: usize, second: u64) -> usize {
        let cell = self.cells.get(index);
        let mut slot = cell.slot.lock().expect("not poisoned");
        if second > slot.through {
            slot.through = second;
            self.issued_through.fetch_max(second, Ordering::Relaxed);
        }
        match slot.open.get_mut(&second) {
            Some(s) => s.inflight += 1,
            None => {
                slot.open.insert(second, Second { inflight: 1, ..Second::new() });
                cell.oldest_open.store(slot.oldest_open(), Ordering::Relaxed);
            }
        }
        index
    }

    /// A request recorded by `slot`, due in `second` (and in `phase`),
    /// finished after `latency`.
    pub fn completed(&self, slot: usize, phase: Phase, second: u64, latency: Duration, outcome: Result<(), Failure>) {
        let us = (latency.as_micros() as u64).max(1);
        let cell = self.cells.get(slot);
        let mut closed = Vec::new();
        {
            let mut slot = cell.slot.lock().expect("not poisoned");
            let slot = &mut *slot;
            let p = &mut slot.phases[phase.index()];
            let s = slot.open.entry(second).or_insert_with(Second::new);
            s.count += 1;
            s.inflight = s.inflight.saturating_sub(1);
            slot.live.count += 1;
            match outcome {
                Ok(()) => {
                    p.ok.saturating_record(us);
                    p.ok_max = p.ok_max.max(us);
                    s.ok.saturating_record(us);
                    s.ok_max = s.ok_max.max(us);
                    slot.live.ok.saturating_record(us);
                }
                Err(f) => {
                    p.failed.saturating_record(us);
                    p.failed_max = p.failed_max.max(us);
                    *p.errors.entry(f.label()).or_default() += 1;
                    s.errors += 1;
                    slot.live.errors += 1;
                }
            }
            let through = self.issued_through.load(Ordering::Relaxed);
            while let Some(entry) = slot.open.first_entry() {
                if *entry.key() + 1 >= through || entry.get().inflight > 0 {
                    break;
                }
                closed.push(entry.remove_entry());
            }
            if !closed.is_empty() {
                cell.oldest_open.store(slot.oldest_open(), Ordering::Relaxed);
            }
        }
        if !closed.is_empty() {
            self.merge(closed);
        }
    }

    /// Merges seconds a slot closed and makes points of those no slot
    /// holds open any more.
    fn merge(&self, closed: Vec<(u64, Second)>) {
        let mut merged = self.merged.lock().expect("not poisoned");
        for (second, s) in closed {
            merged.add(second, s);
        }
        let floor = self.cells.iter().map(|c| c.oldest_open.load(Ordering::Relaxed)).min().unwrap_or(u64::MAX);
        merged.finish_before(floor);
    }

    /// The statistics of one phase, over every slot.
    pub fn phase(&self, phase: Phase) -> QueryPhaseStats {
        let mut p = PhaseHist::new();
        for cell in self.cells.iter() {
            p.absorb(&cell.slot.lock().expect("not poisoned").phases[phase.index()]);
        }
        let errors: u64 = p.errors.values().sum();
        QueryPhaseStats {
            count: p.ok.len() + errors,
            errors,
            error_kinds: p.errors.clone(),
            p50_ms: quantile_ms(&p.ok, 0.5, p.ok_max),
            p90_ms: quantile_ms(&p.ok, 0.9, p.ok_max),
            p99_ms: quantile_ms(&p.ok, 0.99, p.ok_max),
            p999_ms: quantile_ms(&p.ok, 0.999, p.ok_max),
            max_ms: (!p.ok.is_empty()).then(|| ms(p.ok_max)),
            failed_p99_ms: quantile_ms(&p.failed, 0.99, p.failed_max),
            failed_max_ms: (!p.failed.is_empty()).then(|| ms(p.failed_max)),
        }
    }

    /// The per-second series; closes every second still open, so call it
    /// once the run is over.
    pub fn series(&self) -> Vec<SeriesPoint> {
        let mut closed = Vec::new();
        for cell in self.cells.iter() {
            let mut slot = cell.slot.lock().expect("not poisoned");
            closed.extend(std::mem::take(&mut slot.open));
            cell.oldest_open.store(u64::MAX, Ordering::Relaxed);
        }
        self.merge(closed);
        self.merged.lock().expect("not poisoned").points.clone()
    }

    /// Adds what completed since the last call to `into`, and starts over.
    pub fn drain_live(&self, into: &mut LiveSample) {
        for cell in self.cells.iter() {
            let mut slot = cell.slot.lock().expect("not poisoned");
            let live = &mut slot.live;
            let _ = into.ok.add(&live.ok);
            into.count += live.count;
            into.errors += live.errors;
            live.ok.reset();
            live.count = 0;
            live.errors = 0;
        }
    }

    /// Seconds still held open or waiting to be merged (for tests of
    /// memory bounds).
    pub fn open_seconds(&self) -> usize {
        let open: usize = self.cells.iter().map(|c| c.slot.lock().expect("not poisoned").open.len()).sum();
        open + self.merged.lock().expect("not poisoned").pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records a request on `slot` of `r` through the shard-free API.
    fn on(r: &QueryRecorder, slot: usize, second: u64, latency: Duration, outcome: Result<(), Failure>) {
        let s = r.issued_on(slot % r.cells.count(), second);
        r.completed(s, Phase::Baseline, second, latency, outcome);
    }

    #[test]
    fn percentiles_come_from_successes_and_failures_are_counted_by_kind() {
        let r = QueryRecorder::default();
        for i in 1..=100u64 {
            let slot = r.issued(0);
            r.completed(slot, Phase::Baseline, 0, Duration::from_millis(i), Ok(()));
        }
        let slot = r.issued(0);
        r.completed(slot, Phase::Baseline, 0, Duration::from_secs(2), Err(Failure::PoolTimeout));
        let s = r.phase(Phase::Baseline);
        assert_eq!(s.count, 101);
        assert_eq!(s.errors, 1);
        assert_eq!(s.error_kinds.get("pool_timeout"), Some(&1));
        let p99 = s.p99_ms.unwrap();
        assert!((98.0..=100.5).contains(&p99), "{p99}");
        assert!(s.max_ms.unwrap() < 101.0);
        assert!(s.failed_max_ms.unwrap() >= 1999.0);
        assert_eq!(r.phase(Phase::During).count, 0);
    }

    #[test]
    fn a_second_closes_only_when_passed_and_drained() {
        let r = QueryRecorder::default();
        let a = r.issued(0);
        let b = r.issued(0);
        let c = r.issued(1);
        r.completed(a, Phase::Baseline, 0, Duration::from_millis(1), Ok(()));
        r.completed(b, Phase::Baseline, 0, Duration::from_secs(9), Ok(()));
        // drained, but only one second has passed: a late starter of
        // second 0 may still come
        assert_eq!(r.open_seconds(), 2);
        let _ = r.issued(2);
        r.completed(c, Phase::Baseline, 1, Duration::from_millis(1), Ok(()));
        // second 0 closes; second 1 is drained but not two seconds old
        assert_eq!(r.open_seconds(), 2);
        let series = r.series();
        assert_eq!(series[0].second, 0);
        assert_eq!(series[0].count, 2);
        assert!(series[0].max_ms.unwrap() >= 8900.0);
        assert_eq!(series[1].count, 1);
        assert_eq!(series[2].count, 0); // issued, never completed
    }

    #[test]
    fn slots_merge_into_one_series_and_one_set_of_phases() {
        let r = QueryRecorder::with_slots(2);
        // slot 0: 1 ms requests; slot 1: 3 ms requests, in seconds 0..10
        for second in 0..10u64 {
            for i in 0..50 {
                on(&r, 0, second, Duration::from_millis(1), Ok(()));
                on(&r, 1, second, Duration::from_millis(3), if i == 0 { Err(Failure::LockTimeout) } else { Ok(()) });
            }
        }
        // seconds up to 7 are closed on both slots and merged as they go
        assert!(r.open_seconds() <= 4, "{}", r.open_seconds());
        let series = r.series();
        assert_eq!(series.len(), 10);
        for (i, p) in series.iter().enumerate() {
            assert_eq!(p.second, i as u64);
            assert_eq!(p.count, 100, "{p:?}");
            assert_eq!(p.errors, 1);
            // half the successes at 1 ms, half at 3 ms: the median of the
            // merged histogram is 1 ms, its p99 3 ms
            assert!((0.99..1.02).contains(&p.p50_ms.unwrap()), "{p:?}");
            assert!((2.9..3.05).contains(&p.p99_ms.unwrap()), "{p:?}");
        }
        let phase = r.phase(Phase::Baseline);
        assert_eq!(phase.count, 1000);
        assert_eq!(phase.error_kinds.get("lock_timeout"), Some(&10));
        assert!((2.9..3.01).contains(&phase.max_ms.unwrap()));
    }

    #[test]
    fn an_idle_slot_does_not_hold_the_series_back() {
        let r = QueryRecorder::with_slots(2);
        for second in 0..100u64 {
            on(&r, 0, second, Duration::from_millis(1), Ok(()));
        }
        assert!(r.open_seconds() <= 3, "{}", r.open_seconds());
    }

    #[test]
    fn a_late_starter_adds_to_its_seconds_point() {
        let r = QueryRecorder::with_slots(2);
        for second in 0..5u64 {
            on(&r, 0, second, Duration::from_millis(1), Ok(()));
        }
        // second 1 is a point already; a request due in it starts late on
        // the other slot
        on(&r, 1, 1, Duration::from_millis(40), Err(Failure::Unfinished));
        on(&r, 1, 1, Duration::from_millis(50), Ok(()));
        let series = r.series();
        assert_eq!(series.iter().filter(|p| p.second == 1).count(), 1);
        let p = &series[1];
        assert_eq!((p.count, p.errors), (3, 1));
        assert!(p.max_ms.unwrap() >= 49.9);
    }
}
