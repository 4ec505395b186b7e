//! One rehearsal, end to end: provision a server, load the data, start the
//! observer, the interference and the load, apply the migration at
//! `migrate_at`, keep the load running for `cooldown`, then stop
//! everything and judge. Whatever the harness started is released when
//! this future completes or is dropped (Ctrl-C) or unwinds (a panic).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::datagen::{self, LoadOptions};
use crate::interference::Interference;
use crate::live::{self, LiveView};
use crate::migration;
use crate::observe::Observer;
use crate::postgres::{self, BackendArg, BackendChoice, Cleanup, Role, Server};
use crate::report::{
    self, Named, PhaseReport, Phases, PostgresInfo, QueryInfo, Report, ThresholdsInfo, Timeline, WorkloadInfo,
};
use crate::scenario::duration::human;
use crate::scenario::{Load, Scenario, Strategy, Target};
use crate::units::{millis, secs};
use crate::workload::{Phase, PhaseClock, Workload};

/// How to run a rehearsal.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the server comes from.
    pub backend: BackendChoice,
    /// Why that backend, in one line (see [`postgres::Plan`]).
    pub chosen: String,
    /// The strategy to apply; the scenario's first when `None`.
    pub strategy: Option<String>,
    /// Use existing tables as they are (`--reuse-existing`).
    pub reuse_existing: bool,
    /// Keep the tables the harness created on a server the user named.
    pub keep_tables: bool,
    /// Time between lock samples.
    pub observe_interval: Duration,
    /// `--replica-url`: where queries with `target = "replica"` run.
    pub replica_url: Option<String>,
    /// COPY streams per table.
    pub load_streams: usize,
    /// Progress bars and event lines on stderr.
    pub progress: bool,
}

/// The user asked for something the scenario does not have.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn say(opts: &RunOptions, clock: Option<&PhaseClock>, line: impl AsRef<str>) {
    if opts.progress {
        match clock {
            Some(c) => live::println(&format!("[{:>6.1}s] {}", c.offset(Instant::now()), line.as_ref())),
            None => live::println(&format!("rehearse: {}", line.as_ref())),
        }
    }
}

/// Server settings: the scenario's, plus enough connections for the pool
/// and the harness's own sessions when the scenario does not say.
pub(crate) fn settings(scenario: &Scenario) -> Vec<(String, String)> {
    let mut s = scenario.postgres.pairs();
    if !s.iter().any(|(k, _)| k == "max_connections") {
        // Room for a second run's sessions too: a killed run's backends may
        // linger a moment.
        let needed = scenario.sessions_needed() + 10;
        s.push(("max_connections".into(), needed.max(100).to_string()));
    }
    s
}

/// The strategy `name`, or the scenario's first; `None` for a load-only
/// scenario.
fn strategy<'a>(scenario: &'a Scenario, name: Option<&str>) -> Result<Option<&'a Strategy>, UsageError> {
    if scenario.strategies.is_empty() {
        return match name {
            None => Ok(None),
            Some(n) => Err(UsageError(format!(
                "--strategy {n}: {} has no [[strategy]]; it runs load only",
                scenario.path.display()
            ))),
        };
    }
    scenario.strategy(name).map(Some).ok_or_else(|| {
        let names: Vec<&str> = scenario.strategies.iter().map(|s| s.name.as_str()).collect();
        UsageError(format!(
            "no strategy `{}` in {} (strategies: {})",
            name.unwrap_or(""),
            scenario.path.display(),
            names.join(", ")
        ))
    })
}

/// Chooses the backend and images (see [`postgres::plan`]), then runs one
/// rehearsal per server, one after another (side by side they would skew
/// each other's latencies), and returns their reports.
pub async fn rehearse_all(
    scenario: &Scenario,
    backend: &BackendArg,
    images: &[String],
    opts: &RunOptions,
) -> anyhow::Result<Vec<Report>> {
    strategy(scenario, opts.strategy.as_deref())?;
    let plan = postgres::plan(backend, images, &scenario.postgres.images).await?;
    // Always said, even with --quiet: which server a result is from is
    // part of the result.
    eprintln!("rehearse: backend {}", plan.why);
    let mut reports = Vec::with_capacity(plan.runs.len());
    for (i, choice) in plan.runs.iter().enumerate() {
        if plan.runs.len() > 1 {
            let on = match choice {
                BackendChoice::Docker(image) => image.as_str(),
                _ => "the server",
            };
            say(opts, None, format!("rehearsal {} of {} on {on}", i + 1, plan.runs.len()));
        }
        let opts = RunOptions { backend: choice.clone(), chosen: plan.why.clone(), ..opts.clone() };
        let mut report = rehearse(scenario, &opts).await?;
        report.warnings.extend(plan.warnings.iter().cloned());
        reports.push(report);
    }
    Ok(reports)
}

/// Runs the rehearsal of `scenario` and returns its report. Without a
/// `[[strategy]]` it runs the load alone for `[timeline] duration`, and
/// the whole run is the `baseline` phase.
pub async fn rehearse(scenario: &Scenario, opts: &RunOptions) -> anyhow::Result<Report> {
    let strategy = strategy(scenario, opts.strategy.as_deref())?;
    let server = postgres::provision(&opts.backend, &settings(scenario)).await?;
    say(opts, None, format!("{} server at {}", server.backend(), server.target()));
    if std::env::var("REHEARSE_FAULT").as_deref() == Ok("panic-after-provision") {
        // Fault injection for the clean-up tests: a panic while the server runs.
        panic!("injected fault: REHEARSE_FAULT=panic-after-provision");
    }
    let config = server.config().clone();
    let cleanup = Cleanup::new((!server.is_throwaway()).then(|| config.clone()), opts.keep_tables);
    let mut warnings = Vec::new();
    if !server.is_throwaway() && !scenario.postgres.settings.is_empty() {
        warnings.push("the scenario's [postgres] settings were not applied: the harness does not configure a server it did not start".to_string());
    }
    let replica = replica(scenario, opts, &mut warnings).await?;
    let admin = postgres::connect(&config, &Role::Harness).await.context("connecting to the server")?;
    let version = postgres::server_version(&admin).await.context("reading the server version")?;

    let load_opts =
        LoadOptions { streams: opts.load_streams, reuse_existing: opts.reuse_existing, progress: opts.progress };
    let tables = datagen::load(&config, &server.target(), &admin, scenario, &load_opts, &cleanup).await?;
    let replica_config = replica.as_ref().map(|r| r.config());
    let workload = Arc::new(Workload::prepare(&config, replica_config, &scenario.workload, scenario.seed).await?);

    // Time zero, and the load's first request due at once; the observer
    // and the interference sessions connect while it runs.
    let t = scenario.timeline;
    let clock = Arc::new(PhaseClock::new(Instant::now()));
    let running = workload.clone().start(clock.clone());
    let observer = Observer::start(&config, version.version_num, opts.observe_interval, clock.start())
        .await
        .context("starting the lock observer")?;
    let interference = Interference::start(&config, &scenario.interference, clock.clone())
        .await
        .context("connecting the interference sessions")?;
    say(opts, Some(&clock), load_line(scenario, strategy));
    let live = opts.progress.then(|| {
        LiveView::start(live::Sources {
            workload: workload.clone(),
            clock: clock.clone(),
            waiting: Box::new(observer.waiting_gauge()),
            load_only: strategy.is_none(),
        })
    });

    let migration = match (strategy, t.duration) {
        (Some(strategy), _) => {
            tokio::time::sleep_until((clock.start() + t.migrate_at).into()).await;
            say(opts, Some(&clock), format!("migration `{}` started", strategy.name));
            let migration = migration::apply(&config, strategy, &observer, &clock, t.max_duration)
                .await
                .context("opening the migration's connection")?;
            say(
                opts,
                Some(&clock),
                format!(
                    "migration {} after {}; load continues for {}",
                    migration.outcome,
                    human(Duration::from_secs_f64(migration.total_ms / 1000.0)),
                    human(t.cooldown)
                ),
            );
            tokio::time::sleep(t.cooldown).await;
            Some(migration)
        }
        (None, duration) => {
            tokio::time::sleep_until((clock.start() + duration.unwrap_or_default()).into()).await;
            None
        }
    };
    let end = Instant::now();
    if let Some(live) = live {
        live.finish().await;
    }
    let grace = scenario.workload.pool_timeout + Duration::from_secs(3);
    let (results, pool) = running.stop(grace).await;
    let interference = interference.finish().await;
    let locks = observer.finish().await;
    say(opts, Some(&clock), "load stopped");
    // Close the harness's own sessions before the clean-up drops tables.
    drop((admin, workload));
    warnings.extend(cleanup.finish().await);

    let (mig_start, mig_end) = clock.migration_window();
    let end_s = clock.offset(end);
    let (mig_start, mig_end) = match &migration {
        Some(_) => (mig_start.map_or(0.0, secs), mig_end.map_or(0.0, secs)),
        None => (end_s, end_s),
    };
    let bounds = [(0.0, mig_start), (mig_start, mig_end), (mig_end, end_s)];
    let phase = |p: Phase| {
        let (start_s, end_s) = bounds[p.index()];
        PhaseReport {
            start_s,
            end_s,
            seconds: secs(Duration::from_secs_f64((end_s - start_s).max(0.0))),
            queries: Named(results.iter().map(|q| (q.name.clone(), q.phases[p.index()].clone())).collect()),
        }
    };
    let phases = Phases { baseline: phase(Phase::Baseline), during: phase(Phase::During), after: phase(Phase::After) };
    let ms = millis;
    let thresholds = ThresholdsInfo {
        max_lock_wait_ms: scenario.thresholds.max_lock_wait.map(ms),
        max_p99_ms: scenario.thresholds.max_p99.map(ms),
        max_error_rate: scenario.thresholds.max_error_rate,
    };
    let verdict = report::evaluate(&thresholds, migration.as_ref(), &locks, &phases);
    Ok(Report {
        scenario: scenario.name.clone(),
        strategy: strategy.map(|s| s.name.clone()),
        seed: scenario.seed,
        scale: scenario.scale,
        postgres: PostgresInfo {
            backend: server.backend(),
            chosen: opts.chosen.clone(),
            image: server.image().map(str::to_string),
            version: version.version,
            version_num: version.version_num,
            target: server.target(),
            settings: Named(scenario.postgres.pairs()),
            settings_applied: server.is_throwaway(),
        },
        tables,
        workload: WorkloadInfo {
            pool_size: scenario.workload.pool_size,
            pool_timeout_ms: ms(scenario.workload.pool_timeout),
            replica: replica.as_ref().map(|r| r.target()),
            queries: scenario.workload.queries.iter().map(|q| QueryInfo::new(q, replica.is_some())).collect(),
        },
        timeline: Timeline {
            migrate_at_s: strategy.map(|_| t.migrate_at.as_secs_f64()),
            duration_s: t.duration.map(|d| d.as_secs_f64()),
            end_s,
            interference,
        },
        phases,
        pool,
        migration,
        locks,
        series: Named(results.into_iter().map(|q| (q.name, q.series)).collect()),
        thresholds,
        verdict,
        warnings,
    })
}

/// The event line that opens the load.
fn load_line(scenario: &Scenario, strategy: Option<&Strategy>) -> String {
    let w = &scenario.workload;
    let rate: f64 = w.queries.iter().filter_map(|q| q.rate()).sum();
    let clients: usize = w
        .queries
        .iter()
        .map(|q| match q.load {
            Load::Closed { clients, .. } => clients,
            Load::Open { .. } => 0,
        })
        .sum();
    let mut shape = format!("{rate:.0} requests/s open loop");
    if clients > 0 {
        shape = format!("{shape} and {clients} closed-loop clients");
    }
    let what = match strategy {
        Some(s) => format!("migration `{}` at {}", s.name, human(scenario.timeline.migrate_at)),
        None => format!("load only, for {}", human(scenario.timeline.duration.unwrap_or_default())),
    };
    format!("load started: {} queries, {shape} through a pool of {}; {what}", w.queries.len(), w.pool_size)
}

/// The replica named by `--replica-url`, when queries target one. Without
/// one, those queries run on the primary, and the report says so.
async fn replica(
    scenario: &Scenario,
    opts: &RunOptions,
    warnings: &mut Vec<String>,
) -> Result<Option<postgres::UrlServer>, postgres::ProvisionError> {
    let wanted: Vec<&str> =
        scenario.workload.queries.iter().filter(|q| q.target == Target::Replica).map(|q| q.name.as_str()).collect();
    match (&opts.replica_url, wanted.is_empty()) {
        (Some(url), false) => Ok(Some(postgres::UrlServer::open(url).await?)),
        (Some(_), true) => {
            warnings.push("--replica-url was given, but no query has target = \"replica\"; it was not used".into());
            Ok(None)
        }
        (None, false) => {
            warnings.push(format!("no --replica-url: {} (target = \"replica\") ran on the primary", wanted.join(", ")));
            Ok(None)
        }
        (None, true) => Ok(None),
    }
}
