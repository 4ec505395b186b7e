//! The observer's arithmetic on synthetic samples: examples, and
//! properties over random sequences of waits, jitter and gaps.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::sample::Backend;
use super::state::{State, union_within};
use crate::postgres::Role;

const MS: Duration = Duration::from_millis(1);
const INTERVAL: Duration = Duration::from_millis(20);

fn waiting(pid: i32, role: Role, blockers: Vec<i32>, wait_ms: f64, start_us: Option<i64>) -> Backend {
    Backend {
        pid,
        session: pid,
        role,
        waiting_for: Some(("orders".into(), "AccessShareLock".into())),
        blockers,
        wait_ms: Some(wait_ms),
        wait_start_us: start_us,
        query: String::new(),
    }
}

fn idle(pid: i32, session: i32, role: Role, query: &str) -> Backend {
    Backend {
        pid,
        session,
        role,
        waiting_for: None,
        blockers: vec![],
        wait_ms: None,
        wait_start_us: None,
        query: query.into(),
    }
}

#[test]
fn edges_and_longest_waits_follow_the_samples() {
    let t0 = Instant::now();
    let mut s = State::new(t0, INTERVAL);
    let report = Role::Interference("report".into());
    let mut mig = waiting(2, Role::Migration, vec![1], 100.0, Some(1));
    mig.waiting_for = Some(("orders".into(), "AccessExclusiveLock".into()));
    s.ingest(t0 + Duration::from_secs(1), &[idle(1, 1, report.clone(), "SELECT pg_sleep"), mig.clone()]);
    mig.wait_ms = Some(1100.0);
    s.ingest(
        t0 + Duration::from_secs(2),
        &[
            idle(1, 1, report, "SELECT pg_sleep"),
            mig,
            waiting(3, Role::Workload, vec![2], 400.0, Some(5)),
            waiting(4, Role::Workload, vec![2], 300.0, Some(6)),
        ],
    );
    let summary = s.finish(t0 + Duration::from_secs(2));
    assert_eq!(summary.max_waiting, 3);
    // The second sample is a second after the first, and more than the
    // gap threshold: the migration's wait spans a gap.
    assert!((summary.longest_wait_ms - 1100.0).abs() < 1.0, "{}", summary.longest_wait_ms);
    assert!(summary.longest_wait_spans_gap);
    assert!((summary.workload_longest_wait_ms - 400.0).abs() < 1.0);
    let e = summary.blocking.iter().find(|e| e.waiter == "workload").unwrap();
    assert_eq!((e.blocker.as_str(), e.max_waiters), ("migration", 2));
    let m = summary.blocking.iter().find(|e| e.waiter == "migration").unwrap();
    assert_eq!(m.blocker, "interference report");
    assert_eq!(m.blocker_query, "SELECT pg_sleep");
}

#[test]
fn a_wait_behind_a_parallel_query_is_one_waiter_and_its_workers_one_wait() {
    let t0 = Instant::now();
    let mut s = State::new(t0, INTERVAL);
    let report = Role::Interference("report".into());
    // The report: leader 10, workers 11 and 12. The migration waits
    // behind all three; a workload request waits behind the migration,
    // and the report's workers wait too (they are its session).
    let mut worker = waiting(11, report.clone(), vec![2], 50.0, Some(9));
    worker.session = 10;
    let sample = [
        idle(10, 10, report.clone(), "SELECT count(*) FROM orders"),
        worker,
        idle(12, 10, report, ""),
        // pg_blocking_pids names the workers by their leader's pid.
        waiting(2, Role::Migration, vec![10, 10, 10], 100.0, Some(1)),
        waiting(3, Role::Workload, vec![2], 40.0, Some(2)),
    ];
    s.ingest(t0 + Duration::from_millis(100), &sample);
    let summary = s.finish(t0 + Duration::from_millis(100));
    let m = summary.blocking.iter().find(|e| e.waiter == "migration").unwrap();
    assert_eq!(m.max_waiters, 1, "one migration, however many backends it waits behind");
    assert_eq!(m.max_blockers, 3, "the report's leader and its two workers");
    assert_eq!(m.blocker_query, "SELECT count(*) FROM orders", "the leader's query");
    assert_eq!(summary.max_waiting, 3, "sessions: the migration, the request, the report");
}

#[test]
fn migration_wait_counts_open_and_closed_spans_once() {
    let t0 = Instant::now();
    let mut s = State::new(t0, INTERVAL);
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    s.ingest(at(1000), &[waiting(2, Role::Migration, vec![1], 0.0, Some(7))]);
    // Jitter in the server's figure must not open a second span.
    for (t, w) in [(1020, 35.0), (1040, 31.0), (1060, 80.0)] {
        s.ingest(at(t), &[waiting(2, Role::Migration, vec![1], w, Some(7))]);
    }
    assert_eq!(s.migration_wait(t0, at(1100)), Duration::from_millis(100), "still waiting: until the window's end");
    s.ingest(at(1080), &[]);
    // Closed halfway between its last sighting and the sample without it.
    assert_eq!(s.migration_wait(t0, at(2000)), Duration::from_millis(70));
    assert_eq!(s.migration_wait(at(1030), at(1050)), Duration::from_millis(20));
}

#[test]
fn a_new_waitstart_is_a_new_wait_that_starts_after_the_last() {
    let t0 = Instant::now();
    let mut s = State::new(t0, INTERVAL);
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    s.ingest(at(0), &[waiting(2, Role::Migration, vec![1], 0.0, Some(1))]);
    s.ingest(at(20), &[waiting(2, Role::Migration, vec![1], 20.0, Some(1))]);
    // A retry: a new wait whose server age (100 ms) reaches back before
    // the first ended; it is clamped to begin after the last sample.
    s.ingest(at(40), &[waiting(2, Role::Migration, vec![1], 100.0, Some(2))]);
    let w = s.migration_wait(at(0), at(60));
    assert!(w <= Duration::from_millis(60), "{w:?}");
}

#[test]
fn a_stretch_without_samples_is_a_gap_and_a_wait_ending_in_it_a_lower_bound() {
    let t0 = Instant::now();
    let mut s = State::new(t0, INTERVAL);
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    s.ingest(at(0), &[waiting(3, Role::Workload, vec![2], 0.0, Some(1))]);
    s.ingest(at(20), &[waiting(3, Role::Workload, vec![2], 20.0, Some(1))]);
    s.ingest(at(10_020), &[]);
    assert_eq!(s.gap_within(at(0), at(20_000)), Duration::from_secs(10));
    let summary = s.finish(at(10_020));
    assert_eq!(summary.gaps.count, 1);
    assert!((summary.gaps.longest_s - 10.0).abs() < 1e-6);
    assert!(summary.longest_wait_lower_bound, "it ended unseen, within the gap");
    assert!((summary.longest_wait_ms - 20.0).abs() < 1e-6, "measured to its last sighting");
}

#[test]
fn the_union_of_spans_counts_overlaps_once() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let spans = [(at(0), at(100)), (at(50), at(150)), (at(300), at(400)), (at(320), at(330))];
    assert_eq!(union_within(spans.into_iter(), t0, at(1000)), Duration::from_millis(250));
    assert_eq!(union_within(spans.into_iter(), at(120), at(310)), Duration::from_millis(40));
}

/// One session's waits: (start, end) in milliseconds, disjoint, ordered.
fn waits() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((1u64..400, 1u64..900), 0..6).prop_map(|pairs| {
        let mut t = 0;
        pairs
            .into_iter()
            .map(|(pause, len)| {
                let start = t + pause;
                t = start + len;
                (start, t)
            })
            .collect()
    })
}

/// A sequence of sample times: mostly every 20 ms, with jitter and, now
/// and then, a gap of up to two seconds.
fn times() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec((0u64..15, prop::bool::weighted(0.03), 0u64..2000), 50..400).prop_map(|steps| {
        let mut t = 0;
        steps
            .into_iter()
            .map(|(jitter, gap, len)| {
                t += 20 + jitter + if gap { len } else { 0 };
                t
            })
            .collect()
    })
}

proptest! {
    // Failures print their smallest input; nothing is written beside the
    // source.
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the samples: a window's lock wait is at most the window,
    /// the waits of disjoint windows add up to at most their sum, edges
    /// count sessions, and the longest wait is no longer than the longest
    /// real one plus the sampling's resolution.
    #[test]
    fn lock_waits_add_up(
        migration in waits(),
        workload in waits(),
        times in times(),
        noise in prop::collection::vec(-40.0f64..40.0, 400),
        server_starts in any::<bool>(),
        cuts in prop::collection::vec(0u64..20_000, 1..6),
    ) {
        let t0 = Instant::now();
        let mut s = State::new(t0, INTERVAL);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let report = Role::Interference("report".into());
        for (k, &t) in times.iter().enumerate() {
            let mut sample = vec![idle(10, 10, report.clone(), "SELECT"), idle(11, 10, report.clone(), "")];
            let mut seen = |waits: &[(u64, u64)], pid: i32, role: Role, blockers: Vec<i32>| {
                if let Some(&(start, _)) = waits.iter().find(|(a, b)| (*a..*b).contains(&t)) {
                    // Before PostgreSQL 14 the server gives neither.
                    let age = ((t - start) as f64 + noise[k % noise.len()]).max(0.0);
                    let mut b = waiting(pid, role, blockers, age, server_starts.then_some(start as i64));
                    b.wait_ms = b.wait_ms.filter(|_| server_starts);
                    sample.push(b);
                }
            };
            seen(&migration, 2, Role::Migration, vec![10, 11]);
            seen(&workload, 3, Role::Workload, vec![2, 10, 11]);
            s.ingest(at(t), &sample);
        }
        let end = at(*times.last().unwrap() + 20);
        let mut cuts: Vec<Instant> = cuts.into_iter().map(at).filter(|c| *c < end).collect();
        cuts.push(t0);
        cuts.push(end);
        cuts.sort();
        let mut sum = Duration::ZERO;
        for w in cuts.windows(2) {
            let wait = s.migration_wait(w[0], w[1]);
            prop_assert!(wait <= w[1] - w[0], "{wait:?} in a window of {:?}", w[1] - w[0]);
            sum += wait;
        }
        let whole = s.migration_wait(t0, end);
        prop_assert!(sum <= end - t0);
        // Windows that tile the run add up to the whole run's wait.
        let diff = sum.abs_diff(whole);
        prop_assert!(diff <= MS, "{sum:?} vs {whole:?}");
        let summary = s.finish(end);
        for e in &summary.blocking {
            prop_assert!(e.max_waiters <= 1, "one session per role here: {e:?}");
        }
        prop_assert!(summary.max_waiting <= 2);
        let longest_real = migration.iter().chain(&workload).map(|(a, b)| b - a).max().unwrap_or(0);
        // The server's age of a wait (with its noise) or the sampling's
        // resolution (an interval and its jitter), whichever is off more.
        // Without the server's wait start, two waits either side of a gap
        // look like one (the report says the figure spans a gap), and so
        // do two no farther apart than two samples.
        let slack = 40.0 + 35.0;
        let spacing = times.windows(2).map(|t| t[1] - t[0]).max().unwrap_or(0);
        let apart = |w: &[(u64, u64)]| w.windows(2).all(|p| p[1].0 - p[0].1 > spacing);
        let separable = server_starts || (apart(&migration) && apart(&workload) && !summary.longest_wait_spans_gap);
        if separable {
            prop_assert!(summary.longest_wait_ms <= longest_real as f64 + slack,
                "{} > {longest_real} + {slack}", summary.longest_wait_ms);
        }
    }
}
