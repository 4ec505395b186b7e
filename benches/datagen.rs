//! Loading speed against the reference, `pgbench -i`, on the same server in
//! the same run; which mix of index builds is fastest; and the loader's
//! peak memory on a large table.
//!
//! `cargo bench --bench datagen` starts a throwaway local cluster and, in
//! interleaved rounds (pgbench first in odd rounds, rehearse first in even
//! ones), runs `pgbench -i -s SCALE` (client-side generation: 100,000 rows
//! of pgbench_accounts per unit) and rehearse's loader on two shapes:
//! - `benches/pgbench_accounts.toml`: pgbench's own table, one index;
//! - `benches/orders_realistic.toml`: orders (5M rows at scale 50, text
//!   columns, a key, three secondary indexes, a foreign key) and customers.
//!
//! Rate = total relation size (heap, indexes, TOAST) / wall time from the
//! start of the load until every table is indexed and analyzed. It prints
//! each round and the median ratio rehearse / pgbench.
//!
//! Then the realistic orders table's four indexes are dropped and rebuilt
//! with each mix of builds at once, parallel workers per build and
//! `maintenance_work_mem`, and each mix's wall time is printed.
//!
//! Last, the `add-column-default` orders table is loaded at 40M rows (the
//! post-mortem's size) and at 100M rows, with this process's resident
//! memory sampled from `/proc/self/status` every 20 ms: it runs the loader
//! in-process as the binary does. Its time includes the restart into the
//! workload's settings that `rehearse run` makes after a load.
//!
//! The server runs under the load's settings of a throwaway local server
//! (`rehearse::postgres::bulk`: `wal_level = minimal`), as `rehearse run`
//! and `generate` load; pgbench runs on that same server.
//!
//! Environment: REHEARSE_BENCH_SCALE (pgbench scale, default 50),
//! REHEARSE_BENCH_ROUNDS (default 3), REHEARSE_BENCH_BIG (comma-separated
//! scales of add-column-default's 2M rows for the last part, default
//! `20,50`; empty to skip), REHEARSE_BENCH_STREAMS.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rehearse::datagen::build::{Sessions, Tuning};
use rehearse::datagen::{self, LoadOptions, LoadedTable};
use rehearse::postgres::{Cleanup, LocalCluster, Role, Server, bulk, connect, server_program};
use rehearse::scenario;
use tokio_postgres::Client;

const SETTINGS: &[(&str, &str)] =
    &[("shared_buffers", "1GB"), ("max_wal_size", "8GB"), ("checkpoint_timeout", "30min")];

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn mb(bytes: i64) -> f64 {
    bytes as f64 / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Resident memory of this process now, in kB.
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// This machine's CPU time so far: (busy, all), in clock ticks, from
/// `/proc/stat` (idle and iowait are not busy).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let all: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (all - idle, all)
}

/// The share of the machine's CPUs busy since `before`.
fn busy_since(before: (u64, u64)) -> f64 {
    let now = cpu_ticks();
    (now.0 - before.0) as f64 / (now.1 - before.1).max(1) as f64
}

struct Bench {
    cluster: LocalCluster,
    admin: Client,
    streams: usize,
    /// The server's settings for a workload, and for a load.
    proper: Vec<(String, String)>,
    load: Vec<(String, String)>,
}

impl Bench {
    /// `pgbench -i -s scale`: bytes of its relations and wall seconds.
    async fn pgbench(&self, scale: u64) -> (i64, f64) {
        let config = self.cluster.config();
        let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
        let pgbench = server_program("pgbench").expect("pgbench next to the server binaries");
        let started = Instant::now();
        let status = Command::new(&pgbench)
            .args(["-i", "-q", "-s", &scale.to_string(), "-h", "127.0.0.1", "-p", &port, "-U", "postgres", "postgres"])
            .env("PGPASSWORD", self.cluster.password())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run pgbench");
        let secs = started.elapsed().as_secs_f64();
        assert!(status.success(), "pgbench -i failed");
        let tables = "pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history";
        let bytes: i64 = self
            .admin
            .query_one(
                &format!(
                    "SELECT sum(pg_total_relation_size(c::regclass))::int8 FROM unnest(string_to_array('{tables}', ', ')) c"
                ),
                &[],
            )
            .await
            .expect("sizes")
            .get(0);
        self.admin.batch_execute(&format!("DROP TABLE {tables}; CHECKPOINT")).await.expect("drop");
        (bytes, secs)
    }

    /// rehearse's loader on `file` at `scale`: its tables, wall seconds
    /// and the share of the machine's CPUs busy meanwhile.
    async fn ours(&self, file: &str, scale: f64, keep: bool) -> (Vec<LoadedTable>, f64, f64) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let scenario = scenario::load(&path, &scenario::LoadOptions { scale }).expect("scenario");
        let opts = LoadOptions { streams: self.streams, throwaway: true, ..Default::default() };
        let cleanup = Cleanup::new(None, false);
        let (started, cpu) = (Instant::now(), cpu_ticks());
        let config = self.cluster.config();
        let tables =
            datagen::load(config, &self.cluster.target(), &self.admin, &scenario, &opts, &cleanup).await.expect("load");
        let (secs, busy) = (started.elapsed().as_secs_f64(), busy_since(cpu));
        if !keep {
            let names: Vec<String> = scenario.tables.iter().map(|t| t.name.clone()).collect();
            self.admin
                .batch_execute(&format!("DROP TABLE {} CASCADE; CHECKPOINT", names.join(", ")))
                .await
                .expect("drop");
        }
        (tables, secs, busy)
    }
}

/// Interleaved rounds of pgbench and the loader on `file`; prints each
/// round and returns the median ratio of rates.
/// `units`: the pgbench scale the file's rows stand for at scale 1.0.
async fn compare(b: &Bench, label: &str, file: &str, units: f64, scale: u64, rounds: usize) -> f64 {
    println!("{label}: pgbench -i -s {scale} beside rehearse's loader on {file}, {rounds} interleaved rounds");
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let keep = round + 1 == rounds;
        let (pg, (tables, ours_secs, busy)) = if round % 2 == 0 {
            let pg = b.pgbench(scale).await;
            (pg, b.ours(file, scale as f64 / units, keep).await)
        } else {
            let ours = b.ours(file, scale as f64 / units, keep).await;
            (b.pgbench(scale).await, ours)
        };
        let ours_bytes: i64 = tables.iter().map(|t| t.total_bytes).sum();
        let (pg_rate, our_rate) = (mb(pg.0) / pg.1, mb(ours_bytes) / ours_secs);
        ratios.push(our_rate / pg_rate);
        println!(
            "  round {}: pgbench {:>5.0} MB in {:>5.2} s = {pg_rate:>6.1} MB/s | rehearse {:>5.0} MB in {ours_secs:>5.2} s = {our_rate:>6.1} MB/s | ratio {:.2}; CPUs busy during the loader's run: {:.0} %",
            round + 1,
            mb(pg.0),
            pg.1,
            mb(ours_bytes),
            our_rate / pg_rate,
            busy * 100.0
        );
        for t in &tables {
            println!(
                "    {:<10} {:>9} rows: COPY {:>5.2} s, indexes and keys {:>5.2} s, VACUUM (ANALYZE) {:>5.2} s, loaded at {:>5.2} s",
                t.name, t.rows, t.copy_seconds, t.index_seconds, t.vacuum_seconds, t.load_seconds
            );
        }
    }
    let m = median(ratios);
    println!(
        "  median ratio rehearse / pgbench (bytes/s, heap + indexes, until indexed and analyzed): {m:.2} (target >= 1.00)"
    );
    m
}

/// The realistic orders table's indexes, rebuilt with each mix.
async fn mixes(b: &Bench) {
    let indexes = [
        "CREATE UNIQUE INDEX bench_pk ON orders (id)",
        "CREATE INDEX bench_customer ON orders (customer_id)",
        "CREATE INDEX bench_email ON orders (email)",
        "CREATE INDEX bench_created ON orders (created_at)",
    ];
    b.admin.batch_execute("ALTER TABLE orders DROP CONSTRAINT orders_pkey CASCADE").await.expect("drop key");
    let drop_all = "DROP INDEX IF EXISTS orders_customer_id_idx, orders_email_idx, orders_created_at_idx, \
                    bench_pk, bench_customer, bench_email, bench_created";
    b.admin.batch_execute(drop_all).await.expect("drop indexes");
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("index builds: the realistic orders table's four indexes, rebuilt with each mix ({cpus} CPUs)");
    let mut results = Vec::new();
    for mem_mb in [64u64, 256, 1024] {
        for (at_once, workers) in [(1, 0), (1, cpus as u32 - 1), (cpus, 0), (cpus, 1)] {
            let tuning = Tuning { at_once, workers: Some(workers), max_workers: 8, mem_kb: mem_mb * 1024 };
            let sessions = Sessions::new(b.cluster.config(), tuning);
            b.admin.batch_execute("CHECKPOINT").await.expect("checkpoint");
            let started = Instant::now();
            let builds = indexes.iter().map(|sql| sessions.run(sql, workers));
            futures_util::future::try_join_all(builds).await.expect("builds");
            let secs = started.elapsed().as_secs_f64();
            b.admin.batch_execute(drop_all).await.expect("drop indexes");
            println!(
                "  {at_once} at once, {workers} parallel worker{} each, maintenance_work_mem {mem_mb:>4} MB: {secs:>6.2} s",
                if workers == 1 { "" } else { "s" }
            );
            results.push((secs, at_once, workers, mem_mb));
        }
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (secs, at_once, workers, mem) = results[0];
    println!("  fastest: {at_once} at once, {workers} workers each, {mem} MB ({secs:.2} s)");
    b.admin.batch_execute("DROP TABLE orders, customers CASCADE; CHECKPOINT").await.expect("drop");
}

/// The add-column-default table at `scale` (2M rows each), with this
/// process's peak resident memory.
async fn big(b: &mut Bench, scale: f64) {
    let peak = Arc::new(AtomicU64::new(rss_kb()));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let before = rss_kb();
    let (tables, secs, busy) = b.ours("scenarios/add-column-default.toml", scale, true).await;
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    // As `rehearse run` does before its workload; then back for the next.
    let restarted = Instant::now();
    b.cluster.restart(&b.proper).await.expect("restart under the workload's settings");
    let restart = restarted.elapsed().as_secs_f64();
    let secs = secs + restart;
    b.cluster.restart(&b.load).await.expect("restart under the load's settings");
    b.admin = connect(b.cluster.config(), &Role::Harness).await.expect("connect");
    b.admin.batch_execute("DROP TABLE orders CASCADE; CHECKPOINT").await.expect("drop");
    let t = &tables[0];
    println!(
        "add-column-default at {} rows: {secs:.1} s (COPY {:.1} s, indexes and keys {:.1} s, VACUUM (ANALYZE) {:.1} s, \
         restart {restart:.1} s), {:.0} MB; CPUs busy {:.0} %; loader RSS before {:.0} MB, peak {:.0} MB (target < 150 MB)",
        t.rows,
        t.copy_seconds,
        t.index_seconds,
        t.vacuum_seconds,
        mb(t.total_bytes),
        busy * 100.0,
        before as f64 / 1024.0,
        peak.load(Ordering::Relaxed) as f64 / 1024.0
    );
}

fn main() {
    // `cargo bench` passes --bench; --list from the harness means "not this one".
    if std::env::args().any(|a| a == "--list") {
        println!("datagen: benchmark");
        return;
    }
    let scale: u64 = env("REHEARSE_BENCH_SCALE", 50);
    let rounds: usize = env("REHEARSE_BENCH_ROUNDS", 3).max(1);
    let big_scales: String = env("REHEARSE_BENCH_BIG", "20,50".to_string());
    let streams = env("REHEARSE_BENCH_STREAMS", 0usize);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let proper: Vec<(String, String)> = SETTINGS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let load = bulk::for_load(&proper).expect("the bench sets no WAL setting");
        let cluster = LocalCluster::start(&load).await.expect("a local cluster");
        let admin = connect(cluster.config(), &Role::Harness).await.expect("connect");
        let mut b = Bench { cluster, admin, streams, proper, load };
        let chosen = LoadOptions { streams, throwaway: true, ..Default::default() }.streams();
        println!(
            "datagen: {chosen} COPY streams per table; server settings {SETTINGS:?}, loading with {}",
            bulk::describe()
        );
        let own = compare(&b, "pgbench's own table", "benches/pgbench_accounts.toml", 100.0, scale, rounds).await;
        b.admin.batch_execute("DROP TABLE accounts; CHECKPOINT").await.expect("drop");
        let realistic = compare(&b, "realistic schema", "benches/orders_realistic.toml", 50.0, scale, rounds).await;
        mixes(&b).await;
        for s in big_scales.split(',').filter_map(|s| s.trim().parse::<f64>().ok()) {
            big(&mut b, s).await;
        }
        println!("summary: median ratio rehearse / pgbench: pgbench's table {own:.2}, realistic schema {realistic:.2}");
        drop(b);
    });
}
