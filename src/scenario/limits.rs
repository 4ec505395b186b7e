//! The caps a scenario is held to, so that no input the validator accepts
//! can make the harness panic, overflow, allocate without bound or run for
//! ever. Each is far beyond what a rehearsal needs and well within what
//! Postgres and this machine can hold; the README lists them.

use std::time::Duration;

use super::{GenSpec, Literal};

/// Rows of one table, after `--scale`: a table of PostgreSQL's largest
/// size (32 TB with 8 kB pages) holds at most about this many rows, as each
/// takes at least 28 bytes (tuple header and line pointer).
pub const MAX_ROWS: u64 = 1_000_000_000_000;

/// Words of one `words` value (about 6 characters each).
pub const MAX_WORDS: u32 = 10_000;

/// Elements of one `array` value.
pub const MAX_ARRAY_LEN: u32 = 10_000;

/// The largest value a generator may make, estimated from its shape
/// ([`value_bytes`]): one megabyte.
pub const MAX_VALUE_BYTES: u64 = 1_000_000;

/// Distinct values a `zipf` range may rank: 2^53, the whole numbers a
/// double holds exactly.
pub const MAX_ZIPF_VALUES: u64 = 1 << 53;

/// The longest a rehearsal may run: `migrate_at` + `max_duration` +
/// `cooldown`, or a load-only run's `duration`; also the latest an
/// interference or a ramp's point may come.
pub const MAX_RUN: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest `lock_timeout` or `statement_timeout` Postgres takes
/// (2^31 - 1 milliseconds, about 24.8 days).
pub const MAX_PG_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// The longest pause or client-side wait: `pool_timeout`, `timeout`,
/// `think_time`, `backoff`, `pause`.
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// The years a `timestamp` may name (Postgres' timestamps end in 294276).
pub const TIMESTAMP_YEARS: std::ops::RangeInclusive<i64> = 1..=294_276;

/// The years a `date` may name (Postgres' dates end in 5874897).
pub const DATE_YEARS: std::ops::RangeInclusive<i64> = 1..=5_874_897;

/// The largest scenario file read.
pub const MAX_SCENARIO_BYTES: u64 = 16 << 20;

/// The largest schema file (`schema = "…"`) read.
pub const MAX_SCHEMA_BYTES: u64 = 256 << 20;

/// The most bytes one value of `spec` can take, estimated from its shape.
pub fn value_bytes(spec: &GenSpec) -> f64 {
    match spec {
        GenSpec::Words { max, .. } => f64::from(*max) * 16.0,
        GenSpec::Fake(_) => 64.0,
        GenSpec::OneOf { values, .. } => values.iter().map(literal_bytes).fold(0.0, f64::max),
        GenSpec::Const(l) => literal_bytes(l),
        GenSpec::Json(fields) => fields.iter().map(|(k, v)| k.len() as f64 + 8.0 + value_bytes(&v.kind)).sum(),
        GenSpec::Array { of, max, .. } => f64::from(*max) * (8.0 + value_bytes(&of.kind)),
        _ => 16.0,
    }
}

fn literal_bytes(l: &Literal) -> f64 {
    match l {
        Literal::Text(s) => s.len() as f64,
        _ => 16.0,
    }
}

/// The most hot standbys a rehearsal starts (`[replica] count`,
/// `--replicas`): each replays all the primary's WAL on the same machine.
pub const MAX_REPLICAS: usize = 4;
