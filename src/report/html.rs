//! The report as one self-contained HTML page: no script, no style sheet
//! or font to fetch, the charts inline as SVG. Per report: the verdict and
//! what failed, then latency per query, failures, the lock queue, the
//! pool, replica lag and WAL over time, with the migration's steps shaded;
//! then the terminal summary.

use std::fmt::Write;

use quick_xml::escape::escape;

use super::charts::{Chart, Line};
use super::terminal::dur;
use super::{Report, markdown};

/// Width and height of a chart, in pixels.
const SIZE: (u32, u32) = (960, 300);

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}\
.pass{color:#1a7f37}.fail{color:#cf222e}figure{margin:1.2em 0}figcaption{font-size:.85em;color:#555}\
pre{background:#f6f8fa;padding:1em;overflow-x:auto;font-size:.8em}";

/// The page of `reports` (one, or several side by side).
pub fn html(reports: &[Report]) -> String {
    let mut o = String::new();
    let title = match reports {
        [one] => format!("rehearse · {}", markdown::label(one)),
        many => format!("rehearse · {} rehearsals", many.len()),
    };
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(title.as_str()),
        escape(title.as_str())
    );
    for r in reports {
        section(&mut o, r);
    }
    o.push_str("</body>\n</html>\n");
    o
}

fn section(o: &mut String, r: &Report) {
    let (class, verdict) = if r.verdict.pass { ("pass", "PASS") } else { ("fail", "FAIL") };
    let _ = writeln!(
        o,
        "<h2>{} · {} · <span class=\"{class}\">{verdict}</span></h2>",
        escape(markdown::label(r).as_str()),
        escape(markdown::server(r).as_str())
    );
    if !r.verdict.violations.is_empty() {
        o.push_str("<ul>\n");
        for v in &r.verdict.violations {
            let _ = writeln!(o, "<li><code>{}</code>: {}</li>", v.threshold, escape(v.message.as_str()));
        }
        o.push_str("</ul>\n");
    }
    for (chart, caption) in charts(r) {
        let svg =
            chart.svg(SIZE).unwrap_or_else(|e| format!("<p>This chart could not be drawn: {}</p>", escape(e.as_str())));
        let _ = writeln!(o, "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>", escape(caption.as_str()));
    }
    let _ = writeln!(o, "<h2>Summary</h2>\n<pre>{}</pre>", escape(super::render(r).as_str()));
}

/// The migration's (and its rollback's) steps, as shaded spans.
fn bands(r: &Report) -> Vec<(f64, f64)> {
    let steps = r.migration.iter().chain(&r.rollback).flat_map(|m| &m.steps);
    steps.map(|s| (s.started_s, s.held_until_s.unwrap_or(s.ended_s).max(s.ended_s))).collect()
}

fn ms_label(v: f64) -> String {
    dur(v)
}

fn count_label(v: f64) -> String {
    if v.fract().abs() < 1e-9 { format!("{v:.0}") } else { format!("{v:.1}") }
}

fn mib_label(v: f64) -> String {
    format!("{v:.1} MiB/s")
}

/// Each chart with its caption (what it measured, over which window).
fn charts(r: &Report) -> Vec<(Chart, String)> {
    let end_s = r.timeline.end_s;
    let bands = bands(r);
    let chart = |title: String, y_desc: &str, log: bool, label: fn(f64) -> String, lines: Vec<Line>| Chart {
        title,
        y_desc: y_desc.to_string(),
        log,
        label,
        end_s,
        lines,
        bands: bands.clone(),
    };
    let mut out = Vec::new();
    let at = |second: u64| second as f64 + 0.5;
    for (name, series) in &r.series.0 {
        let p = |f: fn(&crate::workload::SeriesPoint) -> Option<f64>| Line {
            name: String::new(),
            points: series.iter().map(|s| (at(s.second), f(s))).collect(),
        };
        let lines =
            vec![Line { name: "p50".into(), ..p(|s| s.p50_ms) }, Line { name: "p99".into(), ..p(|s| s.p99_ms) }];
        out.push((
            chart(format!("{name}: latency"), "latency (log scale)", true, ms_label, lines),
            format!(
                "{name}: p50 and p99 of the successful requests due in each second, measured from when each was due \
                 (open loop); a gap is a second in which none succeeded. Shaded: the migration's steps."
            ),
        ));
    }
    let errors: Vec<Line> = r
        .series
        .0
        .iter()
        .map(|(name, series)| Line {
            name: name.clone(),
            points: series.iter().map(|s| (at(s.second), Some(s.errors as f64))).collect(),
        })
        .collect();
    out.push((
        chart("Failed requests per second".into(), "requests failed", false, count_label, errors),
        "Requests that failed (timed out in the pool, cancelled, or refused by the server), by the second they were due."
            .into(),
    ));
    let waiting = Line {
        name: "sessions waiting".into(),
        points: r.locks.waiting_series.iter().map(|w| (at(w.second), Some(w.max_waiting as f64))).collect(),
    };
    out.push((
        chart("Sessions waiting on locks".into(), "sessions", false, count_label, vec![waiting]),
        format!(
            "The most sessions waiting on a lock at once in each second (pg_locks, sampled every {} ms; {} samples).",
            r.locks.interval_ms.round(),
            r.locks.samples
        ),
    ));
    out.push(pool_chart(r, &chart));
    if let Some(rep) = &r.replication {
        let lines = rep
            .replicas
            .iter()
            .map(|l| Line {
                name: l.name.clone(),
                points: l.series.iter().map(|p| (at(p.second), Some(p.max_lag_ms))).collect(),
            })
            .collect();
        out.push((
            chart("Replica replay lag".into(), "lag", false, ms_label, lines),
            format!(
                "The most each standby lagged in each second: the age of what it had replayed (sampled every {} ms).",
                rep.interval_ms.round()
            ),
        ));
    }
    if let Some(wal) = &r.wal {
        let line = Line {
            name: "WAL written".into(),
            points: wal.series.iter().map(|p| (at(p.second), Some(p.bytes as f64 / (1024.0 * 1024.0)))).collect(),
        };
        out.push((
            chart("WAL written per second".into(), "MiB/s", false, mib_label, vec![line]),
            format!(
                "WAL the server wrote in each second, the load's included (pg_current_wal_lsn, sampled every {} ms).",
                wal.interval_ms.round()
            ),
        ));
    }
    out
}

type MakeChart<'a> = dyn Fn(String, &str, bool, fn(f64) -> String, Vec<Line>) -> Chart + 'a;

fn pool_chart(r: &Report, chart: &MakeChart<'_>) -> (Chart, String) {
    let p = &r.pool;
    let at = |second: u64| second as f64 + 0.5;
    let lines = vec![
        Line {
            name: "connections checked out".into(),
            points: p.series.iter().map(|s| (at(s.second), Some(s.max_in_use as f64))).collect(),
        },
        Line {
            name: "requests queued for one".into(),
            points: p.series.iter().map(|s| (at(s.second), Some(s.max_queued as f64))).collect(),
        },
        Line {
            name: format!("pool size ({})", p.size),
            points: vec![(0.0, Some(p.size as f64)), (r.timeline.end_s, Some(p.size as f64))],
        },
    ];
    let caption = format!(
        "The application's pool: the most connections checked out and requests queued in each second (sampled every \
         100 ms); full for {:.1} s in all, {} requests gave up waiting.",
        p.full_seconds, p.timeouts
    );
    (chart("Application pool".into(), "connections, requests", false, count_label, lines), caption)
}
