//! Where things are in a scenario file: byte spans turned into line and
//! column, and positions inside a SQL string value mapped back to the file.
//!
//! Postgres reports an error position as a 1-based character index into the
//! statement it was sent. When the statement came verbatim from a TOML
//! string, that index can be mapped to the exact line and column of the
//! scenario file, which is what a user wants to see.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The text of a scenario file, kept to turn spans into line and column.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user gave it.
    pub path: PathBuf,
    /// The whole file.
    pub text: String,
}

impl SourceFile {
    /// Wraps a file's path and text.
    pub fn new(path: &Path, text: String) -> Arc<Self> {
        Arc::new(Self { path: path.to_path_buf(), text })
    }

    /// The 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// The location of a byte offset.
    pub fn location(self: &Arc<Self>, offset: usize) -> Location {
        let (line, column) = self.line_col(offset);
        Location { path: self.path.clone(), line, column }
    }
}

/// A place in a scenario file, printed as `path:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The scenario file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// A SQL string from the scenario, with what is needed to map a Postgres
/// error position inside it back to the file.
#[derive(Debug, Clone)]
pub struct SqlText {
    /// The statement(s), as Postgres receives them.
    pub text: String,
    /// Where the string literal starts in the file.
    pub at: Location,
    origin: Option<(Arc<SourceFile>, usize)>,
}

impl SqlText {
    /// Builds a SQL text from a string value and the span of its literal.
    pub fn new(source: &Arc<SourceFile>, text: String, span: Range<usize>) -> Self {
        let at = source.location(span.start);
        let origin = verbatim_start(&source.text, &text, span).map(|start| (source.clone(), start));
        Self { text, at, origin }
    }

    /// The SQL at `span` of a file that is SQL itself (a schema dump), not a
    /// quoted literal in a scenario.
    pub fn verbatim(source: &Arc<SourceFile>, span: Range<usize>) -> Self {
        let text = source.text[span.clone()].to_string();
        Self { text, at: source.location(span.start), origin: Some((source.clone(), span.start)) }
    }

    /// SQL the harness wrote (a derived step): it has no place in a file,
    /// so errors in it point at `at`.
    pub fn derived(text: String, at: Location) -> Self {
        Self { text, at, origin: None }
    }

    /// The file location of the 1-based character `position` Postgres
    /// reported, or of the literal's start when the value was not verbatim
    /// (it held escapes) or the position is out of range.
    pub fn location_of(&self, position: Option<u32>) -> Location {
        let (Some((source, start)), Some(pos)) = (&self.origin, position) else {
            return self.at.clone();
        };
        let index = (pos as usize).saturating_sub(1);
        match self.text.char_indices().nth(index) {
            Some((byte, _)) => source.location(start + byte),
            // Just past the end: "at end of input".
            None if index == self.text.chars().count() => source.location(start + self.text.len()),
            None => self.at.clone(),
        }
    }
}

/// The byte offset in `file` where the characters of `value` start, when the
/// literal at `span` holds the value verbatim (no escapes).
fn verbatim_start(file: &str, value: &str, span: Range<usize>) -> Option<usize> {
    let raw = file.get(span.clone())?;
    let (quote_len, skip_newline) = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        (3, true)
    } else if raw.starts_with('"') || raw.starts_with('\'') {
        (1, false)
    } else {
        return None;
    };
    let mut start = span.start + quote_len;
    if skip_newline {
        if file[start..].starts_with("\r\n") {
            start += 2;
        } else if file[start..].starts_with('\n') {
            start += 1;
        }
    }
    file.get(start..span.end)?.starts_with(value).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let f = SourceFile::new(Path::new("s.toml"), "a = 1\nbé = 2\n".into());
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(6), (2, 1));
        // 'é' is two bytes but one column
        assert_eq!(f.line_col(9), (2, 3));
    }

    #[test]
    fn sql_position_maps_into_a_multiline_literal() {
        let text = "ddl = \"\"\"\nCREATE TABLE t (\n  x nosuchtype);\n\"\"\"\n".to_string();
        let f = SourceFile::new(Path::new("s.toml"), text.clone());
        let start = text.find("\"\"\"").unwrap();
        let end = text.rfind("\"\"\"").unwrap() + 3;
        let value = "CREATE TABLE t (\n  x nosuchtype);\n".to_string();
        let sql = SqlText::new(&f, value.clone(), start..end);
        let pos = value.find("nosuchtype").unwrap() as u32 + 1;
        let loc = sql.location_of(Some(pos));
        assert_eq!((loc.line, loc.column), (3, 5));
    }

    #[test]
    fn escaped_literal_falls_back_to_its_start() {
        let text = "sql = \"SELECT \\\"x\\\"\"".to_string();
        let f = SourceFile::new(Path::new("s.toml"), text.clone());
        let sql = SqlText::new(&f, "SELECT \"x\"".into(), 6..text.len());
        let loc = sql.location_of(Some(8));
        assert_eq!((loc.line, loc.column), (1, 7));
    }
}
