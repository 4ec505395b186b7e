//! dbmate: `<version>_<name>.sql` with a `-- migrate:up` section and an
//! optional `-- migrate:down`, in order of the file names. The up section is
//! executed whole, as one string, in a transaction dbmate opens, unless
//! its marker says `transaction:false` (`-- migrate:up transaction:false`):
//! then it is sent as one string on its own.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::{Migration, Script, Sending, invalid_at, split};
use crate::scenario::ScenarioError;
use crate::scenario::source::SourceFile;

/// The migrations of a dbmate folder.
pub fn read(dir: &Path) -> Result<Vec<Migration>, ScenarioError> {
    super::one_file_each(dir, false, parts)
}

/// A section marker: `up` or `down`, and whether it runs in a transaction.
fn marker(line: &str) -> Option<(&'static str, bool)> {
    let rest = line.trim().strip_prefix("--")?.trim_start();
    let rest = rest.strip_prefix("migrate:")?;
    let mut words = rest.split_whitespace();
    let which = match words.next()? {
        "up" => "up",
        "down" => "down",
        _ => return None,
    };
    let tx = !words.any(|w| w == "transaction:false");
    Some((which, tx))
}

/// The up and down parts of a dbmate file.
pub fn parts(source: &Arc<SourceFile>) -> Result<(Script, Option<Script>), ScenarioError> {
    let mut sections: Vec<(&str, bool, Range<usize>)> = Vec::new();
    let mut offset = 0;
    for line in source.text.split_inclusive('\n') {
        let (at, end) = (offset, offset + line.len());
        offset = end;
        if let Some((which, tx)) = marker(line) {
            if let Some(last) = sections.last_mut() {
                last.2.end = at;
            }
            sections.push((which, tx, end..source.text.len()));
        }
    }
    let script = |(_, tx, range): &(&str, bool, Range<usize>)| -> Result<Script, ScenarioError> {
        let piece = split::whole(source, range.clone())?;
        let (sending, why) = if *tx {
            (Sending::Transaction, "whole, in the transaction dbmate opens")
        } else {
            (Sending::Separately, "`transaction:false`: sent as one string, outside a transaction")
        };
        Ok(Script { source: source.clone(), sending, why: why.into(), pieces: piece.into_iter().collect() })
    };
    let up = sections
        .iter()
        .find(|s| s.0 == "up")
        .ok_or_else(|| invalid_at(source, 0, "no `-- migrate:up` marker: dbmate would refuse this file".into()))?;
    let down = sections.iter().find(|s| s.0 == "down").and_then(|s| script(s).ok());
    Ok((script(up)?, down))
}
