//! # rehearse
//!
//! Rehearses a PostgreSQL schema migration at production scale, under the
//! application's load, before production sees it.
//!
//! A migration that takes 12 ms on a 20,000-row staging table can lock a
//! 40-million-row production table for hours: `ALTER TABLE ... ADD COLUMN
//! ... DEFAULT ... NOT NULL` asks for an ACCESS EXCLUSIVE lock, queues
//! behind a long report, and every later query on the table queues behind
//! it until the application's connection pool is exhausted. Linters judge
//! the SQL text and lock tracers run it on an empty database; this harness
//! runs it against production-size data under the application's load and
//! measures what users would feel.
//!
//! The chain, one module per link:
//!
//! - [`scenario`]: the TOML file, validated once into a [`scenario::Scenario`];
//! - [`postgres`]: where the server comes from (a throwaway local cluster,
//!   or a server named by URL), behind one [`postgres::Server`] trait;
//! - [`datagen`]: tables filled by parallel binary COPY with realistic,
//!   deterministic values;
//! - [`workload`]: the application's queries, open loop (a rate, a ramp,
//!   Poisson arrivals) or closed loop (clients with think time), single
//!   statements or transactions, through a pool, with per-phase HDR
//!   histograms and a per-second series;
//! - [`interference`]: statements such as a long report, started on time;
//! - [`preflight`]: every statement tried on the server before the load;
//! - [`migration`]: the strategy's steps, with lock waits, locks taken and
//!   rewrites per step;
//! - [`observe`]: the lock observer (who blocked whom, how long, how many);
//! - [`clock`]: the phases of a run (baseline, during, after, rollback) and
//!   the clock that tells them apart;
//! - [`live`]: the line updated every second while the load runs;
//! - [`report`]: the report model, its verdict, the terminal summary and JSON;
//! - [`setup`]: a database provisioned, checked and loaded, ready for
//!   one timeline or many;
//! - [`rehearsal`]: the timeline that ties them together; [`compare`]:
//!   every strategy on one load, each on a fresh copy of it; [`tune`]: one
//!   strategy with each value of its lock_timeout or batch pause;
//!   [`predict`]: one strategy at small scales, fitted and predicted at
//!   production size;
//!   [`generate`]: the data alone; [`cli`]: the command line.
#![warn(missing_docs)]

pub mod cli;
pub mod clock;
pub mod compare;
pub mod datagen;
pub mod generate;
pub mod interference;
pub mod ledger;
pub mod live;
pub mod migration;
pub mod observe;
pub mod postgres;
pub mod predict;
pub mod preflight;
pub mod rehearsal;
pub mod report;
pub mod scenario;
pub mod setup;
pub mod soak;
pub mod suggest;
pub mod tune;
pub mod units;
pub mod workload;
