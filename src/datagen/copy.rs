//! Binary COPY: rows encoded straight into large buffers and streamed over
//! several connections.
//!
//! A table's rows are cut into fixed chunks of [`CHUNK_ROWS`]; each chunk
//! has its own RNG ([`rng_for`]), and stream `k` of `n` sends chunks
//! `k, k + n, k + 2n, ...`. The data is therefore the same whatever the
//! number of streams. Buffers of about [`SEND_BYTES`] are handed to the
//! driver's `CopyInSink` whole, never a row at a time, and nothing larger
//! than a buffer per stream is held in memory.

use std::pin::pin;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use futures_util::SinkExt;
use tokio_postgres::Client;

use super::generate::{ValueGen, rng_for};
use super::value::{EncodeError, PgKind, Value};

/// Rows per chunk: the unit of determinism and of work distribution.
pub const CHUNK_ROWS: u64 = 4096;
/// Bytes buffered before a send.
pub const SEND_BYTES: usize = 1 << 20;

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// One column of a COPY: its quoted name, wire format and generator.
#[derive(Debug, Clone)]
pub struct CopyColumn {
    /// Column name, for messages.
    pub name: String,
    /// Column name quoted for SQL.
    pub quoted: String,
    /// Wire format.
    pub kind: PgKind,
    /// Where its values come from.
    pub generator: ValueGen,
    /// The sequence behind it, when it is an identity or serial column.
    pub sequence: Option<String>,
}

/// What to load into one table.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    /// Table name as regclass text (quoted, qualified where needed).
    pub table: String,
    /// The columns to fill, in COPY order.
    pub columns: Vec<CopyColumn>,
    /// Rows to generate.
    pub rows: u64,
    /// The scenario seed.
    pub seed: u64,
    /// Distinguishes this table's random streams from other tables'.
    pub stream_id: u64,
}

/// A value that does not fit its column.
#[derive(Debug, thiserror::Error)]
#[error("column `{column}`: {error}")]
pub struct ColumnEncodeError {
    /// The column.
    pub column: String,
    /// What did not fit.
    pub error: EncodeError,
}

impl CopyPlan {
    /// Number of chunks.
    pub fn chunks(&self) -> u64 {
        self.rows.div_ceil(CHUNK_ROWS)
    }

    /// The `COPY ... FROM STDIN` statement; with `freeze`, rows are
    /// written frozen and all-visible (the table must have been created or
    /// truncated in the same transaction).
    pub fn statement(&self, freeze: bool) -> String {
        let cols: Vec<&str> = self.columns.iter().map(|c| c.quoted.as_str()).collect();
        let freeze = if freeze { ", FREEZE" } else { "" };
        format!("COPY {} ({}) FROM STDIN (FORMAT binary{freeze})", self.table, cols.join(", "))
    }

    /// Appends the rows of `chunk` to `out` in binary COPY format; returns
    /// how many rows it wrote.
    pub fn encode_chunk(&self, chunk: u64, out: &mut BytesMut) -> Result<u64, ColumnEncodeError> {
        let first = chunk * CHUNK_ROWS;
        let end = (first + CHUNK_ROWS).min(self.rows);
        let mut rng = rng_for(self.seed, self.stream_id, chunk);
        let ncols = self.columns.len() as i16;
        for row in first..end {
            out.put_i16(ncols);
            for col in &self.columns {
                let v = col.generator.generate(row, &mut rng);
                encode_field(&v, col, out)?;
            }
        }
        Ok(end.saturating_sub(first))
    }
}

fn encode_field(v: &Value, col: &CopyColumn, out: &mut BytesMut) -> Result<(), ColumnEncodeError> {
    if *v == Value::Null {
        out.put_i32(-1);
        return Ok(());
    }
    let at = out.len();
    out.put_i32(0);
    v.encode(col.kind, out).map_err(|error| ColumnEncodeError { column: col.name.clone(), error })?;
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Why a COPY stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A generated value did not fit its column: the scenario's fault.
    #[error(transparent)]
    Encode(#[from] ColumnEncodeError),
    /// The server refused the data or the connection broke.
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// Sends chunks `stream, stream + streams, ...` of the plan over `client`;
/// `progress` is called with the rows and bytes of each encoded chunk.
///
/// A single stream into a fresh, empty table (`freeze`) truncates it and
/// copies with `FREEZE` in one transaction: the rows arrive frozen, with
/// the visibility map set, so the `VACUUM` after the load has nothing to
/// rewrite. Several streams cannot share that transaction.
pub async fn copy_stream(
    client: &Client,
    plan: Arc<CopyPlan>,
    stream: u64,
    streams: u64,
    freeze: bool,
    progress: impl Fn(u64, u64),
) -> Result<u64, CopyError> {
    let freeze = freeze && streams == 1;
    if freeze {
        client.batch_execute(&format!("BEGIN; TRUNCATE ONLY {}", plan.table)).await?;
    }
    let sink = client.copy_in::<_, bytes::Bytes>(&plan.statement(freeze)).await?;
    let mut sink = pin!(sink);
    let mut buf = BytesMut::with_capacity(SEND_BYTES + SEND_BYTES / 4);
    buf.put_slice(HEADER);
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    let mut chunk = stream;
    while chunk < plan.chunks() {
        let before = buf.len();
        let rows = plan.encode_chunk(chunk, &mut buf)?;
        progress(rows, (buf.len() - before) as u64);
        if buf.len() >= SEND_BYTES {
            sink.send(buf.split().freeze()).await?;
        }
        chunk += streams;
    }
    buf.put_i16(-1); // trailer
    sink.send(buf.split().freeze()).await?;
    let rows = sink.as_mut().finish().await?;
    if freeze {
        client.batch_execute("COMMIT").await?;
    }
    Ok(rows)
}
