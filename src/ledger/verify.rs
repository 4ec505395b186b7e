//! The check after the run: the ledger's rows are copied into a temporary
//! table of the harness's session, and one query per table joins the last
//! state of each key written with the table as the run left it.
//!
//! The last state of a key: its writes that no later acknowledged write
//! followed (a write sent after another was acknowledged is ordered after
//! it; writes whose requests overlapped may have landed in either order,
//! so any of them may be the one the table holds). The row is kept when it
//! matches one of them: gone after a delete, or present with the digest of
//! the columns that write wrote.

use std::time::Instant;

use futures_util::pin_mut;
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::rewrite::{digest_expr, ident};
use super::{Ledger, LedgerQuery, LedgerReport};

/// How many lost or altered keys each statement names.
const EXAMPLES: i64 = 5;

/// Checks the acknowledged writes of `ledger` on the server of `config`
/// (the primary, as the run left it), on a session of the harness's own.
pub async fn verify_on(config: &tokio_postgres::Config, ledger: &Ledger) -> LedgerReport {
    let role = crate::postgres::Role::Harness;
    match crate::postgres::connect(config, &role).await {
        Ok(client) => verify(&client, ledger).await,
        Err(e) => unchecked(ledger, format!("cannot connect: {}", crate::postgres::SqlError::from_pg(&e))),
    }
}

/// Checks every acknowledged write of `ledger` on the server `client` is
/// connected to (the primary, after the run).
pub async fn verify(client: &Client, ledger: &Ledger) -> LedgerReport {
    let started = Instant::now();
    let mut report = skeleton(ledger);
    let rows = report.writes;
    if rows > 0 {
        if let Err(e) = load(client, ledger, &mut report).await {
            report.errors.push(format!("the ledger could not be loaded for the check: {e}"));
        } else {
            for (ti, _) in ledger.tables.iter().enumerate() {
                if let Err(e) = check_table(client, ledger, ti, &mut report).await {
                    let name = &ledger.tables[ti].name;
                    report.errors.push(format!("{name}: {}", crate::postgres::SqlError::from_pg(&e)));
                }
            }
        }
        let _ = client
            .batch_execute(
                "DROP TABLE IF EXISTS pg_temp.rehearse_ledger, pg_temp.rehearse_expected, pg_temp.rehearse_migration",
            )
            .await;
    }
    report.lost = report.queries.iter().map(|q| q.lost).sum();
    report.altered = report.queries.iter().map(|q| q.altered).sum();
    report.changed_by_migration = report.queries.iter().map(|q| q.changed_by_migration).sum();
    report.verify_ms = started.elapsed().as_secs_f64() * 1000.0;
    report
}

/// How the columns `t` writes changed since the run began, if they did.
fn changed(t: &super::Tracked, now: &[(String, String)]) -> Option<String> {
    let mut why = Vec::new();
    for (c, was) in t.columns.iter().zip(&t.types) {
        match now.iter().find(|(n, _)| n == c) {
            None => why.push(format!("column {c} is gone")),
            Some((_, ty)) if ty != was => why.push(format!("column {c} changed type from {was} to {ty}")),
            Some(_) => {}
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// A report of `ledger` whose writes could not be checked, and why.
pub fn unchecked(ledger: &Ledger, why: String) -> LedgerReport {
    let mut report = skeleton(ledger);
    report.errors.push(why);
    report
}

/// The report before the check: every tracked statement, nothing counted.
fn skeleton(ledger: &Ledger) -> LedgerReport {
    let (rows, file_bytes) = ledger.spill.size();
    LedgerReport {
        writes: rows,
        keys: 0,
        lost: 0,
        altered: 0,
        changed_by_migration: 0,
        queries: ledger
            .tracked
            .iter()
            .map(|t| LedgerQuery {
                query: t.query.clone(),
                statement: t.statement,
                table: ledger.tables[t.table].name.clone(),
                kind: t.kind,
                writes: 0,
                lost: 0,
                altered: 0,
                changed_by_migration: 0,
                examples: Vec::new(),
            })
            .collect(),
        untracked: ledger.untracked.clone(),
        errors: Vec::new(),
        notes: Vec::new(),
        file_bytes,
        verify_ms: 0.0,
    }
}

/// Copies the ledger into `pg_temp.rehearse_ledger` and keeps each key's
/// last state in `pg_temp.rehearse_expected`.
async fn load(client: &Client, ledger: &Ledger, report: &mut LedgerReport) -> Result<(), String> {
    let pg = |e: tokio_postgres::Error| crate::postgres::SqlError::from_pg(&e).to_string();
    client
        .batch_execute(
            "CREATE TEMP TABLE rehearse_ledger (tbl int4, tracked int4, issued int8, acked int8, key text[], digest int8)",
        )
        .await
        .map_err(pg)?;
    let sink = client.copy_in("COPY pg_temp.rehearse_ledger FROM STDIN (FORMAT binary)").await.map_err(pg)?;
    let types = [Type::INT4, Type::INT4, Type::INT8, Type::INT8, Type::TEXT_ARRAY, Type::INT8];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    // Read in parts: the spill's lock is not held across the copy's
    // awaits, and a long run's writes are never all in memory.
    let (mut batch, mut at) = (Vec::new(), Some(0));
    while let Some(offset) = at {
        at = ledger.spill.read(offset, 10_000, |r| batch.push(r))?;
        for r in batch.drain(..) {
            let t = &ledger.tracked[r.tracked as usize];
            report.queries[r.tracked as usize].writes += 1;
            let (tbl, tracked) = (t.table as i32, i32::from(r.tracked));
            let (issued, acked) = (r.issued as i64, r.acked as i64);
            writer.as_mut().write(&[&tbl, &tracked, &issued, &acked, &r.key, &r.digest]).await.map_err(pg)?;
        }
    }
    writer.finish().await.map_err(pg)?;
    client
        .batch_execute(
            "ANALYZE pg_temp.rehearse_ledger;
             CREATE TEMP TABLE rehearse_expected AS
             SELECT tbl, key, array_agg(tracked ORDER BY acked) AS tracked, array_agg(digest ORDER BY acked) AS digests,
                    max(acked) AS acked
             FROM (SELECT *, max(issued) OVER (PARTITION BY tbl, key) AS last_issued FROM pg_temp.rehearse_ledger) w
             WHERE acked >= last_issued
             GROUP BY tbl, key;
             ANALYZE pg_temp.rehearse_expected;",
        )
        .await
        .map_err(pg)?;
    let spans = ledger.migration.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (ticks, lo, hi): (Vec<i64>, Vec<i64>, Vec<i64>) =
        spans.iter().fold((Vec::new(), Vec::new(), Vec::new()), |(mut t, mut l, mut h), s| {
            t.push(s.tick as i64);
            l.push(s.lo);
            h.push(s.hi);
            (t, l, h)
        });
    client
        .execute(
            "CREATE TEMP TABLE rehearse_migration AS SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[]) m(tick, lo, hi)",
            &[&ticks, &lo, &hi],
        )
        .await
        .map_err(pg)?;
    Ok(())
}

/// Joins table `ti` with the last states of its keys; counts the lost and
/// altered ones against the statement that wrote last.
async fn check_table(
    client: &Client,
    ledger: &Ledger,
    ti: usize,
    report: &mut LedgerReport,
) -> Result<(), tokio_postgres::Error> {
    let table = &ledger.tables[ti];
    let types: Vec<String> = {
        let sql = "SELECT format_type(a.atttypid, a.atttypmod) FROM unnest($2::text[]) WITH ORDINALITY k(name, o)
                   LEFT JOIN pg_attribute a ON a.attrelid = to_regclass($1) AND a.attname = k.name AND NOT a.attisdropped
                   ORDER BY k.o";
        let rows = client.query(sql, &[&table.qualified, &table.keys]).await?;
        rows.iter().map(|r| r.get::<_, Option<String>>(0).unwrap_or_else(|| "text".into())).collect()
    };
    let join: Vec<String> = table
        .keys
        .iter()
        .zip(&types)
        .enumerate()
        .map(|(i, (k, ty))| format!("t.{} = e.key[{}]::{ty}", ident(k), i + 1))
        .collect();
    let now: Vec<(String, String)> = {
        let sql = "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
                   WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped";
        let rows = client.query(sql, &[&table.qualified]).await?;
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let mut case = String::from("CASE e.tracked[i]");
    for (i, t) in ledger.tracked.iter().enumerate().filter(|(_, t)| t.table == ti && !t.columns.is_empty()) {
        match changed(t, &now) {
            // The digest of values the migration recast cannot match what
            // was written: the row's presence is what is checked.
            Some(why) => {
                case.push_str(&format!(" WHEN {i} THEN e.digests[i]"));
                report.notes.push(format!("{} #{}: rows checked for presence only, since {why}", t.query, t.statement));
            }
            None => case.push_str(&format!(" WHEN {i} THEN {}", digest_expr("t", &t.columns))),
        }
    }
    case.push_str(" END");
    if !case.contains(" WHEN ") {
        // Deletes only: no digest to compare.
        case = "NULL::int8".into();
    }
    // A row the migration wrote (its xmin one of an execution's) where it
    // could see the write: changed on purpose (see `MigrationSpan`).
    // (`xmin` is 32 bits; the spans, 64 with the epoch.)
    let oid: Option<i64> = client.query_one("SELECT to_regclass($1)::oid::int8", &[&table.qualified]).await?.get(0);
    let seen = if oid == Some(table.oid) { "true" } else { "m.tick > e.acked" };
    let migrated = format!(
        "t.ctid IS NOT NULL AND EXISTS (SELECT 1 FROM pg_temp.rehearse_migration m
           WHERE {seen} AND ((t.xmin::text::int8 - m.lo) % 4294967296 + 4294967296) % 4294967296 < m.hi - m.lo)"
    );
    let sql = format!(
        "SELECT x.last, x.found, x.migrated, count(*)::int8,
                (array_agg(array_to_string(x.key, ', ') ORDER BY x.key))[1:{EXAMPLES}]
         FROM (
           SELECT e.key, e.tracked[array_upper(e.tracked, 1)] AS last, t.ctid IS NOT NULL AS found,
                  EXISTS (SELECT 1 FROM generate_subscripts(e.tracked, 1) i
                          WHERE CASE WHEN e.digests[i] IS NULL THEN t.ctid IS NULL
                                     ELSE t.ctid IS NOT NULL AND e.digests[i] = {case} END) AS ok,
                  {migrated} AS migrated
           FROM pg_temp.rehearse_expected e LEFT JOIN {} t ON {}
           WHERE e.tbl = $1
         ) x
         WHERE NOT x.ok
         GROUP BY x.last, x.found, x.migrated",
        table.qualified,
        join.join(" AND ")
    );
    let keys: i64 = client
        .query_one("SELECT count(*) FROM pg_temp.rehearse_expected WHERE tbl = $1", &[&(ti as i32)])
        .await?
        .get(0);
    let rows = client.query(&sql, &[&(ti as i32)]).await?;
    report.keys += keys as u64;
    for row in rows {
        let (last, found, migrated, count): (i32, bool, bool, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        let examples: Vec<String> = row.get(4);
        let Some(q) = report.queries.get_mut(last as usize) else { continue };
        if migrated {
            q.changed_by_migration += count as u64;
            continue;
        }
        let what = if found { "altered" } else { "lost" };
        if found {
            q.altered += count as u64;
        } else {
            q.lost += count as u64;
        }
        let key = |k: &str| match table.keys.as_slice() {
            [one] => format!("{what} {one}={k}"),
            many => format!("{what} ({})=({k})", many.join(", ")),
        };
        q.examples.extend(examples.iter().map(|k| key(k)));
        q.examples.truncate(EXAMPLES as usize);
    }
    Ok(())
}
