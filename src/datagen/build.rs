//! Index and constraint builds after the rows, several at once.
//!
//! Once a table's rows are in, its indexes build on the load's own sessions
//! ([`Tuning::at_once`] of them over all tables, as many as the server has
//! CPUs), while the next table's rows are copied. A table's keys build as
//! plain unique indexes, which take a SHARE lock and so build beside each
//! other, and are then attached as its constraints (`ADD CONSTRAINT …
//! USING INDEX`, a catalog change); a key that cannot be attached so (an
//! exclusion constraint, a partitioned table's key) is added whole and
//! waits for the builds on its table. Then its CHECK constraints, then
//! `VACUUM (ANALYZE)`. Foreign keys come last, when every table they name
//! is keyed: several at once, but never two on one table (each locks both
//! its tables, and two on one pair of tables in opposite directions would
//! deadlock).
//!
//! Each session sets `maintenance_work_mem` and
//! `max_parallel_maintenance_workers` for itself only: a build with the
//! machine to itself takes parallel workers, builds beside others take
//! none (measured in `benches/datagen.rs`: on two cores, two builds at
//! once beat one build with a worker).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_postgres::Client;

use crate::postgres::{Role, connect};

/// How the load's sessions build indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// Builds (and other post-load statements) at once, over all tables.
    pub at_once: usize,
    /// Parallel workers a build may take, when set; else chosen per table
    /// (see [`Tuning::workers_for`]).
    pub workers: Option<u32>,
    /// The most parallel workers the server starts (`max_parallel_workers`).
    pub max_workers: u32,
    /// `maintenance_work_mem` of each build, in kB, at least (see
    /// [`Tuning::mem_for`]).
    pub mem_kb: u64,
}

/// `maintenance_work_mem` per sorting process, in kB.
const PER_SORT_KB: u64 = 64 << 10;

/// A set choice of builds at once and workers per build, as the benchmark
/// compares them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Builds at once.
    pub at_once: usize,
    /// `max_parallel_maintenance_workers` of each.
    pub workers: u32,
}

/// Reads a server setting as an integer in its own unit.
async fn setting(admin: &Client, name: &str) -> Result<i64, tokio_postgres::Error> {
    let row = admin.query_one("SELECT setting::int8 FROM pg_settings WHERE name = $1", &[&name]).await?;
    Ok(row.get(0))
}

impl Tuning {
    /// Sizes the builds. On a server the harness started (`throwaway`), it
    /// runs on this machine: as many builds at once as it has CPUs. On a
    /// server the user named, `streams` builds at once (the load's COPY
    /// streams, as the user set them), within what the server allows:
    /// workers within its `max_parallel_workers`, and memory never below
    /// its own `maintenance_work_mem`. Each build gets 64 MB per process
    /// that sorts (the build and its workers): in `benches/datagen.rs`,
    /// 256 MB and 1 GB built no faster (larger in-memory sorts miss the
    /// CPU's caches), and several builds at once multiply it. Returns the
    /// tuning and the line that says what was set.
    pub async fn for_server(
        admin: &Client,
        throwaway: bool,
        streams: usize,
        mix: Option<Mix>,
    ) -> Result<(Tuning, String), tokio_postgres::Error> {
        let max_workers = setting(admin, "max_parallel_workers").await?.max(0) as u32;
        let current_kb = setting(admin, "maintenance_work_mem").await?.max(1024) as u64;
        let cpus = if throwaway { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { streams };
        let at_once = mix.map_or(cpus, |m| m.at_once).max(1);
        let tuning =
            Tuning { at_once, workers: mix.map(|m| m.workers), max_workers, mem_kb: current_kb.max(PER_SORT_KB) };
        let whose = if throwaway {
            "sized to this machine"
        } else {
            "set for the load's own sessions only; the server's configuration is unchanged"
        };
        let note = format!(
            "index builds: {at_once} at once, maintenance_work_mem at least {} MB each, parallel workers up to {} ({whose})",
            tuning.mem_kb / 1024,
            tuning.workers_for(1),
        );
        Ok((tuning, note))
    }

    /// `maintenance_work_mem` of a build with `workers` workers (shared
    /// among them): 64 MB for each process that sorts.
    pub fn mem_for(&self, workers: u32) -> u64 {
        self.mem_kb.max(PER_SORT_KB * (1 + workers as u64))
    }

    /// Parallel workers for each of `builds` builds of one table. When
    /// they all start at once, each takes the spare CPUs as workers, and
    /// at least one: a parallel build ends in a serial merge and write in
    /// its leader, and builds end at different times, so a worker of a
    /// build still sorting takes the CPU that another frees (40M rows of
    /// add-column-default, its two builds at once: 15.0–15.5 s with a
    /// worker each, or one, against 18.4 s with none). With more builds
    /// than sessions, they queue and none takes a worker (the benchmark's
    /// mixes: 4 builds, 2 at once, 6.8 s with none against 7.4 s with one).
    pub fn workers_for(&self, builds: usize) -> u32 {
        let builds = builds.max(1);
        let share = || if builds > self.at_once { 0 } else { (self.at_once / builds).saturating_sub(1).max(1) as u32 };
        self.workers.unwrap_or_else(share).min(self.max_workers)
    }
}

/// The load's own sessions for builds, at most [`Tuning::at_once`] busy.
pub struct Sessions {
    config: tokio_postgres::Config,
    tuning: Tuning,
    permits: Semaphore,
    idle: Mutex<Vec<Client>>,
}

impl Sessions {
    /// No session is opened until one is needed.
    pub fn new(config: &tokio_postgres::Config, tuning: Tuning) -> Arc<Sessions> {
        let permits = Semaphore::new(tuning.at_once);
        Arc::new(Sessions { config: config.clone(), tuning, permits, idle: Mutex::new(Vec::new()) })
    }

    /// The tuning the sessions use.
    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    async fn open(&self) -> Result<Client, tokio_postgres::Error> {
        if let Some(c) = self.idle.lock().expect("not poisoned").pop() {
            return Ok(c);
        }
        connect(&self.config, &Role::Loader).await
    }

    /// A free session set to `workers` parallel workers, when one of the
    /// `at_once` is free; it returns to the idle sessions when dropped.
    pub async fn session(&self, workers: u32) -> Result<Session<'_>, tokio_postgres::Error> {
        let permit = self.permits.acquire().await.expect("never closed");
        let client = self.open().await?;
        let mem = self.tuning.mem_for(workers);
        client
            .batch_execute(&format!(
                "SET max_parallel_maintenance_workers = {workers}; SET maintenance_work_mem = '{mem}kB'"
            ))
            .await?;
        Ok(Session { owner: self, client: Some(client), _permit: permit })
    }

    /// Runs `sql` on a free session with `workers` parallel workers;
    /// returns how long it ran.
    pub async fn run(&self, sql: &str, workers: u32) -> Result<Duration, tokio_postgres::Error> {
        let session = self.session(workers).await?;
        let started = Instant::now();
        session.batch_execute(sql).await?;
        Ok(started.elapsed())
    }
}

/// One of the [`Sessions`], busy.
pub struct Session<'a> {
    owner: &'a Sessions,
    client: Option<Client>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl std::ops::Deref for Session<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("held until dropped")
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // A session whose statement failed may be in a failed state; it is
        // closed rather than reused.
        if let Some(c) = self.client.take().filter(|c| !c.is_closed()) {
            self.owner.idle.lock().expect("not poisoned").push(c);
        }
    }
}

/// What one table's builds took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Built {
    /// Its indexes, keys and CHECK constraints, wall time.
    pub indexes: Duration,
    /// Its `VACUUM (ANALYZE)`.
    pub vacuum: Duration,
}

/// Builds the indexes of `table` (regclass text) several at once, then
/// attaches its keys and adds its CHECK constraints, then vacuums and
/// analyzes it. `phase` is told what starts.
pub(super) async fn table(
    sessions: &Sessions,
    table: &str,
    d: &super::deferred::Deferred,
    phase: impl Fn(&str),
) -> Result<Built, tokio_postgres::Error> {
    let started = Instant::now();
    if !d.indexes.is_empty() {
        phase(&format!("building {} index{}", d.indexes.len(), if d.indexes.len() == 1 { "" } else { "es" }));
    }
    let workers = sessions.tuning().workers_for(d.indexes.len());
    let builds = d.indexes.iter().map(|sql| sessions.run(sql, workers));
    futures_util::future::try_join_all(builds).await?;
    if !d.attach.is_empty() || !d.checks.is_empty() {
        let s = sessions.session(0).await?;
        for sql in &d.attach {
            s.batch_execute(sql).await?;
        }
        for sql in &d.checks {
            super::schema::add_check(&s, sql).await?;
        }
    }
    let indexes = started.elapsed();
    phase("vacuum analyze");
    let vacuum = sessions.run(&format!("VACUUM (ANALYZE) {table}"), 0).await?;
    Ok(Built { indexes, vacuum })
}

/// Adds `fks`, several at once but never two on one table; returns how
/// long each took, in the same order.
pub(super) async fn foreign_keys(
    sessions: &Sessions,
    fks: &[super::deferred::ForeignKey],
) -> Result<Vec<Duration>, tokio_postgres::Error> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut took = vec![Duration::ZERO; fks.len()];
    let mut pending: Vec<usize> = (0..fks.len()).collect();
    let mut busy: Vec<&str> = Vec::new();
    let mut running = FuturesUnordered::new();
    while !pending.is_empty() || !running.is_empty() {
        while running.len() < sessions.tuning().at_once {
            let free = |i: &usize| fks[*i].tables.iter().all(|t| !busy.contains(&t.as_str()));
            let Some(at) = pending.iter().position(free) else { break };
            let i = pending.remove(at);
            busy.extend(fks[i].tables.iter().map(String::as_str));
            running.push(async move { (i, sessions.run(&fks[i].sql, 0).await) });
        }
        let Some((i, result)) = running.next().await else { break };
        took[i] = result?;
        busy.retain(|t| !fks[i].tables.iter().any(|u| u == t));
    }
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::Tuning;

    fn tuning(at_once: usize, max_workers: u32) -> Tuning {
        Tuning { at_once, workers: None, max_workers, mem_kb: 64 << 10 }
    }

    #[test]
    fn builds_that_start_together_take_a_worker_each_and_queued_ones_none() {
        // (sessions, builds of the table) -> workers per build
        let cases = [((2, 1), 1), ((2, 2), 1), ((2, 3), 0), ((2, 4), 0), ((4, 1), 3), ((4, 2), 1), ((4, 4), 1)];
        for ((at_once, builds), want) in cases {
            assert_eq!(tuning(at_once, 8).workers_for(builds), want, "{at_once} sessions, {builds} builds");
        }
        assert_eq!(tuning(4, 2).workers_for(1), 2, "within the server's max_parallel_workers");
        assert_eq!(tuning(2, 0).workers_for(2), 0, "a server that starts no workers");
        let set = Tuning { workers: Some(0), ..tuning(2, 8) };
        assert_eq!(set.workers_for(2), 0, "a mix set by hand wins");
    }
}
