//! The ledger's record of acknowledged writes: appended in blocks, one per
//! acknowledged request, to an anonymous temporary file (unlinked from the
//! start, so it goes with the process however the run ends), through a
//! bounded buffer. Memory stays flat however long the run; the file grows
//! by the bytes of each row's key and digest.
//!
//! A block: `issued: u64, acked: u64, len: u32`, then `len` bytes of rows,
//! each `tracked: u16, keys: u8, (len: u16, key bytes) × keys, digest: u8
//! flag + i64`. `issued` and `acked` are ticks of one counter: a write
//! issued after another was acknowledged comes after it in the server's
//! order too.

use std::io::{BufReader, Read, Seek, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How much the buffer holds before it is written to the file.
const FLUSH_AT: usize = 256 * 1024;

/// Which trailing columns of a statement's rows the ledger reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    /// The tracked statement's index in the ledger's plan.
    pub tracked: u16,
    /// How many key columns (text) come before the digest.
    pub keys: u8,
    /// Whether a digest (`int8`) ends the row; not for a delete.
    pub digest: bool,
}

impl Capture {
    /// Appends the ledger's columns of one `DataRow` body (binary format:
    /// a column count, then each column's length and bytes) to `out`;
    /// false when the row does not have them.
    pub fn row(&self, body: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(cols) = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) else { return false };
        let ours = self.keys as usize + usize::from(self.digest);
        let Some(skip) = cols.checked_sub(ours) else { return false };
        let mut at = 2;
        let mut columns = Vec::with_capacity(ours);
        for i in 0..cols {
            let Some(len) = body.get(at..at + 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])) else {
                return false;
            };
            at += 4;
            let bytes = if len < 0 {
                None
            } else {
                let end = at + len as usize;
                let Some(b) = body.get(at..end) else { return false };
                at = end;
                Some(b)
            };
            if i >= skip {
                columns.push(bytes);
            }
        }
        out.extend_from_slice(&self.tracked.to_be_bytes());
        out.push(self.keys);
        for key in &columns[..self.keys as usize] {
            let key = key.unwrap_or_default();
            let len = key.len().min(u16::MAX as usize);
            out.extend_from_slice(&(len as u16).to_be_bytes());
            out.extend_from_slice(&key[..len]);
        }
        match columns.get(self.keys as usize).copied().flatten() {
            Some(d) if self.digest && d.len() == 8 => {
                out.push(1);
                out.extend_from_slice(d);
            }
            _ => {
                out.push(0);
                out.extend_from_slice(&[0; 8]);
            }
        }
        true
    }
}

/// The ledger's columns of the rows one request wrote, until it is
/// acknowledged.
#[derive(Debug, Default)]
pub struct Captured {
    /// Rows as [`Capture::row`] writes them.
    pub buf: Vec<u8>,
    /// How many.
    pub rows: u64,
}

impl Captured {
    /// Forgets them (a new request, or one that failed).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.rows = 0;
    }
}

/// One acknowledged row, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// When its request was sent, in ledger ticks.
    pub issued: u64,
    /// When it was acknowledged.
    pub acked: u64,
    /// The tracked statement.
    pub tracked: u16,
    /// Its key, column by column, as text.
    pub key: Vec<String>,
    /// The digest of the values written; `None` for a delete.
    pub digest: Option<i64>,
}

/// The record of acknowledged writes.
pub struct Spill {
    ticks: AtomicU64,
    inner: Mutex<Inner>,
}

struct Inner {
    buf: Vec<u8>,
    file: Option<std::fs::File>,
    rows: u64,
    bytes: u64,
    error: Option<String>,
}

impl Spill {
    /// An empty record, its file created on the first flush.
    pub fn new() -> Self {
        let inner = Inner { buf: Vec::with_capacity(FLUSH_AT + 4096), file: None, rows: 0, bytes: 0, error: None };
        Spill { ticks: AtomicU64::new(1), inner: Mutex::new(inner) }
    }

    /// A tick, taken as a request is sent.
    pub fn tick(&self) -> u64 {
        self.ticks.fetch_add(1, Ordering::Relaxed)
    }

    /// Records the rows (as [`Capture::row`] wrote them) of a request sent
    /// at `issued` and acknowledged now.
    pub fn acknowledge(&self, issued: u64, rows: &[u8], count: u64) {
        let acked = self.tick();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.buf.extend_from_slice(&issued.to_be_bytes());
        inner.buf.extend_from_slice(&acked.to_be_bytes());
        inner.buf.extend_from_slice(&(rows.len() as u32).to_be_bytes());
        inner.buf.extend_from_slice(rows);
        inner.rows += count;
        if inner.buf.len() >= FLUSH_AT {
            inner.flush();
        }
    }

    /// Rows recorded, and bytes written to the file so far.
    pub fn size(&self) -> (u64, u64) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.rows, inner.bytes + inner.buf.len() as u64)
    }

    /// The rows recorded from byte `offset` of the record on, handed to
    /// `each`, up to the block that reaches `limit` rows; the offset to
    /// read on from, or `None` at the end. Read in parts, so that checking
    /// a long run's writes never holds them all in memory.
    pub fn read(&self, offset: u64, limit: usize, mut each: impl FnMut(Row)) -> Result<Option<u64>, String> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.flush();
        if let Some(e) = &inner.error {
            return Err(e.clone());
        }
        let Some(file) = inner.file.as_mut() else { return Ok(None) };
        file.seek(std::io::SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
        let mut r = BufReader::with_capacity(1 << 16, &mut *file);
        let (mut block, mut head, mut at, mut count) = (Vec::new(), [0u8; 20], offset, 0);
        let next = loop {
            if count >= limit {
                break Some(at);
            }
            match r.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break None,
                Err(e) => return Err(e.to_string()),
            }
            let issued = u64::from_be_bytes(head[..8].try_into().unwrap_or_default());
            let acked = u64::from_be_bytes(head[8..16].try_into().unwrap_or_default());
            let len = u32::from_be_bytes(head[16..].try_into().unwrap_or_default()) as usize;
            block.resize(len, 0);
            r.read_exact(&mut block).map_err(|e| e.to_string())?;
            at += 20 + len as u64;
            decode(&block, issued, acked, &mut |row| {
                count += 1;
                each(row)
            })
            .ok_or("the ledger's file is corrupt")?;
        };
        drop(r);
        // Appends go on at the end.
        file.seek(std::io::SeekFrom::End(0)).map_err(|e| e.to_string())?;
        Ok(next)
    }
}

impl Default for Spill {
    fn default() -> Self {
        Self::new()
    }
}

impl Inner {
    fn flush(&mut self) {
        if self.buf.is_empty() || self.error.is_some() {
            return;
        }
        if self.file.is_none() {
            match tempfile::tempfile() {
                Ok(f) => self.file = Some(f),
                Err(e) => self.error = Some(format!("cannot create the ledger's file: {e}")),
            }
        }
        if let Some(f) = self.file.as_mut() {
            match f.write_all(&self.buf) {
                Ok(()) => self.bytes += self.buf.len() as u64,
                Err(e) => self.error = Some(format!("cannot write the ledger's file: {e}")),
            }
        }
        self.buf.clear();
    }
}

fn decode(mut b: &[u8], issued: u64, acked: u64, each: &mut impl FnMut(Row)) -> Option<()> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    while !b.is_empty() {
        let tracked = u16::from_be_bytes(take(&mut b, 2)?.try_into().ok()?);
        let keys = take(&mut b, 1)?[0];
        let mut key = Vec::with_capacity(keys as usize);
        for _ in 0..keys {
            let len = u16::from_be_bytes(take(&mut b, 2)?.try_into().ok()?) as usize;
            key.push(String::from_utf8_lossy(take(&mut b, len)?).into_owned());
        }
        let has = take(&mut b, 1)?[0] == 1;
        let d = i64::from_be_bytes(take(&mut b, 8)?.try_into().ok()?);
        each(Row { issued, acked, tracked, key, digest: has.then_some(d) });
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_row(cols: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = (cols.len() as u16).to_be_bytes().to_vec();
        for c in cols {
            match c {
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b
    }

    #[test]
    fn rows_are_read_back_with_their_ticks_keys_and_digests() {
        let spill = Spill::new();
        let cap = Capture { tracked: 3, keys: 2, digest: true };
        let mut rows = Vec::new();
        let digest = 0x0102_0304_0506_0708i64.to_be_bytes();
        let own: &[u8] = b"user column";
        assert!(cap.row(&data_row(&[Some(own), Some(b"42"), Some(b"eu"), Some(&digest)]), &mut rows));
        assert!(!cap.row(&data_row(&[Some(b"42")]), &mut rows), "a row without the ledger's columns");
        let issued = spill.tick();
        spill.acknowledge(issued, &rows, 1);
        let del = Capture { tracked: 1, keys: 1, digest: false };
        let mut rows = Vec::new();
        for _ in 0..20_000 {
            del.row(&data_row(&[Some(b"7")]), &mut rows);
            spill.acknowledge(spill.tick(), &rows, 1);
            rows.clear();
        }
        let mut seen = Vec::new();
        let mut at = Some(0);
        while let Some(offset) = at {
            at = spill.read(offset, 7_000, |r| seen.push(r)).unwrap();
        }
        assert_eq!(seen.len(), 20_001);
        assert_eq!(
            seen[0],
            Row {
                issued: 1,
                acked: 2,
                tracked: 3,
                key: vec!["42".into(), "eu".into()],
                digest: Some(0x0102_0304_0506_0708)
            }
        );
        assert_eq!((seen[1].tracked, seen[1].key.clone(), seen[1].digest), (1, vec!["7".to_string()], None));
        assert!(seen.windows(2).all(|w| w[0].acked < w[1].acked));
        assert_eq!(spill.size().0, 20_001);
        assert!(spill.inner.lock().unwrap().buf.capacity() < 2 * FLUSH_AT, "the buffer stays bounded");
    }
}
