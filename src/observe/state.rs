//! What the observer makes of its samples: wait spans, edges of who waited
//! behind whom, the per-second series, and the gaps where no sample came.
//!
//! Rules that keep the figures honest:
//!
//! - A wait is one session's (a parallel query's workers count with their
//!   leader), for one lock. On PostgreSQL 14+ a wait is identified by the
//!   server's own `waitstart`: the same start seen again is the same wait,
//!   however much the sampling jittered, and a new start is a new wait. How
//!   long a wait has lasted is the server's figure too; only where a wait
//!   falls on the harness's clock (to add up a step's waits) is estimated,
//!   from the middle of the sample's round trip.
//! - Spans of one session never overlap: a new one starts no earlier than
//!   the last one ended, and no earlier than the last sample that did not
//!   see it (unless samples were missing in between).
//! - A wait behind several backends of one role (a parallel report's
//!   leader and workers) is one waiter on that edge.
//! - Time without samples (a sample that failed, or came late: the server
//!   or the observer was stalled) is a gap. A wait that ended unseen in a
//!   gap is known only to have lasted until its last sighting.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::sample::Backend;
use super::{BlockEdge, Gap, LockSummary};
use crate::postgres::Role;
use crate::units::{millis, secs};

/// Gaps kept in full; beyond, only counted and summed.
const MAX_GAPS: usize = 10_000;

/// One session's wait on one lock.
#[derive(Debug, Clone)]
pub(super) struct Span {
    target: (String, String),
    /// The server's `waitstart`, when it gives one.
    wait_start_us: Option<i64>,
    pub(super) start: Instant,
    pub(super) last_seen: Instant,
    pub(super) role: Role,
}

type EdgeKey = (String, String, String, String);

/// The observer's running state.
pub(super) struct State {
    pub(super) summary: LockSummary,
    t0: Instant,
    interval: Duration,
    /// Open spans, by session.
    pub(super) open: HashMap<i32, Span>,
    /// When each session's last span ended.
    last_end: HashMap<i32, Instant>,
    /// Closed spans of the migration's sessions: (start, end).
    migration: Vec<(Instant, Instant)>,
    edges: BTreeMap<EdgeKey, BlockEdge>,
    series: BTreeMap<u64, usize>,
    pub(super) last_sample: Option<Instant>,
    /// Gaps in the samples: (last sample before, first sample after).
    gaps: Vec<(Instant, Instant)>,
    /// The session and start of the longest wait so far.
    longest: Option<(i32, Instant)>,
}

impl State {
    pub(super) fn new(t0: Instant, interval: Duration) -> State {
        let summary = LockSummary { interval_ms: millis(interval), ..LockSummary::default() };
        State {
            summary,
            t0,
            interval,
            open: HashMap::new(),
            last_end: HashMap::new(),
            migration: Vec::new(),
            edges: BTreeMap::new(),
            series: BTreeMap::new(),
            last_sample: None,
            gaps: Vec::new(),
            longest: None,
        }
    }

    /// The longest two samples may be apart before the time between them
    /// counts as a gap: five intervals, and never less than 250 ms (a
    /// busy machine delays a sample by tens of milliseconds routinely).
    pub(super) fn gap_threshold(&self) -> Duration {
        (self.interval * 5).max(Duration::from_millis(250))
    }

    fn offset(&self, at: Instant) -> f64 {
        secs(at.saturating_duration_since(self.t0))
    }

    /// Takes in one sample, taken at `at`.
    pub(super) fn ingest(&mut self, at: Instant, backends: &[Backend]) {
        let previous = self.last_sample.replace(at);
        let gap_before = previous.filter(|p| at.saturating_duration_since(*p) > self.gap_threshold());
        if let Some(p) = gap_before {
            self.gap(p, at);
        }
        // A new wait began after the last sample that did not see it,
        // unless samples were missing.
        let floor = previous.filter(|_| gap_before.is_none());
        self.summary.samples += 1;
        let by_pid: HashMap<i32, &Backend> = backends.iter().map(|b| (b.pid, b)).collect();
        let waits = sessions(backends);
        // Waiters on each edge in this sample.
        let mut now: HashMap<EdgeKey, usize> = HashMap::new();
        for (session, w) in &waits {
            for key in self.track(*session, w, at, floor, &by_pid) {
                *now.entry(key).or_default() += 1;
            }
        }
        for (key, n) in now {
            if let Some(e) = self.edges.get_mut(&key) {
                e.max_waiters = e.max_waiters.max(n);
            }
        }
        let ended: Vec<i32> = self.open.keys().filter(|s| !waits.contains_key(s)).copied().collect();
        for session in ended {
            let span = self.open.remove(&session).expect("listed");
            self.close(session, span, at);
        }
        let waiting = waits.len();
        let offset = self.offset(at);
        if waiting > self.summary.max_waiting {
            self.summary.max_waiting = waiting;
            self.summary.max_waiting_at_s = Some(offset);
        }
        let sec = self.series.entry(offset as u64).or_default();
        *sec = (*sec).max(waiting);
    }

    fn gap(&mut self, from: Instant, to: Instant) {
        let len = to.saturating_duration_since(from);
        self.summary.gaps.count += 1;
        self.summary.gaps.seconds += secs(len);
        self.summary.gaps.longest_s = self.summary.gaps.longest_s.max(secs(len));
        if self.gaps.len() < MAX_GAPS {
            self.gaps.push((from, to));
        }
    }

    /// Follows one waiting session's span and its edges.
    /// Returns the edges it waits on.
    fn track(
        &mut self,
        session: i32,
        w: &Wait,
        at: Instant,
        floor: Option<Instant>,
        by_pid: &HashMap<i32, &Backend>,
    ) -> Vec<EdgeKey> {
        let renew = match self.open.get(&session) {
            None => true,
            Some(s) => {
                s.target != w.target || matches!((s.wait_start_us, w.wait_start_us), (Some(a), Some(b)) if a != b)
            }
        };
        if renew {
            if let Some(old) = self.open.remove(&session) {
                self.close(session, old, at);
            }
            let estimated =
                w.wait_ms.map_or(at, |ms| at.checked_sub(Duration::from_secs_f64(ms.max(0.0) / 1000.0)).unwrap_or(at));
            let not_before = [floor, self.last_end.get(&session).copied()].into_iter().flatten().max();
            let start = not_before.map_or(estimated, |nb| estimated.max(nb)).min(at);
            let span = Span {
                target: w.target.clone(),
                wait_start_us: w.wait_start_us,
                start,
                last_seen: at,
                role: w.role.clone(),
            };
            self.open.insert(session, span);
        }
        let span = self.open.get_mut(&session).expect("open");
        span.last_seen = at;
        span.wait_start_us = span.wait_start_us.or(w.wait_start_us);
        let start = span.start;
        // How long it has waited: the server's own figure where it gives
        // one (no clock of ours in it), else since it was first seen.
        let waited_ms = w.wait_ms.unwrap_or_else(|| millis(at.saturating_duration_since(start)));
        let role = w.role.to_string();
        if waited_ms > self.summary.longest_wait_ms {
            self.summary.longest_wait_ms = waited_ms;
            self.summary.longest_wait_role = Some(role.clone());
            self.summary.longest_wait_spans_gap = self.gap_within(start, at) > Duration::ZERO;
            self.summary.longest_wait_lower_bound = false;
            self.longest = Some((session, start));
        }
        let by_role = self.summary.longest_wait_by_role.entry(role.clone()).or_default();
        *by_role = by_role.max(waited_ms);
        if w.role == Role::Workload {
            self.summary.workload_longest_wait_ms = self.summary.workload_longest_wait_ms.max(waited_ms);
        }
        self.edges_of(session, w, waited_ms, at, by_pid)
    }

    /// One waiter on each edge it waits on: per role it waits behind,
    /// however many backends of that role it waits behind.
    fn edges_of(
        &mut self,
        session: i32,
        w: &Wait,
        waited_ms: f64,
        at: Instant,
        by_pid: &HashMap<i32, &Backend>,
    ) -> Vec<EdgeKey> {
        let mut keys = Vec::new();
        let offset = self.offset(at);
        // Per role waited behind: its query (the leader's, where the leader
        // is among them) and how many of its backends.
        let mut behind: BTreeMap<String, (&str, usize)> = BTreeMap::new();
        for pid in &w.blockers {
            let blocker = by_pid.get(pid);
            if blocker.is_some_and(|b| b.session == session) {
                continue;
            }
            let role = blocker.map_or_else(|| format!("pid {pid}"), |b| b.role.to_string());
            let query = blocker.map_or("", |b| b.query.as_str());
            let entry = behind.entry(role).or_insert((query, 0));
            entry.1 += 1;
            if blocker.is_some_and(|b| b.pid == b.session) {
                entry.0 = query;
            }
        }
        let waiter = w.role.to_string();
        for (blocker, (query, backends)) in behind {
            let key = (waiter.clone(), blocker.clone(), w.target.0.clone(), w.target.1.clone());
            let edge = self.edges.entry(key.clone()).or_insert_with(|| BlockEdge {
                waiter: waiter.clone(),
                blocker,
                relation: w.target.0.clone(),
                mode: w.target.1.clone(),
                max_waiters: 0,
                longest_wait_ms: 0.0,
                longest_began_s: offset,
                first_s: offset,
                last_s: offset,
                blocker_query: query.to_string(),
                max_blockers: 0,
            });
            edge.max_blockers = edge.max_blockers.max(backends);
            if waited_ms > edge.longest_wait_ms {
                edge.longest_wait_ms = waited_ms;
                edge.longest_began_s = offset - waited_ms / 1000.0;
            }
            edge.last_s = offset;
            keys.push(key);
        }
        keys
    }

    /// Ends a span the sample at `at` no longer saw: halfway between its
    /// last sighting and `at`, or at the last sighting when samples were
    /// missing in between (it lasted at least that long).
    fn close(&mut self, session: i32, span: Span, at: Instant) {
        let unseen = at.saturating_duration_since(span.last_seen);
        let in_gap = unseen > self.gap_threshold();
        let end = if in_gap { span.last_seen } else { span.last_seen + unseen / 2 };
        if in_gap && self.longest == Some((session, span.start)) {
            self.summary.longest_wait_lower_bound = true;
        }
        self.last_end.insert(session, end);
        if span.role == Role::Migration {
            self.migration.push((span.start, end));
        }
    }

    /// Time within `[from, to]` that had no samples.
    pub(super) fn gap_within(&self, from: Instant, to: Instant) -> Duration {
        union_within(self.gaps.iter().copied(), from, to)
    }

    /// Wall-clock time within `[from, to]` during which a session of the
    /// migration waited on a lock: the union of its spans, so never more
    /// than `to - from`. A wait still open counts until `to`.
    pub(super) fn migration_wait(&self, from: Instant, to: Instant) -> Duration {
        let open = self.open.values().filter(|s| s.role == Role::Migration).map(|s| (s.start, to));
        union_within(self.migration.iter().copied().chain(open), from, to)
    }

    /// The summary at `end`, with edges and series filled in; a stretch
    /// without samples up to `end` is a gap too.
    pub(super) fn finish(&mut self, end: Instant) -> LockSummary {
        if let Some(last) = self.last_sample.filter(|l| end.saturating_duration_since(*l) > self.gap_threshold()) {
            self.gap(last, end);
        }
        let mut summary = self.summary.clone();
        let mut edges: Vec<BlockEdge> = std::mem::take(&mut self.edges).into_values().collect();
        edges.sort_by(|a, b| b.longest_wait_ms.total_cmp(&a.longest_wait_ms));
        summary.blocking = edges;
        summary.waiting_series =
            self.series.iter().map(|(second, n)| super::WaitingPoint { second: *second, max_waiting: *n }).collect();
        let mut longest = self.gaps.clone();
        longest.sort_by_key(|(a, b)| std::cmp::Reverse(b.saturating_duration_since(*a)));
        longest.truncate(20);
        longest.sort();
        summary.gaps.longest =
            longest.into_iter().map(|(a, b)| Gap { start_s: self.offset(a), end_s: self.offset(b) }).collect();
        summary
    }
}

/// The measure of the union of `spans`, clipped to `[from, to]`.
pub(super) fn union_within(spans: impl Iterator<Item = (Instant, Instant)>, from: Instant, to: Instant) -> Duration {
    let mut clipped: Vec<(Instant, Instant)> =
        spans.map(|(a, b)| (a.max(from), b.min(to))).filter(|(a, b)| a < b).collect();
    clipped.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (a, b) in clipped {
        match current {
            Some((s, e)) if a <= e => current = Some((s, e.max(b))),
            Some((s, e)) => {
                total += e - s;
                current = Some((a, b));
            }
            None => current = Some((a, b)),
        }
    }
    total + current.map_or(Duration::ZERO, |(s, e)| e - s)
}

/// One session's wait in one sample.
struct Wait {
    role: Role,
    target: (String, String),
    wait_ms: Option<f64>,
    wait_start_us: Option<i64>,
    /// Whom it waits behind, as `pg_blocking_pids` lists them: a parallel
    /// query's workers appear as their leader's pid, once each.
    blockers: Vec<i32>,
}

/// The waits of a sample, one per session: a parallel query's workers
/// are folded into their leader (its lock when it waits itself, the
/// earliest start, every backend any of them waits behind).
fn sessions(backends: &[Backend]) -> BTreeMap<i32, Wait> {
    let mut waits: BTreeMap<i32, Wait> = BTreeMap::new();
    let leaders_first =
        backends.iter().filter(|b| b.pid == b.session).chain(backends.iter().filter(|b| b.pid != b.session));
    for b in leaders_first {
        let Some(target) = &b.waiting_for else { continue };
        let w = waits.entry(b.session).or_insert_with(|| Wait {
            role: b.role.clone(),
            target: target.clone(),
            wait_ms: b.wait_ms,
            wait_start_us: b.wait_start_us,
            blockers: Vec::new(),
        });
        w.blockers.extend(b.blockers.iter().copied());
        w.wait_ms = match (w.wait_ms, b.wait_ms) {
            (Some(a), Some(c)) => Some(a.max(c)),
            (a, c) => a.or(c),
        };
    }
    waits
}
