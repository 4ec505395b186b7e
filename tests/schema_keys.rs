//! A schema's keys hold in the generated rows without the user's help, and
//! columns of network, interval, time, money, xid8 and tsvector types,
//! ranges, bit strings, snapshots, points and arrays of them are written,
//! and a foreign key over two text columns names rows that exist: the load
//! ends with every constraint valid.

use std::path::Path;

use rehearse::datagen::{self, LoadOptions};
use rehearse::postgres::{Cleanup, LocalCluster, Role, Server, connect};
use rehearse::scenario;

use crate::common::{heavy, repo};

fn scenario_text(rows: &str, tables: &str) -> String {
    format!(
        r#"name = "keys"
seed = 3
schema = "{}"
rows = {rows}
{tables}
[workload]
pool_size = 2
pool_timeout = "1s"

[[workload.query]]
name = "get_user"
sql = "SELECT * FROM users WHERE id = $1"
params = [{{ key_of = "users" }}]
rate = 20

[timeline]
migrate_at = "1s"
cooldown = "1s"
max_duration = "10s"

[[strategy]]
name = "none"
steps = [{{ sql = "SELECT 1" }}]
"#,
        repo("tests/fixtures/keys_and_types.sql").display()
    )
}

fn load(text: &str) -> Result<Vec<(String, f64)>, String> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = LocalCluster::start(&[]).await.unwrap();
        let c = connect(cluster.config(), &Role::Harness).await.unwrap();
        let s =
            scenario::parse(Path::new("s.toml"), text.to_string(), &Default::default()).map_err(|e| e.to_string())?;
        let opts = LoadOptions { streams: 2, throwaway: true, ..Default::default() };
        datagen::load(cluster.config(), "test", &c, &s, &opts, &Cleanup::new(None, false))
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for (name, sql) in [
            ("profiles", "SELECT count(*) FROM profiles"),
            ("distinct profile users", "SELECT count(DISTINCT user_id) FROM profiles"),
            ("user_tags", "SELECT count(*) FROM user_tags"),
            ("settings", "SELECT count(*) FROM settings"),
            ("documents", "SELECT count(*) FROM documents"),
            (
                "invalid constraints",
                "SELECT count(*) FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND NOT convalidated",
            ),
            ("invalid indexes", "SELECT count(*) FROM pg_index WHERE NOT indisvalid"),
            ("lexemes", "SELECT min(length(search)) FROM documents"),
            (
                "matches",
                "SELECT count(*) FROM documents WHERE search @@ to_tsquery('simple', split_part(body, ' ', 1))",
            ),
            ("networks", "SELECT count(*) FROM documents WHERE client << '10.0.0.0/8' AND masklen(network) = 24"),
            (
                "ttl",
                "SELECT count(*) FROM documents WHERE ttl BETWEEN '0'::interval AND '30 days' AND opens_at < '24:00'",
            ),
            ("bookings", "SELECT count(*) FROM bookings"),
            // Every value is of its declared shape, and says so in SQL.
            (
                "shaped bookings",
                "SELECT count(*) FROM bookings WHERE lower(during) < upper(during) AND NOT isempty(days) \
                 AND NOT isempty(seats) AND NOT isempty(spans) AND length(flags) = 12 AND length(mask) <= 20 \
                 AND pg_snapshot_xmin(snap) <= pg_snapshot_xmax(snap) AND location[0] BETWEEN -180 AND 180 \
                 AND cardinality(hosts) <= 3 AND cardinality(windows) <= 3 AND cardinality(waits) <= 3 \
                 AND area ~= box '((0,0),(1,1))' AND outline IS NULL",
            ),
            ("distinct ranges", "SELECT count(DISTINCT during) FROM bookings"),
            ("distinct flags", "SELECT count(DISTINCT flags) FROM bookings"),
            ("rule_segments", "SELECT count(*) FROM rule_segments"),
            ("segments named", "SELECT count(DISTINCT (namespace_key, segment_key)) FROM rule_segments"),
            ("user_tag_notes", "SELECT count(*) FROM user_tag_notes"),
        ] {
            let v: f64 = c.query_one(&format!("SELECT ({sql})::float8"), &[]).await.unwrap().get(0);
            out.push((name.to_string(), v));
        }
        Ok(out)
    })
}

#[test]
fn unique_foreign_keys_composite_keys_and_text_input_types_fill_valid() {
    let _turn = heavy();
    // documents is described by a [[table]] of its own, with no DDL: its
    // columns come from the schema.
    let documents = "\n[[table]]\nname = \"documents\"\nrows = 3000\ncolumns = { body = { words = [3, 12] } }\n";
    let rows = "{ users = 1000, profiles = 800, tags = 50, user_tags = 20000, settings = 5000, bookings = 4000, namespaces = 20, segments = 500, rule_segments = 5000, user_tag_notes = 3000 }";
    let got = load(&scenario_text(rows, documents)).unwrap();
    let v = |k: &str| got.iter().find(|(n, _)| n == k).unwrap().1;
    assert_eq!(v("profiles"), 800.0);
    assert_eq!(v("distinct profile users"), 800.0, "each user has at most one profile");
    assert_eq!(v("user_tags"), 20000.0);
    assert_eq!(v("settings"), 5000.0);
    assert_eq!(v("documents"), 3000.0);
    assert_eq!(v("invalid constraints"), 0.0, "{got:?}");
    assert_eq!(v("invalid indexes"), 0.0, "{got:?}");
    assert!(v("lexemes") >= 1.0, "{got:?}");
    // The lexemes are the body's words, as a search would find them.
    assert!(v("matches") > 0.0, "{got:?}");
    assert_eq!(v("networks"), 3000.0, "{got:?}");
    assert_eq!(v("ttl"), 3000.0, "{got:?}");
    assert_eq!(v("bookings"), 4000.0);
    assert_eq!(v("shaped bookings"), 4000.0, "{got:?}");
    // The exclusion constraint holds (it is valid above) because no two
    // ranges overlap; and the bits vary from row to row.
    assert_eq!(v("distinct ranges"), 4000.0, "{got:?}");
    assert!(v("distinct flags") > 1000.0, "{got:?}");
    // The two-column foreign key names segments that exist (the
    // constraint is valid above), and many of them.
    assert_eq!(v("rule_segments"), 5000.0);
    assert!(v("segments named") >= 400.0, "{got:?}");
    // … and one over both columns of a join table's key of two foreign keys.
    assert_eq!(v("user_tag_notes"), 3000.0);
}

#[test]
fn a_one_to_one_table_larger_than_its_parent_is_refused_with_what_to_change() {
    let _turn = heavy();
    let rows = "{ users = 100, profiles = 200, tags = 5, user_tags = 10, settings = 10, bookings = 0, namespaces = 0, segments = 0, rule_segments = 0, user_tag_notes = 0 }";
    let e = load(&scenario_text(rows, "")).unwrap_err();
    assert!(e.contains("unique foreign key") && e.contains("at most 100 rows"), "{e}");
    let rows = "{ users = 10, profiles = 5, tags = 5, user_tags = 51, settings = 10, bookings = 0, namespaces = 0, segments = 0, rule_segments = 0, user_tag_notes = 0 }";
    let e = load(&scenario_text(rows, "")).unwrap_err();
    assert!(e.contains("(user_id, tag_id)") && e.contains("only 50 combinations"), "{e}");
}
