//! One request of the load: its parameters drawn, sent through the pool
//! when it is due, and recorded with its latency from that moment; a
//! write's acknowledged rows handed to the ledger.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::task::TaskTracker;

use super::{Failure, Issue, Query, Signal};
use crate::clock::PhaseClock;
use crate::datagen::{DataRng, Value};

/// What one pacing loop sends: a query, with parameters drawn from a
/// stream of its own into a buffer it reuses.
pub(super) struct Request {
    query: Arc<Query>,
    clock: Arc<PhaseClock>,
    rng: DataRng,
    /// This pacing loop's number among the workload's, for parameters
    /// that must differ from every other loop's (see [`ValueGen::draw`]).
    lane: u64,
    params: Vec<Value>,
    pool_timeout: Duration,
}

impl Request {
    pub(super) fn new(
        query: &Arc<Query>,
        clock: &Arc<PhaseClock>,
        rng: DataRng,
        lane: u64,
        pool_timeout: Duration,
    ) -> Self {
        Self { query: query.clone(), clock: clock.clone(), rng, lane, params: Vec::new(), pool_timeout }
    }

    /// Draws request `n`'s parameters.
    fn draw(&mut self, n: u64) {
        self.params.clear();
        self.params.extend(self.query.params.iter().map(|g| g.draw(n, self.lane, &mut self.rng)));
    }
}

/// A closed-loop client runs each request to its end.
impl Issue for &mut Request {
    fn issue(&mut self, due: Instant, n: u64) -> impl Future<Output = Option<Instant>> {
        self.draw(n);
        let request = issue(&self.query, &self.clock, due, &self.params, self.pool_timeout);
        async move { Some(request.await) }
    }
}

/// An open loop's share on one shard spawns each request there and
/// returns.
pub(super) struct Spawner {
    pub(super) request: Request,
    pub(super) abort: Signal,
    pub(super) tracker: TaskTracker,
}

impl Issue for Spawner {
    fn issue(&mut self, due: Instant, n: u64) -> impl Future<Output = Option<Instant>> {
        let r = &mut self.request;
        r.draw(n);
        // The spawned request owns its parameters; the next draw starts a
        // buffer of its own.
        let params = std::mem::take(&mut r.params);
        let (query, clock, timeout) = (r.query.clone(), r.clock.clone(), r.pool_timeout);
        let abort = self.abort.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                biased;
                _ = abort.fired() => {}
                _ = issue(&query, &clock, due, &params, timeout) => {}
            }
        });
        std::future::ready(None)
    }
}

/// Sends one request due at `due` and records how it went, its latency
/// counted from `due`; returns when it finished. A query's client-side
/// `timeout` also counts from `due`; past it the request is dropped, which
/// cancels the query.
async fn issue(query: &Query, clock: &PhaseClock, due: Instant, params: &[Value], pool_timeout: Duration) -> Instant {
    let second = due.saturating_duration_since(clock.start()).as_secs();
    let in_flight = InFlight { query, clock, due, second, slot: query.recorder.issued(second), done: false };
    // Pinned in place, so that both arms share it: a request's future is
    // moved as it is created, and its size is what each move copies.
    let work = std::pin::pin!(async {
        let mut lease = query.pool().acquire(due + pool_timeout).await?;
        let issued = query.ledger.as_ref().map(|l| l.spill.tick());
        lease.run(&query.plan, params).await.map_err(|e| {
            query.errors.note(&e, clock, due);
            Failure::classify(&e)
        })?;
        if let (Some(ledger), Some(issued)) = (&query.ledger, issued)
            && lease.captured.rows > 0
        {
            ledger.spill.acknowledge(issued, &lease.captured.buf, lease.captured.rows);
        }
        Ok(())
    });
    let outcome = match query.spec.timeout {
        Some(t) => tokio::time::timeout_at((due + t).into(), work).await.unwrap_or(Err(Failure::ClientTimeout)),
        None => work.await,
    };
    in_flight.finish(outcome)
}

/// A request issued and not yet recorded. Dropped unrecorded (the run
/// aborted it), it is recorded as `unfinished`.
struct InFlight<'a> {
    query: &'a Query,
    clock: &'a PhaseClock,
    due: Instant,
    second: u64,
    slot: usize,
    done: bool,
}

impl InFlight<'_> {
    fn finish(mut self, outcome: Result<(), Failure>) -> Instant {
        self.done = true;
        self.record(outcome)
    }

    /// Records the request as finished now, and returns now.
    fn record(&self, outcome: Result<(), Failure>) -> Instant {
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.due);
        self.query.recorder.completed(self.slot, self.clock.phase_of(self.due), self.second, latency, outcome);
        now
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.record(Err(Failure::Unfinished));
        }
    }
}
