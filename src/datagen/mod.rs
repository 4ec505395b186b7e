//! Data: each table created from its DDL and filled with `rows` rows of
//! realistic, deterministic values by binary COPY over several connections;
//! indexes and constraints built after the rows; then `VACUUM (ANALYZE)`,
//! which leaves the table analyzed and its visibility map set, as a
//! production table would be.
//!
//! On a server the user names, a table that already exists is never
//! touched unless the user asks to rehearse against it as it is.

mod any;
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
mod schema;
mod styles;
mod value;

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
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
    /// COPY streams per table.
    pub streams: usize,
    /// Use tables that already exist as they are instead of refusing.
    pub reuse_existing: bool,
    /// Draw a progress bar per table on stderr.
    pub progress: bool,
    /// Where the server keeps its data on this machine, when the harness
    /// knows: the load checks the free space there first.
    pub data_dir: Option<std::path::PathBuf>,
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
#[derive(Debug, Clone, Serialize, PartialEq)]
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
    let bars = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{prefix:>14} [{bar:28}] {human_pos}/{human_len} rows {rate:>14} {msg}")
        .expect("valid template")
        .with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{} rows/s", crate::units::thousands(state.per_sec().round() as u64));
        })
        .progress_chars("=> ");
    let mut loaded = Vec::new();
    for ((t, q), (plan, deferred)) in created.iter().zip(plans.into_iter().zip(&deferred)) {
        let bar = bars.add(ProgressBar::new(plan.rows).with_style(style.clone()).with_prefix(t.name.clone()));
        let started = Instant::now();
        // COPY FREEZE needs a plain table (not partitioned) and one stream.
        let plain: bool = admin
            .query_one("SELECT relkind = 'r' FROM pg_class WHERE oid = $1::text::regclass", &[q])
            .await
            .map_err(db(&t.name))?
            .get(0);
        copy_table(config, plan.clone(), opts.streams.max(1), plain, &bar).await?;
        let copied = started.elapsed();
        // Identity and serial columns were filled explicitly; move their
        // sequences past the generated keys so the workload's inserts fit.
        for c in plan.columns.iter().filter(|c| c.sequence.is_some()) {
            let sql = format!(
                "SELECT setval($1::text::regclass, (SELECT coalesce(max({}), 0) FROM {q}) + 1, false)",
                c.quoted
            );
            admin.execute(&sql, &[&c.sequence]).await.map_err(db(&t.name))?;
        }
        bar.set_message("indexing");
        for sql in &deferred.indexes {
            admin.batch_execute(sql).await.map_err(db(&t.name))?;
        }
        for sql in &deferred.checks {
            schema::add_check(admin, sql).await.map_err(db(&t.name))?;
        }
        let indexed = started.elapsed();
        bar.set_message("vacuum analyze");
        admin.batch_execute(&format!("VACUUM (ANALYZE) {q}")).await.map_err(db(&t.name))?;
        let elapsed = started.elapsed();
        bar.finish_with_message(format!("loaded in {:.1}s", elapsed.as_secs_f64()));
        let dead_tuples = bloat(admin, t, q, &plan).await.map_err(db(&t.name))?;
        let mut table = measure(admin, t, q, elapsed, false).await?;
        table.dead_tuples = dead_tuples;
        table.copy_seconds = copied.as_secs_f64();
        table.index_seconds = (indexed - copied).as_secs_f64();
        table.vacuum_seconds = (elapsed - indexed).as_secs_f64();
        loaded.push(table);
    }
    for (i, ((t, _), d)) in created.iter().zip(&deferred).enumerate() {
        let started = Instant::now();
        for sql in &d.foreign_keys {
            admin.batch_execute(sql).await.map_err(db(&t.name))?;
        }
        loaded[i].load_seconds += started.elapsed().as_secs_f64();
        loaded[i].index_seconds += started.elapsed().as_secs_f64();
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

/// Leaves `t.bloat` of the rows as dead tuples: each chosen row is updated
/// to itself once (a new version, the old one dead), with a fixed seed so
/// the same rows are chosen every time; then `ANALYZE`. Returns the number
/// of rows updated.
async fn bloat(admin: &Client, t: &TableSpec, q: &str, plan: &CopyPlan) -> Result<u64, tokio_postgres::Error> {
    // Any column will do but an identity column (it cannot be set).
    let Some(col) = plan.columns.iter().rev().find(|c| c.sequence.is_none()).filter(|_| t.bloat > 0.0) else {
        return Ok(0);
    };
    let c = &col.quoted;
    admin.batch_execute("SELECT setseed(0.5)").await?;
    let n = admin.execute(&format!("UPDATE {q} SET {c} = {c} WHERE random() < {}", t.bloat), &[]).await?;
    admin.batch_execute(&format!("ANALYZE {q}")).await?;
    Ok(n)
}

/// Runs the COPY streams of one table.
async fn copy_table(
    config: &tokio_postgres::Config,
    plan: Arc<CopyPlan>,
    streams: usize,
    freeze: bool,
    bar: &ProgressBar,
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
            copy::copy_stream(&client, plan, s, streams, freeze, |rows| bar.inc(rows)).await
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
