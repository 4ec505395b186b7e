//! The live view: while the load runs, one line updated every second with
//! the phase and elapsed time, requests completed per second (after a
//! stall the backlog completes at once, so this can exceed the offered
//! rate), p99 over the last second, failures, sessions waiting on locks
//! (`-` when the observer has no fresh sample: a stale figure is not
//! shown) and connections of the pool in use. On a terminal it is an
//! indicatif line redrawn in place; when stderr is not a terminal (CI
//! logs) the same line is printed every [`PLAIN_EVERY`] seconds instead,
//! so a long run does not flood the log.
//!
//! Event lines of the run go through [`println`], so they print above the
//! live line instead of through it.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::clock::{Phase, PhaseClock};
use crate::workload::{LiveSample, Workload};

/// Seconds between lines when stderr is not a terminal.
pub const PLAIN_EVERY: u64 = 5;

/// The live line while one is shown.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Prints an event line on stderr, above the live line if one is shown.
pub fn println(line: &str) {
    match BAR.lock().expect("not poisoned").as_ref() {
        Some(bar) => bar.println(line),
        None => eprintln!("{line}"),
    }
}

/// What the live view reads.
pub struct Sources {
    /// The running workload: completions and the pools' gauges.
    pub workload: Arc<Workload>,
    /// Time zero and the phases.
    pub clock: Arc<PhaseClock>,
    /// Sessions waiting on a lock in the observer's latest sample; `None`
    /// when that sample is stale.
    pub waiting: Box<dyn Fn() -> Option<usize> + Send + Sync>,
    /// A load-only run has no phases to name.
    pub load_only: bool,
}

/// A running live view; [`LiveView::finish`] removes its line.
pub struct LiveView {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl LiveView {
    /// Starts updating every second.
    pub fn start(src: Sources) -> LiveView {
        let terminal = std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            *BAR.lock().expect("not poisoned") = Some(bar.clone());
            bar
        });
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval_at((Instant::now() + Duration::from_secs(1)).into(), Duration::from_secs(1));
            let (mut failures, mut last) = (0u64, Instant::now());
            let mut plain = LiveSample::default();
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = s.cancelled() => break,
                }
                let now = Instant::now();
                let mut sample = LiveSample::default();
                src.workload.drain_live(&mut sample);
                failures += sample.errors;
                let elapsed = now.saturating_duration_since(src.clock.start()).as_secs();
                match &bar {
                    Some(bar) => {
                        let window = now.saturating_duration_since(last);
                        bar.set_message(line(&src, now, &sample, window, failures));
                        bar.tick();
                    }
                    None => {
                        merge(&mut plain, &sample);
                        if elapsed % PLAIN_EVERY == 0 {
                            let window = now.saturating_duration_since(last);
                            eprintln!("{}", line(&src, now, &plain, window, failures));
                            plain = LiveSample::default();
                            last = now;
                        }
                        continue;
                    }
                }
                last = now;
            }
        });
        LiveView { stop, task }
    }

    /// Stops updating and removes the line.
    pub async fn finish(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
        if let Some(bar) = BAR.lock().expect("not poisoned").take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn merge(into: &mut LiveSample, from: &LiveSample) {
    let _ = into.ok.add(&from.ok);
    into.count += from.count;
    into.errors += from.errors;
}

/// `[during 12s] 1,234 completed/s · p99 3.1ms (last 1s) · failures 0
/// (total 3) · waiting on locks 2 · pool 7/50`
fn line(src: &Sources, now: Instant, s: &LiveSample, window: Duration, failures: u64) -> String {
    let phase = match (src.load_only, src.clock.phase_of(now)) {
        (true, _) => "load",
        (false, Phase::Baseline) => "baseline",
        (false, Phase::During) => "during",
        (false, Phase::After) => "after",
        (false, Phase::Rollback) => "rollback",
        (false, Phase::AfterRollback) => "after rollback",
    };
    let elapsed = now.saturating_duration_since(src.clock.start()).as_secs_f64();
    let secs = window.as_secs_f64().max(1e-3);
    let p99 = if s.ok.is_empty() {
        "-".to_string()
    } else {
        crate::scenario::duration::human(Duration::from_micros(s.ok.value_at_quantile(0.99)))
    };
    let (in_use, size) = src.workload.pool_gauge();
    let waiting = (src.waiting)().map_or_else(|| "-".to_string(), |n| n.to_string());
    format!(
        "[{phase} {elapsed:.0}s] {:.0} completed/s · p99 {p99} (last {:.0}s) · failures {} (total {failures}) · waiting on locks {waiting} · pool {in_use}/{size}",
        s.count as f64 / secs,
        secs,
        s.errors,
    )
}

/// The event line that opens the load.
pub(crate) fn load_line(scenario: &crate::scenario::Scenario, strategy: Option<&crate::scenario::Strategy>) -> String {
    let w = &scenario.workload;
    let rate: f64 = w.queries.iter().filter_map(|q| q.rate()).sum();
    let clients: usize = w
        .queries
        .iter()
        .map(|q| match q.load {
            crate::scenario::Load::Closed { clients, .. } => clients,
            crate::scenario::Load::Open { .. } => 0,
        })
        .sum();
    let mut shape = format!("{rate:.0} requests/s open loop");
    if clients > 0 {
        shape = format!("{shape} and {clients} closed-loop clients");
    }
    let what = match strategy {
        Some(s) => {
            format!("migration `{}` at {}", s.name, crate::scenario::duration::human(scenario.timeline.migrate_at))
        }
        None => format!(
            "load only, for {}",
            crate::scenario::duration::human(scenario.timeline.duration.unwrap_or_default())
        ),
    };
    format!("load started: {} queries, {shape} through a pool of {}; {what}", w.queries.len(), w.pool_size)
}
