//! The terminal summary, meant to be read in ten seconds: what the
//! migration waited for and behind whom, how long reads and writes
//! stalled, how each query's p99 moved, how many requests failed, and the
//! verdict. Every figure says what it measured and over which window.

use std::fmt::Write;
use std::time::Duration;

use super::{QueryKind, Report};
use crate::migration::{LockMode, MigrationReport, Outcome, TransactionKind};
use crate::scenario::Arrival;
use crate::scenario::duration::human;

pub(super) fn dur(ms: f64) -> String {
    human(Duration::from_secs_f64(ms.max(0.0) / 1000.0))
}

pub(super) fn opt_dur(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".to_string(), dur)
}

pub(super) fn count(n: u64) -> String {
    crate::units::thousands(n)
}

fn bytes(n: i64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.0} kB", n / 1e3)
    }
}

pub(super) fn shorten(s: &str, max: usize) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}…", one_line.chars().take(max - 1).collect::<String>())
    }
}

/// Renders the summary.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let w = &mut o;
    let version = r.postgres.version.split(" on ").next().unwrap_or(&r.postgres.version);
    match &r.strategy {
        Some(strategy) => {
            let _ = writeln!(w, "rehearse · {} · strategy {strategy}", r.scenario);
        }
        None => {
            let _ = writeln!(w, "rehearse · {} · load only, no migration", r.scenario);
        }
    }
    let _ =
        writeln!(w, "{version} ({}, {}) · seed {} · scale {}", r.postgres.backend, r.postgres.target, r.seed, r.scale);
    if let Some(f) = &r.fault {
        let _ = writeln!(w, "\nFAULT  {}", f.sentence());
    }
    for warning in &r.warnings {
        let _ = writeln!(w, "warning: {warning}");
    }

    let _ = writeln!(w, "\nDATA");
    for t in &r.tables {
        let how = if t.reused {
            "existing table, used as it was".to_string()
        } else {
            format!("loaded and indexed in {:.1}s", t.load_seconds)
        };
        let _ = writeln!(
            w,
            "  {:<16} {:>12} rows  {:>9} heap  {:>9} with indexes  {how}",
            t.name,
            count(t.rows),
            bytes(t.heap_bytes),
            bytes(t.total_bytes)
        );
    }

    match &r.migration {
        Some(m) => {
            migration(w, r, m, "MIGRATION");
            interference(w, r);
            if let Some(back) = &r.rollback {
                migration(w, r, back, "ROLLBACK");
            }
        }
        None => interference(w, r),
    }
    locks(w, r);
    if r.migration.is_some() {
        latency(w, r);
    } else {
        load(w, r);
    }
    failures(w, r);
    super::pooler::render(w, r.pooler.as_ref());
    super::broken::render(w, &r.broken);
    super::ledger::render(w, r.ledger.as_ref());
    super::plans::render_checks(w, &r.checks);
    if let Some(plans) = &r.plans {
        super::plans::render(w, plans);
    }
    if let Some(wal) = &r.wal {
        super::replication::render_wal(w, wal);
    }
    if let Some(replication) = &r.replication {
        super::replication::render(w, replication);
    }
    if let Some(cdc) = &r.cdc {
        super::replication::render_cdc(w, cdc);
    }

    super::regression::render(w, r.regressions.as_ref());

    let _ = writeln!(w, "\nVERDICT  {}", if r.verdict.pass { "PASS" } else { "FAIL" });
    if r.verdict.pass {
        let _ = writeln!(w, "  every threshold held");
    }
    if r.thresholds.defaults {
        let _ = writeln!(
            w,
            "  judged against the default thresholds (the scenario names no [thresholds]): {}",
            default_thresholds(&r.thresholds)
        );
    }
    for v in &r.verdict.violations {
        let _ = writeln!(w, "  ✗ {}: {}", v.threshold, v.message);
    }
    o
}

/// For a statement of a shared transaction that took a lock blocking
/// writes: how long after it the lock was still held.
fn held(w: &mut String, s: &crate::migration::StepReport) {
    let Some(until) = s.held_until_s else { return };
    let strong: Vec<&str> = s.locks.iter().filter(|l| l.mode >= LockMode::Share).map(|l| l.relation.as_str()).collect();
    let after = (until - s.ended_s).max(0.0);
    if strong.is_empty() || after < 0.001 {
        return;
    }
    // Long enough to be felt: a request waits that long behind it.
    let mark = if after >= 0.1 { "⚠ " } else { "" };
    let _ = writeln!(
        w,
        "     {mark}held until its transaction ended at {until:.2}s, {} after this statement: what they block on {} waits that long",
        human(Duration::from_secs_f64(after)),
        strong.join(", ")
    );
}

/// The thresholds as a line: `max_lock_wait 1s, …`.
fn default_thresholds(th: &crate::report::ThresholdsInfo) -> String {
    let mut parts = Vec::new();
    if let Some(ms) = th.max_lock_wait_ms {
        parts.push(format!("max_lock_wait {}", human(std::time::Duration::from_secs_f64(ms / 1000.0))));
    }
    if let Some(r) = th.max_p99_ratio {
        parts.push(format!("max_p99_ratio {r} (p99 during the migration against the baseline's)"));
    }
    if let Some(e) = th.max_error_rate {
        parts.push(format!("max_error_rate {e}"));
    }
    parts.push(format!("max_broken_queries {}", th.max_broken_queries));
    parts.push(format!("max_lost_writes {}", th.max_lost_writes));
    parts.join(", ")
}

/// The migration's steps (or its rollback's, under `title`), and what its
/// session waited behind.
fn migration(w: &mut String, r: &Report, m: &MigrationReport, title: &str) {
    let outcome = match m.outcome {
        Outcome::Ok => "ok",
        Outcome::Failed => "FAILED",
        Outcome::Cancelled => "CANCELLED at max_duration",
        Outcome::Interrupted => "INTERRUPTED",
    };
    let _ = writeln!(
        w,
        "\n{title}  {outcome} · {} from {:.2}s to {:.2}s · {} of it waiting for locks",
        dur(m.total_ms),
        m.started_s,
        m.ended_s,
        dur(m.lock_wait_ms)
    );
    if let Some(source) = &m.source {
        let _ = writeln!(w, "  {source}");
    }
    for f in &m.files {
        let _ = writeln!(w, "  {} (version {}): {}", f.file, f.version, f.sending);
    }
    for s in &m.steps {
        let label = s.name.as_deref().map(|n| format!("{n}: ")).unwrap_or_default();
        let _ = writeln!(w, "  {}. {label}{}", s.index, shorten(&s.sql, 96));
        let mut line = format!(
            "     {} · waited {} for locks · {} attempt{}",
            dur(s.duration_ms),
            dur(s.lock_wait_ms),
            s.attempts,
            if s.attempts == 1 { "" } else { "s" }
        );
        if s.unsampled_ms >= 1.0 {
            let _ = write!(line, " (no lock samples for {} of it: the wait may be longer)", dur(s.unsampled_ms));
        }
        if let Some(b) = s.batches {
            let _ = write!(line, " · {b} batches, {} rows", count(s.rows));
        }
        if let Some(wal) = s.wal_bytes.filter(|b| *b >= 1 << 20) {
            let _ = write!(line, " · {} of WAL written meanwhile", super::replication::bytes(wal));
        }
        match (s.transaction, s.transaction_id) {
            (TransactionKind::Shared, Some(id)) => {
                let _ = write!(line, " · in transaction {id}");
            }
            (TransactionKind::Implicit, _) => line.push_str(" · one string: one implicit transaction"),
            (TransactionKind::None, _) if s.file.is_some() => line.push_str(" · on its own (no transaction)"),
            _ => {}
        }
        let _ = writeln!(w, "{line}");
        for l in super::progress::lines(s) {
            let _ = writeln!(w, "     {l}");
        }
        if !s.locks.is_empty() {
            let taken: Vec<String> = s
                .locks
                .iter()
                .map(|l| match l.mode {
                    mode if mode >= LockMode::Share => format!("{mode} on {} ({})", l.relation, mode.blocks()),
                    mode => format!("{mode} on {}", l.relation),
                })
                .collect();
            let _ = writeln!(w, "     took {}", taken.join(", "));
            held(w, s);
        }
        if !s.rewrote.is_empty() {
            let _ = writeln!(w, "     rewrote {}", s.rewrote.join(", "));
        }
        if let Some(e) = &s.error {
            let _ = writeln!(w, "     error: {e}");
        }
    }
    // The migration's session, seen while this one ran.
    let here = |e: &&crate::observe::BlockEdge| e.first_s >= m.started_s - 0.5 && e.first_s <= m.ended_s + 0.5;
    for e in r.locks.blocking.iter().filter(|e| e.waiter == "migration").filter(here) {
        let _ = writeln!(
            w,
            "  waited for {} on {} behind {} for up to {} ({:.1}s–{:.1}s){}",
            e.mode,
            e.relation,
            e.blocker,
            dur(e.longest_wait_ms),
            e.first_s,
            e.last_s,
            if e.blocker_query.is_empty() { String::new() } else { format!(": {}", shorten(&e.blocker_query, 70)) }
        );
    }
}

fn interference(w: &mut String, r: &Report) {
    for i in &r.timeline.interference {
        let when = match (i.started_s, i.ended_s) {
            (Some(s), Some(e)) => format!("ran {s:.1}s–{e:.1}s"),
            (Some(s), None) => format!("started at {s:.1}s"),
            _ => "never started".to_string(),
        };
        let optional = if i.optional { " (optional)" } else { "" };
        let _ = writeln!(w, "  interference {}{optional}: {when}, {}", i.name, i.outcome);
        if let Some(e) = &i.error {
            let _ = writeln!(w, "     error: {e}");
        }
    }
}

fn locks(w: &mut String, r: &Report) {
    let l = &r.locks;
    let _ = writeln!(w, "\nLOCK QUEUE  sampled every {}ms, {} samples", l.interval_ms.round(), l.samples);
    if l.gaps.count > 0 || l.failed_samples > 0 {
        let _ = writeln!(
            w,
            "  no samples for {:.1}s in {} gap{} (longest {:.1}s){}: waits there are not seen",
            l.gaps.seconds,
            l.gaps.count,
            if l.gaps.count == 1 { "" } else { "s" },
            l.gaps.longest_s,
            if l.failed_samples > 0 { format!(", {} samples failed", l.failed_samples) } else { String::new() }
        );
    }
    if l.max_waiting == 0 {
        let _ = writeln!(w, "  no session was seen waiting on a lock");
        return;
    }
    let caveat = match (l.longest_wait_lower_bound, l.longest_wait_spans_gap) {
        (true, _) => ", at least: it ended unseen, in a gap",
        (false, true) => ", across a gap in the samples",
        _ => "",
    };
    let _ = writeln!(
        w,
        "  up to {} sessions waited on locks at once (at {:.1}s); longest wait {} ({}{caveat})",
        l.max_waiting,
        l.max_waiting_at_s.unwrap_or(0.0),
        dur(l.longest_wait_ms),
        l.longest_wait_role.as_deref().unwrap_or("?")
    );
    for e in l.blocking.iter().filter(|e| e.waiter != "migration").take(5) {
        let _ = writeln!(
            w,
            "  {} waited behind {} for {} on {}: up to {} at once, longest {} ({:.1}s–{:.1}s)",
            e.waiter,
            e.blocker,
            e.mode,
            e.relation,
            e.max_waiters,
            dur(e.longest_wait_ms),
            e.first_s,
            e.last_s
        );
    }
}

fn latency(w: &mut String, r: &Report) {
    let p = &r.phases;
    let mut columns = vec![("baseline", &p.baseline), ("during", &p.during), ("after", &p.after)];
    columns.extend(p.rollback.as_ref().map(|x| ("rollback", x)));
    columns.extend(p.after_rollback.as_ref().map(|x| ("after rollback", x)));
    let windows: Vec<String> = columns.iter().map(|(n, x)| format!("{n} {:.1}s", x.seconds)).collect();
    let _ = writeln!(w, "\nLATENCY  p99 of successful requests, from when each was due · {}", windows.join(", "));
    // The judged phases are wide enough for a ratio beside the figure.
    let width = |label: &str| match label {
        "during" | "rollback" => 20,
        "after rollback" => 14,
        _ => 10,
    };
    let mut head = format!("  {:<24} {:>10}", "query", "baseline");
    for (label, _) in &columns[1..] {
        let _ = write!(head, " {label:>width$}", width = width(label));
    }
    let _ = writeln!(w, "{head}");
    // The longest request of each kind: (milliseconds, query).
    type Stall<'a> = Option<(f64, &'a str)>;
    let (mut read_stall, mut write_stall): (Stall, Stall) = (None, None);
    let mut any_ratio = false;
    for q in &r.workload.queries {
        let get = |p: &super::PhaseReport| p.queries.get(&q.name).and_then(|s| s.p99_ms);
        let base = get(&p.baseline);
        let ratio = |x: Option<f64>| match (base, x) {
            (Some(b), Some(d)) if b > 0.0 && d / b >= 2.0 => format!(" (×{:.0})", d / b),
            _ => String::new(),
        };
        let name = format!("{} ({})", q.name, q.kind);
        let mut line = format!("  {name:<24} {:>10}", opt_dur(base));
        for (label, phase) in &columns[1..] {
            let x = get(phase);
            let judged = matches!(*label, "during" | "rollback");
            let shown = if judged { format!("{}{}", opt_dur(x), ratio(x)) } else { opt_dur(x) };
            any_ratio |= judged && !ratio(x).is_empty();
            let _ = write!(line, " {shown:>width$}", width = width(label));
        }
        let _ = writeln!(w, "{line}");
        // The longest request due during the migration (or the rollback),
        // failed or not.
        let judged = std::iter::once(&p.during).chain(&p.rollback);
        let worst = judged.filter_map(|ph| ph.queries.get(&q.name)).filter_map(|s| match (s.max_ms, s.failed_max_ms) {
            (Some(ok), Some(failed)) => Some(ok.max(failed)),
            (ok, failed) => ok.or(failed),
        });
        if let Some(x) = worst.reduce(f64::max) {
            let slot = if q.kind == QueryKind::Read { &mut read_stall } else { &mut write_stall };
            if slot.is_none_or(|(y, _)| x > y) {
                *slot = Some((x, q.name.as_str()));
            }
        }
    }
    let during = if p.rollback.is_some() { "during the migration and its rollback" } else { "during the migration" };
    if any_ratio {
        let _ = writeln!(w, "  (×N: the p99 {during}, N times the baseline's)");
    }
    let stall = |s: Stall| s.map_or_else(|| "-".to_string(), |(ms, q)| format!("{} ({q})", dur(ms)));
    let _ = writeln!(
        w,
        "  stalls {during}, the longest request: reads {}, writes {}",
        stall(read_stall),
        stall(write_stall)
    );
}

/// A load-only run: each query's shape, throughput and latency over the
/// whole run.
fn load(w: &mut String, r: &Report) {
    let b = &r.phases.baseline;
    let _ =
        writeln!(w, "\nLOAD  latency of successful requests, from when each was due · whole run, {:.1}s", b.seconds);
    let _ = writeln!(
        w,
        "  {:<24} {:<24} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "query", "shape", "requests", "per sec", "p50", "p99", "p99.9", "max"
    );
    for q in &r.workload.queries {
        let shape = match (q.rate, q.clients) {
            (Some(rate), _) if q.peak_rate.is_some_and(|p| p != rate) => {
                format!("ramp {rate:.0}→{:.0}/s", q.peak_rate.unwrap_or(rate))
            }
            (Some(rate), _) => {
                let arrival = match q.arrival {
                    Some(Arrival::Poisson) => "poisson",
                    _ => "uniform",
                };
                format!("{rate:.0}/s {arrival}")
            }
            (None, Some(c)) => match q.think_time_ms.filter(|t| *t > 0.0) {
                Some(t) => format!("{c} clients, think {}", dur(t)),
                None => format!("{c} clients"),
            },
            (None, None) => String::new(),
        };
        let Some(s) = b.queries.get(&q.name) else { continue };
        let per_sec = if b.seconds > 0.0 { s.count as f64 / b.seconds } else { 0.0 };
        let _ = writeln!(
            w,
            "  {:<24} {:<24} {:>10} {:>10.1} {:>9} {:>9} {:>9} {:>9}",
            format!("{} ({})", q.name, q.kind),
            shape,
            count(s.count),
            per_sec,
            opt_dur(s.p50_ms),
            opt_dur(s.p99_ms),
            opt_dur(s.p999_ms),
            opt_dur(s.max_ms)
        );
    }
}

fn failures(w: &mut String, r: &Report) {
    let window =
        if r.migration.is_some() { "from the migration's start to the end of the run" } else { "over the run" };
    let _ = writeln!(w, "\nFAILURES  requests due {window}");
    let mut any = false;
    for q in &r.workload.queries {
        let (errors, total, kinds) = r.failures_since_migration(&q.name);
        if errors == 0 {
            continue;
        }
        any = true;
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {}", count(*n))).collect();
        let _ = writeln!(
            w,
            "  {:<16} {} of {} failed ({:.1}%): {}",
            q.name,
            count(errors),
            count(total),
            errors as f64 * 100.0 / total.max(1) as f64,
            kinds.join(", ")
        );
    }
    if !any {
        let _ = writeln!(w, "  none");
    }
    let p = &r.pool;
    let _ = writeln!(
        w,
        "  pool: at most {} of {} connections in use; all in use for {:.1}s; {} requests gave up waiting (pool_timeout {})",
        p.max_in_use,
        p.size,
        p.full_seconds,
        count(p.timeouts),
        dur(r.workload.pool_timeout_ms)
    );
    if p.replans > 0 {
        let _ = writeln!(
            w,
            "  {} prepared statements were prepared again: the migration changed their result type (retried once, as drivers do)",
            count(p.replans)
        );
    }
}
