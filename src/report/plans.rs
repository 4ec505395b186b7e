//! The terminal section for plans that changed over the migration (see
//! [`crate::observe::plans`]).

use std::fmt::Write;

use crate::observe::plans::{Plan, PlanCheck};

fn shape(plan: &Plan) -> String {
    plan.nodes.join(" → ")
}

/// PLANS: each statement whose plan changed shape, before and after, with
/// the estimated costs; one line when none did.
pub(super) fn render(w: &mut String, check: &PlanCheck) {
    if check.checked == 0 {
        return;
    }
    if check.changed.is_empty() {
        let _ = writeln!(
            w,
            "\nPLANS  {} statement(s) explained before and after the migration: no plan changed shape",
            check.checked
        );
        return;
    }
    let _ = writeln!(
        w,
        "\nPLANS  {} of {} statement(s) changed plan over the migration (EXPLAIN, estimated costs)",
        check.changed.len(),
        check.checked
    );
    for c in &check.changed {
        let worse = !c.new_seq_scans.is_empty() || !c.indexes_lost.is_empty() || c.error.is_some();
        let mark = if worse { "⚠ " } else { "" };
        let which = if c.statement > 1 { format!(" (statement {})", c.statement) } else { String::new() };
        let _ = writeln!(w, "  {mark}{}{which}: {}", c.query, super::terminal::shorten(&c.sql, 90));
        if let Some(b) = &c.before {
            let _ = writeln!(w, "     before: {} (cost {:.1})", shape(b), b.cost);
        }
        match (&c.after, &c.error) {
            (Some(a), _) => {
                let _ = writeln!(w, "     after:  {} (cost {:.1})", shape(a), a.cost);
            }
            (None, Some(e)) => {
                let _ = writeln!(w, "     after:  no longer plans: {e}");
            }
            (None, None) => {}
        }
        if !c.indexes_lost.is_empty() {
            let _ = writeln!(w, "     no longer uses {}", c.indexes_lost.join(", "));
        }
        if !c.new_seq_scans.is_empty() {
            let _ = writeln!(w, "     now reads {} by a sequential scan", c.new_seq_scans.join(", "));
        }
    }
}

/// CHECKS: each `[[workload.check]]`, run once after the migration.
pub(super) fn render_checks(w: &mut String, checks: &[crate::observe::plans::CheckRun]) {
    if checks.is_empty() {
        return;
    }
    let _ = writeln!(w, "\nCHECKS  run once after the migration, in a transaction rolled back");
    for c in checks {
        match &c.error {
            None => {
                let _ = writeln!(w, "  ✓ {} in {}", c.name, super::terminal::dur(c.duration_ms));
            }
            Some(e) => {
                let _ = writeln!(w, "  ✗ {}: {e}", c.name);
            }
        }
    }
}
