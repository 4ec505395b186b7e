//! The report as Markdown, for a pull-request comment or a CI job's
//! summary: a stable hidden marker first (a bot finds its comment by it and
//! updates it in place), the verdict, the steps, the queries and the lock
//! queue's headline; the whole terminal summary in `<details>`. It stays
//! under [`LIMIT`] characters whatever the report holds, and says what it
//! left out.

use std::fmt::Write;

use super::Report;
use super::terminal::{count, dur, opt_dur, shorten};

/// The first line of every comment: the marker a bot updates it by.
pub const MARKER: &str = "<!-- rehearse-report -->";

/// The most characters the Markdown takes (GitHub's comments stop at
/// 65,536).
pub const LIMIT: usize = 60_000;

/// The Markdown of one report.
pub fn markdown(r: &Report) -> String {
    markdown_many(std::slice::from_ref(r))
}

/// The Markdown of several reports of one rehearsal (several servers, or
/// strategies compared): one table of them all, then each in detail.
pub fn markdown_many(reports: &[Report]) -> String {
    let mut head = format!("{MARKER}\n");
    let mut details = Vec::new();
    match reports {
        [one] => {
            single(&mut head, one);
            details.push(("Full summary".to_string(), super::render(one)));
        }
        many => {
            side_by_side(&mut head, many);
            for r in many {
                details.push((format!("{} · {}", label(r), server(r)), super::render(r)));
            }
        }
    }
    fit(head, details)
}

/// `✅ PASS` or `❌ FAIL`.
fn verdict(r: &Report) -> &'static str {
    if r.verdict.pass { "✅ PASS" } else { "❌ FAIL" }
}

pub(super) fn label(r: &Report) -> String {
    match &r.strategy {
        Some(s) => format!("{} · strategy {s}", r.scenario),
        None => format!("{} · load only", r.scenario),
    }
}

/// `PostgreSQL 15.18 (local)`.
pub(super) fn server(r: &Report) -> String {
    let version: Vec<&str> = r.postgres.version.split_whitespace().take(2).collect();
    let at = r.postgres.image.clone().unwrap_or_else(|| r.postgres.backend.to_string());
    format!("{} ({at})", version.join(" "))
}

/// Text fit for a table cell: one line, no pipes.
pub(super) fn cell(s: &str) -> String {
    shorten(s, 120).replace('|', "\\|")
}

fn single(w: &mut String, r: &Report) {
    let _ = writeln!(w, "### rehearse · {}: {}\n", label(r), verdict(r));
    let _ = writeln!(w, "{} · seed {} · scale {}\n", server(r), r.seed, r.scale);
    if let Some(f) = &r.fault {
        let _ = writeln!(w, "> **Fault:** {}\n", cell(&f.sentence()));
    }
    for v in r.verdict.violations.iter().take(10) {
        let _ = writeln!(w, "- ❌ `{}`: {}", v.threshold, cell(&v.message));
    }
    if r.verdict.violations.len() > 10 {
        let _ = writeln!(w, "- … and {} more (below)", r.verdict.violations.len() - 10);
    }
    if !r.verdict.violations.is_empty() {
        let _ = writeln!(w);
    }
    steps(w, r);
    queries(w, r);
    lock_queue(w, r);
}

fn steps(w: &mut String, r: &Report) {
    let Some(m) = &r.migration else { return };
    let _ = writeln!(
        w,
        "**Migration** {} in {}, {} of it waiting for locks\n",
        m.outcome,
        dur(m.total_ms),
        dur(m.lock_wait_ms)
    );
    let _ = writeln!(w, "| # | step | locks | lock wait | duration | result |\n|---|---|---|---|---|---|");
    for s in &m.steps {
        let what = s.name.clone().unwrap_or_else(|| s.sql.clone());
        // A step of a migration file is named after its place already.
        let at = match (&s.file, s.line) {
            (Some(f), Some(l)) if !what.contains(&format!("{f}:{l}")) => format!(" ({})", cell(&format!("{f}:{l}"))),
            _ => String::new(),
        };
        let locks: Vec<String> = s.locks.iter().map(|l| format!("{} on {}", l.mode, l.relation)).collect();
        let result = match &s.error {
            Some(e) => format!("❌ {}", cell(&e.to_string())),
            None => "ok".to_string(),
        };
        let _ = writeln!(
            w,
            "| {} | `{}`{} | {} | {} | {} | {result} |",
            s.index,
            cell(&what).replace('`', "'"),
            at,
            cell(&locks.join(", ")),
            dur(s.lock_wait_ms),
            dur(s.duration_ms)
        );
    }
    let _ = writeln!(w);
}

fn queries(w: &mut String, r: &Report) {
    let p = &r.phases;
    let _ = writeln!(
        w,
        "**Queries** p99 of successful requests, from when each was due\n\n\
         | query | baseline | during | after | failed since the migration began |\n|---|---|---|---|---|"
    );
    for (name, _) in &p.baseline.queries.0 {
        let p99 = |phase: &super::PhaseReport| opt_dur(phase.queries.get(name).and_then(|q| q.p99_ms));
        let (errors, total, _) = r.failures_since_migration(name);
        let failed = if errors == 0 { "0".to_string() } else { format!("❌ {} of {}", count(errors), count(total)) };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {failed} |",
            cell(name),
            p99(&p.baseline),
            p99(&p.during),
            p99(&p.after)
        );
    }
    let _ = writeln!(w);
}

fn lock_queue(w: &mut String, r: &Report) {
    let l = &r.locks;
    if l.max_waiting == 0 {
        let _ = writeln!(w, "**Lock queue** no session was seen waiting on a lock ({} samples)\n", l.samples);
        return;
    }
    let _ = writeln!(
        w,
        "**Lock queue** up to {} sessions waited on locks at once; the longest wait {} ({}); \
         the longest a workload request waited {}\n",
        l.max_waiting,
        dur(l.longest_wait_ms),
        l.longest_wait_role.as_deref().unwrap_or("?"),
        dur(l.workload_longest_wait_ms)
    );
}

/// One row per report: what a reviewer compares.
fn side_by_side(w: &mut String, reports: &[Report]) {
    let passed = reports.iter().filter(|r| r.verdict.pass).count();
    let _ = writeln!(w, "### rehearse · {} of {} passed\n", passed, reports.len());
    let _ = writeln!(
        w,
        "| rehearsal | server | verdict | migration | lock wait | longest lock-queue wait | worst p99 during | failed since the migration began |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for r in reports {
        let migration =
            r.migration.as_ref().map_or("-".to_string(), |m| format!("{} in {}", m.outcome, dur(m.total_ms)));
        let wait = r.migration.as_ref().map_or("-".to_string(), |m| dur(m.lock_wait_ms));
        let worst = r
            .phases
            .during
            .queries
            .0
            .iter()
            .filter_map(|(n, q)| q.p99_ms.map(|p| (p, n)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let worst = worst.map_or("-".to_string(), |(p, n)| format!("{} ({})", dur(p), cell(n)));
        let (errors, total) = r.phases.baseline.queries.0.iter().fold((0, 0), |(e, t), (n, _)| {
            let (ne, nt, _) = r.failures_since_migration(n);
            (e + ne, t + nt)
        });
        let _ = writeln!(
            w,
            "| {} | {} | {} | {migration} | {wait} | {} | {worst} | {} of {} |",
            cell(&label(r)),
            cell(&server(r)),
            verdict(r),
            dur(r.locks.longest_wait_ms),
            count(errors),
            count(total)
        );
    }
    let _ = writeln!(w);
}

/// The head, and as much of the details as fits under [`LIMIT`]: each
/// detail whole while it fits, then cut, then left out, and a line saying
/// what was.
pub(super) fn fit(mut head: String, details: Vec<(String, String)>) -> String {
    const NOTE: usize = 200;
    if head.len() + NOTE > LIMIT {
        let mut cut = LIMIT - NOTE;
        while !head.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = head.len() - cut;
        head.truncate(cut);
        let _ = writeln!(
            head,
            "\n\n*… {dropped} bytes of tables left out to stay under {LIMIT} characters; the JSON report has everything.*"
        );
        return head;
    }
    let mut left_out = Vec::new();
    for (title, body) in details {
        let open = format!("<details><summary>{title}</summary>\n\n````text\n");
        let close = "````\n\n</details>\n\n";
        let room = LIMIT.saturating_sub(head.len() + open.len() + close.len() + NOTE);
        if room < 200 {
            left_out.push(title);
            continue;
        }
        let text = if body.len() <= room {
            body
        } else {
            let mut cut = room;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            left_out.push(format!("the end of {title}"));
            format!("{}\n… cut here\n", &body[..cut])
        };
        head.push_str(&open);
        head.push_str(&text);
        head.push_str(close);
    }
    if !left_out.is_empty() {
        let _ = writeln!(
            head,
            "*Left out to stay under {LIMIT} characters: {}. The JSON report has everything.*",
            left_out.join(", ")
        );
    }
    head
}
