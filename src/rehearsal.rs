//! One rehearsal, end to end: provision a server, create the tables, try
//! every statement on them, load the data, start the observer, the
//! interference and the load, apply the migration at `migrate_at`, keep the
//! load running for `cooldown`, then stop everything and judge. Whatever
//! the harness started is released when this future completes or is
//! dropped (Ctrl-C) or unwinds (a panic).
//!
//! A watch on the server runs throughout. When the server stops or
//! restarts under the run, the timeline stops where it is, every wait is
//! cut short, and the report covers the run up to the fault, says so, and
//! fails; the command exits 3.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::clock::{Phase, PhaseClock, Window};
use crate::datagen::{self, LoadOptions};
use crate::interference::Interference;
use crate::live::{self, LiveView};
use crate::migration::{self, MigrationReport, Outcome};
use crate::observe::Observer;
use crate::postgres::{self, BackendArg, BackendChoice, Cleanup, Fault, Role, Server, ServerWatch};
use crate::preflight::{self, DryRun};
use crate::report::{self, FaultReport, Judged, Named, PhaseReport, Phases, PostgresInfo, QueryInfo, Report};
use crate::report::{ThresholdsInfo, Timeline, WorkloadInfo};
use crate::scenario::duration::human;
use crate::scenario::{Rollback, Scenario, Strategy, Target};
use crate::units::{millis, secs};
use crate::workload::{Signal, Workload};

/// How to run a rehearsal.
#[derive(Debug, Clone)]
pub struct RunOptions {
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
    /// `--rollback`: after the migration and its cooldown, rehearse its
    /// down migration under the same load, then cool down again.
    pub rollback: bool,
}

/// The server a rehearsal runs on, and why that one.
#[derive(Debug, Clone)]
pub struct RunOn {
    /// Where the server comes from.
    pub choice: BackendChoice,
    /// Why that backend, in one line (see [`postgres::Plan`]).
    pub why: String,
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
/// each other's latencies), and returns their reports. A server that
/// faults ends its own rehearsal, not the others'.
pub async fn rehearse_all(
    scenario: &Scenario,
    backend: &BackendArg,
    images: &[String],
    opts: &RunOptions,
) -> anyhow::Result<Vec<Report>> {
    let chosen = strategy(scenario, opts.strategy.as_deref())?;
    if opts.rollback {
        match chosen.map(|s| &s.rollback) {
            Some(Rollback::Steps(_)) => {}
            Some(Rollback::Missing(why)) => return Err(UsageError(format!("--rollback: {why}")).into()),
            None => {
                return Err(UsageError("--rollback: a load-only scenario has no migration to roll back".into()).into());
            }
        }
    }
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
        let on = RunOn { choice: choice.clone(), why: plan.why.clone() };
        let mut report = rehearse(scenario, &on, opts).await?;
        report.warnings.extend(plan.warnings.iter().cloned());
        reports.push(report);
    }
    Ok(reports)
}

/// Starts (or reaches) the server; a setting the server refused is the
/// scenario's error, at its place in the file.
async fn provision(scenario: &Scenario, on: &RunOn) -> anyhow::Result<Box<dyn Server>> {
    match postgres::provision(&on.choice, &settings(scenario)).await {
        Ok(server) => Ok(server),
        Err(e) => match postgres::settings_fault(&e, &scenario.postgres.settings) {
            Some(bad) => Err(bad.into()),
            None => Err(e.into()),
        },
    }
}

/// An error of the setup, or the server's stop if that is what it was.
fn stopped_or(server: &dyn Server, during: &str, e: anyhow::Error) -> anyhow::Error {
    match server.exit_probe().and_then(|probe| probe()) {
        Some(detail) => postgres::ProvisionError::Stopped { during: during.into(), detail }.into(),
        None => e,
    }
}

/// Runs the rehearsal of `scenario` on the server `on` names and returns
/// its report. Without a `[[strategy]]` it runs the load alone for
/// `[timeline] duration`, and the whole run is the `baseline` phase.
pub async fn rehearse(scenario: &Scenario, on: &RunOn, opts: &RunOptions) -> anyhow::Result<Report> {
    let strategy = strategy(scenario, opts.strategy.as_deref())?;
    let server = provision(scenario, on).await?;
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
    if !server.is_throwaway() {
        postgres::check_room(&admin, scenario.sessions_needed(), &server.target()).await?;
    }
    let load_opts = LoadOptions {
        streams: opts.load_streams,
        reuse_existing: opts.reuse_existing,
        progress: opts.progress,
        data_dir: server.data_dir(),
        throwaway: server.is_throwaway(),
        mix: None,
    };
    let setup = async {
        let created = datagen::create(&admin, &config, &server.target(), scenario, &load_opts, &cleanup).await?;
        let dry_run = match (server.is_throwaway(), created.reused.is_empty()) {
            (true, _) => DryRun::Anything,
            (false, true) => DryRun::Only(created.names()),
            (false, false) => DryRun::Nothing,
        };
        let notes = preflight::check(&admin, scenario, strategy, &dry_run, replica.is_some()).await?;
        let tables = datagen::fill(&config, &admin, scenario, created, &load_opts).await?;
        Ok::<_, anyhow::Error>((tables, notes))
    };
    let (tables, notes) = setup.await.map_err(|e| stopped_or(server.as_ref(), "the data load", e))?;
    warnings.extend(notes);
    let replica_config = replica.as_ref().map(|r| r.config());
    let workload = Workload::prepare(&config, replica_config, &scenario.workload, scenario.seed)
        .await
        .map_err(|e| stopped_or(server.as_ref(), "the workload's setup", e.into()))?;
    let watch = ServerWatch::start(&config, server.exit_probe()).await.context("starting the server watch")?;
    let timed = timeline(scenario, strategy, &config, &version, Arc::new(workload), &watch, opts).await?;
    if opts.rollback && strategy.is_some() && timed.rollback.is_none() {
        let why = match &timed.migration {
            Some(m) if m.outcome != Outcome::Ok => format!("the migration {}", m.outcome),
            Some(_) => "the server failed".to_string(),
            None => "the migration never started".to_string(),
        };
        warnings.push(format!("--rollback: the rollback was not rehearsed, because {why}"));
    }
    // Close the harness's own sessions before the clean-up drops tables.
    drop((admin, watch));
    warnings.extend(cleanup.finish().await);
    let server_info = PostgresInfo {
        backend: server.backend(),
        chosen: on.why.clone(),
        image: server.image().map(str::to_string),
        version: version.version,
        version_num: version.version_num,
        target: server.target(),
        settings: Named(scenario.postgres.pairs()),
        settings_applied: server.is_throwaway(),
    };
    let replica = replica.as_ref().map(|r| r.target());
    Ok(assemble(scenario, strategy, server_info, tables, replica, timed, warnings))
}

/// What the timeline measured.
struct Timed {
    clock: Arc<PhaseClock>,
    end: Instant,
    migration: Option<MigrationReport>,
    rollback: Option<MigrationReport>,
    fault: Option<Fault>,
    results: Vec<crate::workload::QueryResult>,
    pool: crate::workload::PoolStats,
    interference: Vec<crate::interference::InterferenceReport>,
    locks: crate::observe::LockSummary,
}

/// Sleeps until `until`; false when the server faulted first.
async fn wait_until(until: Instant, fault: &Signal) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(until.into()) => true,
        _ = fault.fired() => false,
    }
}

/// The load, the observer, the interference and the migration, on the
/// clock; stopped early by a fault of the server.
async fn timeline(
    scenario: &Scenario,
    strategy: Option<&Strategy>,
    config: &tokio_postgres::Config,
    version: &postgres::ServerVersion,
    workload: Arc<Workload>,
    watch: &ServerWatch,
    opts: &RunOptions,
) -> anyhow::Result<Timed> {
    // Time zero, and the load's first request due at once; the observer
    // and the interference sessions connect while it runs.
    let t = scenario.timeline;
    let fault = watch.signal();
    let clock = Arc::new(PhaseClock::new(Instant::now()));
    let running = workload.clone().start(clock.clone());
    let observer = Observer::start(config, version.version_num, opts.observe_interval, clock.start())
        .await
        .context("starting the lock observer")?;
    let interference = Interference::start(config, &scenario.interference, clock.clone())
        .await
        .context("connecting the interference sessions")?;
    say(opts, Some(&clock), live::load_line(scenario, strategy));
    let live = opts.progress.then(|| {
        LiveView::start(live::Sources {
            workload: workload.clone(),
            clock: clock.clone(),
            waiting: Box::new(observer.waiting_gauge()),
            load_only: strategy.is_none(),
        })
    });
    let stage = Stage { config, observer: &observer, clock: &clock, fault: &fault, opts, max_duration: t.max_duration };
    let migration = match strategy {
        Some(strategy) if wait_until(clock.start() + t.migrate_at, &fault).await => {
            Some(stage.apply(strategy, Window::Migration, t.cooldown).await?)
        }
        Some(_) => None,
        None => {
            wait_until(clock.start() + t.duration.unwrap_or_default(), &fault).await;
            None
        }
    };
    let down = match strategy.map(|s| &s.rollback) {
        Some(Rollback::Steps(down)) if opts.rollback => Some(down),
        _ => None,
    };
    let rollback = match (down, &migration) {
        (Some(down), Some(m)) if m.outcome == Outcome::Ok && !fault.is_fired() => {
            Some(stage.apply(down, Window::Rollback, t.cooldown).await?)
        }
        _ => None,
    };
    let fault = watch.fault();
    let end = fault.as_ref().map_or_else(Instant::now, |f| f.at);
    if let Some(live) = live {
        live.finish().await;
    }
    if let Some(f) = &fault {
        say(opts, Some(&clock), format!("the server failed: {}; stopping the run", f.detail));
    }
    // Requests in flight on a server that failed will not answer: a second
    // for them, else what the pool lets them wait.
    let grace =
        if fault.is_some() { Duration::from_secs(1) } else { scenario.workload.pool_timeout + Duration::from_secs(3) };
    let (results, pool) = running.stop(grace).await;
    let interference = interference.finish().await;
    let locks = observer.finish().await;
    say(opts, Some(&clock), "load stopped");
    Ok(Timed { clock, end, migration, rollback, fault, results, pool, interference, locks })
}

/// What applying a migration (or its rollback) on the timeline needs.
struct Stage<'a> {
    config: &'a tokio_postgres::Config,
    observer: &'a Observer,
    clock: &'a PhaseClock,
    fault: &'a Signal,
    opts: &'a RunOptions,
    max_duration: Duration,
}

impl Stage<'_> {
    /// Applies `strategy` as `window`, then lets the load run on for
    /// `cooldown` (cut short by a fault of the server).
    async fn apply(&self, strategy: &Strategy, window: Window, cooldown: Duration) -> anyhow::Result<MigrationReport> {
        let (opts, clock) = (self.opts, Some(self.clock));
        let what = if window == Window::Rollback { "rollback" } else { "migration" };
        say(opts, clock, format!("{what} `{}` started", strategy.name));
        let m =
            migration::apply(self.config, strategy, self.observer, self.clock, window, self.max_duration, self.fault)
                .await
                .with_context(|| format!("opening the {what}'s connection"))?;
        let took = human(Duration::from_secs_f64(m.total_ms / 1000.0));
        say(opts, clock, format!("{what} {} after {took}; load continues for {}", m.outcome, human(cooldown)));
        wait_until(Instant::now() + cooldown, self.fault).await;
        Ok(m)
    }
}

/// The report of a run.
fn assemble(
    scenario: &Scenario,
    strategy: Option<&Strategy>,
    postgres: PostgresInfo,
    tables: Vec<datagen::LoadedTable>,
    replica: Option<String>,
    timed: Timed,
    warnings: Vec<String>,
) -> Report {
    let Timed { clock, end, migration, rollback, fault, results, pool, interference, locks } = timed;
    let t = scenario.timeline;
    let end_s = clock.offset(end);
    let phases = phases(&clock, end_s, migration.is_some(), rollback.is_some(), &results);
    let fault = fault.map(|f| {
        let at_s = clock.offset(f.at);
        FaultReport {
            kind: f.kind,
            at_s,
            phase: clock.phase_of(f.at),
            during_migration: migration.as_ref().is_some_and(|m| at_s >= m.started_s && at_s <= m.ended_s + 0.5),
            detail: f.detail,
        }
    });
    let ms = millis;
    let thresholds = ThresholdsInfo {
        max_lock_wait_ms: scenario.thresholds.max_lock_wait.map(ms),
        max_p99_ms: scenario.thresholds.max_p99.map(ms),
        max_error_rate: scenario.thresholds.max_error_rate,
        max_p99_ratio: scenario.thresholds.max_p99_ratio,
        defaults: scenario.thresholds.defaults,
    };
    let verdict = report::evaluate(&Judged {
        thresholds: &thresholds,
        migration: migration.as_ref(),
        has_strategy: strategy.is_some(),
        rollback: rollback.as_ref(),
        locks: &locks,
        phases: &phases,
        interference: &interference,
        fault: fault.as_ref(),
    });
    Report {
        scenario: scenario.name.clone(),
        strategy: strategy.map(|s| s.name.clone()),
        seed: scenario.seed,
        scale: scenario.scale,
        postgres,
        tables,
        workload: WorkloadInfo {
            pool_size: scenario.workload.pool_size,
            pool_timeout_ms: ms(scenario.workload.pool_timeout),
            queries: scenario.workload.queries.iter().map(|q| QueryInfo::new(q, replica.is_some())).collect(),
            replica,
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
        rollback,
        locks,
        series: Named(results.into_iter().map(|q| (q.name, q.series)).collect()),
        thresholds,
        fault,
        verdict,
        warnings,
    }
}

/// Each phase's window and statistics. Without a migration the whole run
/// is the baseline; without a rollback, `after` runs to the end.
fn phases(
    clock: &PhaseClock,
    end_s: f64,
    migrated: bool,
    rolled_back: bool,
    results: &[crate::workload::QueryResult],
) -> Phases {
    let window = |w: Window, until: f64| {
        let (start, end) = clock.window(w);
        (start.map_or(0.0, secs), end.map_or(until, secs))
    };
    let (mig_start, mig_end) = if migrated { window(Window::Migration, end_s) } else { (end_s, end_s) };
    let (back_start, back_end) = if rolled_back { window(Window::Rollback, end_s) } else { (end_s, end_s) };
    let bounds =
        [(0.0, mig_start), (mig_start, mig_end), (mig_end, back_start), (back_start, back_end), (back_end, end_s)];
    let phase = |p: Phase| {
        let (start_s, end_s) = bounds[p.index()];
        let end_s = end_s.max(start_s);
        PhaseReport {
            start_s,
            end_s,
            seconds: secs(Duration::from_secs_f64(end_s - start_s)),
            queries: Named(results.iter().map(|q| (q.name.clone(), q.phases[p.index()].clone())).collect()),
        }
    };
    Phases {
        baseline: phase(Phase::Baseline),
        during: phase(Phase::During),
        after: phase(Phase::After),
        rollback: rolled_back.then(|| phase(Phase::Rollback)),
        after_rollback: rolled_back.then(|| phase(Phase::AfterRollback)),
    }
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
