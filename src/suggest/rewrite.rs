//! The known safe rewrites of one statement, read from its parse tree
//! (`pg_query`) and written back with Postgres' own deparser, so that
//! quoting, types and expressions stay as the user wrote them.

use std::collections::BTreeMap;

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableCmd, AlterTableStmt, AlterTableType, ConstrType, Constraint, Node, ObjectType};
use pg_query::protobuf::{DropBehavior, LimitOption, RangeVar, ResTarget, SelectStmt, SetOperation, UpdateStmt};

use crate::scenario::shapes::TableShape;

/// How a derived statement runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// It needs a strong lock: `lock_timeout` and retries.
    Locking,
    /// `CONCURRENTLY`: outside a transaction, never retried (a failed build
    /// leaves an invalid index to drop first).
    Concurrent,
    /// Batches in key order; the key column, quoted.
    Keyset(String),
    /// Batches that search again for the rows still to do (no single-column
    /// key to walk).
    Rescan,
}

/// One statement of a rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// A label.
    pub name: String,
    /// The SQL.
    pub sql: String,
    /// How it runs.
    pub kind: Kind,
}

/// The rewrite of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// What replaces it, in order.
    pub steps: Vec<Derived>,
    /// The rule applied; `None` when there is no known safer form.
    pub rule: Option<&'static str>,
    /// What the user should know (a statement with no safe form, a
    /// fallback).
    pub note: Option<String>,
}

/// Rows per batch of a derived backfill.
pub const BATCH: u64 = 10_000;

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn table_name(r: &RangeVar) -> String {
    if r.schemaname.is_empty() { quote(&r.relname) } else { format!("{}.{}", quote(&r.schemaname), quote(&r.relname)) }
}

fn deparse(node: NodeEnum) -> Option<String> {
    node.deparse().ok()
}

/// An expression as SQL, through the deparser (`SELECT <expr>`).
fn expr_sql(expr: &Node) -> Option<String> {
    let target = ResTarget { val: Some(Box::new(expr.clone())), ..Default::default() };
    // Every enum of a node the deparser reads must hold a valid value: its
    // default, 0, is "undefined", which libpg_query asserts against.
    let select = SelectStmt {
        target_list: vec![Node { node: Some(NodeEnum::ResTarget(Box::new(target))) }],
        op: SetOperation::SetopNone as i32,
        limit_option: LimitOption::Default as i32,
        ..Default::default()
    };
    deparse(NodeEnum::SelectStmt(Box::new(select)))?.strip_prefix("SELECT ").map(str::to_string)
}

/// `ALTER TABLE <relation> <cmd>`, deparsed.
fn alter(relation: &RangeVar, cmd: AlterTableCmd) -> Option<String> {
    let stmt = AlterTableStmt {
        relation: Some(relation.clone()),
        cmds: vec![Node { node: Some(NodeEnum::AlterTableCmd(Box::new(cmd))) }],
        objtype: ObjectType::ObjectTable as i32,
        missing_ok: false,
    };
    deparse(NodeEnum::AlterTableStmt(stmt))
}

fn cmd(subtype: AlterTableType, name: &str, def: Option<NodeEnum>) -> AlterTableCmd {
    AlterTableCmd {
        subtype: subtype as i32,
        name: name.to_string(),
        def: def.map(|d| Box::new(Node { node: Some(d) })),
        behavior: DropBehavior::DropRestrict as i32,
        ..Default::default()
    }
}

fn locking(name: &str, sql: String) -> Derived {
    Derived { name: name.into(), sql, kind: Kind::Locking }
}

/// Functions whose value differs per row: a default calling one makes
/// `ADD COLUMN` rewrite the table (the list is Postgres' common volatile
/// built-ins and extensions; a user's own volatile function is not known).
const VOLATILE: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "setseed",
    "txid_current",
];

fn is_volatile(expr: &Node) -> bool {
    let Some(node) = expr.node.as_ref() else { return false };
    node.nodes().iter().any(|(n, ..)| match n {
        pg_query::NodeRef::FuncCall(f) => f.funcname.iter().any(|p| match &p.node {
            Some(NodeEnum::String(s)) => VOLATILE.contains(&s.sval.as_str()),
            _ => false,
        }),
        _ => false,
    })
}

/// The steps that set NOT NULL on `col` without a long ACCESS EXCLUSIVE
/// scan: a CHECK proven without blocking writes, then SET NOT NULL (which
/// uses it, PG12+), then the CHECK dropped.
fn not_null_steps(relation: &RangeVar, col: &str) -> Option<Vec<Derived>> {
    let name = format!("{}_{}_not_null", relation.relname, col);
    let check = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID",
        table_name(relation),
        quote(&name),
        quote(col)
    );
    Some(vec![
        locking("check not valid", check),
        locking("validate", alter(relation, cmd(AlterTableType::AtValidateConstraint, &name, None))?),
        locking("set not null", alter(relation, cmd(AlterTableType::AtSetNotNull, col, None))?),
        locking("drop check", alter(relation, cmd(AlterTableType::AtDropConstraint, &name, None))?),
    ])
}

/// The single-column primary key of `relation`, when the scenario's DDL
/// gives one.
fn key_of<'a>(relation: &RangeVar, shapes: &'a BTreeMap<String, TableShape>) -> Option<&'a str> {
    let shape =
        shapes.get(&relation.relname).or_else(|| shapes.values().find(|s| s.name.ends_with(&relation.relname)))?;
    match shape.primary_key.as_slice() {
        [one] => Some(one.as_str()),
        _ => None,
    }
}

/// A backfill of `set` (`col = expr, ...`) over `relation`, in batches:
/// keyset on its single-column key, else searching for `pending`.
fn backfill(
    relation: &RangeVar,
    set: &str,
    pending: Option<&str>,
    shapes: &BTreeMap<String, TableShape>,
) -> (Derived, Option<String>) {
    let t = table_name(relation);
    match key_of(relation, shapes) {
        Some(key) => {
            let k = quote(key);
            let still = pending.map(|p| format!(" AND {p}")).unwrap_or_default();
            let sql = format!(
                "WITH batch AS (SELECT {k} FROM {t} {after} ORDER BY {k} LIMIT {BATCH}),\n     done AS (UPDATE {t} AS x SET {set} FROM batch WHERE x.{k} = batch.{k}{still})\nSELECT count(*), max({k})::text FROM batch",
                after = crate::scenario::AFTER
            );
            (Derived { name: "backfill (keyset)".into(), sql, kind: Kind::Keyset(k) }, None)
        }
        None => {
            let p = pending.unwrap_or("true");
            let sql =
                format!("UPDATE {t} SET {set} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {t} WHERE {p} LIMIT {BATCH}))");
            let note = format!(
                "{t} has no single-column primary key in the scenario, so the backfill searches for the rows still to do in every batch, and slows as it goes"
            );
            (Derived { name: "backfill".into(), sql, kind: Kind::Rescan }, Some(note))
        }
    }
}

/// The rewrite of `sql`, one statement; `None` when the statement needs
/// no rewrite beyond a `lock_timeout` (or cannot be read).
pub fn rewrite(sql: &str, shapes: &BTreeMap<String, TableShape>) -> Option<Rewrite> {
    let tree = pg_query::parse(sql).ok()?;
    let [raw] = tree.protobuf.stmts.as_slice() else { return None };
    match raw.stmt.as_ref()?.node.as_ref()? {
        NodeEnum::IndexStmt(i) if !i.concurrent => {
            let mut i = i.clone();
            i.concurrent = true;
            let step = Derived {
                name: "create index concurrently".into(),
                sql: deparse(NodeEnum::IndexStmt(i))?,
                kind: Kind::Concurrent,
            };
            Some(Rewrite {
                steps: vec![step],
                rule: Some("CREATE INDEX → CONCURRENTLY, outside a transaction"),
                note: None,
            })
        }
        NodeEnum::DropStmt(d)
            if d.remove_type == ObjectType::ObjectIndex as i32
                && !d.concurrent
                && d.objects.len() == 1
                && d.behavior != DropBehavior::DropCascade as i32 =>
        {
            let mut d = d.clone();
            d.concurrent = true;
            let step = Derived {
                name: "drop index concurrently".into(),
                sql: deparse(NodeEnum::DropStmt(d))?,
                kind: Kind::Concurrent,
            };
            Some(Rewrite {
                steps: vec![step],
                rule: Some("DROP INDEX → CONCURRENTLY, outside a transaction"),
                note: None,
            })
        }
        NodeEnum::AlterTableStmt(a) => alter_table(a, shapes),
        NodeEnum::UpdateStmt(u) if u.where_clause.is_none() => update_all(u, shapes),
        _ => None,
    }
}

fn alter_table(a: &AlterTableStmt, shapes: &BTreeMap<String, TableShape>) -> Option<Rewrite> {
    let relation = a.relation.as_ref()?;
    let [one] = a.cmds.as_slice() else { return None };
    let Some(NodeEnum::AlterTableCmd(c)) = one.node.as_ref() else { return None };
    match (c.subtype(), c.def.as_ref().and_then(|d| d.node.as_ref())) {
        (AlterTableType::AtAddColumn, Some(NodeEnum::ColumnDef(col))) => add_column(relation, col, shapes),
        (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(k))) => add_constraint(relation, k),
        (AlterTableType::AtSetNotNull, _) => Some(Rewrite {
            steps: not_null_steps(relation, &c.name)?,
            rule: Some("SET NOT NULL → CHECK (… IS NOT NULL) NOT VALID, VALIDATE, SET NOT NULL, DROP CONSTRAINT"),
            note: None,
        }),
        (AlterTableType::AtAlterColumnType, _) => Some(Rewrite {
            steps: vec![locking("alter column type", deparse(NodeEnum::AlterTableStmt(a.clone()))?)],
            rule: None,
            note: Some(format!(
                "no known safe form: changing the type of {}.{} rewrites the table and rebuilds its indexes under ACCESS EXCLUSIVE, unless the new type is binary-compatible (varchar(n) to a longer varchar or to text); the way without the lock is a new column, a backfill and a switch in the application. Its cost is what the original's rehearsal measured",
                relation.relname, c.name
            )),
        }),
        _ => None,
    }
}

fn add_column(
    relation: &RangeVar,
    col: &pg_query::protobuf::ColumnDef,
    shapes: &BTreeMap<String, TableShape>,
) -> Option<Rewrite> {
    let kinds: Vec<(ConstrType, &Constraint)> = col
        .constraints
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::Constraint(k)) => Some((k.contype(), k.as_ref())),
            _ => None,
        })
        .collect();
    let default = kinds.iter().find(|(t, _)| *t == ConstrType::ConstrDefault).and_then(|(_, k)| k.raw_expr.as_deref());
    let not_null = kinds.iter().any(|(t, _)| *t == ConstrType::ConstrNotnull);
    let others = kinds
        .iter()
        .any(|(t, _)| !matches!(t, ConstrType::ConstrDefault | ConstrType::ConstrNotnull | ConstrType::ConstrNull));
    let volatile = default.is_some_and(is_volatile);
    if others || !(volatile || (not_null && default.is_some())) {
        return None;
    }
    let mut bare = col.clone();
    bare.constraints.clear();
    let name = &col.colname;
    let mut steps = vec![locking(
        "add nullable column",
        alter(relation, cmd(AlterTableType::AtAddColumn, "", Some(NodeEnum::ColumnDef(Box::new(bare)))))?,
    )];
    let expr = default?;
    steps.push(locking("set default", alter(relation, cmd(AlterTableType::AtColumnDefault, name, expr.node.clone()))?));
    let set = format!("{} = {}", quote(name), expr_sql(expr)?);
    let (fill, note) = backfill(relation, &set, Some(&format!("{} IS NULL", quote(name))), shapes);
    steps.push(fill);
    if not_null {
        steps.extend(not_null_steps(relation, name)?);
    }
    Some(Rewrite {
        steps,
        rule: Some(
            "ADD COLUMN … NOT NULL DEFAULT (or a volatile DEFAULT) → add it nullable, set the default, backfill in key-ordered batches, then the NOT NULL steps",
        ),
        note,
    })
}

fn add_constraint(relation: &RangeVar, k: &Constraint) -> Option<Rewrite> {
    let (suffix, rule) = match k.contype() {
        ConstrType::ConstrForeign if !k.skip_validation => ("fkey", "ADD FOREIGN KEY → NOT VALID, then VALIDATE"),
        ConstrType::ConstrCheck if !k.skip_validation => ("check", "ADD CHECK → NOT VALID, then VALIDATE"),
        _ => return None,
    };
    let mut k = k.clone();
    if k.conname.is_empty() {
        let cols: Vec<String> = k
            .fk_attrs
            .iter()
            .filter_map(|n| match &n.node {
                Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                _ => None,
            })
            .collect();
        k.conname = if cols.is_empty() {
            format!("{}_{suffix}", relation.relname)
        } else {
            format!("{}_{}_{suffix}", relation.relname, cols.join("_"))
        };
    }
    k.skip_validation = true;
    k.initially_valid = false;
    let name = k.conname.clone();
    let add = alter(relation, cmd(AlterTableType::AtAddConstraint, "", Some(NodeEnum::Constraint(Box::new(k)))))?;
    let validate = alter(relation, cmd(AlterTableType::AtValidateConstraint, &name, None))?;
    Some(Rewrite {
        steps: vec![locking("add not valid", add), locking("validate", validate)],
        rule: Some(rule),
        note: None,
    })
}

fn update_all(u: &UpdateStmt, shapes: &BTreeMap<String, TableShape>) -> Option<Rewrite> {
    let relation = u.relation.as_ref()?;
    if u.with_clause.is_some() || !u.from_clause.is_empty() || relation.alias.is_some() {
        return None;
    }
    if key_of(relation, shapes).is_none() {
        let note = format!(
            "UPDATE of every row of {}: no single-column primary key in the scenario to batch it by; it stays as written",
            relation.relname
        );
        return Some(Rewrite { steps: Vec::new(), rule: None, note: Some(note) });
    }
    // `SET a = …, b = …` as the user wrote it, through the deparser.
    let plain =
        UpdateStmt { relation: Some(relation.clone()), target_list: u.target_list.clone(), ..Default::default() };
    let text = deparse(NodeEnum::UpdateStmt(Box::new(plain)))?;
    let set = text.split_once(" SET ")?.1.to_string();
    let (fill, note) = backfill(relation, &set, None, shapes);
    Some(Rewrite {
        steps: vec![fill],
        rule: Some("UPDATE of every row → the same in key-ordered batches with pauses"),
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> BTreeMap<String, TableShape> {
        crate::scenario::shapes::tables([
            "CREATE TABLE customers (id bigint PRIMARY KEY)",
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, total int, note text)",
            "CREATE TABLE events (at timestamptz, body text)",
        ])
    }

    fn steps(sql: &str) -> Vec<Derived> {
        let r = rewrite(sql, &shapes()).unwrap_or_else(|| panic!("no rewrite of {sql}"));
        for d in &r.steps {
            let runnable = d.sql.replace(crate::scenario::AFTER, "");
            assert!(pg_query::parse(&runnable).is_ok(), "the derived SQL parses: {runnable}");
        }
        r.steps
    }

    fn sqls(d: &[Derived]) -> Vec<&str> {
        d.iter().map(|d| d.sql.as_str()).collect()
    }

    #[test]
    fn index_builds_and_drops_become_concurrent() {
        let s = steps("CREATE UNIQUE INDEX orders_note_idx ON orders (lower(note)) WHERE note IS NOT NULL");
        assert_eq!(
            sqls(&s),
            [
                "CREATE UNIQUE INDEX CONCURRENTLY orders_note_idx ON orders USING btree (lower(note)) WHERE note IS NOT NULL"
            ]
        );
        assert_eq!(s[0].kind, Kind::Concurrent);
        assert_eq!(sqls(&steps("DROP INDEX orders_note_idx")), ["DROP INDEX CONCURRENTLY orders_note_idx"]);
        assert!(rewrite("DROP INDEX a, b", &shapes()).is_none(), "CONCURRENTLY drops one index");
        assert!(rewrite("DROP INDEX a CASCADE", &shapes()).is_none(), "nor with CASCADE");
        assert!(rewrite("CREATE INDEX CONCURRENTLY i ON orders (note)", &shapes()).is_none());
    }

    #[test]
    fn constraints_are_added_not_valid_then_validated() {
        let s = steps("ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id)");
        assert_eq!(
            sqls(&s),
            [
                "ALTER TABLE orders ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID",
                "ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_id_fkey",
            ]
        );
        let s = steps("ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total > 0)");
        assert_eq!(
            sqls(&s),
            [
                "ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total > 0) NOT VALID",
                "ALTER TABLE orders VALIDATE CONSTRAINT total_positive"
            ]
        );
        assert!(rewrite("ALTER TABLE orders ADD CONSTRAINT c CHECK (total > 0) NOT VALID", &shapes()).is_none());
    }

    #[test]
    fn set_not_null_goes_through_a_validated_check() {
        let s = steps("ALTER TABLE orders ALTER COLUMN note SET NOT NULL");
        assert_eq!(
            sqls(&s),
            [
                "ALTER TABLE \"orders\" ADD CONSTRAINT \"orders_note_not_null\" CHECK (\"note\" IS NOT NULL) NOT VALID",
                "ALTER TABLE orders VALIDATE CONSTRAINT orders_note_not_null",
                "ALTER TABLE orders ALTER COLUMN note SET NOT NULL",
                "ALTER TABLE orders DROP CONSTRAINT orders_note_not_null",
            ]
        );
    }

    #[test]
    fn a_not_null_default_column_is_added_empty_and_backfilled_by_key() {
        let s = steps("ALTER TABLE orders ADD COLUMN status varchar(50) DEFAULT 'pending' NOT NULL");
        assert_eq!(s.len(), 7);
        assert_eq!(s[0].sql, "ALTER TABLE orders ADD COLUMN status varchar(50)");
        assert_eq!(s[1].sql, "ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'pending'");
        assert_eq!(s[2].kind, Kind::Keyset("\"id\"".into()));
        assert!(
            s[2].sql.contains("SET \"status\" = 'pending'") && s[2].sql.contains("ORDER BY \"id\" LIMIT 10000"),
            "{}",
            s[2].sql
        );
        assert!(s[2].sql.contains("AND \"status\" IS NULL"), "rows the application wrote since keep their values");
        assert_eq!(s[5].sql, "ALTER TABLE orders ALTER COLUMN status SET NOT NULL");
        // A constant default on a nullable column is free since PG11.
        assert!(rewrite("ALTER TABLE orders ADD COLUMN status text DEFAULT 'x'", &shapes()).is_none());
        // A volatile one rewrites the table: backfilled, without NOT NULL steps.
        let s = steps("ALTER TABLE orders ADD COLUMN ref uuid DEFAULT gen_random_uuid()");
        assert_eq!(s.len(), 3);
        assert!(s[2].sql.contains("SET \"ref\" = gen_random_uuid()"), "{}", s[2].sql);
    }

    #[test]
    fn without_a_key_the_backfill_rescans_and_says_so() {
        let r = rewrite("ALTER TABLE events ADD COLUMN kind text DEFAULT 'x' NOT NULL", &shapes()).unwrap();
        assert_eq!(r.steps[2].kind, Kind::Rescan);
        assert!(r.note.unwrap().contains("no single-column primary key"));
    }

    #[test]
    fn an_update_of_every_row_is_batched_and_a_type_change_has_no_safe_form() {
        let s = steps("UPDATE orders SET note = upper(note), total = total + 1");
        assert_eq!(s[0].kind, Kind::Keyset("\"id\"".into()));
        assert!(s[0].sql.contains("SET note = upper(note), total = total + 1"), "{}", s[0].sql);
        assert!(rewrite("UPDATE orders SET note = 'x' WHERE id < 10", &shapes()).is_none());
        let r = rewrite("ALTER TABLE orders ALTER COLUMN total TYPE bigint", &shapes()).unwrap();
        assert_eq!(r.rule, None);
        assert!(r.note.unwrap().starts_with("no known safe form"));
    }
}
