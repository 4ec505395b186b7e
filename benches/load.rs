//! The load engine against the reference, pgbench, on the same server and
//! table in the same run.
//!
//! `cargo bench --bench load` starts a throwaway local cluster, fills it
//! with `pgbench -i -s SCALE`, and runs `benches/pgbench_select.toml`
//! (pgbench's select-only transaction as a load-only scenario) through
//! `--backend url`, exactly as a user would:
//!
//! 1. **Closed loop**: `pgbench -S -M prepared -c 8 -j 2 -T SECS` against
//!    rehearse with `clients = 8` on a pool of 8, no think time. Figure:
//!    transactions per second; ratio of the medians rehearse / pgbench
//!    (target ≥ 1.0), and the median of the rounds' own ratios. On a
//!    2-core VM a run's TPS moves by ±15 % with where the scheduler
//!    settles the backends (sometimes no wake-up crosses CPUs, sometimes
//!    many do, for pgbench as for rehearse), so only many interleaved
//!    rounds say anything.
//! 2. **Observer overhead**: the closed loop with the lock observer every
//!    10 ms against the observer every hour (one sample at the start),
//!    interleaved with the rounds above; figure: the drop of the median
//!    TPS. Those medians are as noisy as the runs, so the figure that
//!    counts is paired within runs: the workload engine runs the closed
//!    loop on its own for REHEARSE_OBSERVER_PAIRS pairs of 2-second
//!    windows, with an observer sampling every 10 ms in the second window
//!    of each pair and none in the first; requests per second come from
//!    the workload's own per-second series. Figure: the mean drop from
//!    each window without to the one with (target ≤ 3 %).
//! 3. **Open loop**: `pgbench -S -M prepared -c 8 -j 2 --rate R -l` (its
//!    per-transaction log; with --rate its latency counts from the
//!    scheduled start) against rehearse at `rate = R`, `arrival =
//!    "poisson"` on a pool of 8. Figures: achieved rate / target (target
//!    within 1 %), and p50/p90/p99 latency from when each transaction was
//!    due, rehearse / pgbench (target within 10 %). pgbench's latency
//!    includes its own schedule lag (its sleep has the kernel's default
//!    50 µs timer slack), so the bench also prints pgbench's latency with
//!    that lag taken out: the server's time alone. A client that is never
//!    late would match the second; rehearse should lie between the two.
//! 4. **Memory over a long run**: the open loop at the same rate for
//!    REHEARSE_SOAK_SECS (default 60; 1800 for the 30-minute figure), with
//!    this process's resident set size printed every tenth of the run. The
//!    engine keeps per-phase histograms and closes each second's histogram
//!    once it is summarised, so RSS should stay flat after the first
//!    seconds.
//!
//! 0. **Timer precision**, first: 2,000 open-loop waits of 700 µs on the
//!    timerfd the pacer uses, against as many on tokio's timer; figure: the
//!    median and p99 lateness of each, and their ratio (the timerfd's
//!    purpose: tokio's timer is up to a millisecond late).
//!
//! REHEARSE_BENCH_SCALE (default 10: 1M rows), REHEARSE_BENCH_SECS
//! (default 10 per run), REHEARSE_BENCH_ROUNDS (default 7) and
//! REHEARSE_BENCH_RATE (default 5000/s).

use std::process::Command;
use std::time::Duration;

use std::sync::Arc;
use std::time::Instant;

use rehearse::clock::PhaseClock;
use rehearse::observe::Observer;
use rehearse::postgres::{BackendChoice, LocalCluster, Role, Server, connect, server_program, server_version};
use rehearse::rehearsal::{RunOn, RunOptions, rehearse};
use rehearse::scenario::{self, Arrival, GenSpec, Load, RateProfile, Scenario};
use rehearse::workload::Workload;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// This process's resident set size now, from /proc/self/statm.
fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

fn peak_rss_mb() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).expect("getrusage");
    usage.max_rss() as f64 / 1024.0
}

/// Runs pgbench with `args` and returns its stdout.
fn pgbench(port: &str, password: &str, args: &[&str]) -> String {
    let program = server_program("pgbench").expect("pgbench next to the server binaries");
    let out = Command::new(program)
        .args(args)
        .env("PGPASSWORD", password)
        .args(["-h", "127.0.0.1", "-p", port, "-U", "postgres", "postgres"])
        .output()
        .expect("run pgbench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "pgbench {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// `tps = 51234.5 (without initial connection time)`
fn tps(out: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()))
        .expect("pgbench prints tps")
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Runs the scenario's query shaped by `load` for `secs`; returns
/// (requests per second, errors, p50, p90, p99 in ms).
async fn ours(scenario: &Scenario, url: &str, load: Load, secs: u64, observe: Duration) -> (f64, u64, f64, f64, f64) {
    let mut s = scenario.clone();
    s.workload.queries[0].load = load;
    s.timeline.duration = Some(Duration::from_secs(secs));
    let on = RunOn { choice: BackendChoice::Url(url.to_string()), why: "url: the benchmark's cluster".into() };
    let opts = RunOptions {
        reuse_existing: false,
        keep_tables: false,
        observe_interval: observe,
        replica_url: None,
        replicas: None,
        load_streams: 1,
        progress: false,
        rollback: false,
    };
    let report = rehearse(&s, &on, None, &opts).await.expect("rehearsal");
    let b = &report.phases.baseline;
    let q = b.queries.get("select_abalance").expect("the query");
    let ms = |v: Option<f64>| v.unwrap_or(f64::NAN);
    // Percentiles of the whole run, from the report's HDR histogram.
    (q.count as f64 / b.seconds, q.errors, ms(q.p50_ms), ms(q.p90_ms), ms(q.p99_ms))
}

/// Window length of the paired observer measurement.
const WINDOW: u64 = 2;

/// The closed loop of `scenario` on the workload engine for `pairs` pairs
/// of windows, an observer sampling every 10 ms in the second of each;
/// returns (requests per second without, with) per pair, leaving out each
/// window's first second (the observer connecting or going).
async fn observer_pairs(scenario: &Scenario, config: &tokio_postgres::Config, pairs: u64) -> Vec<(f64, f64)> {
    let mut spec = scenario.workload.clone();
    spec.queries[0].load = Load::Closed { clients: 8, think_time: Duration::ZERO };
    let admin = connect(config, &Role::Harness).await.expect("connect");
    let version = server_version(&admin).await.expect("version").version_num;
    let workload = Arc::new(Workload::prepare(config, &[], &spec, scenario.seed).await.expect("workload"));
    let clock = Arc::new(PhaseClock::new(Instant::now()));
    let running = workload.clone().start(clock.clone());
    for window in 0..2 * pairs {
        let observer = if window % 2 == 1 {
            let interval = Duration::from_millis(10);
            Some(Observer::start(config, version, interval, clock.start()).await.expect("observer"))
        } else {
            None
        };
        tokio::time::sleep_until((clock.start() + Duration::from_secs((window + 1) * WINDOW)).into()).await;
        if let Some(o) = observer {
            let seen = o.finish().await;
            assert_eq!(seen.failed_samples, 0, "the observer's samples failed");
        }
    }
    let (results, _) = running.stop(Duration::from_secs(5)).await;
    let per_window = |w: u64| {
        let secs = (w * WINDOW + 1)..((w + 1) * WINDOW);
        let n: u64 = results[0].series.iter().filter(|p| secs.contains(&p.second)).map(|p| p.count).sum();
        n as f64 / (WINDOW - 1) as f64
    };
    (0..pairs).map(|p| (per_window(2 * p), per_window(2 * p + 1))).collect()
}

/// Median and p99 lateness of `n` waits of 700 µs, on the timerfd and on
/// tokio's timer, each on a current-thread runtime as the load's shards.
fn timer_precision(n: usize) -> [(Duration, Duration); 2] {
    use rehearse::workload::{Signal, TimerFdWait, Wait};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let stop = Signal::new();
        let (mut fd, mut tokio_late) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut wait = TimerFdWait::new().expect("a timerfd");
        for _ in 0..n {
            let due = std::time::Instant::now() + Duration::from_micros(700);
            wait.until(due, std::time::Instant::now(), &stop).await;
            fd.push(std::time::Instant::now() - due);
            let due = std::time::Instant::now() + Duration::from_micros(700);
            tokio::time::sleep_until(due.into()).await;
            tokio_late.push(std::time::Instant::now() - due);
        }
        [fd, tokio_late].map(|mut v| {
            v.sort();
            (v[v.len() / 2], v[v.len() * 99 / 100])
        })
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("load: benchmark");
        return;
    }
    let [(fd50, fd99), (tk50, tk99)] = timer_precision(2000);
    println!(
        "  timer: 700 µs waits late by p50 {} µs / p99 {} µs on the timerfd, {} µs / {} µs on tokio's timer (p50 ratio {:.2})",
        fd50.as_micros(),
        fd99.as_micros(),
        tk50.as_micros(),
        tk99.as_micros(),
        fd50.as_secs_f64() / tk50.as_secs_f64().max(1e-9)
    );
    let scale: u64 = env_or("REHEARSE_BENCH_SCALE", 10);
    let secs: u64 = env_or("REHEARSE_BENCH_SECS", 10);
    let rate: f64 = env_or("REHEARSE_BENCH_RATE", 5000.0);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let settings = vec![("shared_buffers".to_string(), "512MB".to_string())];
        let cluster = LocalCluster::start(&settings).await.expect("a local cluster");
        let config = cluster.config().clone();
        let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
        let url = cluster.connect_url();
        let password = cluster.password().to_string();
        pgbench(&port, &password, &["-i", "-q", "-s", &scale.to_string()]);
        let admin = connect(&config, &Role::Harness).await.expect("connect");
        admin.batch_execute("SELECT count(*) FROM pgbench_accounts").await.expect("warm the cache");

        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pgbench_select.toml");
        let mut scenario = scenario::load(&path, &scenario::LoadOptions::default()).expect("scenario");
        scenario.workload.queries[0].params[0].spec.kind = GenSpec::Int { lo: 1, hi: scale as i64 * 100_000 };
        let closed = Load::Closed { clients: 8, think_time: Duration::ZERO };
        let off = Duration::from_secs(3600);
        let t = secs.to_string();

        println!("load: pgbench_accounts of scale {scale} ({} rows), {secs} s per run, same server", scale * 100_000);
        // 1 and 2: closed loop, in interleaved rounds (pgbench, observer
        // off, observer at 10 ms) so the machine's drift hits all alike;
        // medians over the rounds.
        let rounds: usize = env_or("REHEARSE_BENCH_ROUNDS", 7);
        let (mut pg, mut plain, mut observed) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            pg.push(tps(&pgbench(&port, &password, &["-S", "-M", "prepared", "-c", "8", "-j", "2", "-T", &t])));
            let (r, e, ..) = ours(&scenario, &url, closed.clone(), secs, off).await;
            assert_eq!(e, 0, "closed loop without observer had errors");
            plain.push(r);
            let (r, e, ..) = ours(&scenario, &url, closed.clone(), secs, Duration::from_millis(10)).await;
            assert_eq!(e, 0, "closed loop with observer had errors");
            observed.push(r);
        }
        let median = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let list = |v: &[f64]| v.iter().map(|x| format!("{x:>7.0}")).collect::<Vec<_>>().join(" ");
        let (pg_tps, ours_tps, obs_tps) = (median(&pg), median(&plain), median(&observed));
        println!("  closed loop, 8 clients, no think time (transactions per second over the run; {rounds} rounds)");
        println!("    pgbench -S -M prepared -c 8 -j 2   {}  median {pg_tps:>7.0}", list(&pg));
        println!("    rehearse, observer off             {}  median {ours_tps:>7.0}", list(&plain));
        println!("    rehearse, observer every 10 ms     {}  median {obs_tps:>7.0}", list(&observed));
        let ratios: Vec<f64> = plain.iter().zip(&pg).map(|(o, p)| o / p).collect();
        println!(
            "    ratio rehearse (observer off) / pgbench: {:.3} of the medians, {:.3} the median of the rounds' ratios (target ≥ 1.0)",
            ours_tps / pg_tps,
            median(&ratios)
        );
        println!("    ratio rehearse (observer 10 ms) / pgbench: {:.3}", obs_tps / pg_tps);
        let per_round: Vec<String> =
            plain.iter().zip(&observed).map(|(p, o)| format!("{:.1}", (1.0 - o / p) * 100.0)).collect();
        println!(
            "    observer overhead between runs: {:.1} % of the median TPS (per round: {} %)",
            (1.0 - obs_tps / ours_tps) * 100.0,
            per_round.join(", ")
        );
        let pairs: u64 = env_or("REHEARSE_OBSERVER_PAIRS", 15);
        let mut drops = Vec::new();
        for _ in 0..2 {
            for (off, on) in observer_pairs(&scenario, &config, pairs).await {
                drops.push((1.0 - on / off) * 100.0);
            }
        }
        let mean = drops.iter().sum::<f64>() / drops.len() as f64;
        let sd = (drops.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (drops.len() - 1) as f64).sqrt();
        println!(
            "    observer overhead paired within runs: {mean:.1} % ± {:.1} (mean ± standard error of {} pairs of {WINDOW}-second windows in 2 runs; target ≤ 3 %)",
            sd / (drops.len() as f64).sqrt(),
            drops.len()
        );

        // 3: open loop at a rate both keep up with.
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = dir.path().join("pgb");
        pgbench(
            &port,
            &password,
            &[
                "-S",
                "-M",
                "prepared",
                "-c",
                "8",
                "-j",
                "2",
                "-T",
                &t,
                "--rate",
                &rate.to_string(),
                "-l",
                "--log-prefix",
                prefix.to_str().expect("utf-8 path"),
            ],
        );
        let (mut lat, mut lag, mut server) = (Vec::new(), Vec::new(), Vec::new());
        for entry in std::fs::read_dir(dir.path()).expect("log dir") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("log");
            // client_id transaction_no time script_no time_epoch time_us schedule_lag
            for line in text.lines() {
                let f: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                if f.len() >= 7 {
                    lat.push(f[2] / 1000.0);
                    lag.push(f[6] / 1000.0);
                    server.push((f[2] - f[6]) / 1000.0);
                }
            }
        }
        lag.sort_by(f64::total_cmp);
        lat.sort_by(f64::total_cmp);
        server.sort_by(f64::total_cmp);
        let (sv50, sv90, sv99) = (quantile(&server, 0.5), quantile(&server, 0.9), quantile(&server, 0.99));
        let pg_rate = lat.len() as f64 / secs as f64;
        let (pg50, pg90, pg99) = (quantile(&lat, 0.5), quantile(&lat, 0.9), quantile(&lat, 0.99));
        let open = Load::Open { rate: RateProfile::constant(rate), arrival: Arrival::Poisson };
        let (r, e, p50, p90, p99) = ours(&scenario, &url, open, secs, Duration::from_millis(20)).await;
        assert_eq!(e, 0, "open loop had errors");
        println!("  open loop, Poisson arrivals at {rate:.0}/s, 8 connections (latency from when each was due)");
        println!("    {:<34} {:>10} {:>9} {:>9} {:>9}", "", "req/s", "p50 ms", "p90 ms", "p99 ms");
        println!("    {:<34} {pg_rate:>10.1} {pg50:>9.3} {pg90:>9.3} {pg99:>9.3}", "pgbench --rate (per-txn log)");
        println!("    {:<34} {:>10} {sv50:>9.3} {sv90:>9.3} {sv99:>9.3}", "pgbench less its own schedule lag", "");
        println!("    {:<34} {r:>10.1} {p50:>9.3} {p90:>9.3} {p99:>9.3}", "rehearse (HDR, 3 digits)");
        println!(
            "    pgbench's own schedule lag (in its latency): p50 {:.3}, p99 {:.3} ms; rehearse's pacer wakes on a timerfd",
            quantile(&lag, 0.5),
            quantile(&lag, 0.99)
        );
        println!("    achieved / target rate: {:.4} (target within 1 %)", r / rate);
        println!(
            "    latency rehearse / pgbench: p50 {:.2}, p90 {:.2}, p99 {:.2} (target within 10 %)",
            p50 / pg50,
            p90 / pg90,
            p99 / pg99
        );
        println!(
            "    latency rehearse / pgbench less its lag: p50 {:.2}, p90 {:.2}, p99 {:.2}",
            p50 / sv50,
            p90 / sv90,
            p99 / sv99
        );
        // 4: memory over a long run.
        let soak: u64 = env_or("REHEARSE_SOAK_SECS", 60);
        println!("  memory: open loop at {rate:.0}/s for {soak} s, resident set size of this process");
        let sampler = std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            let mut points = Vec::new();
            for i in 0..=10u64 {
                let at = Duration::from_secs(soak * i / 10);
                std::thread::sleep(at.saturating_sub(t0.elapsed()));
                points.push((t0.elapsed().as_secs(), rss_mb()));
            }
            points
        });
        let open = Load::Open { rate: RateProfile::constant(rate), arrival: Arrival::Uniform };
        let (r, e, ..) = ours(&scenario, &url, open, soak, Duration::from_millis(20)).await;
        let points = sampler.join().expect("sampler");
        let line: Vec<String> = points.iter().map(|(s, mb)| format!("{s}s {mb:.1}")).collect();
        println!("    RSS MB: {}", line.join(", "));
        println!("    {r:.0} req/s, {e} errors; peak RSS of the process over the whole bench: {:.0} MB", peak_rss_mb());
        drop(admin);
        drop(cluster);
    });
}
