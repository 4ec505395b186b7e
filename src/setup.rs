//! A database made ready for rehearsals: the server provisioned (or
//! reached), the tables created, every statement of the strategies to be
//! rehearsed tried on them, and the data loaded. One prepared database
//! serves one timeline (`rehearse run`) or many (`rehearse compare`).

use std::time::Instant;

use crate::datagen::{self, LoadOptions, LoadedTable};
use crate::postgres::{self, Cleanup, Role, Server, ServerVersion, UrlServer};
use crate::preflight::{self, DryRun};
use crate::rehearsal::{RunOn, RunOptions};
use crate::report::{Named, PostgresInfo};
use crate::scenario::{Scenario, Target};
use anyhow::Context;

/// A loaded database, and what the harness holds on to while it is used.
/// [`Prepared::finish`] releases it; dropping it (Ctrl-C, a panic) releases
/// the server too.
pub struct Prepared {
    /// The replicas the workload's `target = "replica"` queries read from:
    /// hot standbys the harness started (dropped before the server), or
    /// the one `--replica-url` named.
    pub replicas: Vec<Box<dyn Server>>,
    /// PgBouncer, with `[pooler]`: the workload connects through it.
    pub pooler: Option<postgres::PgBouncer>,
    /// The server, kept running until this is dropped.
    pub server: Box<dyn Server>,
    /// How the harness connects to the rehearsed database.
    pub config: tokio_postgres::Config,
    /// What the server is.
    pub version: ServerVersion,
    /// The tables, as loaded.
    pub tables: Vec<LoadedTable>,
    /// Notes of the setup, for every report of this database.
    pub warnings: Vec<String>,
    /// Wall time from creating the tables until they were filled, indexed
    /// and analyzed, in seconds.
    pub load_s: f64,
    /// The server, as reports describe it.
    pub postgres: PostgresInfo,
    cleanup: Cleanup,
}

/// Server settings: [`base_settings`], plus `wal_level = logical` for a
/// CDC slot when the scenario does not set `wal_level`.
pub(crate) fn settings(scenario: &Scenario) -> Vec<(String, String)> {
    let mut s = base_settings(scenario);
    if scenario.cdc.is_some() && !s.iter().any(|(k, _)| k == "wal_level") {
        s.push(("wal_level".into(), "logical".into()));
    }
    s
}

/// Server settings: the scenario's, plus enough connections for the pool
/// and the harness's own sessions when the scenario does not say.
fn base_settings(scenario: &Scenario) -> Vec<(String, String)> {
    let mut s = scenario.postgres.pairs();
    if !s.iter().any(|(k, _)| k == "max_connections") {
        // Room for a second run's sessions too: a killed run's backends may
        // linger a moment.
        let needed = scenario.sessions_needed() + 10;
        s.push(("max_connections".into(), needed.max(100).to_string()));
    }
    s
}

/// Starts (or reaches) the server; a setting the server refused is the
/// scenario's error, at its place in the file.
/// On the local backend the server starts under the load's settings
/// ([`postgres::bulk`]) when the scenario leaves them alone; the second
/// value says so, and [`prepare`] restarts it under `settings` after the
/// load.
pub(crate) async fn provision(
    scenario: &Scenario,
    choice: &postgres::BackendChoice,
) -> anyhow::Result<(Box<dyn Server>, bool)> {
    let proper = settings(scenario);
    let load = match choice {
        // The load runs under minimal WAL whatever the run's level; the
        // restart after it sets `logical` for a CDC slot.
        postgres::BackendChoice::Local => postgres::bulk::for_load(&base_settings(scenario)),
        _ => None,
    };
    let bulk = load.is_some();
    match postgres::provision(choice, load.as_deref().unwrap_or(&proper)).await.map(|s| (s, bulk)) {
        Ok(server) => Ok(server),
        Err(e) => match postgres::settings_fault(&e, &scenario.postgres.settings) {
            Some(bad) => Err(bad.into()),
            None => Err(e.into()),
        },
    }
}

/// An error of the setup, or the server's stop if that is what it was.
pub(crate) fn stopped_or(server: &dyn Server, during: &str, e: anyhow::Error) -> anyhow::Error {
    match server.exit_probe().and_then(|probe| probe()) {
        Some(detail) => postgres::ProvisionError::Stopped { during: during.into(), detail }.into(),
        None => e,
    }
}

/// Provisions the server `on` names and loads the scenario's data, having
/// first tried every statement of `strategies` on the empty tables (and
/// the workload's queries when `strategies` is empty).
pub async fn prepare(
    scenario: &Scenario,
    on: &RunOn,
    opts: &RunOptions,
    strategies: &[&crate::scenario::Strategy],
) -> anyhow::Result<Prepared> {
    let (mut server, bulk) = provision(scenario, &on.choice).await?;
    if opts.progress {
        crate::live::println(&format!("rehearse: {} server at {}", server.backend(), server.target()));
    }
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
    let named = replica(scenario, opts, &mut warnings).await?;
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
    let started = Instant::now();
    let setup = async {
        let created = datagen::create(&admin, &config, &server.target(), scenario, &load_opts, &cleanup).await?;
        let dry_run = match (server.is_throwaway(), created.reused.is_empty()) {
            (true, _) => DryRun::Anything,
            (false, true) => DryRun::Only(created.names()),
            (false, false) => DryRun::Nothing,
        };
        let mut notes: Vec<String> = Vec::new();
        let each: Vec<Option<&crate::scenario::Strategy>> =
            if strategies.is_empty() { vec![None] } else { strategies.iter().copied().map(Some).collect() };
        for strategy in each {
            for note in
                preflight::check(&admin, scenario, strategy, &dry_run, named.is_some() || standbys(scenario, opts) > 0)
                    .await?
            {
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
        }
        let tables = datagen::fill(&config, &admin, scenario, created, &load_opts).await?;
        Ok::<_, anyhow::Error>((tables, notes))
    };
    let (tables, notes) = setup.await.map_err(|e| stopped_or(server.as_ref(), "the data load", e))?;
    drop(admin);
    if bulk {
        restart(server.as_mut(), scenario, opts.progress).await?;
    }
    let load_s = started.elapsed().as_secs_f64();
    warnings.extend(notes);
    let replicas = match named {
        Some(url) => vec![Box::new(url) as Box<dyn Server>],
        None => start_standbys(server.as_ref(), scenario, opts).await?,
    };
    let pooler = match scenario.pooler {
        Some(p) => Some(
            postgres::PgBouncer::start(&config, p.mode, p.pool_size)
                .await
                .context("starting PgBouncer in front of the server")?,
        ),
        None => None,
    };
    let postgres = PostgresInfo {
        backend: server.backend(),
        chosen: on.why.clone(),
        image: server.image().map(str::to_string),
        version: version.version.clone(),
        version_num: version.version_num,
        deadlock_timeout_ms: version.deadlock_timeout_ms,
        target: server.target(),
        settings: Named(scenario.postgres.pairs()),
        settings_applied: server.is_throwaway(),
    };
    // The harness's session closed above: a timeline opens its own, and a
    // reset needs the database free of sessions.
    Ok(Prepared { replicas, pooler, server, config, version, tables, warnings, load_s, postgres, cleanup })
}

/// Restarts the server that loaded under [`postgres::bulk`]'s settings
/// under the scenario's own, and says so when progress is shown.
pub(crate) async fn restart(server: &mut dyn Server, scenario: &Scenario, progress: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let restarted = server.restart(&settings(scenario)).await.context("restarting the server after the load")?;
    if restarted && progress {
        crate::live::println(&format!(
            "rehearse: loaded with {}, then restarted with the scenario's settings in {:.1}s",
            postgres::bulk::describe(),
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

impl Prepared {
    /// Drops what it created on a
    /// server the user named (unless kept); returns what the clean-up has
    /// to say. The server itself stops when this returns.
    pub async fn finish(self) -> Vec<String> {
        let Prepared { replicas, pooler, server, cleanup, .. } = self;
        // The pooler's server connections go first: the clean-up may need
        // the database free of sessions.
        drop(pooler);
        let notes = cleanup.finish().await;
        drop(replicas);
        drop(server);
        notes
    }
}

/// A standby's settings: the primary's, with `[replica] settings` over
/// them.
fn standby_settings(scenario: &Scenario) -> Vec<(String, String)> {
    let mut s = settings(scenario);
    for r in &scenario.replica_settings {
        s.retain(|(name, _)| *name != r.name);
        s.push((r.name.clone(), r.value.clone()));
    }
    s
}

/// How many hot standbys to start: `--replicas`, else `[replica] count`.
pub(crate) fn standbys(scenario: &Scenario, opts: &RunOptions) -> usize {
    opts.replicas.unwrap_or(scenario.replicas)
}

/// Starts the hot standbys the run asks for, one after another, beside a
/// throwaway server, after its load (a standby copies the loaded data
/// rather than replaying it).
async fn start_standbys(
    server: &dyn Server,
    scenario: &Scenario,
    opts: &RunOptions,
) -> anyhow::Result<Vec<Box<dyn Server>>> {
    let wanted = standbys(scenario, opts);
    let mut started: Vec<Box<dyn Server>> = Vec::with_capacity(wanted);
    for i in 0..wanted {
        let begun = Instant::now();
        let standby = server
            .standby(&standby_settings(scenario))
            .await
            .map_err(|e| stopped_or(server, "the start of a replica", e.into()))?
            .ok_or_else(|| {
                postgres::ProvisionError::Usage(format!(
                    "{} replica(s) asked for, but the harness starts replicas only beside a server it starts \
                     (--backend local or docker); name a replica of {} with --replica-url",
                    wanted,
                    server.target()
                ))
            })?;
        if opts.progress {
            crate::live::println(&format!(
                "rehearse: replica {} of {wanted} streaming at {} ({:.1}s)",
                i + 1,
                standby.target(),
                begun.elapsed().as_secs_f64()
            ));
        }
        started.push(standby);
    }
    Ok(started)
}

/// The replica named by `--replica-url`, when queries target one. Without
/// one (and without standbys of the harness's own), those queries run on
/// the primary, and the report says so.
async fn replica(
    scenario: &Scenario,
    opts: &RunOptions,
    warnings: &mut Vec<String>,
) -> Result<Option<UrlServer>, postgres::ProvisionError> {
    let wanted: Vec<&str> =
        scenario.workload.queries.iter().filter(|q| q.target == Target::Replica).map(|q| q.name.as_str()).collect();
    if standbys(scenario, opts) > 0 {
        if opts.replica_url.is_some() {
            return Err(postgres::ProvisionError::Usage(
                "--replica-url and [replica] count (or --replicas) both name replicas; give one".into(),
            ));
        }
        return Ok(None);
    }
    match (&opts.replica_url, wanted.is_empty()) {
        (Some(url), false) => Ok(Some(UrlServer::open(url).await?)),
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
