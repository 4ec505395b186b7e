//! The soak's summary for people (terminal, Markdown) and for CI test
//! reporters (one JUnit testcase per scenario × strategy, its failure
//! naming the runs and servers that failed).

use std::fmt::Write;

use quick_xml::escape::escape;

use super::markdown::{cell, fit};
use super::regression::Figure;
use super::soak::{Planned, SoakEntry, SoakSummary, range, run_figure, worst_p99};
use super::terminal::shorten;

/// The first line of the soak's Markdown, for a bot to find it by.
pub const SOAK_MARKER: &str = "<!-- rehearse-soak -->";

/// What the soak covered, in one line.
fn headline(s: &SoakSummary) -> String {
    let state = if !s.complete {
        match &s.stopped {
            Some(why) => format!("stopped early ({why})"),
            None => "still going".into(),
        }
    } else if s.passed() {
        "PASS".into()
    } else {
        "FAIL".into()
    };
    format!(
        "soak: {state} · {} of {} runs passed · {} full {} · {} of {} asked",
        s.passes,
        s.runs,
        s.cycles,
        if s.cycles == 1 { "cycle" } else { "cycles" },
        minutes(s.elapsed_s),
        minutes(s.duration_s)
    )
}

fn minutes(s: f64) -> String {
    if s >= 120.0 { format!("{:.0} min", s / 60.0) } else { format!("{s:.0}s") }
}

/// One entry's figures that a reader compares across runs.
fn row_cells(e: &SoakEntry) -> [String; 4] {
    let show = |f: Option<&super::soak::FigureSpread>| f.map_or("-".to_string(), range);
    let p99 = worst_p99(e).map_or("-".to_string(), |(f, q)| format!("{} ({q})", range(f)));
    [
        show(run_figure(e, Figure::MigrationMs)),
        show(run_figure(e, Figure::WorkloadLockWaitMs)),
        p99,
        show(run_figure(e, Figure::PoolFullS)),
    ]
}

fn not_run(s: &SoakSummary) -> Vec<&Planned> {
    s.planned.iter().filter(|p| s.of(&p.file, p.strategy.as_deref()).next().is_none()).collect()
}

/// The soak for the terminal.
pub fn render_soak(s: &SoakSummary) -> String {
    let mut w = format!("{}\n\n", headline(s));
    let _ = writeln!(
        w,
        "  {:<44} {:<28} {:>9}  {:<17} {:<17} {:<28} pool full",
        "scenario · strategy", "server", "passed", "migration", "longest lock wait", "worst p99 during"
    );
    for e in &s.entries {
        let [migration, wait, p99, pool] = row_cells(e);
        let mark = if e.passed() { "✓" } else { "✗" };
        let _ = writeln!(
            w,
            "{mark} {:<44} {:<28} {:>9}  {migration:<17} {wait:<17} {p99:<28} {pool}",
            shorten(&e.label(), 44),
            shorten(&e.server, 28),
            format!("{}/{}", e.passes, e.runs)
        );
    }
    for p in not_run(s) {
        let _ = writeln!(w, "- {} · {}: not run", p.scenario, p.strategy.as_deref().unwrap_or("load only"));
    }
    for e in s.entries.iter().filter(|e| !e.failures.is_empty()) {
        let _ = writeln!(w, "\n{} on {}: {} of {} runs failed", e.label(), e.server, e.runs - e.passes, e.runs);
        for f in &e.failures {
            let _ = writeln!(w, "  run {} (at {}): {}", f.run, minutes(f.at_s), f.messages.join("; "));
        }
        if e.failures_left_out > 0 {
            let _ = writeln!(w, "  … and {} more failed runs", e.failures_left_out);
        }
    }
    w
}

/// The soak as Markdown: the marker, the headline, a table of entries,
/// and each entry's figures in `<details>`; under 60,000 characters.
pub fn soak_markdown(s: &SoakSummary) -> String {
    let mut head = format!("{SOAK_MARKER}\n### rehearse {}\n\n", headline(s));
    head.push_str(
        "| | scenario · strategy | server | passed | migration | longest lock wait | worst p99 during | pool full |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for e in &s.entries {
        let [migration, wait, p99, pool] = row_cells(e);
        let mark = if e.passed() { "✅" } else { "❌" };
        let _ = writeln!(
            head,
            "| {mark} | {} | {} | {} of {} | {migration} | {wait} | {} | {pool} |",
            cell(&e.label()),
            cell(&e.server),
            e.passes,
            e.runs,
            cell(&p99)
        );
    }
    for p in not_run(s) {
        let label = format!("{} · {}", p.scenario, p.strategy.as_deref().unwrap_or("load only"));
        let _ = writeln!(head, "| ⚪ | {} | | not run | | | | |", cell(&label));
    }
    head.push('\n');
    let details = s.entries.iter().map(|e| (format!("{} on {}", e.label(), e.server), detail(e))).collect();
    fit(head, details)
}

/// Every figure of an entry with its spread, and its failed runs.
fn detail(e: &SoakEntry) -> String {
    let mut w = format!("{} runs, {} passed, {} cut short by a fault\n", e.runs, e.passes, e.faults);
    let _ = writeln!(w, "{:<58} {:>5} {:>10} {:>10} {:>10} {:>10}", "figure", "runs", "min", "mean", "max", "stddev");
    for f in &e.figures {
        let name = if f.subject == "run" {
            f.figure.describe().to_string()
        } else {
            format!("{}: {}", f.subject, f.figure.describe())
        };
        let st = f.stats;
        let _ = writeln!(
            w,
            "{:<58} {:>5} {:>10} {:>10} {:>10} {:>10}",
            shorten(&name, 58),
            st.n,
            f.figure.show(st.min),
            f.figure.show(st.mean),
            f.figure.show(st.max),
            f.figure.show(st.stddev)
        );
    }
    for f in &e.failures {
        let _ = writeln!(w, "run {} failed: {}", f.run, f.messages.join("; "));
    }
    w
}

/// The soak as JUnit XML: one testsuite, one testcase per scenario ×
/// strategy (over every server); it fails when any of its runs did, and is
/// skipped when it never ran.
pub fn soak_junit(s: &SoakSummary) -> String {
    let mut cases = String::new();
    let (mut failures, mut skipped) = (0, 0);
    for p in &s.planned {
        let entries: Vec<&SoakEntry> = s.of(&p.file, p.strategy.as_deref()).collect();
        let time: f64 = entries.iter().map(|e| e.wall_s.mean * e.wall_s.n as f64).sum();
        let name = p.strategy.as_deref().unwrap_or("load only");
        let _ = write!(
            cases,
            "    <testcase name=\"{}\" classname=\"rehearse.soak.{}\" file=\"{}\" time=\"{time:.3}\"",
            escape(name),
            escape(p.scenario.as_str()),
            escape(p.file.as_str())
        );
        if entries.is_empty() {
            skipped += 1;
            let _ = writeln!(cases, ">\n      <skipped message=\"not run: the soak ended first\"/>\n    </testcase>");
            continue;
        }
        let runs: u64 = entries.iter().map(|e| e.runs).sum();
        let failed: u64 = entries.iter().map(|e| e.runs - e.passes).sum();
        if failed == 0 {
            let _ = writeln!(cases, "/>");
            continue;
        }
        failures += 1;
        let mut body = String::new();
        for e in entries.iter().filter(|e| e.passes < e.runs) {
            let _ = writeln!(body, "on {}: {} of {} runs failed", e.server, e.runs - e.passes, e.runs);
            for f in &e.failures {
                let _ = writeln!(body, "  run {}: {}", f.run, f.messages.join("; "));
            }
        }
        let _ = writeln!(
            cases,
            ">\n      <failure message=\"{failed} of {runs} runs failed\" type=\"soak\">{}</failure>\n    </testcase>",
            escape(body.as_str())
        );
    }
    let tests = s.planned.len();
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(o, "<testsuites name=\"rehearse soak\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\">");
    let _ = writeln!(
        o,
        "  <testsuite name=\"rehearse soak\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">",
        s.elapsed_s
    );
    o.push_str(&cases);
    let _ =
        writeln!(o, "    <system-out>{}</system-out>\n  </testsuite>\n</testsuites>", escape(render_soak(s).as_str()));
    o
}
