//! `rehearse run --suggest`: the migration's safer variants, derived,
//! printed to copy, and rehearsed beside it on one load.

use crate::compare::compare;
use crate::postgres::BackendArg;
use crate::rehearsal::{RunOptions, UsageError};
use crate::report::{JsonOut, render_comparison};
use crate::scenario::Scenario;
use crate::suggest::{printable, suggest};

/// Derives the variants of `strategy` (the scenario's first when `None`),
/// prints them, rehearses them beside it and prints the comparison.
pub(super) async fn run(
    scenario: &Scenario,
    backend: &BackendArg,
    images: &[String],
    strategy: Option<&str>,
    out: Option<JsonOut>,
    formats: super::formats::Formats,
    opts: &RunOptions,
) -> anyhow::Result<i32> {
    let Some(original) = scenario.strategy(strategy) else {
        return Err(
            UsageError("--suggest needs a migration: a [[strategy]], --migration or --migrations".into()).into()
        );
    };
    let derived = suggest(scenario, original);
    let mut text = String::from("rehearse: --suggest derived these variants of the migration as written:\n\n");
    for s in &derived.strategies {
        text.push_str(&printable(s));
        text.push('\n');
    }
    for n in &derived.notes {
        text.push_str(&format!("  note: {n}\n"));
    }
    // The derivation goes to stderr with the progress, so that stdout holds
    // the comparison alone.
    eprintln!("{text}");
    let mut both = scenario.clone();
    both.strategies = std::iter::once(original.clone()).chain(derived.strategies).collect();
    let compared = compare(&both, backend, images, &[], 1, opts).await?;
    let summary = render_comparison(&compared.summary, &compared.reports);
    super::compare::print_summary_beside(out.as_ref(), Some(&formats), &summary);
    super::compare::finish(&compared, out, formats)
}
