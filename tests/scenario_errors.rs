//! Every kind of bad input a validator must refuse, as a table of cases:
//! each a change to a valid scenario and the error a user reads, with the
//! file, line and column, snapshotted together. (None of these may panic,
//! allocate without bound or start a run that cannot end; the fuzz run in
//! `fuzz.rs` tries millions more.)

use std::path::Path;

use rehearse::scenario::{LoadOptions, parse};

use crate::common::small_scenario;

const QUERY: &str = "SELECT * FROM items WHERE id = $1";
const STEP: &str = "ALTER TABLE items ADD COLUMN note text";

/// A change to the small scenario: (what, replace this, with that).
type Case = (&'static str, &'static str, &'static str);

const CASES: &[Case] = &[
    (
        "float range wider than a double",
        "[[table]]",
        "[[table]]\ncolumns = { price_cents = { float = [-1e308, 1e308] } }",
    ),
    ("float range with an infinite end", "[[table]]", "[[table]]\ncolumns = { price_cents = { float = [0.0, inf] } }"),
    ("float range with nan", "[[table]]", "[[table]]\ncolumns = { price_cents = { float = [nan, 1.0] } }"),
    ("float parameter wider than a double", "{ key_of = \"items\" }", "{ float = [-1e308, 1e308] }"),
    ("zipf range too wide to rank", "{ key_of = \"items\" }", "{ zipf = [0, 9223372036854775807] }"),
    ("words beyond the cap", "[[table]]", "[[table]]\ncolumns = { name = { words = [1, 4000000000] } }"),
    ("words at a hundred million", "[[table]]", "[[table]]\ncolumns = { name = { words = [1, 100000000] } }"),
    (
        "arrays of arrays beyond the value cap",
        "[[table]]",
        "[[table]]\ncolumns = { name = { array = { array = { words = [1, 100] }, len = [1, 1000] }, len = [1, 1000] } }",
    ),
    (
        "a day february lacks",
        "[[table]]",
        "[[table]]\ncolumns = { name = { date = [\"2023-02-01\", \"2023-02-30\"] } }",
    ),
    (
        "a year past postgres",
        "[[table]]",
        "[[table]]\ncolumns = { name = { timestamp = [\"2024-01-01\", \"99999999-01-01\"] } }",
    ),
    (
        "a sixty-first second",
        "[[table]]",
        "[[table]]\ncolumns = { name = { timestamp = [\"2024-01-01\", \"2024-01-01 10:00:60.5\"] } }",
    ),
    ("weights that overflow", "{ key_of = \"items\" }", "{ one_of = [1, 2], weights = [1e308, 1e308] }"),
    ("a skew out of range", "{ key_of = \"items\" }", "{ zipf = [1, 10], skew = 1e9 }"),
    ("rows beyond a table", "rows = 2000", "rows = 9223372036854775807"),
    ("migrate_at in thirty years", "migrate_at = \"1s\"", "migrate_at = \"270000h\""),
    ("a lock_timeout past postgres' limit", "steps = [{ sql", "steps = [{ lock_timeout = \"30d\", sql"),
    ("a pool_timeout of two hours", "pool_timeout = \"1s\"", "pool_timeout = \"2h\""),
    ("a step with a syntax error", STEP, "ALTR TABLE items ADD COLUMN note text"),
    ("a query with a syntax error", QUERY, "SELECT * FORM items WHERE id = $1"),
    ("a query of two statements", QUERY, "SELECT * FROM items WHERE id = $1; SELECT 1"),
    (
        "an interference with a syntax error",
        "[timeline]",
        "[[interference]]\nname = \"report\"\nat = \"1s\"\nsql = \"SELECT count(*) FROM items GROUP BY\"\n\n[timeline]",
    ),
    (
        "a concurrent index in a transaction",
        "ALTER TABLE items ADD COLUMN note text\" }",
        "CREATE INDEX CONCURRENTLY i ON items (name)\", transaction = true }",
    ),
    ("too few connections", "[[table]]", "[postgres]\nsettings = { max_connections = 5 }\n\n[[table]]"),
    ("a setting of infinity", "[[table]]", "[postgres]\nsettings = { work_mem = inf }\n\n[[table]]"),
    ("a schema that is a device", "[[table]]", "schema = \"/dev/zero\"\nrows = { t = 1 }\n\n[[table]]"),
    ("a pooler that is not pgbouncer", "[timeline]", "[pooler]\nkind = \"odyssey\"\n\n[timeline]"),
    (
        "a pooler mode pgbouncer cannot run the workload in",
        "[timeline]",
        "[pooler]\nkind = \"pgbouncer\"\nmode = \"statement\"\n\n[timeline]",
    ),
    ("a pooler of no connections", "[timeline]", "[pooler]\nkind = \"pgbouncer\"\npool_size = 0\n\n[timeline]"),
    ("a negative max_lost_writes", "max_p99 = \"5s\"", "max_p99 = \"5s\"\nmax_lost_writes = -1"),
];

fn render(label: &str, text: &str, scale: f64) -> String {
    match parse(Path::new("case.toml"), text.to_string(), &LoadOptions { scale }) {
        Ok(_) => format!("{label}\n  ACCEPTED\n"),
        Err(e) => format!("{label}\n  {e}\n"),
    }
}

#[test]
fn each_bad_input_is_refused_with_its_place_in_the_file() {
    let base = small_scenario(QUERY, STEP);
    assert!(parse(Path::new("case.toml"), base.clone(), &LoadOptions::default()).is_ok(), "the base is valid");
    let mut out = String::new();
    for (label, from, to) in CASES {
        assert!(base.contains(from), "{label}: `{from}` is not in the base scenario");
        let text = base.replacen(from, to, 1);
        out.push_str(&render(label, &text, 1.0));
    }
    out.push_str(&render("--scale 1e12", &base, 1e12));
    assert!(!out.contains("ACCEPTED"), "{out}");
    insta::assert_snapshot!("bad_inputs", out);
}

#[test]
fn a_byte_that_is_not_utf8_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let mut bytes = small_scenario(QUERY, STEP).into_bytes();
    let at = bytes.windows(7).position(|w| w == b"seed = ").unwrap();
    bytes.insert(at + 7, 0xff);
    std::fs::write(&path, &bytes).unwrap();
    let e = rehearse::scenario::load(&path, &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains(&format!("{}:2:8: byte 0xff is not UTF-8", path.display())), "{e}");
}

#[test]
fn a_scenario_that_is_no_plain_file_is_not_read() {
    let e = rehearse::scenario::load(Path::new("/dev/zero"), &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("not a plain file"), "{e}");
}
