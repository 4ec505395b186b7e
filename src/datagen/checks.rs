//! CHECK constraints read into the generators of columns nobody described,
//! so that the rows satisfy them: bounds (`x >= 1`, `x BETWEEN 1 AND 9`),
//! lists (`status IN ('a', 'b')`, printed `= ANY (ARRAY[…])`), lengths
//! (`char_length(name) <= 64`) and non-empty text, in a table's CHECKs and
//! in the CHECKs of a column's domain (`VALUE >= 1901`). A CHECK of another
//! shape (a regular expression, several columns) is left to the load: a
//! CHECK the rows break comes back `NOT VALID`, and the harness says so.

use std::collections::BTreeMap;

use pg_query::NodeEnum;
use pg_query::protobuf::{AExprKind, Node, a_const};
use tokio_postgres::Client;

use super::generate::{TextStyle, ValueGen};
use super::infer::ColumnInfo;
use super::value::PgKind;
use crate::scenario::{GenSpec, Literal, ValueSpec};

/// What a column's CHECKs allow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowed {
    /// The lowest value, inclusive.
    pub lo: Option<f64>,
    /// The highest value, inclusive.
    pub hi: Option<f64>,
    /// The only values.
    pub one_of: Option<Vec<Literal>>,
    /// The longest text, in characters.
    pub max_len: Option<usize>,
    /// The exact length (`octet_length(c) = 32`).
    pub len: Option<usize>,
    /// A prefix (`LIKE 'https://%'`).
    pub prefix: Option<String>,
    /// A regular expression the text matches (`~ '^[a-z]+$'`).
    pub regex: Option<String>,
    /// The column is less than (`Before`) or more than (`After`) another.
    pub order: Option<Order>,
}

/// A column's side of `a < b` between two columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The lesser.
    Before,
    /// The greater.
    After,
}

/// The CHECKs of `table` and of its columns' domains, as (column or
/// `None` for a table CHECK, definition).
pub async fn read(client: &Client, table: &str) -> Result<Vec<(Option<String>, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT NULL::text, pg_get_constraintdef(k.oid) FROM pg_constraint k \
             WHERE k.conrelid = $1::text::regclass AND k.contype = 'c' \
             UNION ALL \
             SELECT a.attname::text, pg_get_constraintdef(k.oid) FROM pg_attribute a \
             JOIN pg_constraint k ON k.contypid = a.atttypid AND k.contype = 'c' \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            &[&table],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// What each column may hold, from the CHECK definitions.
pub fn allowed(defs: &[(Option<String>, String)]) -> BTreeMap<String, Allowed> {
    let mut out: BTreeMap<String, Allowed> = BTreeMap::new();
    for (domain_of, def) in defs {
        let Some(inner) = def.strip_prefix("CHECK ").map(|d| d.trim_end_matches(" NOT VALID")) else { continue };
        let Ok(tree) = pg_query::parse(&format!("SELECT 1 WHERE {inner}")) else { continue };
        let Some(NodeEnum::SelectStmt(sel)) = tree.protobuf.stmts.first().and_then(|s| s.stmt.as_ref()?.node.clone())
        else {
            continue;
        };
        let Some(expr) = sel.where_clause else { continue };
        conjuncts(&expr, &mut |column, rule| {
            let column = match (domain_of, column) {
                (Some(c), "value") => c.clone(),
                (Some(_), _) => return,
                (None, c) => c.to_string(),
            };
            let a = out.entry(column).or_default();
            match rule {
                Rule::AtLeast(v) => a.lo = Some(a.lo.map_or(v, |x| x.max(v))),
                Rule::AtMost(v) => a.hi = Some(a.hi.map_or(v, |x| x.min(v))),
                Rule::OneOf(v) => a.one_of = Some(v),
                Rule::MaxLen(n) => a.max_len = Some(a.max_len.map_or(n, |x| x.min(n))),
                Rule::Len(n) => a.len = Some(n),
                Rule::Prefix(p) => a.prefix = Some(p),
                Rule::Regex(r) => a.regex = Some(r),
                Rule::Order(o) => a.order = a.order.or(Some(o)),
            }
        });
    }
    out
}

enum Rule {
    AtLeast(f64),
    AtMost(f64),
    OneOf(Vec<Literal>),
    MaxLen(usize),
    Len(usize),
    Prefix(String),
    Regex(String),
    Order(Order),
}

fn node(n: &Node) -> Option<&NodeEnum> {
    n.node.as_ref()
}

/// The column a node names, without casts.
fn column(n: &Node) -> Option<String> {
    match node(n)? {
        NodeEnum::ColumnRef(c) => match c.fields.last().and_then(node) {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        },
        NodeEnum::TypeCast(t) => column(t.arg.as_deref()?),
        _ => None,
    }
}

/// The constant a node holds, without casts.
fn constant(n: &Node) -> Option<Literal> {
    match node(n)? {
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            a_const::Val::Ival(i) => Some(Literal::Int(i.ival as i64)),
            a_const::Val::Fval(f) => f.fval.parse().ok().map(Literal::Float),
            a_const::Val::Sval(s) => Some(Literal::Text(s.sval.clone())),
            a_const::Val::Boolval(b) => Some(Literal::Bool(b.boolval)),
            _ => None,
        },
        NodeEnum::TypeCast(t) => constant(t.arg.as_deref()?),
        _ => None,
    }
}

fn number(l: &Literal) -> Option<f64> {
    match l {
        Literal::Int(i) => Some(*i as f64),
        Literal::Float(f) => Some(*f),
        _ => None,
    }
}

/// The length function's column: `char_length(c)`, `length(c)`.
fn length_of(n: &Node) -> Option<String> {
    let NodeEnum::FuncCall(f) = node(n)? else { return None };
    let name = match f.funcname.last().and_then(node) {
        Some(NodeEnum::String(s)) => s.sval.as_str(),
        _ => return None,
    };
    if !matches!(name, "char_length" | "length" | "character_length" | "octet_length") || f.args.len() != 1 {
        return None;
    }
    column(&f.args[0])
}

/// Calls `rule` for each simple condition of the AND-ed expression.
fn conjuncts(n: &Node, rule: &mut impl FnMut(&str, Rule)) {
    match node(n) {
        Some(NodeEnum::BoolExpr(b)) if b.boolop == 1 => b.args.iter().for_each(|a| conjuncts(a, rule)),
        // `a OR b`: meeting one arm is enough. The last arm that is not an
        // `IS NULL` is taken, as written in `kind <> 'x' OR url IS NULL OR
        // url LIKE 'https://%'` (the earlier arms are the escapes).
        Some(NodeEnum::BoolExpr(b)) if b.boolop == 2 => {
            let null_test = |a: &Node| matches!(node(a), Some(NodeEnum::NullTest(t)) if t.nulltesttype == 1);
            if let Some(last) = b.args.iter().rev().find(|a| !null_test(a)) {
                conjuncts(last, rule);
            }
        }
        Some(NodeEnum::AExpr(e)) => {
            let op = match e.name.last().and_then(node) {
                Some(NodeEnum::String(s)) => s.sval.as_str(),
                _ => return,
            };
            let (Some(l), Some(r)) = (e.lexpr.as_deref(), e.rexpr.as_deref()) else { return };
            match e.kind() {
                AExprKind::AexprOp if op == "~" => {
                    if let (Some(c), Some(Literal::Text(p))) = (column(l), constant(r)) {
                        rule(&c, Rule::Regex(p));
                    }
                }
                // `LIKE`, and `~~` as pg_get_constraintdef prints it.
                AExprKind::AexprOp | AExprKind::AexprLike if op == "~~" => {
                    let (Some(c), Some(Literal::Text(p))) = (column(l), constant(r)) else { return };
                    if let Some(prefix) = p.strip_suffix('%').filter(|x| !x.contains(['%', '_', '\\'])) {
                        rule(&c, Rule::Prefix(prefix.to_string()));
                    }
                }
                AExprKind::AexprOp => comparison(op, l, r, rule),
                AExprKind::AexprOpAny | AExprKind::AexprIn if op == "=" => {
                    let items = match node(r) {
                        Some(NodeEnum::AArrayExpr(a)) => &a.elements,
                        Some(NodeEnum::List(list)) => &list.items,
                        Some(NodeEnum::TypeCast(t)) => match t.arg.as_deref().and_then(node) {
                            Some(NodeEnum::AArrayExpr(a)) => &a.elements,
                            _ => return,
                        },
                        _ => return,
                    };
                    let values: Option<Vec<Literal>> = items.iter().map(constant).collect();
                    if let (Some(c), Some(v)) = (column(l), values.filter(|v| !v.is_empty())) {
                        rule(&c, Rule::OneOf(v));
                    }
                }
                AExprKind::AexprBetween => {
                    let Some(NodeEnum::List(list)) = node(r) else { return };
                    let bounds: Option<Vec<f64>> =
                        list.items.iter().map(|i| constant(i).as_ref().and_then(number)).collect();
                    if let (Some(c), Some([lo, hi])) = (column(l), bounds.as_deref()) {
                        rule(&c, Rule::AtLeast(*lo));
                        rule(&c, Rule::AtMost(*hi));
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

fn comparison(op: &str, l: &Node, r: &Node, rule: &mut impl FnMut(&str, Rule)) {
    // Two columns: `a < b`.
    if let (Some(a), Some(b)) = (column(l), column(r)) {
        let (lesser, greater) = match op {
            "<" | "<=" => (a, b),
            ">" | ">=" => (b, a),
            _ => return,
        };
        rule(&lesser, Rule::Order(Order::Before));
        rule(&greater, Rule::Order(Order::After));
        return;
    }
    // `c op k`, or `k op c` read the other way round.
    let (c, k, op) = match (column(l).or_else(|| length_of(l).map(|c| format!("\0len {c}"))), constant(r)) {
        (Some(c), Some(k)) => (c, k, op.to_string()),
        _ => match (constant(l), column(r)) {
            (Some(k), Some(c)) => (c, k, flip(op).to_string()),
            _ => return,
        },
    };
    if let Some(col) = c.strip_prefix("\0len ") {
        match (number(&k), op.as_str()) {
            (Some(n), "<=" | "<") => {
                let n = if op == "<" { n - 1.0 } else { n };
                rule(col, Rule::MaxLen(n.max(0.0) as usize));
            }
            (Some(n), "=") => rule(col, Rule::Len(n.max(0.0) as usize)),
            _ => {}
        }
        return;
    }
    let Some(v) = number(&k) else { return };
    match op.as_str() {
        ">=" => rule(&c, Rule::AtLeast(v)),
        ">" => rule(&c, Rule::AtLeast(if v.fract() == 0.0 { v + 1.0 } else { v + 1e-6 })),
        "<=" => rule(&c, Rule::AtMost(v)),
        "<" => rule(&c, Rule::AtMost(if v.fract() == 0.0 { v - 1.0 } else { v - 1e-6 })),
        "=" => {
            rule(&c, Rule::AtLeast(v));
            rule(&c, Rule::AtMost(v));
        }
        _ => {}
    }
}

fn flip(op: &str) -> &str {
    match op {
        ">=" => "<=",
        ">" => "<",
        "<=" => ">=",
        "<" => ">",
        other => other,
    }
}

/// The inferred generator `g` of `c`, within what its CHECKs allow.
pub fn narrow(c: &ColumnInfo, g: ValueGen, a: &Allowed) -> ValueGen {
    let spec = |kind| ValueGen::from_spec(&ValueSpec { kind, nulls: 0.0 });
    if let Some(values) = &a.one_of {
        return spec(GenSpec::OneOf { values: values.clone(), weights: None });
    }
    let kind = PgKind::of(&c.ty);
    match (kind, a.order) {
        (Some(PgKind::Timestamp | PgKind::Timestamptz), Some(o)) => {
            return ValueGen::spaced(if o == Order::After { 86_400 } else { 0 });
        }
        (Some(PgKind::Int2 | PgKind::Int4 | PgKind::Int8), Some(o)) => {
            return spec(GenSpec::Sequence { start: if o == Order::After { 2 } else { 1 } });
        }
        _ => {}
    }
    if let (Some(PgKind::Bytea), Some(n)) = (kind, a.len) {
        return ValueGen::bytes_len(n);
    }
    if kind == Some(PgKind::Text) {
        if let Some(p) = &a.prefix {
            return ValueGen::styled(TextStyle::Prefixed(p.clone())).with_max_len(super::infer::max_len(c));
        }
        if let Some(styled) = a.regex.as_deref().and_then(|r| matching_style(r, super::infer::max_len(c))) {
            return styled;
        }
    }
    let g = match (kind, a.lo, a.hi) {
        (_, None, None) => g,
        (Some(k @ (PgKind::Int2 | PgKind::Int4 | PgKind::Int8)), lo, hi) => {
            let (min, max, span) = match k {
                PgKind::Int2 => (i16::MIN as i64, i16::MAX as i64, 10_000),
                PgKind::Int4 => (i32::MIN as i64, i32::MAX as i64, 1_000_000),
                _ => (i64::MIN, i64::MAX, 1_000_000),
            };
            let lo = lo.map_or(0, |v| v.ceil() as i64).clamp(min, max);
            let hi = hi.map_or(lo.saturating_add(span), |v| v.floor() as i64).clamp(min, max);
            if lo > hi { g } else { spec(GenSpec::Int { lo, hi: hi.min(lo.saturating_add(span)) }) }
        }
        (Some(PgKind::Float4 | PgKind::Float8 | PgKind::Numeric), lo, hi) => {
            let lo = lo.unwrap_or(0.0);
            let hi = hi.unwrap_or(lo + 1000.0);
            if lo >= hi {
                spec(GenSpec::Float { lo, hi: lo + f64::EPSILON.max(lo.abs() * 1e-12) })
            } else {
                spec(GenSpec::Float { lo, hi })
            }
        }
        _ => g,
    };
    match a.max_len {
        Some(n) => {
            let n = super::infer::max_len(c).map_or(n, |m| m.min(n)).max(1);
            g.with_max_len(Some(n))
        }
        None => g,
    }
}

/// The first text style whose values match the regular expression `re`
/// (as Rust's regex reads it; a pattern it cannot read gives none).
fn matching_style(re: &str, max_len: Option<usize>) -> Option<ValueGen> {
    let re = regex::Regex::new(re).ok()?;
    TextStyle::TRIED
        .into_iter()
        .map(ValueGen::styled)
        .find(|g| {
            (0..50u64).all(|row| {
                let mut rng = super::generate::rng_for(1, 0, row);
                match g.clone().with_max_len(max_len).generate(row * 977, &mut rng) {
                    super::value::Value::Text(t) => re.is_match(&t),
                    _ => false,
                }
            })
        })
        .map(|g| g.with_max_len(max_len))
}

/// The range of a range-partitioned table's key (one column): from the
/// lowest `FROM` to the highest `TO` of its partitions, in the generator's
/// units (integers; days or microseconds since 2000-01-01), so that every
/// row finds a partition. `None` for another table.
pub async fn partition_range(
    client: &Client,
    table: &str,
) -> Result<Option<(String, i64, i64)>, tokio_postgres::Error> {
    let key = client
        .query_opt(
            "SELECT a.attname::text, format_type(a.atttypid, NULL) FROM pg_partitioned_table p \
             JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] \
             WHERE p.partrelid = $1::text::regclass AND p.partstrat = 'r' AND p.partnatts = 1",
            &[&table],
        )
        .await?;
    let Some(key) = key else { return Ok(None) };
    let (column, ty): (String, String) = (key.get(0), key.get(1));
    // Each bound as the server reads it, in the generator's units.
    let unit = match ty.as_str() {
        "timestamp with time zone" | "timestamp without time zone" => {
            "(extract(epoch FROM b::timestamptz - '2000-01-01 00:00:00+00') * 1000000)::int8"
        }
        "date" => "(b::date - '2000-01-01'::date)::int8",
        "smallint" | "integer" | "bigint" => "b::int8",
        _ => return Ok(None),
    };
    let sql = format!(
        "SELECT min(lo), max(hi) FROM (SELECT (SELECT {lo} FROM (SELECT m[1] AS b) x) AS lo, (SELECT {hi} FROM (SELECT m[2] AS b) x) AS hi \
         FROM (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''?([^'')]*)''?\\) TO \\(''?([^'')]*)''?\\)') AS m \
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::text::regclass) s \
         WHERE m IS NOT NULL AND m[1] <> 'MINVALUE' AND m[2] <> 'MAXVALUE') t",
        lo = unit,
        hi = unit
    );
    let row = client.query_one(&sql, &[&table]).await?;
    let (lo, hi): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
    Ok(match (lo, hi) {
        (Some(lo), Some(hi)) if hi > lo => Some((column, lo, hi)),
        _ => None,
    })
}

/// The generator of a partition key within `lo..hi` (see
/// [`partition_range`]).
pub fn within_partitions(c: &ColumnInfo, lo: i64, hi: i64) -> Option<ValueGen> {
    let kind = match PgKind::of(&c.ty)? {
        PgKind::Timestamp | PgKind::Timestamptz => GenSpec::Timestamp { lo, hi },
        PgKind::Date => GenSpec::Date { lo: lo as i32, hi: hi as i32 },
        PgKind::Int2 | PgKind::Int4 | PgKind::Int8 => GenSpec::Int { lo, hi: hi - 1 },
        _ => return None,
    };
    Some(ValueGen::from_spec(&ValueSpec { kind, nulls: 0.0 }))
}
