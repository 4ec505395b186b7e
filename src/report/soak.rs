//! The summary of `rehearse soak`: per scenario × strategy × server, how
//! many runs, how many passed, and the spread of each figure over them.
//! It is folded run by run (each report is dropped once counted), so its
//! size depends on the scenarios, never on how long the soak lasts.

use serde::Serialize;

use super::Report;
use super::markdown::server;
use super::regression::{Figure, figures};

/// How many failed runs an entry keeps, with their violations; later ones
/// are counted only.
const FAILURES_KEPT: usize = 5;
/// How many violations a kept failure keeps.
const MESSAGES_KEPT: usize = 5;

/// A figure over the runs, folded one value at a time: count, least,
/// greatest, mean and standard deviation (Welford's method).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Stats {
    /// How many runs had the figure.
    pub n: u64,
    /// The least value.
    pub min: f64,
    /// The greatest value.
    pub max: f64,
    /// The mean.
    pub mean: f64,
    /// The standard deviation over the runs (0 for one run).
    pub stddev: f64,
    #[serde(skip)]
    m2: f64,
}

impl Stats {
    /// Folds one value in.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.n == 0 {
            (self.min, self.max) = (x, x);
        }
        self.n += 1;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
        self.stddev = if self.n > 1 { (self.m2 / (self.n - 1) as f64).sqrt() } else { 0.0 };
    }
}

/// One figure of an entry over its runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FigureSpread {
    /// Which figure.
    pub figure: Figure,
    /// What it is of: `run`, or a query's name.
    pub subject: String,
    /// Its spread.
    #[serde(flatten)]
    pub stats: Stats,
}

/// A run that did not pass.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SoakFailure {
    /// Its number in the soak, from 1.
    pub run: u64,
    /// When it started, seconds from the start of the soak.
    pub at_s: f64,
    /// What failed: the verdict's violations (the first few), or the
    /// server's fault.
    pub messages: Vec<String>,
}

/// One scenario × strategy × server over the soak.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SoakEntry {
    /// The scenario's file.
    pub file: String,
    /// The scenario's name.
    pub scenario: String,
    /// The strategy; `null` for a load-only scenario.
    pub strategy: Option<String>,
    /// The server: its version and image or backend.
    pub server: String,
    /// Runs done.
    pub runs: u64,
    /// Runs that passed every threshold.
    pub passes: u64,
    /// Runs a fault of the server cut short.
    pub faults: u64,
    /// Each run's wall time, in seconds (provisioning and load included).
    pub wall_s: Stats,
    /// Each figure's spread over the runs.
    pub figures: Vec<FigureSpread>,
    /// The first failed runs, with what failed.
    pub failures: Vec<SoakFailure>,
    /// Failed runs beyond those kept.
    pub failures_left_out: u64,
}

impl SoakEntry {
    /// Whether every run passed (and there was one).
    pub fn passed(&self) -> bool {
        self.runs > 0 && self.passes == self.runs
    }

    /// `add-column-default · naive`.
    pub fn label(&self) -> String {
        format!("{} · {}", self.scenario, self.strategy.as_deref().unwrap_or("load only"))
    }
}

/// A scenario × strategy the soak cycles through.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Planned {
    /// The scenario's file.
    pub file: String,
    /// The scenario's name.
    pub scenario: String,
    /// The strategy; `null` for a load-only scenario.
    pub strategy: Option<String>,
}

/// The whole soak.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SoakSummary {
    /// The scenario files, in the order they are cycled.
    pub files: Vec<String>,
    /// The `--duration` asked for, in seconds.
    pub duration_s: f64,
    /// Wall time so far, in seconds.
    pub elapsed_s: f64,
    /// Whether the soak ended as asked: every scenario × strategy ran at
    /// least once and the duration is up. `false` in the files written
    /// after each run while it goes on (and left so by an interrupted
    /// soak, or one an environment failure stopped).
    pub complete: bool,
    /// Cycles through every scenario × strategy completed.
    pub cycles: u64,
    /// Runs done.
    pub runs: u64,
    /// Runs that passed.
    pub passes: u64,
    /// What stopped the soak before its end, when something did.
    pub stopped: Option<String>,
    /// Every scenario × strategy, in the order cycled.
    pub planned: Vec<Planned>,
    /// Per scenario × strategy × server, in the order first run.
    pub entries: Vec<SoakEntry>,
}

impl SoakSummary {
    /// Every run passed, every entry ran, and the soak completed: nothing
    /// else is a pass.
    pub fn passed(&self) -> bool {
        let all_ran = self.planned.iter().all(|p| self.of(&p.file, p.strategy.as_deref()).next().is_some());
        self.complete && self.runs > 0 && all_ran && self.entries.iter().all(SoakEntry::passed)
    }

    /// Folds one run's report in, started `at_s` into the soak and taking
    /// `wall_s`; `file` is the scenario's file.
    pub fn add(&mut self, file: &str, r: &Report, at_s: f64, wall_s: f64) {
        self.runs += 1;
        let run = self.runs;
        let pass = r.verdict.pass && r.fault.is_none();
        self.passes += u64::from(pass);
        let server = server(r);
        let found = self.entries.iter().position(|e| e.file == file && e.strategy == r.strategy && e.server == server);
        let i = found.unwrap_or_else(|| {
            self.entries.push(SoakEntry {
                file: file.to_string(),
                scenario: r.scenario.clone(),
                strategy: r.strategy.clone(),
                server,
                runs: 0,
                passes: 0,
                faults: 0,
                wall_s: Stats::default(),
                figures: Vec::new(),
                failures: Vec::new(),
                failures_left_out: 0,
            });
            self.entries.len() - 1
        });
        let e = &mut self.entries[i];
        e.runs += 1;
        e.passes += u64::from(pass);
        e.faults += u64::from(r.fault.is_some());
        e.wall_s.add(wall_s);
        for (figure, subject, x) in figures(r) {
            let at = e.figures.iter().position(|f| f.figure == figure && f.subject == subject);
            let at = at.unwrap_or_else(|| {
                e.figures.push(FigureSpread { figure, subject, stats: Stats::default() });
                e.figures.len() - 1
            });
            e.figures[at].stats.add(x);
        }
        if !pass {
            if e.failures.len() < FAILURES_KEPT {
                e.failures.push(SoakFailure { run, at_s, messages: messages(r) });
            } else {
                e.failures_left_out += 1;
            }
        }
    }

    /// The entries of a scenario file and strategy, over every server.
    pub fn of<'a>(&'a self, file: &'a str, strategy: Option<&'a str>) -> impl Iterator<Item = &'a SoakEntry> {
        self.entries.iter().filter(move |e| e.file == file && e.strategy.as_deref() == strategy)
    }

    /// The summary as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&serde_json::json!({ "soak": self })).expect("the soak serializes")
    }
}

/// What failed in a run: its fault, then its violations, the first few.
fn messages(r: &Report) -> Vec<String> {
    let fault = r.fault.iter().map(super::FaultReport::sentence);
    let violations = r.verdict.violations.iter().map(|v| v.message.clone());
    let mut all: Vec<String> = fault.chain(violations).take(MESSAGES_KEPT).collect();
    if all.is_empty() {
        all.push("the run did not pass".into());
    }
    all
}

/// The run's figure that most often decides a review: the worst p99 during
/// the migration, as `max (query)`.
pub(super) fn worst_p99(e: &SoakEntry) -> Option<(&FigureSpread, String)> {
    let p99 = e.figures.iter().filter(|f| f.figure == Figure::P99DuringMs);
    let worst = p99.max_by(|a, b| a.stats.max.total_cmp(&b.stats.max))?;
    Some((worst, worst.subject.clone()))
}

/// `min–max` of a figure, in its unit.
pub(super) fn range(f: &FigureSpread) -> String {
    if f.stats.n == 1 || f.stats.min == f.stats.max {
        f.figure.show(f.stats.min)
    } else {
        format!("{}–{}", f.figure.show(f.stats.min), f.figure.show(f.stats.max))
    }
}

/// The figure `figure` of `run` in an entry.
pub(super) fn run_figure(e: &SoakEntry, figure: Figure) -> Option<&FigureSpread> {
    e.figures.iter().find(|f| f.figure == figure && f.subject == "run")
}
