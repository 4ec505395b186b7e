//! One look at the server's lock state: every backend of the database that
//! waits for a lock or holds one that another waits for, with the lock it
//! waits for, if any, since when (the server's own `pg_locks.waitstart`,
//! PostgreSQL 14+), whom it waits behind (`pg_blocking_pids`, which also
//! names a request queued ahead of it: the queued `ALTER TABLE` behind which
//! every later query waits), and the leader of its parallel query, if it is
//! a worker of one.

use tokio_postgres::{Client, Row, Statement};

use crate::postgres::Role;

/// One backend in one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// Its process id.
    pub pid: i32,
    /// The session it works for: its own pid, or its parallel query's
    /// leader (`leader_pid`, PostgreSQL 13+). Several workers waiting for
    /// one query are one wait.
    pub session: i32,
    /// Who it is, from its `application_name` (or backend type).
    pub role: Role,
    /// The lock it waits for: relation name (or lock type) and mode.
    pub waiting_for: Option<(String, String)>,
    /// The pids it waits behind.
    pub blockers: Vec<i32>,
    /// How long it has waited, per the server (PostgreSQL 14+).
    pub wait_ms: Option<f64>,
    /// When its wait began, per the server, in microseconds since the Unix
    /// epoch: the identity of one wait (PostgreSQL 14+).
    pub wait_start_us: Option<i64>,
    /// The start of its current query, shortened.
    pub query: String,
}

/// Prepares the sampling query for a server of `version_num`.
pub async fn prepare(client: &Client, version_num: i32) -> Result<Statement, tokio_postgres::Error> {
    // waitstart exists from PostgreSQL 14; before, the observer times
    // waits from the first sample that sees them. A wait's age is taken at
    // the start of the sampling statement, before its snapshot of pg_locks:
    // a lower bound. (The clock when a row is produced can come after the
    // lock was granted, when the sample runs slowly on a busy machine, and
    // would make a wait longer than the step it was in.)
    let (waitstart, wait_ms, wait_start_us) = if version_num >= 140_000 {
        (
            ", waitstart",
            "greatest(0, extract(epoch FROM statement_timestamp() - w.waitstart) * 1000)::float8",
            "(extract(epoch FROM w.waitstart) * 1000000)::int8",
        )
    } else {
        ("", "NULL::float8", "NULL::int8")
    };
    let leader = if version_num >= 130_000 { "coalesce(a.leader_pid, a.pid)" } else { "a.pid" };
    // Only the backends that wait and the ones they wait behind are read:
    // when nothing waits, a sample is one scan of the lock table and costs
    // the server almost nothing, so sampling every 10 ms barely shows in
    // the workload's throughput.
    let sql = format!(
        "WITH w AS MATERIALIZED ( \
             SELECT pid, relation, locktype, mode{waitstart}, pg_blocking_pids(pid) AS blockers \
             FROM pg_locks WHERE NOT granted), \
         involved AS (SELECT pid FROM w UNION SELECT unnest(blockers) FROM w) \
         SELECT a.pid, \
                {leader}, \
                coalesce(nullif(a.application_name, ''), a.backend_type, ''), \
                CASE WHEN w.pid IS NULL THEN NULL \
                     ELSE coalesce(w.relation::regclass::text, w.locktype) END, \
                w.mode, \
                w.blockers, \
                {wait_ms}, \
                {wait_start_us}, \
                left(coalesce(a.query, ''), 160) \
         FROM involved i CROSS JOIN LATERAL pg_stat_get_activity(i.pid) a LEFT JOIN w ON w.pid = a.pid \
         WHERE a.pid <> pg_backend_pid() AND a.datid IS NOT NULL"
    );
    client.prepare(&sql).await
}

/// Takes one sample.
pub async fn take(client: &Client, stmt: &Statement) -> Result<Vec<Backend>, tokio_postgres::Error> {
    Ok(client.query(stmt, &[]).await?.iter().map(backend).collect())
}

fn backend(r: &Row) -> Backend {
    let target: Option<String> = r.get(3);
    let mode: Option<String> = r.get(4);
    Backend {
        pid: r.get(0),
        session: r.get::<_, Option<i32>>(1).unwrap_or_else(|| r.get(0)),
        role: Role::from_application_name(r.get::<_, &str>(2)),
        waiting_for: target.zip(mode),
        blockers: r.get::<_, Option<Vec<i32>>>(5).unwrap_or_default(),
        wait_ms: r.get(6),
        wait_start_us: r.get(7),
        query: r.get(8),
    }
}
