//! The tables a schema's SQL creates, read with Postgres' parser before any
//! server runs it: their columns (type, NOT NULL, default, identity,
//! generated), primary key, unique keys and foreign keys, from `CREATE
//! TABLE` and from the `ALTER TABLE … ADD CONSTRAINT` and `CREATE UNIQUE
//! INDEX` statements `pg_dump` writes after it. A derived workload is
//! built from these.

use std::collections::BTreeMap;

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, Constraint, Node, ObjectType, RangeVar};

/// A column as the schema declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnShape {
    /// Its name.
    pub name: String,
    /// Its type's last name (`int8`, `text`, `varchar`).
    pub type_name: String,
    /// NOT NULL (or part of the primary key).
    pub not_null: bool,
    /// It gets a value without being named: a default, an identity, a
    /// serial type.
    pub defaulted: bool,
    /// `GENERATED ALWAYS AS (…) STORED` or `GENERATED ALWAYS AS IDENTITY`:
    /// an INSERT may not name it.
    pub generated_always: bool,
}

/// A table as the schema declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableShape {
    /// Its name as written, without the schema when it is `public`.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<ColumnShape>,
    /// Its primary key's columns.
    pub primary_key: Vec<String>,
    /// Whether a unique key or index other than the primary key exists.
    pub other_unique: bool,
    /// The tables its foreign keys point at.
    pub references: Vec<String>,
    /// A partition (or an inheriting child) of another table: rows go to
    /// it through its parent.
    pub partition: bool,
    /// Its foreign keys by name (as given, or as Postgres names them), with
    /// the table each points at and its columns here: a later `DROP
    /// CONSTRAINT` takes one off.
    pub foreign_keys: Vec<(String, String, Vec<String>)>,
}

fn strings(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

/// `shop.orders` or `orders` (for `public`).
fn name_of(r: &RangeVar) -> String {
    if r.schemaname.is_empty() || r.schemaname == "public" {
        r.relname.clone()
    } else {
        format!("{}.{}", r.schemaname, r.relname)
    }
}

/// The tables `statements` create, by name, with what later statements
/// add to them.
pub fn tables<'a>(statements: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, TableShape> {
    let mut out: BTreeMap<String, TableShape> = BTreeMap::new();
    for sql in statements {
        let Ok(parsed) = pg_query::parse(sql) else { continue };
        for raw in &parsed.protobuf.stmts {
            let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else { continue };
            match node {
                NodeEnum::CreateStmt(c) => {
                    let Some(rel) = &c.relation else { continue };
                    let partition = c.partbound.is_some() || !c.inh_relations.is_empty();
                    let mut t = TableShape { name: name_of(rel), partition, ..Default::default() };
                    for e in &c.table_elts {
                        match e.node.as_ref() {
                            Some(NodeEnum::ColumnDef(cd)) => column(&mut t, cd),
                            Some(NodeEnum::Constraint(k)) => constraint(&mut t, k, &[]),
                            _ => {}
                        }
                    }
                    out.insert(t.name.clone(), t);
                }
                NodeEnum::AlterTableStmt(a) => {
                    // pg_dump's `ALTER TABLE ONLY parent ATTACH PARTITION child …`.
                    for cmd in &a.cmds {
                        let Some(NodeEnum::AlterTableCmd(c)) = cmd.node.as_ref() else { continue };
                        if let Some(NodeEnum::PartitionCmd(p)) = c.def.as_ref().and_then(|d| d.node.as_ref())
                            && c.subtype() == AlterTableType::AtAttachPartition
                            && let Some(child) = p.name.as_ref().and_then(|n| out.get_mut(&name_of(n)))
                        {
                            child.partition = true;
                        }
                    }
                    let Some(t) = a.relation.as_ref().and_then(|r| out.get_mut(&name_of(r))) else { continue };
                    for cmd in &a.cmds {
                        let Some(NodeEnum::AlterTableCmd(c)) = cmd.node.as_ref() else { continue };
                        let col = t.columns.iter_mut().find(|x| x.name == c.name);
                        match (c.subtype(), c.def.as_ref().and_then(|d| d.node.as_ref()), col) {
                            // pg_dump's `ALTER COLUMN id ADD GENERATED … AS IDENTITY`
                            // and a serial's `SET DEFAULT nextval(…)`.
                            (AlterTableType::AtAddIdentity, Some(NodeEnum::Constraint(k)), Some(col)) => {
                                col.defaulted = true;
                                col.generated_always |= k.generated_when == "a";
                                continue;
                            }
                            (AlterTableType::AtColumnDefault, Some(_), Some(col)) => {
                                col.defaulted = true;
                                continue;
                            }
                            // A later migration's `DROP COLUMN`.
                            (AlterTableType::AtDropColumn, _, _) => {
                                t.columns.retain(|x| x.name != c.name);
                                t.primary_key.retain(|k| *k != c.name);
                                continue;
                            }
                            // … and `DROP CONSTRAINT` of a foreign key.
                            (AlterTableType::AtDropConstraint, _, _) => {
                                if let Some(i) = t.foreign_keys.iter().position(|(n, _, _)| *n == c.name) {
                                    let (_, parent, _) = t.foreign_keys.remove(i);
                                    if let Some(j) = t.references.iter().position(|r| *r == parent) {
                                        t.references.remove(j);
                                    }
                                }
                                continue;
                            }
                            _ => {}
                        }
                        match c.def.as_ref().and_then(|d| d.node.as_ref()) {
                            Some(NodeEnum::Constraint(k)) => constraint(t, k, &[]),
                            Some(NodeEnum::ColumnDef(cd)) => column(t, cd),
                            _ => {}
                        }
                    }
                }
                NodeEnum::DropStmt(d) if d.remove_type() == ObjectType::ObjectTable => {
                    for object in &d.objects {
                        let Some(NodeEnum::List(l)) = object.node.as_ref() else { continue };
                        let parts = strings(&l.items);
                        let name = match parts.as_slice() {
                            [schema, table] if schema != "public" => format!("{schema}.{table}"),
                            [.., table] => table.clone(),
                            [] => continue,
                        };
                        drop_table(&mut out, &name);
                    }
                }
                NodeEnum::RenameStmt(r) => rename(&mut out, r),
                NodeEnum::IndexStmt(i) if i.unique || i.primary => {
                    if let Some(t) = i.relation.as_ref().and_then(|r| out.get_mut(&name_of(r))) {
                        if i.primary && t.primary_key.is_empty() {
                            t.primary_key = i
                                .index_params
                                .iter()
                                .filter_map(|p| match p.node.as_ref() {
                                    Some(NodeEnum::IndexElem(e)) => Some(e.name.clone()),
                                    _ => None,
                                })
                                .collect();
                        } else {
                            t.other_unique = true;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for t in out.values_mut() {
        let pk = t.primary_key.clone();
        for c in t.columns.iter_mut().filter(|c| pk.contains(&c.name)) {
            c.not_null = true;
        }
    }
    out
}

fn column(t: &mut TableShape, cd: &pg_query::protobuf::ColumnDef) {
    let type_name =
        cd.type_name.as_ref().map(|n| strings(&n.names)).and_then(|n| n.last().cloned()).unwrap_or_default();
    let serial =
        matches!(type_name.as_str(), "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2");
    let mut c = ColumnShape {
        name: cd.colname.clone(),
        type_name,
        not_null: cd.is_not_null,
        defaulted: serial || cd.raw_default.is_some() || !cd.identity.is_empty(),
        generated_always: cd.identity == "a" || !cd.generated.is_empty(),
    };
    for k in &cd.constraints {
        let Some(NodeEnum::Constraint(k)) = k.node.as_ref() else { continue };
        match k.contype() {
            ConstrType::ConstrNotnull => c.not_null = true,
            ConstrType::ConstrDefault => c.defaulted = true,
            ConstrType::ConstrIdentity => {
                c.defaulted = true;
                c.generated_always |= k.generated_when == "a";
            }
            ConstrType::ConstrGenerated => c.generated_always = true,
            _ => {}
        }
        constraint(t, k, std::slice::from_ref(&c.name));
    }
    t.columns.retain(|x| x.name != c.name);
    t.columns.push(c);
}

/// A later migration's `DROP TABLE`: the table is gone, and so are the
/// foreign keys pointing at it (`CASCADE`, or dropped before).
fn drop_table(out: &mut BTreeMap<String, TableShape>, name: &str) {
    out.remove(name);
    for t in out.values_mut() {
        t.references.retain(|r| r != name);
        t.foreign_keys.retain(|(_, p, _)| p != name);
    }
}

/// `ALTER TABLE … RENAME TO` and `RENAME COLUMN`.
fn rename(out: &mut BTreeMap<String, TableShape>, r: &pg_query::protobuf::RenameStmt) {
    let Some(rel) = &r.relation else { return };
    let old = name_of(rel);
    match r.rename_type() {
        ObjectType::ObjectTable => {
            let Some(mut t) = out.remove(&old) else { return };
            let new = match old.rsplit_once('.') {
                Some((schema, _)) => format!("{schema}.{}", r.newname),
                None => r.newname.clone(),
            };
            t.name = new.clone();
            out.insert(new.clone(), t);
            for t in out.values_mut() {
                for p in t.references.iter_mut().chain(t.foreign_keys.iter_mut().map(|(_, p, _)| p)) {
                    if *p == old {
                        *p = new.clone();
                    }
                }
            }
        }
        ObjectType::ObjectColumn => {
            let Some(t) = out.get_mut(&old) else { return };
            if let Some(c) = t.columns.iter_mut().find(|c| c.name == r.subname) {
                c.name = r.newname.clone();
            }
            for k in t.primary_key.iter_mut().filter(|k| **k == r.subname) {
                *k = r.newname.clone();
            }
        }
        _ => {}
    }
}

/// A constraint of the table, or of column `own` when `keys` is empty.
fn constraint(t: &mut TableShape, k: &Constraint, own: &[String]) {
    let keys = if k.keys.is_empty() { own.to_vec() } else { strings(&k.keys) };
    match k.contype() {
        ConstrType::ConstrPrimary => t.primary_key = keys,
        ConstrType::ConstrUnique | ConstrType::ConstrExclusion => t.other_unique = true,
        ConstrType::ConstrForeign => {
            if let Some(p) = &k.pktable {
                let columns = if k.fk_attrs.is_empty() { own.to_vec() } else { strings(&k.fk_attrs) };
                let table = t.name.rsplit('.').next().unwrap_or(&t.name);
                let name = if k.conname.is_empty() {
                    format!("{table}_{}_fkey", columns.join("_"))
                } else {
                    k.conname.clone()
                };
                t.foreign_keys.push((name, name_of(p), columns));
                t.references.push(name_of(p));
            }
        }
        _ => {}
    }
}

impl TableShape {
    /// The table a single-column foreign key on `column` points at.
    pub fn parent_of(&self, column: &str) -> Option<&str> {
        self.foreign_keys.iter().find(|(_, _, c)| c.len() == 1 && c[0] == column).map(|(_, p, _)| p.as_str())
    }

    /// The primary key's column when it is one integer column.
    pub fn integer_key(&self) -> Option<&ColumnShape> {
        let [pk] = self.primary_key.as_slice() else { return None };
        self.columns.iter().find(|c| &c.name == pk).filter(|c| {
            matches!(
                c.type_name.as_str(),
                "int2"
                    | "int4"
                    | "int8"
                    | "smallint"
                    | "integer"
                    | "int"
                    | "bigint"
                    | "serial"
                    | "bigserial"
                    | "serial4"
                    | "serial8"
            )
        })
    }
}
