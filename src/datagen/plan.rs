//! The plan of one table's COPY: which generator each column gets, from
//! the scenario's `columns`, the column's name and type, the keys the rows
//! must keep (keys.rs), its CHECKs and its partitions (checks.rs).

use std::sync::Arc;

use tokio_postgres::Client;

use super::copy::{CopyColumn, CopyPlan};
use super::generate::ValueGen;
use super::value::PgKind;
use super::{LoadError, checks, db, infer, keys};
use crate::scenario::{Scenario, TableSpec};

/// Decides the generator of every column of a freshly created table.
pub(super) async fn plan(
    admin: &Client,
    scenario: &Scenario,
    stream_id: u64,
    t: &TableSpec,
    table: &str,
    sizes: &[(String, u64)],
) -> Result<Arc<CopyPlan>, LoadError> {
    let cols = infer::columns(admin, table).await.map_err(db(&t.name))?;
    for o in &t.columns {
        if !cols.iter().any(|c| c.name == o.column) {
            let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
            return Err(LoadError::Column {
                at: o.at.clone(),
                message: format!("table `{}` has no column `{}` (columns: {})", t.name, o.column, names.join(", ")),
            });
        }
    }
    let composites = keys::composite_unique(admin, table).await.map_err(db(&t.name))?;
    let allowed = checks::allowed(&checks::read(admin, table).await.map_err(db(&t.name))?);
    let partitions = checks::partition_range(admin, table).await.map_err(db(&t.name))?;
    let multi = keys::multi_column(admin, table, &cols, sizes).await.map_err(db(&t.name))?;
    let forced = keys::force(t, &cols, &composites, &multi, sizes).map_err(|message| LoadError::Column {
        at: t.ddl.at.clone(),
        message: format!("table `{}`: {message}", t.name),
    })?;
    let mut columns = Vec::new();
    for c in &cols {
        let named = t.columns.iter().find(|o| o.column == c.name);
        // A column of a type the COPY cannot write, with a DEFAULT: left
        // out, the server fills it.
        if named.is_none() && c.has_default && PgKind::of_column(&c.ty, c.typmod).is_none() {
            continue;
        }
        let at = named.map_or_else(|| t.ddl.at.clone(), |o| o.at.clone());
        if let Some(o) = named.filter(|o| c.not_null && o.spec.nulls > 0.0) {
            return Err(LoadError::Column {
                at: o.at.clone(),
                message: format!(
                    "table `{}`: column `{}` is NOT NULL, but its generator makes {}% NULLs (`nulls = {}`)",
                    t.name,
                    c.name,
                    o.spec.nulls * 100.0,
                    o.spec.nulls
                ),
            });
        }
        let generator = match named {
            Some(o) => ValueGen::from_spec(&o.spec).with_max_len(infer::max_len(c)),
            None => {
                let inferred = infer(c, sizes).map_err(|message| LoadError::Column {
                    at: at.clone(),
                    message: format!("table `{}`: {message}", t.name),
                })?;
                let in_partitions = partitions
                    .as_ref()
                    .filter(|(key, _, _)| *key == c.name)
                    .and_then(|(_, lo, hi)| checks::within_partitions(c, *lo, *hi));
                match (forced.get(&c.name), allowed.get(&c.name)) {
                    // Every row must find a partition.
                    _ if in_partitions.is_some() => in_partitions.expect("just checked"),
                    (Some(f), _) => keys::apply(c, inferred, *f),
                    (None, Some(a)) => checks::narrow(c, inferred, a),
                    (None, None) => inferred,
                }
            }
        }
        .with_rows(t.rows);
        let kind = PgKind::of_column(&c.ty, c.typmod);
        let Some(kind) = kind.or(generator.is_null().then_some(PgKind::Text)) else {
            return Err(LoadError::Column { at, message: format!("table `{}`: {}", t.name, infer::unwritable(c)) });
        };
        columns.push(CopyColumn {
            name: c.name.clone(),
            quoted: c.quoted.clone(),
            kind,
            generator,
            sequence: c.sequence.clone(),
        });
    }
    let plan = CopyPlan { table: table.to_string(), columns, rows: t.rows, seed: scenario.seed, stream_id };
    // A generator that cannot produce its column's type fails here, before
    // any data moves, naming the column.
    let mut scratch = bytes::BytesMut::new();
    let probe = CopyPlan { rows: plan.rows.min(64), ..plan.clone() };
    if probe.rows > 0 {
        probe.encode_chunk(0, &mut scratch).map_err(|e| {
            let at = t.columns.iter().find(|o| o.column == e.column).map_or_else(|| t.ddl.at.clone(), |o| o.at.clone());
            LoadError::Column { at, message: format!("table `{}`: {e}", t.name) }
        })?;
    }
    Ok(Arc::new(plan))
}
