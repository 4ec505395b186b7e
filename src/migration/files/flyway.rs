//! Flyway: versioned `V<version>__<description>.sql` (the version's parts
//! separated by `.` or `_`, compared as numbers), then repeatable
//! `R__<description>.sql` in order of their description, and undo
//! `U<version>__<description>.sql` as the downs of the versioned ones.
//! Flyway cuts a script into statements and runs them one by one in a
//! transaction of the script, unless the script holds a statement that
//! cannot run in one (`CREATE INDEX CONCURRENTLY`, `VACUUM`, …) or its
//! `<script>.conf` says `executeInTransaction=false`: then each statement
//! is sent on its own. A script that mixes both kinds is refused, as
//! Flyway refuses it (its `mixed` setting is off by default).

use std::path::Path;
use std::sync::Arc;

use super::{Migration, Script, Sending, file_name, files, invalid_at, load, numeric_key, split};
use crate::scenario::source::SourceFile;
use crate::scenario::{ScenarioError, sql_parse};

/// The migrations of a Flyway folder.
pub fn read(dir: &Path) -> Result<Vec<Migration>, ScenarioError> {
    let all = files(dir)?;
    let mut out = Vec::new();
    for path in &all {
        let name = file_name(path);
        let Some((kind, version, desc)) = parse_name(&name) else { continue };
        let key = match kind {
            'V' => (numeric_key(version), String::new()),
            'R' => (vec![u128::MAX], desc.to_string()),
            _ => continue,
        };
        let undo = all.iter().find(|p| parse_name(&file_name(p)).is_some_and(|(k, v, _)| k == 'U' && v == version));
        let down = match (kind, undo) {
            ('V', Some(u)) => load(u).and_then(|s| script(&s)).ok(),
            _ => None,
        };
        out.push(Migration {
            version: if kind == 'R' { format!("R {desc}") } else { version.to_string() },
            key,
            name: desc.to_string(),
            up: script(&load(path)?)?,
            down,
            path: path.clone(),
        });
    }
    Ok(out)
}

/// `V1_2__add.sql` → (`V`, `1_2`, `add`); `R__views.sql` → (`R`, ``, `views`).
pub fn parse_name(name: &str) -> Option<(char, &str, &str)> {
    let kind = name.chars().next().filter(|c| matches!(c, 'V' | 'R' | 'U'))?;
    let stem = name[1..].strip_suffix(".sql")?;
    let (version, desc) = stem.split_once("__")?;
    let valid = match kind {
        'R' => version.is_empty(),
        _ => {
            !version.is_empty()
                && version.starts_with(|c: char| c.is_ascii_digit())
                && version.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '_')
        }
    };
    valid.then_some((kind, version, desc))
}

/// Whether the script's `.conf` file turns the transaction off.
fn conf_says_no_transaction(source: &SourceFile) -> bool {
    let mut conf = source.path.clone().into_os_string();
    conf.push(".conf");
    std::fs::read_to_string(conf).is_ok_and(|text| {
        text.lines().any(|l| {
            let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            l.eq_ignore_ascii_case("executeInTransaction=false")
        })
    })
}

/// A Flyway script: statement by statement, in a transaction unless it
/// cannot be.
pub fn script(source: &Arc<SourceFile>) -> Result<Script, ScenarioError> {
    let pieces = split::each_statement(source, 0..source.text.len())?;
    let outside: Vec<bool> = pieces
        .iter()
        .map(|p| sql_parse::parse(&source.text[p.range.clone()]).is_ok_and(|q| q.needs_own_transaction()))
        .collect();
    let (sending, why) = if conf_says_no_transaction(source) {
        (Sending::Separately, "`executeInTransaction=false` in its .conf: each statement sent on its own")
    } else if outside.iter().any(|o| *o) {
        if let Some(i) = outside.iter().position(|o| !*o) {
            return Err(invalid_at(
                source,
                pieces[i].range.start,
                "Flyway refuses this script: it mixes statements that must run outside a transaction \
                 with ones that run inside (`mixed` is off by default); put them in separate scripts"
                    .into(),
            ));
        }
        (Sending::Separately, "it cannot run in a transaction: Flyway sends each statement on its own")
    } else {
        (Sending::Transaction, "statement by statement in the transaction Flyway opens for the script")
    };
    Ok(Script { source: source.clone(), sending, why: why.into(), pieces })
}
