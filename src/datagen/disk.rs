//! How much disk the tables will take, estimated before any row moves, so
//! that a load the disk cannot hold stops at once with the figure, instead
//! of filling the disk and failing half-way.
//!
//! The rows' size comes from the plan itself: the first rows of each table
//! are encoded as COPY will send them, and a heap tuple takes about what
//! its binary COPY row does, plus its header (24 bytes, aligned) and line
//! pointer (4), with pages about 95 % full after alignment. Each index
//! takes at least 24 bytes a row (an 8-byte key in a 16-byte index tuple,
//! its 4-byte item pointer, pages 90 % full); wider keys take more, so
//! that part of the estimate is a floor. The write-ahead log of the load is about as large
//! as what it writes, and recycled at checkpoints: up to two gigabytes
//! cover the default `max_wal_size` and the segments beyond it. The new
//! cluster itself takes some 40 MB.

use std::path::Path;

use bytes::BytesMut;

use super::{CopyPlan, LoadError, deferred::Deferred};

/// Bytes of WAL the load may keep on disk at once, at most.
const WAL_BYTES: u64 = 2_000_000_000;
/// Bytes of the cluster before any table.
const BASE_BYTES: u64 = 64_000_000;
/// Bytes an index takes per row, at the least.
const INDEX_ROW_BYTES: f64 = 24.0;

/// Bytes the rows of `plan` take in the heap.
fn heap_bytes(plan: &CopyPlan) -> u64 {
    let probe = CopyPlan { rows: plan.rows.min(256), ..plan.clone() };
    let mut out = BytesMut::new();
    let sampled = match probe.encode_chunk(0, &mut out) {
        Ok(n) if n > 0 => n,
        _ => return 0,
    };
    // A COPY row: 2 bytes of field count, 4 of length per field, then the
    // values; a tuple: 28 bytes of header and line pointer, then the same
    // values, aligned.
    let copy_per_row = out.len() as f64 / sampled as f64;
    let values = (copy_per_row - 2.0 - 4.0 * plan.columns.len() as f64).max(0.0);
    ((values + 28.0) / 0.95 * plan.rows as f64) as u64
}

/// The estimate for every table: (rows' bytes, indexes' bytes).
pub(super) fn estimate(plans: &[std::sync::Arc<CopyPlan>], deferred: &[Deferred]) -> (u64, u64) {
    let heap = plans.iter().map(|p| heap_bytes(p)).sum();
    let indexes = plans
        .iter()
        .zip(deferred)
        .map(|(p, d)| (d.indexes.len() as f64 * INDEX_ROW_BYTES * p.rows as f64) as u64)
        .sum();
    (heap, indexes)
}

/// Bytes free for an unprivileged user at `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    Some(s.blocks_available() as u64 * s.fragment_size() as u64)
}

/// Fails when the disk at `dir` cannot hold the tables of `plans`.
pub(super) fn check(
    plans: &[std::sync::Arc<CopyPlan>],
    deferred: &[Deferred],
    dir: &Path,
) -> Result<(), Box<LoadError>> {
    let (heap, indexes) = estimate(plans, deferred);
    let Some(free) = free_bytes(dir) else { return Ok(()) };
    let wal = (heap + indexes).min(WAL_BYTES) + BASE_BYTES;
    let needed = heap + indexes + wal;
    if needed > free {
        return Err(Box::new(LoadError::Disk { needed, heap, indexes, wal, free, path: dir.to_path_buf() }));
    }
    Ok(())
}
