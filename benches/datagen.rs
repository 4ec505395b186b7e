//! Loading speed against the reference, `pgbench -i`, on the same server in
//! the same run, and the loader's peak memory.
//!
//! `cargo bench --bench datagen` starts a throwaway local cluster, runs
//! `pgbench -i -s SCALE` (client-side generation: 100,000 rows of
//! pgbench_accounts per unit), measures the bytes of its relations over its
//! wall time, drops them, then loads the same number of rows of the same
//! table shape with rehearse's loader (`benches/pgbench_accounts.toml`:
//! parallel binary COPY, indexes after the data, `VACUUM (ANALYZE)`), and
//! prints both rates and their ratio. Rate = total relation size (heap,
//! indexes, TOAST) / wall time from the start of the load until the table
//! is indexed and analyzed. Peak RSS is this process's, which runs the
//! loader in-process as the binary does.
//!
//! REHEARSE_BENCH_SCALE sets the scale (default 100: 10M rows, about 1.5 GB).

use std::process::Command;
use std::time::Instant;

use rehearse::datagen::{self, LoadOptions};
use rehearse::postgres::{Cleanup, LocalCluster, Role, Server, connect, server_program};
use rehearse::scenario;

const SETTINGS: &[(&str, &str)] = &[
    ("shared_buffers", "1GB"),
    ("max_wal_size", "8GB"),
    ("checkpoint_timeout", "30min"),
    ("maintenance_work_mem", "512MB"),
];

fn peak_rss_mb() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).expect("getrusage");
    usage.max_rss() as f64 / 1024.0
}

fn mb(bytes: i64) -> f64 {
    bytes as f64 / 1e6
}

fn main() {
    // `cargo bench` passes --bench; a filter or --list from the harness
    // means "not this one".
    if std::env::args().any(|a| a == "--list") {
        println!("datagen: benchmark");
        return;
    }
    let scale: u64 = std::env::var("REHEARSE_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let settings: Vec<(String, String)> = SETTINGS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let cluster = LocalCluster::start(&settings).await.expect("a local cluster");
        let config = cluster.config().clone();
        let admin = connect(&config, &Role::Harness).await.expect("connect");
        let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
        let pgbench = server_program("pgbench").expect("pgbench next to the server binaries");

        // The reference.
        let started = Instant::now();
        let status = Command::new(&pgbench)
            .args(["-i", "-q", "-s", &scale.to_string(), "-h", "127.0.0.1", "-p", &port, "-U", "postgres", "postgres"])
            .env("PGPASSWORD", cluster.password())
            .status()
            .expect("run pgbench");
        let pgbench_secs = started.elapsed().as_secs_f64();
        assert!(status.success(), "pgbench -i failed");
        let pgbench_bytes: i64 = admin
            .query_one(
                "SELECT sum(pg_total_relation_size(c::regclass))::int8 FROM unnest(ARRAY['pgbench_accounts',
                 'pgbench_branches', 'pgbench_tellers', 'pgbench_history']) c",
                &[],
            )
            .await
            .expect("sizes")
            .get(0);
        admin
            .batch_execute("DROP TABLE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history; CHECKPOINT")
            .await
            .expect("drop pgbench tables");

        // rehearse's loader, on the same server.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pgbench_accounts.toml");
        let scenario = scenario::load(&path, &scenario::LoadOptions { scale: scale as f64 / 100.0 }).expect("scenario");
        let streams = std::env::var("REHEARSE_BENCH_STREAMS").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let opts = LoadOptions { streams, reuse_existing: false, progress: false, data_dir: None };
        let cleanup = Cleanup::new(None, false);
        let started = Instant::now();
        let tables = datagen::load(&config, &cluster.target(), &admin, &scenario, &opts, &cleanup)
            .await
            .expect("load");
        let ours_secs = started.elapsed().as_secs_f64();
        let ours_bytes: i64 = tables.iter().map(|t| t.total_bytes).sum();
        let rows: u64 = tables.iter().map(|t| t.rows).sum();

        let pg_rate = mb(pgbench_bytes) / pgbench_secs;
        let our_rate = mb(ours_bytes) / ours_secs;
        println!("datagen: {rows} rows (pgbench scale {scale}), {streams} COPY streams");
        println!(
            "  pgbench -i          {:>8.0} MB in {pgbench_secs:>6.2} s = {pg_rate:>6.1} MB/s  (heap + indexes, until vacuumed and keyed)",
            mb(pgbench_bytes)
        );
        println!(
            "  rehearse loader     {:>8.0} MB in {ours_secs:>6.2} s = {our_rate:>6.1} MB/s  (heap + indexes, until indexed and analyzed)",
            mb(ours_bytes)
        );
        for t in &tables {
            println!(
                "    {}: COPY {:.2} s, indexes {:.2} s, VACUUM (ANALYZE) {:.2} s",
                t.name, t.copy_seconds, t.index_seconds, t.vacuum_seconds
            );
        }
        println!("  ratio rehearse / pgbench: {:.2}", our_rate / pg_rate);
        println!("  peak RSS of the loader process: {:.0} MB (target < 300 MB)", peak_rss_mb());
        drop(cleanup);
        drop(admin);
        drop(cluster);
    });
}
