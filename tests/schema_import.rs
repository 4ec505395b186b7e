//! `schema = "dump.sql"` with `rows = { … }`: a `pg_dump --schema-only`
//! file with sequences, identity columns, enums, domains, CHECK
//! constraints, partial and expression indexes, a partitioned table,
//! comments, a trigger, an extension this server cannot install and roles
//! it lacks (`OWNER TO`, `GRANT`) loads, says what it skipped, and ends
//! keyed and constrained as the dump says.

use std::path::Path;

use rehearse::datagen::{self, LoadOptions};
use rehearse::postgres::{Cleanup, LocalCluster, Role, Server, connect};
use rehearse::scenario;
use tokio_postgres::Client;

use crate::common::{Sandbox, heavy, position_of, rehearse, repo};

fn scenario_text(schema: &Path, rows: &str) -> String {
    format!(
        r#"name = "imported"
seed = 5
schema = "{}"
rows = {rows}

[workload]
pool_size = 2
pool_timeout = "1s"

[[workload.query]]
name = "get_order"
sql = "SELECT * FROM orders WHERE id = $1"
params = [{{ key_of = "orders" }}]
rate = 20

[timeline]
migrate_at = "1s"
cooldown = "1s"
max_duration = "10s"

[[strategy]]
name = "none"
steps = [{{ sql = "SELECT 1" }}]
"#,
        schema.display()
    )
}

const ROWS: &str = "{ customers = 500, orders = 5000, events = 3000 }";

async fn scalar(c: &Client, sql: &str) -> f64 {
    c.query_one(&format!("SELECT ({sql})::float8"), &[]).await.unwrap().get(0)
}

#[test]
fn a_pg_dump_schema_loads_keyed_and_constrained() {
    let _turn = heavy();
    let schema = repo("tests/fixtures/pg_dump_schema.sql");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = LocalCluster::start(&[]).await.unwrap();
        let c = connect(cluster.config(), &Role::Harness).await.unwrap();
        let s = scenario::parse(Path::new("s.toml"), scenario_text(&schema, ROWS), &Default::default()).unwrap();
        let opts = LoadOptions { streams: 2, throwaway: true, ..Default::default() };
        let tables = datagen::load(cluster.config(), "test", &c, &s, &opts, &Cleanup::new(None, false)).await.unwrap();
        let rows: Vec<(String, u64)> = tables.iter().map(|t| (t.name.clone(), t.rows)).collect();
        // Parents first: orders point at customers.
        assert_eq!(rows, vec![("customers".into(), 500), ("events".into(), 3000), ("orders".into(), 5000)]);
        // A partitioned table's size is its partitions'; a plain table's
        // is its own.
        assert!(tables[1].total_bytes > 0);
        let size = |f: &str| format!("SELECT {f}('customers')");
        assert_eq!(tables[0].heap_bytes as f64, scalar(&c, &size("pg_relation_size")).await);
        assert_eq!(tables[0].total_bytes as f64, scalar(&c, &size("pg_total_relation_size")).await);
        assert!(tables[0].heap_bytes > 0);

        let count = |t: &str| format!("SELECT count(*) FROM {t}");
        assert_eq!(scalar(&c, &count("customers")).await, 500.0);
        assert_eq!(scalar(&c, &count("orders")).await, 5000.0);
        assert_eq!(scalar(&c, &count("audit")).await, 0.0, "tables not in rows stay empty");
        // Rows went to both partitions.
        assert!(scalar(&c, &count("events_2024")).await > 1000.0);
        assert!(scalar(&c, &count("events_2025")).await > 1000.0);

        // Every key and index of the dump is back, the foreign keys valid.
        let indexes: Vec<String> = c
            .query("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for want in [
            "audit_pkey",
            "customers_email_key",
            "customers_lower_email_idx",
            "customers_pkey",
            "events_pkey",
            "orders_open_idx",
            "orders_pkey",
        ] {
            assert!(indexes.iter().any(|i| i == want), "{want} missing from {indexes:?}");
        }
        let valid_fks = "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated";
        assert_eq!(scalar(&c, valid_fks).await, 2.0, "orders → customers and audit → orders");
        let orphans = "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.buyer WHERE c.id IS NULL";
        assert_eq!(scalar(&c, orphans).await, 0.0);
        // The enum's labels only; the domain's check held.
        assert_eq!(scalar(&c, "SELECT count(DISTINCT state) FROM orders").await, 3.0);
        // Both checks hold and stay validated: the email's, and the
        // priority's (1..5), which the generator of `priority` was narrowed
        // to.
        let validated = |name: &str| format!("SELECT convalidated::int FROM pg_constraint WHERE conname = '{name}'");
        assert_eq!(scalar(&c, &validated("customers_email_check")).await, 1.0);
        assert_eq!(scalar(&c, &validated("orders_priority_check")).await, 1.0);
        // Sequences moved past the keys: the application's inserts fit.
        let next: i64 = c
            .query_one("INSERT INTO orders (buyer, state, total, priority) VALUES (1, 'new', 1, 1) RETURNING id", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(next, 5001);
        let next: i32 =
            c.query_one("INSERT INTO customers (email) VALUES ('x@y.z') RETURNING id", &[]).await.unwrap().get(0);
        assert_eq!(next, 501);
        // The roles the dump names were made, without login.
        let roles = "SELECT count(*) FROM pg_roles WHERE rolname IN ('shop_owner', 'reporting') AND NOT rolcanlogin";
        assert_eq!(scalar(&c, roles).await, 2.0);
        let owner = "SELECT count(*) FROM pg_tables WHERE tablename = 'customers' AND tableowner = 'shop_owner'";
        assert_eq!(scalar(&c, owner).await, 1.0);
        // The harness's own sessions kept their search_path.
        assert_eq!(scalar(&c, "SELECT count(*) FROM pg_tables WHERE tablename = 'orders'").await, 1.0);
    });
}

#[test]
fn a_failing_schema_statement_is_named_in_the_schema_file() {
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let sql =
        "CREATE TABLE orders (id bigint PRIMARY KEY);\n\nCREATE TABLE items (\n  id bigint,\n  x nosuchtype\n);\n";
    let schema = sandbox.write("schema.sql", sql);
    let path = sandbox.write("s.toml", &scenario_text(&schema, "{ orders = 10 }"));
    let (code, _, stderr, _) = rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 2, "{stderr}");
    let (line, col) = position_of(sql, "nosuchtype", 0);
    assert!(stderr.contains(&format!("{}:{line}:{col}:", schema.display())), "{stderr}");
    assert!(stderr.contains("42704"), "{stderr}");

    // A table `rows` names that the schema does not create.
    let schema = sandbox.write("ok.sql", "CREATE TABLE orders (id bigint PRIMARY KEY);\n");
    let path = sandbox.write("s2.toml", &scenario_text(&schema, "{ orders = 10, nope = 5 }"));
    let (code, _, stderr, _) = rehearse(&sandbox, &path, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`rows` names table `nope`, which the schema does not create"), "{stderr}");
    sandbox.assert_clean();
}
