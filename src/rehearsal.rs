//! One rehearsal, end to end: a database prepared (see [`crate::setup`]),
//! then one timeline on it: start the observer, the interference and the
//! load, apply the migration at `migrate_at`, keep the load running for
//! `cooldown`, then stop everything and judge ([`run_timeline`], which
//! `compare` runs many times on one database). Whatever the harness
//! started is released when this future completes or is dropped (Ctrl-C)
//! or unwinds (a panic).
//!
//! A watch on the server runs throughout. When the server stops or
//! restarts under the run, the timeline stops where it is, every wait is
//! cut short, and the report covers the run up to the fault, says so, and
//! fails; the command exits 3.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::clock::{PhaseClock, Window};
use crate::interference::Interference;
use crate::live::{self, LiveView};
use crate::migration::{self, MigrationReport, Outcome};
use crate::observe::Observer;
use crate::observe::cdc::{self, CdcConsumer};
use crate::observe::lag::{LagObserver, REPLAY_LSN, Standby};
use crate::observe::plans::{self, CheckRun, PlanCheck, Probe};
use crate::observe::pooler::PoolerObserver;
use crate::observe::wal::WalObserver;
use crate::postgres::{self, BackendArg, BackendChoice, ServerWatch};
use crate::report::{self, Measured, Report};
use crate::scenario::duration::human;
use crate::scenario::{Rollback, Scenario, Strategy};
use crate::setup::{self, Prepared};
use crate::workload::{Signal, Workload};

/// The shortest time between samples of replica lag: each sample is a
/// query on the primary and on every standby, and lag moves on the scale
/// of WAL flushes, not of lock waits.
const LAG_INTERVAL: Duration = Duration::from_millis(100);

/// How to run a rehearsal.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Use existing tables as they are (`--reuse-existing`).
    pub reuse_existing: bool,
    /// Keep the tables the harness created on a server the user named.
    pub keep_tables: bool,
    /// Time between lock samples.
    pub observe_interval: Duration,
    /// `--replica-url`: where queries with `target = "replica"` run.
    pub replica_url: Option<String>,
    /// `--replicas`: hot standbys to start, instead of the scenario's
    /// `[replica] count`.
    pub replicas: Option<usize>,
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

/// The strategy `name`, or the scenario's first; `None` for a load-only
/// scenario.
pub(crate) fn strategy<'a>(scenario: &'a Scenario, name: Option<&str>) -> Result<Option<&'a Strategy>, UsageError> {
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
/// rehearsal of `strategy` (the scenario's first when `None`) per server, one after another (side by side they would skew
/// each other's latencies), and returns their reports. A server that
/// faults ends its own rehearsal, not the others'.
pub async fn rehearse_all(
    scenario: &Scenario,
    backend: &BackendArg,
    images: &[String],
    strategy: Option<&str>,
    opts: &RunOptions,
) -> anyhow::Result<Vec<Report>> {
    let chosen = self::strategy(scenario, strategy)?;
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
    let standbys = setup::standbys(scenario, opts);
    let on_url = plan.runs.iter().any(|c| matches!(c, BackendChoice::Url(_)));
    if on_url && scenario.cdc.is_some_and(|c| c.plugin == crate::scenario::CdcPlugin::Pgoutput) {
        return Err(UsageError(
            "[cdc] slot = \"pgoutput\" needs a publication, which the harness creates only on a server it starts; \
             use slot = \"test_decoding\" on --url (its slot is temporary and goes with the run)"
                .into(),
        )
        .into());
    }
    if standbys > 0 && plan.runs.iter().any(|c| matches!(c, BackendChoice::Url(_))) {
        return Err(UsageError(format!(
            "{standbys} replica(s) asked for ([replica] count or --replicas), but the harness starts replicas only \
             beside a server it starts (--backend local or docker); name a replica of your server with --replica-url"
        ))
        .into());
    }
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
        let mut report = rehearse(scenario, &on, strategy, opts).await?;
        report.warnings.extend(plan.warnings.iter().cloned());
        reports.push(report);
    }
    Ok(reports)
}

/// Runs the rehearsal of `scenario` on the server `on` names, with the
/// strategy called `strategy` (the scenario's first when `None`), and
/// returns its report. Without a `[[strategy]]` it runs the load alone for
/// `[timeline] duration`, and the whole run is the `baseline` phase.
pub async fn rehearse(
    scenario: &Scenario,
    on: &RunOn,
    strategy: Option<&str>,
    opts: &RunOptions,
) -> anyhow::Result<Report> {
    let strategy = self::strategy(scenario, strategy)?;
    let prepared = setup::prepare(scenario, on, opts, strategy.as_slice()).await?;
    let mut report = run_timeline(scenario, &prepared, strategy, opts).await?;
    report.warnings.extend(prepared.finish().await);
    Ok(report)
}

/// Runs one timeline of `strategy` on the prepared database, as it is,
/// and returns what it measured as a report. The database is left as the
/// timeline left it.
pub async fn run_timeline(
    scenario: &Scenario,
    prepared: &Prepared,
    strategy: Option<&Strategy>,
    opts: &RunOptions,
) -> anyhow::Result<Report> {
    let (server, config) = (prepared.server.as_ref(), &prepared.config);
    let replica_configs: Vec<_> = prepared.replicas.iter().map(|r| r.config().clone()).collect();
    let via = prepared.pooler.as_ref().map(|p| p.config());
    let workload = Workload::prepare_via(config, via, &replica_configs, &scenario.workload, scenario.seed)
        .await
        .map_err(|e| setup::stopped_or(server, "the workload's setup", e.into()))?;
    let watch = ServerWatch::start(config, server.exit_probe()).await.context("starting the server watch")?;
    let mut standbys = standbys(prepared).await;
    // The CDC slot, created before the load so that the baseline has it
    // too; its consumer position is watched as a standby's is.
    let cdc = match &scenario.cdc {
        Some(spec) => {
            let consumer = CdcConsumer::start(config, spec).await.map_err(|e| anyhow::anyhow!("[cdc]: {e}"))?;
            let name = format!("slot {} ({})", cdc::SLOT, spec.plugin.name());
            standbys.push(Standby { name, config: config.clone(), position: cdc::CONFIRMED_LSN.into() });
            Some((*spec, consumer))
        }
        None => None,
    };
    let on = Servers { config, version: &prepared.version, standbys: &standbys, pooler: prepared.pooler.as_ref() };
    let ledger = workload.ledger();
    let measured = timeline(scenario, strategy, &on, Arc::new(workload), &watch, opts).await;
    let cdc = match cdc {
        Some((spec, consumer)) => Some((spec, consumer.finish().await)),
        None => None,
    };
    let mut measured = measured?;
    measured.cdc = cdc;
    if !ledger.tracked.is_empty() || !ledger.untracked.is_empty() {
        say(opts, Some(&measured.clock), "checking the acknowledged writes");
        measured.ledger = Some(crate::ledger::verify::verify_on(config, &ledger).await);
    }
    drop(watch);
    let mut warnings = prepared.warnings.clone();
    if opts.rollback && strategy.is_some() && measured.rollback.is_none() {
        let why = match &measured.migration {
            Some(m) if m.outcome != Outcome::Ok => format!("the migration {}", m.outcome),
            Some(_) => "the server failed".to_string(),
            None => "the migration never started".to_string(),
        };
        warnings.push(format!("--rollback: the rollback was not rehearsed, because {why}"));
    }
    let run = report::Run {
        scenario,
        strategy,
        postgres: prepared.postgres.clone(),
        tables: prepared.tables.clone(),
        replicas: prepared.replicas.iter().map(|r| r.target()).collect(),
        warnings,
    };
    Ok(report::build(run, measured))
}

/// Sleeps until `until`; false when the server faulted first.
async fn wait_until(until: Instant, fault: &Signal) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(until.into()) => true,
        _ = fault.fired() => false,
    }
}

/// The replicas whose lag is measured: the harness's own standbys, and a
/// `--replica-url` server when it is a standby (in recovery).
async fn standbys(prepared: &Prepared) -> Vec<Standby> {
    let mut out = Vec::new();
    for r in &prepared.replicas {
        let standby = Standby { name: r.target(), config: r.config().clone(), position: REPLAY_LSN.into() };
        if r.is_throwaway() {
            out.push(standby);
            continue;
        }
        let Ok(client) = postgres::connect(r.config(), &postgres::Role::Harness).await else { continue };
        if let Ok(row) = client.query_one("SELECT pg_is_in_recovery()", &[]).await
            && row.get::<_, bool>(0)
        {
            out.push(standby);
        }
    }
    out
}

/// The servers a timeline runs on: the primary, and the standbys whose lag
/// it measures.
struct Servers<'a> {
    config: &'a tokio_postgres::Config,
    version: &'a postgres::ServerVersion,
    standbys: &'a [Standby],
    /// PgBouncer, when the workload goes through it.
    pooler: Option<&'a postgres::PgBouncer>,
}

/// The load, the observers, the interference and the migration, on the
/// clock; stopped early by a fault of the server.
async fn timeline(
    scenario: &Scenario,
    strategy: Option<&Strategy>,
    on: &Servers<'_>,
    workload: Arc<Workload>,
    watch: &ServerWatch,
    opts: &RunOptions,
) -> anyhow::Result<Measured> {
    // Time zero, and the load's first request due at once; the observer
    // and the interference sessions connect while it runs.
    let t = scenario.timeline;
    let fault = watch.signal();
    let clock = Arc::new(PhaseClock::new(Instant::now()));
    let running = workload.clone().start(clock.clone());
    let (config, version) = (on.config, on.version);
    let observer = Observer::start(config, version.version_num, opts.observe_interval, clock.start())
        .await
        .context("starting the lock observer")?;
    let wal =
        WalObserver::start(config, version.version_num, clock.clone()).await.context("starting the WAL sampler")?;
    let lag = match on.standbys {
        [] => None,
        standbys => Some(
            LagObserver::start(config, standbys, opts.observe_interval.max(LAG_INTERVAL), clock.clone())
                .await
                .context("starting the replica-lag observer")?,
        ),
    };
    let pooler = match on.pooler {
        Some(p) => Some((
            p,
            PoolerObserver::start(p.admin(), clock.clone()).await.context("connecting to PgBouncer's admin console")?,
        )),
        None => None,
    };
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
    let checks = plans::check_probes(&scenario.workload.checks, scenario.seed);
    let mut probes = plans::probes(&scenario.workload.queries, scenario.seed);
    probes.extend(checks.iter().cloned());
    let plans_before = match strategy {
        Some(_) => plans::explain_all(config, &probes).await.ok(),
        None => None,
    };
    let ledger = workload.ledger();
    let stage = Stage {
        config,
        observer: &observer,
        clock: &clock,
        fault: &fault,
        opts,
        max_duration: t.max_duration,
        probes: &probes,
        checks: &checks,
        plans_before: plans_before.as_deref(),
        ledger: &ledger,
    };
    let mut found = Findings::default();
    let migration = match strategy {
        Some(strategy) if wait_until(clock.start() + t.migrate_at, &fault).await => {
            Some(stage.apply(strategy, Window::Migration, t.cooldown, &mut found).await?)
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
            Some(stage.apply(down, Window::Rollback, t.cooldown, &mut Findings::default()).await?)
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
    let wal = wal.finish().await;
    let pooler = match pooler {
        Some((p, observer)) => {
            let (samples, failed) = observer.finish().await;
            let (version, mode, pool_size) = (p.version().to_string(), p.mode(), p.pool_size());
            Some(report::PoolerRun { version, mode, pool_size, samples, failed })
        }
        None => None,
    };
    let replicas = match lag {
        Some(lag) => lag.finish().await,
        None => Vec::new(),
    };
    say(opts, Some(&clock), "load stopped");
    let lag_interval_ms = crate::units::millis(opts.observe_interval.max(LAG_INTERVAL));
    Ok(Measured {
        clock,
        end,
        migration,
        rollback,
        fault,
        results,
        pool,
        interference,
        locks,
        replicas,
        lag_interval_ms,
        plans: found.plans,
        checks: found.checks,
        wal,
        cdc: None,
        ledger: None,
        pooler,
    })
}

/// What applying a migration (or its rollback) on the timeline needs.
struct Stage<'a> {
    config: &'a tokio_postgres::Config,
    observer: &'a Observer,
    clock: &'a PhaseClock,
    fault: &'a Signal,
    opts: &'a RunOptions,
    max_duration: Duration,
    /// The workload's statements and checks, to explain around the
    /// migration.
    probes: &'a [Probe],
    /// The `[[workload.check]]` entries, to run once after it.
    checks: &'a [Probe],
    /// The probes' plans, explained during the baseline (so that the
    /// migration starts on time); `None` when they could not be.
    plans_before: Option<&'a [plans::Explained]>,
    /// The workload's ledger, told of the migration's executions.
    ledger: &'a crate::ledger::Ledger,
}

/// What the migration's stage found beside the migration's own report.
#[derive(Default)]
struct Findings {
    /// The plans that changed.
    plans: Option<PlanCheck>,
    /// The checks run after it.
    checks: Vec<CheckRun>,
}

impl Stage<'_> {
    /// Applies `strategy` as `window`, then lets the load run on for
    /// `cooldown` (cut short by a fault of the server). The migration (not
    /// its rollback) has the workload's plans explained just before its
    /// first statement and just after its last, into `plans`.
    async fn apply(
        &self,
        strategy: &Strategy,
        window: Window,
        cooldown: Duration,
        found: &mut Findings,
    ) -> anyhow::Result<MigrationReport> {
        let (opts, clock) = (self.opts, Some(self.clock));
        let what = if window == Window::Rollback { "rollback" } else { "migration" };
        let explain = window == Window::Migration;
        say(opts, clock, format!("{what} `{}` started", strategy.name));
        let m = migration::apply(
            self.config,
            strategy,
            self.observer,
            self.clock,
            window,
            self.max_duration,
            self.fault,
            Some(self.ledger),
        )
        .await
        .with_context(|| format!("opening the {what}'s connection"))?;
        let before = self.plans_before.filter(|_| explain);
        if let Some(before) = before
            && !self.fault.is_fired()
            && let Ok(after) = plans::explain_all(self.config, self.probes).await
        {
            found.plans = Some(plans::compare(self.probes, before, &after));
        }
        if explain && !self.checks.is_empty() && !self.fault.is_fired() {
            let ran = plans::run_checks(self.config, self.checks, self.max_duration, self.clock).await;
            found.checks = ran.unwrap_or_default();
            // A check that did not plan before the migration either was
            // not broken by it.
            let first_check = self.probes.len() - self.checks.len();
            for (i, c) in found.checks.iter_mut().enumerate() {
                c.planned_before = before.is_none_or(|b| b.get(first_check + i).is_none_or(Result::is_ok));
            }
        }
        let took = human(Duration::from_secs_f64(m.total_ms / 1000.0));
        say(opts, clock, format!("{what} {} after {took}; load continues for {}", m.outcome, human(cooldown)));
        wait_until(Instant::now() + cooldown, self.fault).await;
        Ok(m)
    }
}
