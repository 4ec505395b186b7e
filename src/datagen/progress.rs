//! The load's progress on stderr. On a terminal: one indicatif bar per
//! table while its rows are copied (rows, MB/s, ETA), then what it builds
//! (its indexes, then `VACUUM (ANALYZE)`). When stderr is not a terminal
//! (a CI log): plain lines instead, one every [`PLAIN_EVERY`] seconds per
//! table while rows are copied and one each time a table's phase changes,
//! as the live view prints its line. Off with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::live::PLAIN_EVERY;
use crate::units::thousands;

/// Where the load's progress goes.
pub struct Progress {
    bars: Option<MultiProgress>,
    plain: bool,
}

impl Progress {
    /// Bars on a terminal, plain lines elsewhere; nothing unless `shown`.
    pub fn new(shown: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bars = (shown && terminal).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { bars, plain: shown && !terminal }
    }

    /// The progress of one table of `rows` rows.
    pub fn table(&self, name: &str, rows: u64) -> TableProgress {
        let bytes = Arc::new(AtomicU64::new(0));
        let bar = self.bars.as_ref().map(|m| m.add(ProgressBar::new(rows).with_style(style(bytes.clone()))));
        if let Some(b) = &bar {
            b.set_prefix(name.to_string());
        }
        TableProgress(Arc::new(Inner {
            name: name.to_string(),
            rows,
            bar,
            plain: self.plain,
            bytes,
            done: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
        }))
    }
}

/// The bar's look: rows, MB/s (of COPY data sent) and ETA.
fn style(bytes: Arc<AtomicU64>) -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>14} [{bar:24}] {human_pos}/{human_len} rows {mbps:>9} ETA {eta:>4} {msg}")
        .expect("valid template")
        .with_key("mbps", move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let secs = state.elapsed().as_secs_f64().max(1e-3);
            let _ = write!(w, "{:.0} MB/s", bytes.load(Ordering::Relaxed) as f64 / 1e6 / secs);
        })
        .progress_chars("=> ")
}

struct Inner {
    name: String,
    rows: u64,
    bar: Option<ProgressBar>,
    plain: bool,
    bytes: Arc<AtomicU64>,
    done: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

/// One table's progress; clones share it (one per COPY stream).
#[derive(Clone)]
pub struct TableProgress(Arc<Inner>);

impl TableProgress {
    /// `rows` more rows, `bytes` of COPY data, were sent.
    pub fn copied(&self, rows: u64, bytes: u64) {
        let p = &self.0;
        p.bytes.fetch_add(bytes, Ordering::Relaxed);
        let done = p.done.fetch_add(rows, Ordering::Relaxed) + rows;
        if let Some(bar) = &p.bar {
            bar.inc(rows);
        } else if p.plain {
            let mut last = p.last_line.lock().expect("not poisoned");
            if last.elapsed() >= Duration::from_secs(PLAIN_EVERY) {
                *last = Instant::now();
                eprintln!("{}", self.line(done));
            }
        }
    }

    /// The plain line while rows are copied.
    fn line(&self, done: u64) -> String {
        let p = &self.0;
        let secs = p.started.elapsed().as_secs_f64().max(1e-3);
        let eta = if done == 0 { f64::NAN } else { (p.rows.saturating_sub(done)) as f64 * secs / done as f64 };
        format!(
            "load: {}: {}/{} rows, {:.0} MB/s, ETA {:.0}s",
            p.name,
            thousands(done),
            thousands(p.rows),
            p.bytes.load(Ordering::Relaxed) as f64 / 1e6 / secs,
            eta
        )
    }

    /// The table moved on to `what` (building its indexes, say).
    pub fn phase(&self, what: &str) {
        let p = &self.0;
        match &p.bar {
            Some(bar) => bar.set_message(what.to_string()),
            None if p.plain => eprintln!("load: {}: {what} ({:.1}s)", p.name, p.started.elapsed().as_secs_f64()),
            None => {}
        }
    }

    /// The table is loaded.
    pub fn finish(&self) {
        let p = &self.0;
        let what = format!("loaded in {:.1}s", p.started.elapsed().as_secs_f64());
        match &p.bar {
            Some(bar) => bar.finish_with_message(what),
            None if p.plain => eprintln!("load: {}: {what}", p.name),
            None => {}
        }
    }
}
