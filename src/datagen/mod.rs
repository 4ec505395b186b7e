//! Data: each table created from its DDL and filled with `rows` rows of
//! realistic, deterministic values by binary COPY over several connections;
//! indexes and constraints built after the rows; then `VACUUM (ANALYZE)`,
//! which leaves the table analyzed and its visibility map set, as a
//! production table would be.
//!
//! On a server the user names, a table that already exists is never
//! touched unless the user asks to rehearse against it as it is.

mod any;
pub mod build;
mod checks;
mod compound;
mod copy;
mod create;
mod deferred;
mod disk;
mod generate;
mod infer;
mod keys;
mod numeric;
mod plan;
pub mod progress;
mod schema;
mod styles;
mod value;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

pub use copy::{CHUNK_ROWS, CopyColumn, CopyPlan};
pub use create::create;
pub use generate::{DataRng, ValueGen, rng_for};
pub use infer::{ColumnInfo, infer};
pub use value::{EncodeError, PgKind, Value};

use crate::postgres::{Cleanup, Role, SqlError, connect};
use crate::scenario::{Location, Scenario, TableSpec};

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// COPY streams per table; 0 to choose (see [`LoadOptions::streams`]).
    pub streams: usize,
    /// Use tables that already exist as they are instead of refusing.
    pub reuse_existing: bool,
    /// Draw a progress bar per table on stderr.
    pub progress: bool,
    /// Where the server keeps its data on this machine, when the harness
    /// knows: the load checks the free space there first.
    pub data_dir: Option<std::path::PathBuf>,
    /// The harness started the server, on this machine: index builds are
    /// sized to it (see [`build::Tuning::for_server`]).
    pub throwaway: bool,
    /// Builds at once and workers per build, when set; else chosen.
    pub mix: Option<build::Mix>,
}

impl LoadOptions {
    /// COPY streams per table: as set, else chosen. A server the harness
    /// started runs on this machine, where each stream takes a CPU of the
    /// server's backend and part of one for its encoder: half the CPUs, at
    /// least one (a single stream copies with `FREEZE`, so the `VACUUM`
    /// after it has nothing to rewrite). A server the user named has CPUs
    /// of its own: as many streams as this machine has CPUs.
    pub fn streams(&self) -> usize {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        match (self.streams, self.throwaway) {
            (0, true) => (cpus / 2).max(1),
            (0, false) => cpus,
            (n, _) => n,
        }
    }
}

impl Default for LoadOptions {
    /// Streams chosen, nothing shown, a server the user named (nothing
    /// sized to this machine).
    fn default() -> LoadOptions {
        LoadOptions { streams: 0, reuse_existing: false, progress: false, data_dir: None, throwaway: false, mix: None }
    }
}

/// The scenario's tables as [`create`] left them, empty: those it created
/// (or the schema file did), and those that existed and are used as they
/// are; each with its name as `regclass` prints it.
pub struct Created<'a> {
    /// Tables to fill, parents first.
    pub created: Vec<(&'a TableSpec, String)>,
    /// Existing tables, used as they are.
    pub reused: Vec<(&'a TableSpec, String)>,
}

impl Created<'_> {
    /// The names of the tables the harness fills.
    pub fn names(&self) -> Vec<String> {
        self.created.iter().map(|(_, q)| q.clone()).collect()
    }
}

/// A table as the rehearsal found or built it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct LoadedTable {
    /// Its name.
    pub name: String,
    /// Rows in it (generated, or the planner's estimate for a reused one).
    pub rows: u64,
    /// `pg_relation_size`: the heap alone.
    pub heap_bytes: i64,
    /// `pg_total_relation_size`: heap, indexes and TOAST.
    pub total_bytes: i64,
    /// Wall time from the start of its COPY until it was indexed and
    /// analyzed (foreign keys included).
    pub load_seconds: f64,
    /// Of that, the COPY streams.
    pub copy_seconds: f64,
    /// Of that, building indexes and constraints (foreign keys included).
    pub index_seconds: f64,
    /// Of that, `VACUUM (ANALYZE)`.
    pub vacuum_seconds: f64,
    /// Dead tuples left on purpose (`bloat`): rows updated after the vacuum.
    pub dead_tuples: u64,
    /// Whether it existed already and was used as it was.
    pub reused: bool,
}

/// Why the data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A table exists on a server the user named.
    #[error(
        "table `{table}` already exists on {target}; rehearse only fills tables it creates itself. Pass --reuse-existing to rehearse against the existing table as it is{hint}"
    )]
    Exists {
        /// The table.
        table: String,
        /// The server, without password.
        target: String,
        /// What else the user can do, when a killed run left the table.
        hint: String,
    },
    /// The DDL failed.
    #[error("{at}: the ddl of table `{table}` failed: {error}")]
    Ddl {
        /// The table.
        table: String,
        /// Where in the scenario Postgres pointed.
        at: Location,
        /// The error.
        error: SqlError,
    },
    /// The DDL ran but made no table of that name.
    #[error("{at}: the ddl of table `{table}` ran but created no table named `{table}`")]
    NotCreated {
        /// The table.
        table: String,
        /// Where its DDL is.
        at: Location,
    },
    /// A column cannot be filled as described.
    #[error("{at}: {message}")]
    Column {
        /// Where the column or its table is described.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// A generated value did not fit its column while loading.
    #[error("table `{table}`: {message}")]
    Generate {
        /// The table.
        table: String,
        /// What did not fit.
        message: String,
    },
    /// A schema file on a server the user named.
    #[error(
        "`schema` builds a whole schema, so it runs only on a throwaway server (--backend local or docker), not on a server named with --url"
    )]
    SchemaOnNamedServer,
    /// A statement of the schema file failed.
    #[error("{at}: the schema's statement failed: {error}{note}")]
    Schema {
        /// Where in the schema file (line and column of Postgres' position).
        at: Location,
        /// The error.
        error: SqlError,
        /// What was skipped before, when it may be why.
        note: String,
    },
    /// `rows` names a table the schema does not create.
    #[error("{at}: `rows` names table `{table}`, which the schema does not create")]
    NotInSchema {
        /// The table.
        table: String,
        /// Where `rows` names it.
        at: Location,
    },
    /// The disk where the server keeps its data cannot hold the tables.
    #[error(
        "the tables need about {} on disk ({} of rows, {} of indexes, {} for the write-ahead log and the cluster), but {} has only {} free: free some space, put TMPDIR on a larger disk, or lower --scale",
        gb(*needed), gb(*heap), gb(*indexes), gb(*wal), path.display(), gb(*free)
    )]
    Disk {
        /// Bytes needed in all.
        needed: u64,
        /// Of that, the tables' rows.
        heap: u64,
        /// Of that, their indexes.
        indexes: u64,
        /// Of that, room for WAL.
        wal: u64,
        /// Bytes free.
        free: u64,
        /// Where.
        path: std::path::PathBuf,
    },
    /// The server refused the load.
    #[error("loading table `{table}`: {error}")]
    Db {
        /// The table.
        table: String,
        /// The error.
        error: SqlError,
    },
}

impl LoadError {
    /// 2 when the scenario is at fault (including generated data that
    /// breaks the table's own constraints), 3 for the environment.
    pub fn exit_code(&self) -> i32 {
        match self {
            LoadError::Disk { .. } => 3,
            LoadError::Db { error, .. } => {
                let class = error.sqlstate.as_deref().map(|s| &s[..2]);
                if matches!(class, Some("22" | "23" | "42")) { 2 } else { 3 }
            }
            _ => 2,
        }
    }
}

/// Bytes as gigabytes (or megabytes, when under one), for messages.
fn gb(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

pub(crate) fn db(table: &str) -> impl Fn(tokio_postgres::Error) -> LoadError + '_ {
    move |e| LoadError::Db { table: table.to_string(), error: SqlError::from_pg(&e) }
}

/// Creates and fills the scenario's tables on the server of `config`:
/// [`create`], then [`fill`].
pub async fn load(
    config: &tokio_postgres::Config,
    target: &str,
    admin: &Client,
    scenario: &Scenario,
    opts: &LoadOptions,
    cleanup: &Cleanup,
) -> Result<Vec<LoadedTable>, LoadError> {
    let created = create(admin, config, target, scenario, opts, cleanup).await?;
    fill(config, admin, scenario, created, opts).await
}

/// Fills the tables [`create`] made (their indexes and constraints taken
/// off during the load and put back after), and measures every table,
/// reused ones included. Before any row moves, the size the tables will
/// take is estimated and checked against the free space where the server
/// keeps its data, when the harness knows where that is.
///
/// Tables are copied one after another, parents first; each table's
/// indexes build (several at once, see [`build`]) while the next one's
/// rows are copied, and foreign keys are added when every table is in.
pub async fn fill(
    config: &tokio_postgres::Config,
    admin: &Client,
    scenario: &Scenario,
    tables: Created<'_>,
    opts: &LoadOptions,
) -> Result<Vec<LoadedTable>, LoadError> {
    let Created { created, reused } = tables;
    // Tables by scenario name and by regclass text (foreign keys name the
    // latter), with their row counts.
    let mut sizes: Vec<(String, u64)> = scenario.tables.iter().map(|t| (t.name.clone(), t.rows)).collect();
    for (t, q) in created.iter().chain(reused.iter()) {
        if *q != t.name {
            sizes.push((q.clone(), t.rows));
        }
    }
    // Plans read keys from the catalog, before they are taken off.
    let mut plans = Vec::new();
    for (i, (t, q)) in created.iter().enumerate() {
        plans.push(plan::plan(admin, scenario, i as u64, t, q, &sizes).await?);
    }
    let names: Vec<String> = created.iter().map(|(_, q)| q.clone()).collect();
    let deferred = deferred::take_off(admin, &names, scenario.schema.is_some()).await.map_err(db("(indexes)"))?;
    if let Some(dir) = &opts.data_dir {
        disk::check(&plans, &deferred, dir).map_err(|e| *e)?;
    }
    let (tuning, note) =
        build::Tuning::for_server(admin, opts.throwaway, opts.streams(), opts.mix).await.map_err(db("(indexes)"))?;
    if opts.progress && !created.is_empty() {
        eprintln!("rehearse: {note}");
    }
    let sessions = build::Sessions::new(config, tuning);
    let progress = progress::Progress::new(opts.progress);
    let mut builds = tokio::task::JoinSet::new();
    let mut loaded = Vec::new();
    for (i, ((t, q), (plan, deferred))) in created.iter().zip(plans.into_iter().zip(&deferred)).enumerate() {
        let bar = progress.table(&t.name, plan.rows);
        let started = Instant::now();
        // COPY FREEZE needs a plain table (not partitioned) and one stream.
        let plain: bool = admin
            .query_one("SELECT relkind = 'r' FROM pg_class WHERE oid = $1::text::regclass", &[q])
            .await
            .map_err(db(&t.name))?
            .get(0);
        copy_table(config, plan.clone(), opts.streams(), plain, &bar).await?;
        let copied = started.elapsed();
        let mut table = measure(admin, t, q, Duration::ZERO, false).await?;
        table.copy_seconds = copied.as_secs_f64();
        loaded.push(table);
        let job = Indexing { sessions: sessions.clone(), q: q.clone(), plan, bloat: t.bloat, bar };
        let deferred = deferred.clone();
        builds.spawn(async move { (i, job.run(&deferred, started).await) });
    }
    while let Some(done) = builds.join_next().await {
        let (i, result) = done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let (built, dead_tuples, elapsed) = result.map_err(db(&loaded[i].name))?;
        let table = &mut loaded[i];
        table.index_seconds = built.indexes.as_secs_f64();
        table.vacuum_seconds = built.vacuum.as_secs_f64();
        table.load_seconds = elapsed.as_secs_f64();
        table.dead_tuples = dead_tuples;
    }
    // A foreign key's time counts to the table it is on.
    let fks: Vec<_> = deferred.iter().flat_map(|d| d.foreign_keys.iter().cloned()).collect();
    let owners: Vec<Option<usize>> = fks.iter().map(|fk| names.iter().position(|q| *q == fk.tables[0])).collect();
    let took = build::foreign_keys(&sessions, &fks).await.map_err(db("(foreign keys)"))?;
    for (i, took) in owners.into_iter().zip(took) {
        if let Some(t) = i.and_then(|i| loaded.get_mut(i)) {
            t.load_seconds += took.as_secs_f64();
            t.index_seconds += took.as_secs_f64();
        }
    }
    for ((t, q), table) in created.iter().zip(loaded.iter_mut()) {
        let sized = measure(admin, t, q, Duration::ZERO, false).await?;
        (table.heap_bytes, table.total_bytes) = (sized.heap_bytes, sized.total_bytes);
    }
    for (t, q) in reused {
        let mut table = measure(admin, t, &q, Duration::ZERO, true).await?;
        let estimate: f32 = admin
            .query_one("SELECT reltuples FROM pg_class WHERE oid = $1::text::regclass", &[&q])
            .await
            .map_err(db(&t.name))?
            .get(0);
        table.rows = estimate.max(0.0) as u64;
        loaded.push(table);
    }
    Ok(loaded)
}

/// What a table needs once its rows are in.
struct Indexing {
    sessions: Arc<build::Sessions>,
    q: String,
    plan: Arc<CopyPlan>,
    bloat: f64,
    bar: progress::TableProgress,
}

impl Indexing {
    /// Builds its indexes and constraints, vacuums and analyzes it, moves
    /// its sequences past the generated keys and leaves its dead tuples;
    /// returns what the builds took, the dead tuples, and the time since
    /// `started`.
    async fn run(
        self,
        deferred: &deferred::Deferred,
        started: Instant,
    ) -> Result<(build::Built, u64, Duration), tokio_postgres::Error> {
        let Indexing { sessions, q, plan, bloat, bar } = self;
        let built = build::table(&sessions, &q, deferred, |what| bar.phase(what)).await?;
        let s = sessions.session(0).await?;
        // Identity and serial columns were filled explicitly; move their
        // sequences past the generated keys so the workload's inserts fit
        // (after the builds: the key's index finds the largest at once).
        for c in plan.columns.iter().filter(|c| c.sequence.is_some()) {
            let sql = format!(
                "SELECT setval($1::text::regclass, (SELECT coalesce(max({}), 0) FROM {q}) + 1, false)",
                c.quoted
            );
            s.execute(&sql, &[&c.sequence]).await?;
        }
        let dead_tuples = leave_bloat(&s, bloat, &q, &plan).await?;
        let elapsed = started.elapsed();
        bar.finish();
        Ok((built, dead_tuples, elapsed))
    }
}

/// Leaves `bloat` of the rows as dead tuples: each chosen row is updated
/// to itself once (a new version, the old one dead), with a fixed seed so
/// the same rows are chosen every time; then `ANALYZE`. Returns the number
/// of rows updated.
async fn leave_bloat(client: &Client, bloat: f64, q: &str, plan: &CopyPlan) -> Result<u64, tokio_postgres::Error> {
    // Any column will do but an identity column (it cannot be set).
    let Some(col) = plan.columns.iter().rev().find(|c| c.sequence.is_none()).filter(|_| bloat > 0.0) else {
        return Ok(0);
    };
    let c = &col.quoted;
    client.batch_execute("SELECT setseed(0.5)").await?;
    let n = client.execute(&format!("UPDATE {q} SET {c} = {c} WHERE random() < {bloat}"), &[]).await?;
    client.batch_execute(&format!("ANALYZE {q}")).await?;
    Ok(n)
}

/// Runs the COPY streams of one table.
async fn copy_table(
    config: &tokio_postgres::Config,
    plan: Arc<CopyPlan>,
    streams: usize,
    freeze: bool,
    bar: &progress::TableProgress,
) -> Result<(), LoadError> {
    let streams = (streams as u64).min(plan.chunks().max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..streams {
        let (config, plan, bar) = (config.clone(), plan.clone(), bar.clone());
        tasks.spawn(async move {
            let client = connect(&config, &Role::Loader).await.map_err(copy::CopyError::Db)?;
            // A fill is not the application's traffic: triggers that write
            // other tables (counters, audit rows) would add rows nobody
            // asked for, so the load's sessions do not fire them (the
            // `replica` role; where the server refuses it, to a role that
            // is not a superuser, they fire).
            let _ = client.batch_execute("SET session_replication_role = replica").await;
            copy::copy_stream(&client, plan, s, streams, freeze, |rows, bytes| bar.copied(rows, bytes)).await
        });
    }
    let table = plan.table.clone();
    while let Some(done) = tasks.join_next().await {
        let done = match done {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(LoadError::Generate { table, message: e.to_string() }),
        };
        match done {
            Ok(_) => {}
            Err(copy::CopyError::Encode(e)) => {
                return Err(LoadError::Generate { table, message: e.to_string() });
            }
            Err(copy::CopyError::Db(e)) => return Err(db(&table)(e)),
        }
    }
    Ok(())
}

async fn measure(
    admin: &Client,
    t: &TableSpec,
    q: &str,
    elapsed: Duration,
    reused: bool,
) -> Result<LoadedTable, LoadError> {
    let row = admin
        // A partitioned table's rows are in its partitions.
        // `pg_partition_tree` lists nothing for a table outside any
        // partition tree, so the table itself is added (once).
        .query_one(
            "SELECT coalesce(sum(pg_relation_size(r)), 0)::int8, coalesce(sum(pg_total_relation_size(r)), 0)::int8 \
             FROM (SELECT relid AS r FROM pg_partition_tree($1::text::regclass) \
                   UNION SELECT $1::text::regclass) AS tree",
            &[&q],
        )
        .await
        .map_err(db(&t.name))?;
    Ok(LoadedTable {
        name: t.name.clone(),
        rows: t.rows,
        heap_bytes: row.get(0),
        total_bytes: row.get(1),
        load_seconds: elapsed.as_secs_f64(),
        copy_seconds: 0.0,
        index_seconds: 0.0,
        vacuum_seconds: 0.0,
        dead_tuples: 0,
        reused,
    })
}
