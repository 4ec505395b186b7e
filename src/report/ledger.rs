//! Acknowledged writes, checked after the run (see [`crate::ledger`]):
//! judged by `max_lost_writes` (0 unless the scenario says otherwise), and
//! their terminal section.

use std::fmt::Write;

use super::{Check, Violation};
use crate::ledger::LedgerReport;
use crate::units::thousands;

/// `max_lost_writes`: more lost and altered rows than the limit fails,
/// each statement that lost some named; a ledger that could not be checked
/// fails too, since nothing was judged.
pub(super) fn judge(limit: u64, ledger: Option<&LedgerReport>) -> Vec<Violation> {
    let Some(l) = ledger else { return Vec::new() };
    let mut v = Vec::new();
    if l.writes > 0 && !l.errors.is_empty() {
        v.push(Violation {
            threshold: Check::MaxLostWrites,
            subject: "workload".into(),
            measured: None,
            limit: Some(limit as f64),
            message: format!(
                "{} acknowledged writes could not all be checked after the run: {}",
                l.writes,
                l.errors.join("; ")
            ),
        });
    }
    let bad = l.lost + l.altered;
    if bad > limit {
        for q in l.queries.iter().filter(|q| q.lost + q.altered > 0) {
            v.push(Violation {
                threshold: Check::MaxLostWrites,
                subject: q.query.clone(),
                measured: Some(bad as f64),
                limit: Some(limit as f64),
                message: format!("{}: {} (limit {limit} over the run)", q.query, tally(q.lost, q.altered)),
            });
        }
    }
    v
}

/// `37 acknowledged writes lost, 12 altered`.
fn tally(lost: u64, altered: u64) -> String {
    format!("{} acknowledged writes lost, {} altered", thousands(lost), thousands(altered))
}

/// The terminal section, when the workload writes.
pub(super) fn render(w: &mut String, ledger: Option<&LedgerReport>) {
    let Some(l) = ledger else { return };
    if l.queries.is_empty() && l.untracked.is_empty() {
        return;
    }
    let checked = if l.errors.is_empty() { "checked" } else { "checked in part" };
    let _ = writeln!(
        w,
        "\nWRITES  {} rows written by acknowledged requests; the last state of {} keys {checked} after the run \
         ({:.1} s): {}",
        thousands(l.writes),
        thousands(l.keys),
        l.verify_ms / 1000.0,
        if l.lost + l.altered == 0 { "none lost or altered".to_string() } else { tally(l.lost, l.altered) }
    );
    if l.changed_by_migration > 0 {
        let _ = writeln!(
            w,
            "  {} rows hold values the migration's own statements wrote after the write was acknowledged \
             (changed on purpose, not counted)",
            thousands(l.changed_by_migration)
        );
    }
    for q in &l.queries {
        let mark = if q.lost + q.altered > 0 { '✗' } else { '✓' };
        let what = format!("{}, {}", q.table, serde_plain(q.kind));
        let _ = write!(w, "  {mark} {} #{} ({what}): {} written", q.query, q.statement, thousands(q.writes));
        if q.lost + q.altered > 0 {
            let _ = write!(w, ", {} lost, {} altered", thousands(q.lost), thousands(q.altered));
        }
        if q.changed_by_migration > 0 {
            let _ = write!(w, ", {} changed by the migration", thousands(q.changed_by_migration));
        }
        let _ = writeln!(w);
        if !q.examples.is_empty() {
            let _ = writeln!(w, "     e.g. {}", q.examples.join("; "));
        }
    }
    for e in &l.errors {
        let _ = writeln!(w, "  ! not checked: {e}");
    }
    for n in &l.notes {
        let _ = writeln!(w, "  - {n}");
    }
    for u in &l.untracked {
        let _ = writeln!(w, "  - {} is not followed: {}", u.query, u.reason);
    }
}

fn serde_plain(kind: crate::ledger::WriteKind) -> &'static str {
    match kind {
        crate::ledger::WriteKind::Insert => "insert",
        crate::ledger::WriteKind::Update => "update",
        crate::ledger::WriteKind::Delete => "delete",
    }
}
