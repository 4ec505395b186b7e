//! The command line: flags parsed by clap, then handed to the library.
//!
//! Exit codes: 0 the rehearsal ran and every threshold held; 1 it ran and
//! a threshold failed (or the migration did); 2 bad input (the scenario or
//! the flags); 3 environment failure (no Postgres binaries, the server
//! would not start or cannot be reached); 130 interrupted by Ctrl-C or
//! SIGTERM, after cleaning up.

mod compare;
mod formats;
mod merge;
mod migrations;
mod plan;
mod predict;
mod run;
mod server;
mod soak;
mod suggest;
mod tune;

pub use server::{BackendArg, ServerArgs};
use server::{url_from_file, warn_if_password_in};

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::datagen::LoadError;
use crate::postgres::{self, ProvisionError};
use crate::preflight::PreflightError;
use crate::rehearsal::UsageError;
use crate::report::{JsonOut, JsonPathError};
use crate::scenario::{self, LoadOptions, ScenarioError};
use crate::workload::WorkloadError;

/// The rehearsal ran and every threshold held.
pub const EXIT_PASS: i32 = 0;
/// The rehearsal ran and a threshold failed.
pub const EXIT_FAIL: i32 = 1;
/// The scenario or the flags are wrong.
pub const EXIT_BAD_INPUT: i32 = 2;
/// The environment failed.
pub const EXIT_ENVIRONMENT: i32 = 3;
/// Interrupted by a signal (after cleaning up).
pub const EXIT_INTERRUPTED: i32 = 130;

/// What `--help` says after the options: the exit codes.
const EXIT_CODES: &str = "Exit codes:
  0    the rehearsal ran and every threshold held
  1    the rehearsal ran and a threshold failed (or the migration failed or was cancelled)
  2    bad input: the scenario (with file, line and column), or the flags
  3    environment failure: no Postgres binaries, no Docker daemon or image, a server that would not
       start, cannot be reached, or stopped during the run (its report is still written)
  130  interrupted by Ctrl-C or SIGTERM, after cleaning up";

/// Rehearse a PostgreSQL migration at production scale, under load.
#[derive(Debug, Parser)]
#[command(name = "rehearse", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rehearse a migration: provision Postgres, load data, replay the
    /// workload, apply the migration, measure and judge.
    #[command(after_help = EXIT_CODES)]
    Run(Box<RunArgs>),
    /// Rehearse every strategy (or --strategies a,b) on one server and one
    /// data load, each from a fresh copy of it, and show them side by side
    /// with the safest that passed (exit 0 when one passed every run).
    #[command(after_help = EXIT_CODES)]
    Compare(Box<compare::CompareArgs>),
    /// Rehearse one strategy with each value of its lock_timeout
    /// (--lock-timeout 50ms,100ms) or batch pause (--pause 0,50ms) under the
    /// same contention, and recommend one (exit 0 when one passed).
    #[command(after_help = EXIT_CODES)]
    Tune(Box<tune::TuneArgs>),
    /// Rehearse one strategy at small scales (--scales 0.05,0.1,0.2), fit
    /// each step's duration, lock hold and batch rate against the row
    /// count, and predict them at production size (--at 1, or --rows
    /// orders=40000000), with the fit's error; --verify rehearses the
    /// target too (exit 0 when the prediction is trusted and within
    /// max_duration).
    #[command(after_help = EXIT_CODES)]
    Predict(Box<predict::PredictArgs>),
    /// Rehearse every scenario given (files, or directories of them), each
    /// strategy on each server, over and over until --duration is up (each
    /// at least once); one summary of runs, passes and each figure's spread
    /// (exit 0 when every run passed).
    #[command(after_help = EXIT_CODES)]
    Soak(Box<soak::SoakArgs>),
    /// List the shards of a suite, scenario × strategy × major, or print
    /// them as a CI matrix (--matrix for GitHub Actions' strategy.matrix,
    /// --matrix=gitlab for a child pipeline with parallel:matrix).
    Plan(plan::PlanArgs),
    /// Join the JSON reports of shards into one report, in every format
    /// (exit 0 when every report passed).
    #[command(after_help = EXIT_CODES)]
    Merge(Box<merge::MergeArgs>),
    /// Check a scenario file without running anything.
    Check(CheckArgs),
    /// Write the scenario `run` would derive from a migration and a schema,
    /// commented, to stdout: `rehearse init --migration m.sql --schema
    /// dump.sql > scenario.toml`.
    Init(InitArgs),
    /// Load a scenario's data only and print how to connect; a throwaway
    /// server keeps running until Ctrl-C.
    Generate(GenerateArgs),
    /// Remove what killed runs left behind: containers labelled by the
    /// harness and local cluster directories, of runs no longer going.
    Clean(CleanArgs),
}

/// `rehearse run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file. Without one, the scenario is derived from the
    /// migration (--migration or --migrations) and the schema (--schema,
    /// or the folder's earlier migrations), and printed.
    pub scenario: Option<PathBuf>,
    /// Where Postgres comes from.
    #[command(flatten)]
    pub server: ServerArgs,
    /// The strategy to rehearse (default: the scenario's first).
    #[arg(long, conflicts_with_all = ["migrations", "migration"])]
    pub strategy: Option<String>,
    /// The migration as written, in place of the scenario's strategies.
    #[command(flatten)]
    pub migrations: migrations::MigrationArgs,
    /// The tables, when there is no scenario file.
    #[command(flatten)]
    pub tables: migrations::TablesArgs,
    /// After the migration and its cooldown, rehearse its rollback (the
    /// down migrations, last first, or the strategy's `rollback` steps)
    /// under the same load, and judge it as a migration of its own.
    #[arg(long)]
    pub rollback: bool,
    /// Derive the known safe rewrites of the migration (lock_timeout and
    /// retries, CONCURRENTLY, NOT VALID then VALIDATE, batched backfills),
    /// print them, and rehearse them beside it on one load, as `compare`.
    #[arg(long, conflicts_with_all = ["rollback", "reuse_existing", "keep_tables", "replica_url"])]
    pub suggest: bool,
    /// Multiply every table's row count, e.g. 0.05 for a quick run.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Write the report as JSON to this file ("-" for stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Compare this run with an earlier JSON report (`--json`) of the same
    /// scenario and strategy: each figure that got worse by more than
    /// `max_regression` (0.25 unless the scenario sets it) is a regression
    /// and fails the verdict.
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
    /// The report's other formats.
    #[command(flatten)]
    pub formats: formats::FormatArgs,
    /// On --backend url, rehearse against tables that already exist, as
    /// they are, instead of refusing to touch them.
    #[arg(long)]
    pub reuse_existing: bool,
    /// On --backend url, keep the tables the harness created.
    #[arg(long)]
    pub keep_tables: bool,
    /// Time between samples of the lock observer.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub observe_interval: Duration,
    /// A read replica for the queries with `target = "replica"` (without
    /// it they run on the primary). Its password is never printed.
    #[arg(long, value_name = "URL")]
    pub replica_url: Option<String>,
    /// Start this many hot standbys of the throwaway server (local or
    /// docker backend), measure their replay lag, and send the queries with
    /// `target = "replica"` to them; overrides the scenario's
    /// `[replica] count`.
    #[arg(long, value_name = "N", conflicts_with = "replica_url", value_parser = clap::value_parser!(u8).range(0..=4))]
    pub replicas: Option<u8>,
    /// Put PgBouncer (the machine's `pgbouncer`) between the workload and
    /// the server, in transaction mode (`pgbouncer:session` for session
    /// mode) with 20 server connections; overrides the scenario's
    /// `[pooler]`.
    #[arg(long, value_name = "KIND", value_parser = ["pgbouncer", "pgbouncer:transaction", "pgbouncer:session"])]
    pub pooler: Option<String>,
    /// COPY streams per table (default: half the CPUs, at least one, on a server the harness starts here; the number of CPUs on --url)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub load_streams: Option<u16>,
    /// No progress bars or event lines; the summary only.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `rehearse init`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The migration.
    #[command(flatten)]
    pub migrations: migrations::MigrationArgs,
    /// The tables.
    #[command(flatten)]
    pub tables: migrations::TablesArgs,
}

/// `rehearse check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The scenario file.
    pub scenario: PathBuf,
}

/// `rehearse generate`
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Where Postgres comes from.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Multiply every table's row count.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Write what was loaded as JSON to this file ("-" for stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// COPY streams per table (default: half the CPUs, at least one, on a server the harness starts here; the number of CPUs on --url)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub load_streams: Option<u16>,
    /// No progress bars.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `rehearse clean`
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Also remove what belongs to runs that are still going.
    #[arg(long)]
    pub all: bool,
    /// Drop the tables that killed runs created on this server (as their
    /// records in the state directory list them), and nothing else.
    #[arg(long, conflicts_with = "url_file")]
    pub url: Option<String>,
    /// The same, with the URL read from a file.
    #[arg(long, value_name = "PATH")]
    pub url_file: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = scenario::duration::parse_duration(s)?;
    if d.is_zero() || d > Duration::from_secs(1) {
        return Err("the observer's interval must be between 1ms and 1s".into());
    }
    Ok(d)
}

/// The exit code of an error: 2 when the user's input is at fault, 3 when
/// the environment is.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if cause.is::<ScenarioError>() || cause.is::<UsageError>() || cause.is::<JsonPathError>() {
            return EXIT_BAD_INPUT;
        }
        if let Some(e) = cause.downcast_ref::<ProvisionError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<LoadError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<WorkloadError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<PreflightError>() {
            return e.exit_code();
        }
    }
    EXIT_ENVIRONMENT
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rehearse: cannot start the async runtime: {e}");
            return EXIT_ENVIRONMENT;
        }
    };
    let result = runtime.block_on(async {
        let work = dispatch(cli);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        // Dropping `work` on a signal runs every Drop that releases what
        // the harness started (servers, directories, sessions).
        tokio::select! {
            r = work => Some(r),
            _ = tokio::signal::ctrl_c() => None,
            _ = terminated => None,
        }
    });
    // Detached tasks (in-flight requests) must not outlive the run.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Some(Ok(code)) => code,
        Some(Err(e)) => {
            eprintln!("rehearse: error: {e:#}");
            exit_code(&e)
        }
        None => {
            eprintln!("rehearse: interrupted; the server and everything the harness started were cleaned up");
            EXIT_INTERRUPTED
        }
    }
}

/// 0: the loader chooses (see `datagen::LoadOptions::streams`).
fn default_streams() -> usize {
    0
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Check(args) => {
            let s = scenario::load(&args.scenario, &LoadOptions::default())?;
            println!(
                "{}: ok · {} tables, {} queries, {} interference, strategies: {}",
                args.scenario.display(),
                s.tables.len(),
                s.workload.queries.len(),
                s.interference.len(),
                s.strategies.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            );
            Ok(EXIT_PASS)
        }
        Command::Run(args) => run::run(*args).await,
        Command::Compare(args) => compare::run(*args).await,
        Command::Soak(args) => soak::run(*args).await,
        Command::Plan(args) => plan::run(args),
        Command::Merge(args) => merge::run(*args).await,
        Command::Tune(args) => tune::run(*args).await,
        Command::Predict(args) => predict::run(*args).await,
        Command::Init(args) => {
            print!("{}", migrations::derived(&args.migrations, &args.tables)?);
            Ok(EXIT_PASS)
        }
        Command::Generate(args) => {
            let requested = args.server.requested()?;
            let scenario = scenario::load(&args.scenario, &LoadOptions { scale: args.scale })?;
            if !args.quiet {
                for note in &scenario.workload.notes {
                    eprintln!("rehearse: {note}");
                }
            }
            let out = args.json.as_deref().map(JsonOut::open).transpose()?;
            let opts = crate::datagen::LoadOptions {
                streams: args.load_streams.map_or_else(default_streams, usize::from),
                reuse_existing: false,
                progress: !args.quiet,
                ..Default::default()
            };
            crate::generate::generate(&scenario, &requested, &args.server.pg_images, &opts, |g| {
                for t in &g.tables {
                    println!(
                        "{}: {} rows, {:.1} MB with indexes, loaded in {:.1}s",
                        t.name,
                        t.rows,
                        t.total_bytes as f64 / 1e6,
                        t.load_seconds
                    );
                }
                println!("{}", g.connect);
                if let Some(out) = out {
                    let json = serde_json::to_string_pretty(g).expect("serializes");
                    out.write(&json).context("writing the JSON")?;
                }
                Ok(())
            })
            .await?;
            Ok(EXIT_PASS)
        }
        Command::Clean(args) => {
            let url = match (&args.url, &args.url_file) {
                (Some(u), _) => Some(u.clone()),
                (None, Some(p)) => Some(url_from_file(p)?),
                (None, None) => None,
            };
            let done = match url {
                Some(url) => {
                    let server = postgres::UrlServer::open(&url).await?;
                    postgres::clean_url(postgres::Server::config(&server), args.all).await
                }
                None => postgres::clean(args.all, false).await,
            };
            for c in &done.containers {
                println!("removed container {c}");
            }
            for d in &done.dirs {
                println!("removed directory {}", d.display());
            }
            for t in &done.tables {
                println!("dropped table {t}");
            }
            for k in &done.kept {
                println!("kept {k}");
            }
            for p in &done.pending {
                println!("{p}");
            }
            if done.containers.is_empty() && done.dirs.is_empty() && done.tables.is_empty() {
                println!("nothing to clean here");
            }
            for p in &done.problems {
                eprintln!("rehearse: {p}");
            }
            Ok(if done.problems.is_empty() { EXIT_PASS } else { EXIT_ENVIRONMENT })
        }
    }
}
