//! SQL as Postgres' own parser reads it (`pg_query`, libpg_query): every
//! statement of a scenario is parsed when the file is checked, so that a
//! typo costs a second, not a run; and what a statement is (a read, a
//! statement that cannot run in a transaction block, one that can be
//! prepared) is decided from its parse tree, never from its text.
//!
//! `pg_query::parse` reports only the message of a syntax error. Where the
//! error is, the `cursorpos` libpg_query computes, is read through the same
//! C function the crate calls (see [`syntax_error`]).

use std::ffi::{CStr, CString, c_char, c_int};
use std::ops::Range;

use pg_query::NodeRef;

/// A statement Postgres' parser refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The parser's message, e.g. `syntax error at or near "FORM"`.
    pub message: String,
    /// 1-based character position in the text, when the parser gave one.
    pub position: Option<u32>,
}

/// What a statement is, as far as trying it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// A query that can be prepared: SELECT (and VALUES), INSERT, UPDATE,
    /// DELETE, MERGE.
    Query,
    /// Code whose effect is known only by running it: `DO`, `CALL`.
    Code,
    /// Anything else: a schema change, SET, VACUUM, ...
    Utility,
}

/// A parsed SQL text: one or more statements.
pub struct Parsed {
    tree: pg_query::ParseResult,
    len: usize,
}

/// Parses `sql`.
pub fn parse(sql: &str) -> Result<Parsed, SyntaxError> {
    if let Some(byte) = sql.find('\0') {
        let position = sql[..byte].chars().count() as u32 + 1;
        return Err(SyntaxError {
            message: "a NUL character cannot be sent to Postgres".into(),
            position: Some(position),
        });
    }
    match pg_query::parse(sql) {
        Ok(tree) => Ok(Parsed { tree, len: sql.len() }),
        Err(pg_query::Error::Parse(message)) => {
            Err(syntax_error(sql).unwrap_or(SyntaxError { message, position: None }))
        }
        Err(e) => Err(SyntaxError { message: e.to_string(), position: None }),
    }
}

// The layout of libpg_query's `PgQueryError` and
// `PgQueryProtobufParseResult` (pg_query.h), which the pg_query crate links.
#[repr(C)]
struct PgQueryError {
    message: *mut c_char,
    funcname: *mut c_char,
    filename: *mut c_char,
    lineno: c_int,
    cursorpos: c_int,
    context: *mut c_char,
}

#[repr(C)]
struct PgQueryProtobuf {
    len: usize,
    data: *mut c_char,
}

#[repr(C)]
struct PgQueryProtobufParseResult {
    parse_tree: PgQueryProtobuf,
    stderr_buffer: *mut c_char,
    error: *mut PgQueryError,
}

unsafe extern "C" {
    fn pg_query_parse_protobuf(input: *const c_char) -> PgQueryProtobufParseResult;
    fn pg_query_free_protobuf_parse_result(result: PgQueryProtobufParseResult);
}

/// The syntax error of `sql` with its position, or `None` if it parses.
pub fn syntax_error(sql: &str) -> Option<SyntaxError> {
    let input = CString::new(sql).ok()?;
    // SAFETY: the function reads a NUL-terminated string and returns a
    // struct that owns its pointers until it is freed below; the message is
    // copied out before that.
    unsafe {
        let result = pg_query_parse_protobuf(input.as_ptr());
        let found = (!result.error.is_null()).then(|| {
            let e = &*result.error;
            let message = if e.message.is_null() {
                String::new()
            } else {
                CStr::from_ptr(e.message).to_string_lossy().into_owned()
            };
            SyntaxError { message, position: u32::try_from(e.cursorpos).ok().filter(|p| *p > 0) }
        });
        pg_query_free_protobuf_parse_result(result);
        found
    }
}

impl Parsed {
    /// How many statements the text holds.
    pub fn len(&self) -> usize {
        self.tree.protobuf.stmts.len()
    }

    /// Whether the text holds no statement (only blanks and comments).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The byte range of each statement in the text.
    pub fn ranges(&self) -> Vec<Range<usize>> {
        self.tree
            .protobuf
            .stmts
            .iter()
            .map(|s| {
                let start = (s.stmt_location.max(0) as usize).min(self.len);
                let end = if s.stmt_len > 0 { (start + s.stmt_len as usize).min(self.len) } else { self.len };
                start..end
            })
            .collect()
    }

    /// What each statement is.
    pub fn kinds(&self) -> Vec<StatementKind> {
        self.tree
            .protobuf
            .stmts
            .iter()
            .map(|s| match s.stmt.as_ref().and_then(|n| n.node.as_ref()).map(|n| n.to_ref()) {
                Some(
                    NodeRef::SelectStmt(_)
                    | NodeRef::InsertStmt(_)
                    | NodeRef::UpdateStmt(_)
                    | NodeRef::DeleteStmt(_)
                    | NodeRef::MergeStmt(_),
                ) => StatementKind::Query,
                Some(NodeRef::DoStmt(_) | NodeRef::CallStmt(_)) => StatementKind::Code,
                _ => StatementKind::Utility,
            })
            .collect()
    }

    /// Whether each statement can be prepared (see [`StatementKind::Query`]).
    pub fn preparable(&self) -> Vec<bool> {
        self.kinds().into_iter().map(|k| k == StatementKind::Query).collect()
    }

    /// Whether a statement of the text cannot run inside a transaction
    /// block: `CREATE INDEX`, `DROP INDEX` and `REINDEX` `CONCURRENTLY`,
    /// `DETACH PARTITION … CONCURRENTLY`, `VACUUM`, `CLUSTER`, `CREATE` and
    /// `DROP DATABASE`, `ALTER SYSTEM`, `CREATE` and `DROP TABLESPACE`.
    pub fn needs_own_transaction(&self) -> bool {
        let mut found = false;
        walk(&self.json(), &mut |kind, node| {
            let flag = |name: &str| node.get(name).and_then(serde_json::Value::as_bool) == Some(true);
            found |= match kind {
                "IndexStmt" | "DropStmt" | "PartitionCmd" => flag("concurrent"),
                "VacuumStmt" => flag("is_vacuumcmd"),
                "ReindexStmt" => node.to_string().contains("\"defname\":\"concurrently\""),
                "ClusterStmt"
                | "CreatedbStmt"
                | "DropdbStmt"
                | "AlterSystemStmt"
                | "CreateTableSpaceStmt"
                | "DropTableSpaceStmt" => true,
                _ => false,
            };
        });
        found
    }

    /// Whether the (first) statement opens or ends a transaction block.
    pub fn transaction_control(&self) -> Option<super::TxControl> {
        use pg_query::protobuf::TransactionStmtKind as K;
        let first = self.tree.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()?;
        let NodeRef::TransactionStmt(t) = first.to_ref() else { return None };
        match t.kind() {
            K::TransStmtBegin | K::TransStmtStart => Some(super::TxControl::Begin),
            K::TransStmtCommit | K::TransStmtRollback | K::TransStmtPrepare => Some(super::TxControl::End),
            _ => None,
        }
    }

    /// Whether every statement only reads: a SELECT (or VALUES) that takes
    /// no row locks (`FOR UPDATE`, `FOR SHARE`, …), creates no table
    /// (`SELECT … INTO`), and holds no data-modifying `WITH`.
    pub fn is_read_only(&self) -> bool {
        let tops_are_selects = self.tree.protobuf.stmts.iter().all(|s| {
            matches!(
                s.stmt.as_ref().and_then(|n| n.node.as_ref()).map(|n| n.to_ref()),
                Some(NodeRef::SelectStmt(sel)) if sel.into_clause.is_none()
            )
        });
        let mut writes = false;
        walk(&self.json(), &mut |kind, _| {
            writes |= matches!(
                kind,
                "LockingClause" | "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" | "IntoClause"
            );
        });
        tops_are_selects && !writes
    }

    /// The whole tree as JSON, to visit every node: the crate's own
    /// `nodes()` leaves out parts that do not name tables (locking clauses,
    /// options).
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.tree.protobuf).unwrap_or_default()
    }

    /// The tables the text reads or writes, as written (`orders`,
    /// `shop.orders`).
    pub fn tables(&self) -> Vec<String> {
        self.tree.tables()
    }
}

/// Calls `visit(key, value)` for every key of every object in `v`: node
/// kinds appear as keys (`{"SelectStmt": {…}}`).
pub(crate) fn walk(v: &serde_json::Value, visit: &mut impl FnMut(&str, &serde_json::Value)) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                visit(k, child);
                walk(child, visit);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, visit)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(sql: &str) -> Parsed {
        parse(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    #[test]
    fn a_syntax_error_has_its_position() {
        let e = parse("SELECT * FORM orders").err().unwrap();
        assert!(e.message.contains("syntax error at or near \"FORM\""), "{e:?}");
        assert_eq!(e.position, Some(10));
        // Characters, not bytes.
        let e = parse("SELECT 'é', * FORM t").err().unwrap();
        assert_eq!(e.position, Some(15));
        let e = parse("SELECT 1\0").err().unwrap();
        assert_eq!(e.position, Some(9));
    }

    #[test]
    fn statements_that_cannot_run_in_a_transaction_block() {
        for sql in [
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            "create unique index concurrently if not exists i on t (a)",
            "DROP INDEX CONCURRENTLY i",
            "REINDEX INDEX CONCURRENTLY i",
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
            "VACUUM t",
            "VACUUM (ANALYZE) t",
            "CLUSTER t USING i",
            "CREATE DATABASE d",
            "ALTER SYSTEM SET work_mem = '1MB'",
        ] {
            assert!(p(sql).needs_own_transaction(), "{sql}");
        }
        for sql in [
            "CREATE INDEX i ON t (a)",
            "ANALYZE t",
            "ALTER TABLE t ADD COLUMN \"concurrently\" int",
            "SELECT 'CONCURRENTLY'",
            "UPDATE t SET note = 'vacuum'",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY m",
        ] {
            assert!(!p(sql).needs_own_transaction(), "{sql}");
        }
    }

    #[test]
    fn reads_are_told_from_writes_and_row_locks() {
        for sql in [
            "SELECT * FROM t WHERE id = $1",
            "with x as (select 1) select * from x",
            "SELECT last_update FROM t",
            "SELECT 'delete ' || note FROM t",
            "VALUES (1)",
            "SELECT a FROM t UNION SELECT b FROM u",
        ] {
            assert!(p(sql).is_read_only(), "{sql}");
        }
        for sql in [
            "SELECT * FROM t WHERE id = $1 FOR UPDATE",
            "select * from t for no key update",
            "SELECT * FROM t FOR SHARE SKIP LOCKED",
            "UPDATE t SET a = 1",
            "with d as (delete from t returning *) select * from d",
            "SELECT * INTO copy FROM t",
            "SELECT 1; UPDATE t SET a = 1",
        ] {
            assert!(!p(sql).is_read_only(), "{sql}");
        }
    }

    #[test]
    fn statements_and_their_ranges() {
        let sql = "SELECT 1; CREATE INDEX i ON t (a);\n  UPDATE t SET a = 2";
        let parsed = p(sql);
        let pieces: Vec<&str> = parsed.ranges().into_iter().map(|r| sql[r].trim()).collect();
        assert_eq!(pieces, ["SELECT 1", "CREATE INDEX i ON t (a)", "UPDATE t SET a = 2"]);
        assert_eq!(parsed.preparable(), [true, false, true]);
        let code = p("DO $$ BEGIN PERFORM 1; END $$; CALL p(); VACUUM t");
        assert_eq!(code.kinds(), [StatementKind::Code, StatementKind::Code, StatementKind::Utility]);
        assert!(p("-- nothing\n").is_empty());
    }
}
