//! `run --suggest`: from a migration file as written, the harness derives
//! the safe rewrites, rehearses them beside it on one load, and each
//! rewrite takes the locks it is meant to take on a real server.

use serde_json::Value;

use crate::common::{Sandbox, heavy, repo, text};

/// Every rule at once, on the zero-config schema (orders, customers).
const MIGRATION: &str = "CREATE INDEX orders_created_at_idx ON orders (created_at);
ALTER TABLE orders ADD CONSTRAINT orders_total_known CHECK (total_cents IS NOT NULL);
ALTER TABLE orders ADD COLUMN note text DEFAULT 'x';
UPDATE orders SET note = 'x';
ALTER TABLE orders ALTER COLUMN note SET NOT NULL;
DROP INDEX orders_customer_id_idx;
ALTER TABLE orders ADD COLUMN status_v2 varchar(50) DEFAULT 'pending' NOT NULL;
";

fn locks(step: &Value) -> Vec<(String, String)> {
    let all = step["locks"].as_array().unwrap();
    all.iter().map(|l| (l["relation"].as_str().unwrap().to_string(), l["mode"].as_str().unwrap().to_string())).collect()
}

fn step<'a>(report: &'a Value, name: &str, nth: usize) -> &'a Value {
    let steps = report["migration"]["steps"].as_array().unwrap();
    steps.iter().filter(|s| s["name"] == name).nth(nth).unwrap_or_else(|| panic!("no step `{name}` #{nth}"))
}

#[test]
fn suggest_derives_rewrites_that_pass_and_take_the_weaker_locks() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let m = sandbox.write("m.sql", MIGRATION);
    let schema = repo("tests/fixtures/zero-config/schema.sql");
    let json = sandbox.path().join("s.json");
    let out = sandbox.run(&[
        "run",
        "--migration",
        m.to_str().unwrap(),
        "--schema",
        schema.to_str().unwrap(),
        "--rows",
        "orders=30000",
        "--suggest",
        "--backend",
        "local",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "a derived variant passed\n{stdout}\n{stderr}");
    // The variants' SQL is printed, to copy.
    assert!(stderr.contains("CREATE INDEX CONCURRENTLY orders_created_at_idx"), "{stderr}");
    assert!(stderr.contains("lock_timeout") && stderr.contains("(P/R)"), "the lock_timeout says why: {stderr}");

    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let names: Vec<&str> =
        v["comparison"]["strategies"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["m", "m+lock-timeout", "m+rewrites"]);
    let rewrites = &v["reports"][2];
    assert_eq!(rewrites["strategy"], "m+rewrites");
    assert_eq!(rewrites["migration"]["outcome"], "ok", "{}", rewrites["migration"]);
    assert_eq!(v["comparison"]["strategies"][2]["passed"], serde_json::json!([true]));

    // The original builds its index under SHARE (writes blocked). The
    // rewrite builds it concurrently, outside a transaction: the locks of
    // a step outside a transaction are sampled while it runs, so a short
    // one may show none, but never SHARE or ACCESS EXCLUSIVE on the table.
    let original = &v["reports"][0]["migration"]["steps"][0];
    assert!(locks(original).contains(&("orders".into(), "ShareLock".into())), "{:?}", locks(original));
    for name in ["create index concurrently", "drop index concurrently"] {
        let s = step(rewrites, name, 0);
        assert_eq!(s["transaction"], "none", "{name}");
        let on_orders: Vec<String> = locks(s).into_iter().filter(|(r, _)| r == "orders").map(|(_, m)| m).collect();
        assert!(on_orders.iter().all(|m| m == "ShareUpdateExclusiveLock"), "{name}: {:?}", locks(s));
    }

    // VALIDATE scans without blocking writes: SHARE UPDATE EXCLUSIVE.
    for nth in 0..3 {
        let validate = step(rewrites, "validate", nth);
        let on_orders: Vec<String> =
            locks(validate).into_iter().filter(|(r, _)| r == "orders").map(|(_, m)| m).collect();
        assert_eq!(on_orders, ["ShareUpdateExclusiveLock"], "validate #{nth}");
    }

    // The backfills walk the key in batches under row locks only.
    for nth in 0..2 {
        let fill = step(rewrites, "backfill (keyset)", nth);
        assert!(fill["batches"].as_u64().unwrap() >= 3, "{fill}");
        assert!(fill["rows"].as_u64().unwrap() >= 30_000, "every row walked: {fill}");
        let strongest: Vec<String> = locks(fill).into_iter().filter(|(r, _)| r == "orders").map(|(_, m)| m).collect();
        assert_eq!(strongest, ["RowExclusiveLock", "AccessShareLock"], "backfill #{nth}: strongest first");
    }
    // Steps that need ACCESS EXCLUSIVE give up quickly and retry.
    let add = step(rewrites, "add nullable column", 0);
    assert!(add["sql"].as_str().unwrap().starts_with("ALTER TABLE orders ADD COLUMN"));
    sandbox.assert_clean();
}
