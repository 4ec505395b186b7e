//! Query plans before and after the migration: each workload statement
//! explained (`EXPLAIN (FORMAT JSON)`, not run) with parameters drawn as
//! the load draws them, once during the baseline and once just after the
//! migration's last statement, with the same parameters. A plan whose
//! shape changed (an index scan that became a sequential scan, an index no
//! longer used) is reported with its estimated cost before and after.
//!
//! The shape of a plan is its nodes, depth first, each with the relation
//! and the index it reads: costs and row estimates move with every
//! ANALYZE and are not a change of shape.

use bytes::BytesMut;
use postgres_types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use serde::Serialize;
use tokio_postgres::Client;

use crate::datagen::{PgKind, Value, ValueGen, rng_for};
use crate::postgres::{Role, connect};
use crate::scenario::{CheckSpec, QuerySpec, ValueSpec};

/// One statement to explain, with its parameters.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The query's name.
    pub query: String,
    /// The statement's 1-based index within the query (a transaction's).
    pub statement: usize,
    /// Its SQL.
    pub sql: String,
    params: Vec<Value>,
}

/// Draws one value from each generator (no NULLs, so that a plan is of a
/// value the index holds).
fn draw(params: &[crate::scenario::ParamSpec], seed: u64, stream: u64) -> Vec<Value> {
    let mut rng = rng_for(seed, stream, 0);
    params
        .iter()
        .map(|p| ValueGen::from_spec(&ValueSpec { nulls: 0.0, ..p.spec.clone() }).generate(1, &mut rng))
        .collect()
}

/// The `[[workload.check]]` entries, as probes (statement 1 each).
pub fn check_probes(checks: &[CheckSpec], seed: u64) -> Vec<Probe> {
    let each = checks.iter().enumerate();
    each.map(|(i, c)| Probe {
        query: c.name.clone(),
        statement: 1,
        sql: c.statement.text.clone(),
        params: draw(&c.params, seed, 4_000_000 + i as u64),
    })
    .collect()
}

/// A `[[workload.check]]` run once after the migration.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct CheckRun {
    /// The check's name.
    pub name: String,
    /// Its SQL.
    pub sql: String,
    /// When it ran, seconds from the start of the load.
    pub at_s: f64,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// How it failed, if it did.
    pub error: Option<crate::postgres::SqlError>,
    /// Whether it planned (EXPLAIN) before the migration: one that did not
    /// failed before the migration too, and was not broken by it.
    pub planned_before: bool,
}

/// Runs each check once, in a transaction that is rolled back (so that a
/// write leaves nothing behind), each within `timeout`.
pub async fn run_checks(
    config: &tokio_postgres::Config,
    probes: &[Probe],
    timeout: std::time::Duration,
    clock: &crate::clock::PhaseClock,
) -> Result<Vec<CheckRun>, String> {
    let client = connect(config, &Role::Observer).await.map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(probes.len());
    for p in probes {
        let started = std::time::Instant::now();
        let limit = format!("BEGIN; SET LOCAL statement_timeout = {}", timeout.as_millis().max(1));
        let result = match client.batch_execute(&limit).await {
            Ok(()) => {
                let params: Vec<Param<'_>> = p.params.iter().map(Param).collect();
                let run = async {
                    let stmt = client.prepare(&p.sql).await?;
                    let refs: Vec<&(dyn ToSql + Sync)> =
                        params.iter().take(stmt.params().len()).map(|x| x as &(dyn ToSql + Sync)).collect();
                    client.execute(&stmt, &refs).await
                };
                run.await
            }
            Err(e) => Err(e),
        };
        let _ = client.batch_execute("ROLLBACK").await;
        out.push(CheckRun {
            name: p.query.clone(),
            sql: p.sql.clone(),
            at_s: clock.offset(started),
            duration_ms: crate::units::millis(started.elapsed()),
            error: result.err().map(|e| crate::postgres::SqlError::from_pg(&e)),
            planned_before: true,
        });
    }
    Ok(out)
}

/// The statements of `queries`, each with parameters drawn from its
/// generators (no NULLs, so that a plan is of a value the index holds).
pub fn probes(queries: &[QuerySpec], seed: u64) -> Vec<Probe> {
    let mut out = Vec::new();
    for (qi, q) in queries.iter().enumerate() {
        let mut rng = rng_for(seed, 3_000_000 + qi as u64, 0);
        let params: Vec<Value> = q
            .params
            .iter()
            .map(|p| ValueGen::from_spec(&ValueSpec { nulls: 0.0, ..p.spec.clone() }).generate(1, &mut rng))
            .collect();
        for (si, st) in q.statements.iter().enumerate() {
            out.push(Probe { query: q.name.clone(), statement: si + 1, sql: st.text.clone(), params: params.clone() });
        }
    }
    out
}

/// A plan, as compared.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Plan {
    /// Its nodes, depth first: `Index Scan using orders_pkey on orders`.
    pub nodes: Vec<String>,
    /// The planner's estimated total cost.
    pub cost: f64,
}

/// What explaining a statement gave: its plan, or the server's error.
pub type Explained = Result<Plan, String>;

/// A statement whose plan changed shape over the migration.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PlanChange {
    /// The query.
    pub query: String,
    /// The statement's 1-based index within it.
    pub statement: usize,
    /// Its SQL.
    pub sql: String,
    /// The plan before the migration (null when it did not plan).
    pub before: Option<Plan>,
    /// The plan after it (null when it no longer plans: see `error`).
    pub after: Option<Plan>,
    /// Why it did not plan after the migration.
    pub error: Option<String>,
    /// Indexes the plan used before and no longer uses.
    pub indexes_lost: Vec<String>,
    /// Tables it reads by a sequential scan now and did not before.
    pub new_seq_scans: Vec<String>,
}

/// Every statement's plan, or why it has none.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Default)]
pub struct PlanCheck {
    /// Statements explained before and after.
    pub checked: usize,
    /// Those whose plan changed shape (or stopped planning).
    pub changed: Vec<PlanChange>,
}

/// A parameter in the load's own binary encoding.
#[derive(Debug)]
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if matches!(self.0, Value::Null) {
            return Ok(IsNull::Yes);
        }
        let kind = PgKind::of(ty).unwrap_or(PgKind::Text);
        self.0.encode(kind, out)?;
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// EXPLAIN's JSON, as text.
struct JsonText(String);

impl<'a> FromSql<'a> for JsonText {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(JsonText(std::str::from_utf8(raw)?.to_string()))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::TEXT
    }
}

/// How long all the statements may take to explain: an EXPLAIN waits for
/// the lock its tables' AccessShareLock conflicts with (an ACCESS
/// EXCLUSIVE one an interference holds), and the run must not wait on it.
const EXPLAIN_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

/// Explains every probe on a session of its own, each giving up after 1 s
/// waiting for a lock; `Err` when the session could not be had or the
/// whole took more than [`EXPLAIN_BUDGET`].
pub async fn explain_all(config: &tokio_postgres::Config, probes: &[Probe]) -> Result<Vec<Explained>, String> {
    let work = async {
        let client = connect(config, &Role::Observer).await.map_err(|e| e.to_string())?;
        client
            .batch_execute("SET lock_timeout = '1s'; SET statement_timeout = '10s'")
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(probes.len());
        for p in probes {
            out.push(explain(&client, p).await);
        }
        Ok(out)
    };
    tokio::time::timeout(EXPLAIN_BUDGET, work).await.unwrap_or_else(|_| Err("EXPLAIN took too long".into()))
}

/// Whether an EXPLAIN failed for want of time or a lock, not because the
/// statement no longer fits the schema.
fn timed_out(error: &str) -> bool {
    error.contains("55P03") || error.contains("57014")
}

async fn explain(client: &Client, p: &Probe) -> Explained {
    let stmt =
        client.prepare(&format!("EXPLAIN (FORMAT JSON) {}", p.sql)).await.map_err(|e| crate::postgres::describe(&e))?;
    let params: Vec<Param<'_>> = p.params.iter().take(stmt.params().len()).map(Param).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|x| x as &(dyn ToSql + Sync)).collect();
    let row = client.query_one(&stmt, &refs).await.map_err(|e| crate::postgres::describe(&e))?;
    let JsonText(text) = row.try_get(0).map_err(|e| e.to_string())?;
    parse(&text).ok_or_else(|| "EXPLAIN gave a plan this harness cannot read".to_string())
}

/// The shape and cost of EXPLAIN's JSON.
pub fn parse(text: &str) -> Option<Plan> {
    let doc: serde_json::Value = serde_json::from_str(text).ok()?;
    let root = doc.get(0)?.get("Plan")?;
    let mut nodes = Vec::new();
    walk(root, &mut nodes);
    Some(Plan { nodes, cost: root.get("Total Cost")?.as_f64()? })
}

fn walk(node: &serde_json::Value, out: &mut Vec<String>) {
    let field = |k: &str| node.get(k).and_then(|v| v.as_str());
    let mut label = field("Node Type").unwrap_or("?").to_string();
    if let Some(index) = field("Index Name") {
        label.push_str(&format!(" using {index}"));
    }
    if let Some(rel) = field("Relation Name") {
        label.push_str(&format!(" on {rel}"));
    }
    out.push(label);
    for child in node.get("Plans").and_then(|p| p.as_array()).into_iter().flatten() {
        walk(child, out);
    }
}

/// The statements whose plan changed between `before` and `after`.
pub fn compare(probes: &[Probe], before: &[Explained], after: &[Explained]) -> PlanCheck {
    let mut changed = Vec::new();
    for ((p, b), a) in probes.iter().zip(before).zip(after) {
        let (before, after, error) = match (b, a) {
            (Ok(b), Ok(a)) if a.nodes == b.nodes => continue,
            (Ok(b), Ok(a)) => (Some(b.clone()), Some(a.clone()), None),
            (Ok(_), Err(e)) if timed_out(e) => continue,
            (Ok(b), Err(e)) => (Some(b.clone()), None, Some(e.clone())),
            // It did not plan before the migration: nothing to compare.
            (Err(_), _) => continue,
        };
        let indexes = |plan: &Option<Plan>| -> Vec<String> {
            let nodes = plan.iter().flat_map(|p| p.nodes.iter());
            nodes.filter_map(|n| Some(n.split(" using ").nth(1)?.split(" on ").next()?.to_string())).collect()
        };
        let seq = |plan: &Option<Plan>| -> Vec<String> {
            let nodes = plan.iter().flat_map(|p| p.nodes.iter());
            nodes.filter_map(|n| n.strip_prefix("Seq Scan on ").map(str::to_string)).collect()
        };
        let (was, now) = (indexes(&before), indexes(&after));
        let (seq_was, seq_now) = (seq(&before), seq(&after));
        let mut indexes_lost: Vec<String> = was.into_iter().filter(|i| !now.contains(i)).collect();
        indexes_lost.dedup();
        let mut new_seq_scans: Vec<String> = seq_now.into_iter().filter(|t| !seq_was.contains(t)).collect();
        new_seq_scans.dedup();
        changed.push(PlanChange {
            query: p.query.clone(),
            statement: p.statement,
            sql: p.sql.clone(),
            before,
            after,
            error,
            indexes_lost,
            new_seq_scans,
        });
    }
    PlanCheck { checked: probes.len(), changed }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"[{"Plan": {"Node Type": "Index Scan", "Index Name": "items_pkey",
        "Relation Name": "items", "Total Cost": 8.3}}]"#;
    const SEQ: &str = r#"[{"Plan": {"Node Type": "Gather", "Total Cost": 1234.5, "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "items", "Total Cost": 1100.0}]}}]"#;

    #[test]
    fn an_index_scan_that_became_a_sequential_scan_is_a_change_with_the_index_lost() {
        let (index, seq) = (parse(INDEX).unwrap(), parse(SEQ).unwrap());
        assert_eq!(index.nodes, ["Index Scan using items_pkey on items"]);
        assert_eq!(seq.nodes, ["Gather", "Seq Scan on items"]);
        assert_eq!(seq.cost, 1234.5);
        let probe = Probe { query: "get".into(), statement: 1, sql: "SELECT".into(), params: vec![] };
        let probes = vec![probe.clone(), probe];
        let check = compare(&probes, &[Ok(index.clone()), Ok(index.clone())], &[Ok(seq), Ok(index)]);
        assert_eq!(check.checked, 2);
        assert_eq!(check.changed.len(), 1, "the unchanged plan is not listed");
        let c = &check.changed[0];
        assert_eq!(c.indexes_lost, ["items_pkey"]);
        assert_eq!(c.new_seq_scans, ["items"]);
        assert_eq!((c.before.as_ref().unwrap().cost, c.after.as_ref().unwrap().cost), (8.3, 1234.5));
    }
}
