//! The threads the load runs on: one single-threaded tokio runtime per
//! CPU, as `pgbench -j` runs one thread per group of clients.
//!
//! On one multi-threaded runtime a request's task and the socket's events
//! land on either worker, and each hand-over between them is a futex
//! wake-up; at pgbench's rates on two cores those cost about an eighth of
//! the throughput. Here a connection is opened on a shard, and a request
//! running on that shard takes one of its connections when one is free, so
//! a query and its answer stay on one thread. The pool is still one pool:
//! its size and deadline count across shards, and a request takes another
//! shard's free connection rather than wait.

use std::cell::Cell;
use std::sync::Mutex;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Running shard threads; dropping this stops them and drops their tasks.
pub struct Shards {
    handles: Vec<Handle>,
    stop: Mutex<Vec<oneshot::Sender<()>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Shards {
    /// Starts `n` shard threads (at least one).
    pub fn start(n: usize) -> std::io::Result<Shards> {
        let mut shards = Shards { handles: Vec::new(), stop: Mutex::new(Vec::new()), threads: Vec::new() };
        for index in 0..n.max(1) {
            // I/O and timers only: with `enable_all` every park also takes
            // the process driver's global orphan-queue lock, shared by the
            // shards.
            let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            shards.handles.push(rt.handle().clone());
            shards.stop.lock().expect("not poisoned").push(stop_tx);
            let thread = std::thread::Builder::new().name(format!("load-{index}")).spawn(move || {
                SHARD.with(|s| s.set(Some(index)));
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
                // Dropping the runtime drops the tasks still on it.
                drop(rt);
            })?;
            shards.threads.push(thread);
        }
        Ok(shards)
    }

    /// How many shards there are.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// The runtime of shard `i` (modulo the count).
    pub fn handle(&self, i: usize) -> &Handle {
        &self.handles[i % self.handles.len()]
    }

    /// The shard the calling thread is, if it is one.
    pub fn current() -> Option<usize> {
        SHARD.with(Cell::get)
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        for tx in self.stop.lock().expect("not poisoned").drain(..) {
            let _ = tx.send(());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One `T` per shard, each on cache lines of its own, so that shards
/// writing their own never touch a line another core holds.
pub struct PerShard<T> {
    cells: Box<[Padded<T>]>,
}

/// A value on cache lines of its own: aligned to two lines, as the
/// adjacent-line prefetcher pairs them.
#[repr(align(128))]
pub struct Padded<T>(pub T);

impl<T> PerShard<T> {
    /// `n` cells (at least one), cell `i` made by `make(i)`.
    pub fn new(n: usize, mut make: impl FnMut(usize) -> T) -> Self {
        Self { cells: (0..n.max(1)).map(|i| Padded(make(i))).collect() }
    }

    /// The calling thread's cell index: its shard's (modulo the count), or
    /// 0 off the shards.
    pub fn here(&self) -> usize {
        Shards::current().unwrap_or(0) % self.cells.len()
    }

    /// Cell `i` (modulo the count).
    pub fn get(&self, i: usize) -> &T {
        &self.cells[i % self.cells.len()].0
    }

    /// Every cell, in shard order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.cells.iter().map(|c| &c.0)
    }

    /// How many cells.
    pub fn count(&self) -> usize {
        self.cells.len()
    }
}

/// How many shards the load runs on: `REHEARSE_LOAD_THREADS`, else one per
/// CPU.
pub fn default_count() -> usize {
    std::env::var("REHEARSE_LOAD_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_their_shard_and_stop_with_it() {
        let shards = Shards::start(2).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for i in 0..4 {
            let on = rt.block_on(shards.handle(i).spawn(async { Shards::current() })).unwrap();
            assert_eq!(on, Some(i % 2));
        }
        assert_eq!(Shards::current(), None);
        let pending = shards.handle(0).spawn(std::future::pending::<()>());
        drop(shards);
        assert!(rt.block_on(pending).unwrap_err().is_cancelled());
    }
}
