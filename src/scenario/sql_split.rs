//! Cuts a SQL script, such as a `pg_dump --schema-only` file, into its
//! statements, so that each can run (and fail, and be reported) on its own.
//!
//! A `;` ends a statement only outside quotes (`'…'`, `E'…'` with its
//! backslash escapes, `"…"`), dollar quotes (`$$…$$`, `$tag$…$tag$`) and
//! comments (`-- …`, nested `/* … */`). A line that starts with a
//! backslash where a statement would start is a psql meta-command (pg_dump
//! writes `\restrict`, `\connect`): it is returned apart, to be skipped.

use std::ops::Range;

/// One piece of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Its bytes in the script: from the first character that is not
    /// blank or comment to the end, without the closing `;`.
    pub range: Range<usize>,
    /// A psql meta-command (one line), not SQL.
    pub meta: bool,
}

/// The statements and meta-commands of `text`, in order. Empty statements
/// (only blanks and comments) are left out.
pub fn split(text: &str) -> Vec<Piece> {
    let b = text.as_bytes();
    let mut pieces = Vec::new();
    let mut i = 0;
    // Where the current statement's first real character is, if any yet.
    let mut start: Option<usize> = None;
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = line_end(b, i);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = block_comment_end(b, i);
                continue;
            }
            b'\\' if start.is_none() => {
                let end = line_end(b, i);
                let trimmed = text[i..end].trim_end().len();
                pieces.push(Piece { range: i..i + trimmed, meta: true });
                i = end;
                continue;
            }
            b';' => {
                if let Some(s) = start.take() {
                    pieces.push(Piece { range: s..i, meta: false });
                }
                i += 1;
                continue;
            }
            _ if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
        i = match c {
            b'\'' => {
                let escapes = i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !is_ident(b[i - 2]));
                quote_end(b, i, b'\'', escapes)
            }
            b'"' => quote_end(b, i, b'"', false),
            b'$' => match dollar_tag(b, i) {
                Some(tag) => {
                    let body = i + tag.len();
                    find(b, body, tag).map_or(b.len(), |at| at + tag.len())
                }
                None => i + 1,
            },
            _ if is_ident(c) => {
                // A whole word at once, so that `$` inside one (`a$1`) is not
                // taken for a dollar quote.
                let mut j = i;
                while j < b.len() && (is_ident(b[j]) || b[j] == b'$') {
                    j += 1;
                }
                j
            }
            _ => i + 1,
        };
    }
    if let Some(s) = start {
        let end = s + text[s..].trim_end().len();
        pieces.push(Piece { range: s..end, meta: false });
    }
    pieces
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

fn line_end(b: &[u8], from: usize) -> usize {
    b[from..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| from + p + 1)
}

/// The end (past its `*/`) of the nested block comment opening at `from`.
pub fn block_comment_end(b: &[u8], from: usize) -> usize {
    let (mut depth, mut i) = (0usize, from);
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The end (past the closing quote) of a quoted string or identifier
/// opening at `from`; a doubled quote is a quote inside it.
fn quote_end(b: &[u8], from: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = from + 1;
    while i < b.len() {
        if backslash_escapes && b[i] == b'\\' {
            i += 2;
        } else if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// `$tag$` or `$$` at `from`, not a parameter such as `$1`.
fn dollar_tag(b: &[u8], from: usize) -> Option<&[u8]> {
    let mut j = from + 1;
    if b.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while j < b.len() && is_ident(b[j]) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then(|| &b[from..=j])
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b[from..].windows(needle.len()).position(|w| w == needle).map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(text: &str) -> Vec<&str> {
        split(text).into_iter().map(|p| &text[p.range]).collect()
    }

    #[test]
    fn semicolons_inside_quotes_comments_and_bodies_do_not_split() {
        let sql = "SET a = 1;\n-- a comment; still a comment\nCOMMENT ON TABLE t IS 'it''s; fine';\n\
                   CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n\
                   CREATE FUNCTION g() RETURNS int AS $body$ BEGIN RETURN 1; END $body$ LANGUAGE plpgsql;\n\
                   /* block /* nested; */ still; */ SELECT E'a\\';b', \"we;ird\";\n\
                   PREPARE p AS SELECT $1;\nSELECT 1";
        assert_eq!(
            statements(sql),
            vec![
                "SET a = 1",
                "COMMENT ON TABLE t IS 'it''s; fine'",
                "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
                "CREATE FUNCTION g() RETURNS int AS $body$ BEGIN RETURN 1; END $body$ LANGUAGE plpgsql",
                "SELECT E'a\\';b', \"we;ird\"",
                "PREPARE p AS SELECT $1",
                "SELECT 1",
            ]
        );
    }

    #[test]
    fn meta_commands_are_apart_and_empty_statements_dropped() {
        let sql = "\\restrict abc123\n;;\n-- only a comment\nCREATE TABLE t (a int);\n\\unrestrict abc123\n";
        let pieces = split(sql);
        let shown: Vec<(&str, bool)> = pieces.iter().map(|p| (&sql[p.range.clone()], p.meta)).collect();
        assert_eq!(
            shown,
            vec![("\\restrict abc123", true), ("CREATE TABLE t (a int)", false), ("\\unrestrict abc123", true)]
        );
    }
}
