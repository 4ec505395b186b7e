//! goose: `<version>_<name>.sql` with `-- +goose Up` and `-- +goose Down`
//! sections, in order of the version (an integer: sequential or a
//! timestamp). goose cuts a section into statements itself: a statement
//! ends on a line whose last word (before a `--` comment) ends with `;`,
//! except between `-- +goose StatementBegin` and `-- +goose StatementEnd`,
//! which make one statement. It runs them one by one in a transaction of
//! the file, unless the file says `-- +goose NO TRANSACTION`: then each
//! statement is sent on its own.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::{Migration, Piece, Script, Sending, invalid_at, split};
use crate::scenario::ScenarioError;
use crate::scenario::source::SourceFile;

/// The migrations of a goose folder.
pub fn read(dir: &Path) -> Result<Vec<Migration>, ScenarioError> {
    super::one_file_each(dir, true, parts)
}

/// A goose annotation on a line, lower-cased: `up`, `down`,
/// `statementbegin`, `statementend`, `no transaction`.
fn annotation(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix("--")?.trim_start();
    let rest = rest.strip_prefix("+goose")?;
    Some(rest.trim().to_ascii_lowercase())
}

/// Whether goose ends a statement on this line.
fn ends_statement(line: &str) -> bool {
    let mut last = "";
    for word in line.split_whitespace() {
        if word.starts_with("--") {
            break;
        }
        last = word;
    }
    last.ends_with(';')
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Before,
    Up,
    Down,
}

/// The up and down parts of a goose file.
pub fn parts(source: &Arc<SourceFile>) -> Result<(Script, Option<Script>), ScenarioError> {
    let text = &source.text;
    let mut section = Section::Before;
    let (mut up, mut down): (Vec<Range<usize>>, Vec<Range<usize>>) = (Vec::new(), Vec::new());
    let (mut saw_up, mut saw_down, mut no_tx) = (false, false, false);
    let (mut start, mut in_block, mut offset): (Option<usize>, bool, usize) = (None, false, 0);
    for line in text.split_inclusive('\n') {
        let (at, end) = (offset, offset + line.len());
        offset = end;
        if let Some(a) = annotation(line) {
            match a.as_str() {
                "up" | "down" => {
                    if let Some(s) = start.filter(|_| section != Section::Before) {
                        return Err(unfinished(source, s));
                    }
                    section = if a == "up" { Section::Up } else { Section::Down };
                    saw_up |= a == "up";
                    saw_down |= a == "down";
                }
                "statementbegin" => in_block = true,
                "statementend" => {
                    if let Some(s) = start.take() {
                        target(section, &mut up, &mut down).push(s..at);
                    }
                    in_block = false;
                }
                "no transaction" => no_tx = true,
                _ => {}
            }
            continue;
        }
        if section == Section::Before {
            continue;
        }
        let trimmed = line.trim();
        if start.is_none() && (trimmed.is_empty() || trimmed.starts_with("--")) {
            continue;
        }
        start.get_or_insert(at);
        if !in_block && ends_statement(line) {
            let s = start.take().expect("set above");
            target(section, &mut up, &mut down).push(s..end);
        }
    }
    if let Some(s) = start {
        return Err(unfinished(source, s));
    }
    if !saw_up {
        return Err(invalid_at(source, 0, "no `-- +goose Up` annotation: goose would refuse this file".into()));
    }
    let why = if no_tx {
        "`-- +goose NO TRANSACTION`: each statement sent on its own"
    } else {
        "statement by statement in the transaction goose opens for the file"
    };
    let sending = if no_tx { Sending::Separately } else { Sending::Transaction };
    let script = |ranges: Vec<Range<usize>>| -> Result<Script, ScenarioError> {
        let mut pieces = Vec::new();
        for r in ranges {
            let statements = split::statements(source, r.clone()).map_err(|e| match e {
                ScenarioError::Invalid { at, message } => ScenarioError::Invalid {
                    at,
                    message: format!(
                        "{message} (goose ends a statement at any line ending in `;`, even inside quotes or a function body: \
                         put it between `-- +goose StatementBegin` and `-- +goose StatementEnd`)"
                    ),
                },
                other => other,
            })?;
            if !statements.is_empty() {
                pieces.push(Piece { range: r, statements });
            }
        }
        Ok(Script { source: source.clone(), sending, why: why.into(), pieces })
    };
    Ok((script(up)?, if saw_down { script(down).ok() } else { None }))
}

fn target<'a>(s: Section, up: &'a mut Vec<Range<usize>>, down: &'a mut Vec<Range<usize>>) -> &'a mut Vec<Range<usize>> {
    if s == Section::Down { down } else { up }
}

fn unfinished(source: &Arc<SourceFile>, at: usize) -> ScenarioError {
    invalid_at(
        source,
        at,
        "this statement does not end with `;` at the end of a line (or a `-- +goose StatementEnd`): goose would refuse the file".into(),
    )
}
