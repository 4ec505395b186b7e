//! Which workload statements write, to which table and columns, and the
//! `RETURNING` list that makes the server hand back each written row's key
//! and a digest of the values written.
//!
//! The digest is computed by the server, on the row as it stored it
//! (defaults and casts applied), over the columns the statement wrote:
//! the first 64 bits of `md5(row(c1, c2, …)::text)`. After the run the
//! same expression over the same columns of the table gives the value to
//! compare. A column the migration adds, or a backfill of one, does not
//! change the digest of what the application wrote.

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, RangeVar};

/// What a statement does to its table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// `INSERT` (with or without `ON CONFLICT`).
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`: the row must be gone.
    Delete,
}

/// A single-table write, as read from its SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The table's schema, when the SQL names one.
    pub schema: Option<String>,
    /// The table.
    pub table: String,
    /// The name its columns are qualified with in `RETURNING`: its alias,
    /// else the table's name.
    pub refname: String,
    /// Insert, update or delete.
    pub kind: WriteKind,
    /// The columns it writes: an insert's column list (empty when it has
    /// none: every column), an update's `SET` targets; none for a delete.
    pub columns: Vec<String>,
    /// Whether the statement has a `RETURNING` list of its own.
    pub returns: bool,
}

/// Why a write statement is not in the ledger.
pub type Skip = String;

/// Reads `sql` (one statement). `Ok(None)` when it does not write;
/// `Err` with the reason when it writes in a way the ledger cannot follow.
pub fn read(sql: &str) -> Result<Option<Write>, Skip> {
    let Ok(tree) = pg_query::parse(sql) else { return Ok(None) };
    let [raw] = tree.protobuf.stmts.as_slice() else { return Ok(None) };
    let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else { return Ok(None) };
    let (relation, kind, columns, returning, with) = match node {
        NodeEnum::InsertStmt(i) => {
            (&i.relation, WriteKind::Insert, names(&i.cols), &i.returning_list, i.with_clause.is_some())
        }
        NodeEnum::UpdateStmt(u) => {
            (&u.relation, WriteKind::Update, names(&u.target_list), &u.returning_list, u.with_clause.is_some())
        }
        NodeEnum::DeleteStmt(d) => {
            (&d.relation, WriteKind::Delete, Vec::new(), &d.returning_list, d.with_clause.is_some())
        }
        NodeEnum::MergeStmt(_) => return Err("MERGE is not followed by the ledger".into()),
        _ => return Ok(None),
    };
    if with {
        return Err("a write with a WITH clause is not followed by the ledger".into());
    }
    let Some(RangeVar { schemaname, relname, alias, .. }) = relation else { return Ok(None) };
    let refname = alias.as_ref().map_or(relname.clone(), |a| a.aliasname.clone());
    Ok(Some(Write {
        schema: (!schemaname.is_empty()).then(|| schemaname.clone()),
        table: relname.clone(),
        refname,
        kind,
        columns,
        returns: !returning.is_empty(),
    }))
}

/// The names of a column list or `SET` targets (`SET (a, b) = …` gives
/// each name; `SET a[1] = …` the column).
fn names(nodes: &[Node]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in nodes {
        if let Some(NodeEnum::ResTarget(t)) = &n.node
            && !out.contains(&t.name)
        {
            out.push(t.name.clone());
        }
    }
    out
}

/// `"name"`, quoted as an identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The digest of `columns` of the row `refname`, as an `int8`.
pub fn digest_expr(refname: &str, columns: &[String]) -> String {
    let r = ident(refname);
    let cols: Vec<String> = columns.iter().map(|c| format!("{r}.{}", ident(c))).collect();
    format!("('x' || left(md5(row({})::text), 16))::bit(64)::int8", cols.join(", "))
}

/// `sql` with the key columns (as text) and, unless it deletes, the digest
/// of `columns` appended to its `RETURNING` list: they are the last
/// `keys.len()` (+1) columns of each row it returns.
pub fn with_returning(sql: &str, w: &Write, keys: &[String], columns: &[String]) -> String {
    let r = ident(&w.refname);
    let mut extra: Vec<String> = keys.iter().map(|k| format!("{r}.{}::text", ident(k))).collect();
    if w.kind != WriteKind::Delete {
        extra.push(digest_expr(&w.refname, columns));
    }
    let body = &sql[..statement_end(sql)];
    let joiner = if w.returns { ", " } else { " RETURNING " };
    format!("{body}{joiner}{}", extra.join(", "))
}

/// Where the statement's last token ends: a trailing `;` or comment (a
/// `--` comment would swallow what is appended) is not part of it.
fn statement_end(sql: &str) -> usize {
    use pg_query::protobuf::Token;
    let plain = || sql.trim_end().trim_end_matches(';').trim_end().len();
    let Ok(scan) = pg_query::scan(sql) else { return plain() };
    let skip = [Token::SqlComment as i32, Token::CComment as i32, Token::Ascii59 as i32];
    match scan.tokens.iter().rev().find(|t| !skip.contains(&t.token)) {
        Some(t) if sql.is_char_boundary(t.end as usize) => t.end as usize,
        _ => plain(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_updates_and_deletes_are_read_with_their_columns() {
        let w = read("INSERT INTO public.orders AS o (id, status) VALUES ($1, $2)").unwrap().unwrap();
        assert_eq!((w.schema.as_deref(), w.table.as_str(), w.refname.as_str()), (Some("public"), "orders", "o"));
        assert_eq!(
            (w.kind, w.columns.clone(), w.returns),
            (WriteKind::Insert, vec!["id".into(), "status".into()], false)
        );
        let u = read("UPDATE orders SET status = $1, (a, b) = ($2, $3) WHERE id = $4 RETURNING id").unwrap().unwrap();
        assert_eq!(
            (u.kind, u.columns.clone(), u.returns),
            (WriteKind::Update, vec!["status".into(), "a".into(), "b".into()], true)
        );
        let d = read("DELETE FROM orders WHERE id = $1").unwrap().unwrap();
        assert_eq!((d.kind, d.refname.as_str()), (WriteKind::Delete, "orders"));
        assert_eq!(read("SELECT 1").unwrap(), None);
        assert!(read("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x").is_err());
    }

    #[test]
    fn the_returning_list_is_appended_and_still_parses() {
        let w = read("UPDATE orders o SET status = $1 WHERE id = $2 RETURNING o.total;").unwrap().unwrap();
        let sql = with_returning(
            "UPDATE orders o SET status = $1 WHERE id = $2 RETURNING o.total;",
            &w,
            &["id".into()],
            &w.columns,
        );
        assert!(
            sql.ends_with(
                r#"RETURNING o.total, "o"."id"::text, ('x' || left(md5(row("o"."status")::text), 16))::bit(64)::int8"#
            ),
            "{sql}"
        );
        assert!(pg_query::parse(&sql).is_ok());
        let d = read("DELETE FROM t WHERE k = $1").unwrap().unwrap();
        assert_eq!(
            with_returning("DELETE FROM t WHERE k = $1", &d, &["k".into()], &[]),
            r#"DELETE FROM t WHERE k = $1 RETURNING "t"."k"::text"#
        );
    }
}
