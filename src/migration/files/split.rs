//! Cutting a part of a migration file into statements with Postgres' own
//! parser (`pg_query`), so that dollar quotes, `BEGIN ATOMIC` bodies,
//! `CREATE RULE` with several actions and nested comments are cut where
//! the server would cut them. psql meta-commands (`\set`, `\i`) are not
//! SQL: a runner that is not psql would send them and fail, so they are
//! refused with their line.

use std::ops::Range;
use std::sync::Arc;

use super::{Piece, Script, Sending, invalid_at};
use crate::scenario::ScenarioError;
use crate::scenario::source::SourceFile;
use crate::scenario::{sql_parse, sql_split};

/// The statements of `range` of the file, as byte ranges of the file.
pub fn statements(source: &Arc<SourceFile>, range: Range<usize>) -> Result<Vec<Range<usize>>, ScenarioError> {
    let text = &source.text[range.clone()];
    if let Some(meta) = sql_split::split(text).into_iter().find(|p| p.meta) {
        let line = &text[meta.range.clone()];
        return Err(invalid_at(
            source,
            range.start + meta.range.start,
            format!("`{line}` is a psql meta-command, not SQL: the runner would send it to the server and fail"),
        ));
    }
    let parsed = sql_parse::parse(text).map_err(|e| {
        let offset = e
            .position
            .and_then(|p| text.char_indices().nth((p as usize).saturating_sub(1)).map(|(b, _)| b))
            .unwrap_or(0);
        invalid_at(source, range.start + offset, format!("syntax error: {}", e.message))
    })?;
    Ok(parsed
        .ranges()
        .into_iter()
        .map(|r| {
            let r = trim(text, r);
            range.start + r.start..range.start + r.end
        })
        .filter(|r| !r.is_empty())
        .collect())
}

/// `r` without the blanks and comments at its start and the blanks at its
/// end.
fn trim(text: &str, r: Range<usize>) -> Range<usize> {
    let piece = &text[r.clone()];
    let mut start = 0;
    let b = piece.as_bytes();
    loop {
        while start < b.len() && b[start].is_ascii_whitespace() {
            start += 1;
        }
        if piece[start..].starts_with("--") {
            start = piece[start..].find('\n').map_or(b.len(), |n| start + n + 1);
        } else if piece[start..].starts_with("/*") {
            start = sql_split::block_comment_end(piece.as_bytes(), start);
        } else {
            break;
        }
    }
    let end = piece.trim_end().len().max(start);
    r.start + start..r.start + end
}

/// The pieces of `range` when the runner sends each statement on its own.
pub fn each_statement(source: &Arc<SourceFile>, range: Range<usize>) -> Result<Vec<Piece>, ScenarioError> {
    Ok(statements(source, range)?.into_iter().map(|r| Piece { range: r.clone(), statements: vec![r] }).collect())
}

/// The piece of `range` when the runner sends it as one string; `None`
/// when it holds no statement.
pub fn whole(source: &Arc<SourceFile>, range: Range<usize>) -> Result<Option<Piece>, ScenarioError> {
    let statements = statements(source, range)?;
    let (Some(first), Some(last)) = (statements.first(), statements.last()) else { return Ok(None) };
    Ok(Some(Piece { range: first.start..last.end, statements }))
}

/// The whole file, sent as one string outside any transaction the runner
/// opens (golang-migrate, Prisma, and the no-transaction modes of runners
/// that send a file whole).
pub fn one_string(source: &Arc<SourceFile>, why: &str) -> Result<Script, ScenarioError> {
    let pieces = whole(source, 0..source.text.len())?.into_iter().collect();
    Ok(Script { source: source.clone(), sending: Sending::Separately, why: why.to_string(), pieces })
}

/// The whole file in the runner's transaction.
pub fn in_transaction(source: &Arc<SourceFile>, why: &str) -> Result<Script, ScenarioError> {
    let pieces = whole(source, 0..source.text.len())?.into_iter().collect();
    Ok(Script { source: source.clone(), sending: Sending::Transaction, why: why.to_string(), pieces })
}
