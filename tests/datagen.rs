//! Data loading, on a real throwaway cluster: what lands in the tables is
//! deterministic, distributed as the scenario says, keyed consistently,
//! indexed, and left analyzed with its visibility map set.

use std::path::Path;

use rehearse::datagen::{self, LoadOptions};
use rehearse::postgres::{Cleanup, LocalCluster, Role, Server, connect};
use rehearse::scenario;
use tokio_postgres::Client;

use crate::common::heavy;

const CUSTOMERS: u64 = 500;
const ORDERS: u64 = 20_000;

fn scenario_text(seed: u64) -> String {
    format!(
        r#"name = "datagen"
seed = {seed}

[[table]]
name = "customers"
rows = {CUSTOMERS}
ddl = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE,
  city text, signed_up date NOT NULL);
"""
columns = {{ email = {{ sequence = 1000 }}, city = {{ fake = "city", nulls = 0.3 }} }}

[[table]]
name = "orders"
rows = {ORDERS}
ddl = """
CREATE TYPE order_state AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers (id), state order_state NOT NULL,
  status text NOT NULL, total numeric(10, 2) NOT NULL, placed_at timestamptz NOT NULL,
  ref uuid NOT NULL, paid boolean NOT NULL, extra jsonb, note varchar(12));
CREATE INDEX orders_placed_at ON orders (placed_at);
"""
columns = {{ status = {{ one_of = ["pending", "paid"], weights = [3, 1] }} }}

[workload]
pool_size = 1
pool_timeout = "1s"

[timeline]
migrate_at = "1s"
cooldown = "1s"
max_duration = "1s"

[[strategy]]
name = "none"
steps = [{{ sql = "SELECT 1" }}]
"#
    )
}

fn options(streams: usize) -> LoadOptions {
    LoadOptions { streams, reuse_existing: false, progress: false }
}

async fn load_into(cluster: &LocalCluster, db: &str, seed: u64, streams: usize) -> Client {
    let admin = connect(cluster.config(), &Role::Harness).await.unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let mut config = cluster.config().clone();
    config.dbname(db);
    let client = connect(&config, &Role::Harness).await.unwrap();
    let s = scenario::parse(Path::new("datagen.toml"), scenario_text(seed), &Default::default()).unwrap();
    let tables =
        datagen::load(&config, "test", &client, &s, &options(streams), &Cleanup::new(None, false)).await.unwrap();
    assert_eq!(tables.iter().map(|t| t.rows).collect::<Vec<_>>(), vec![CUSTOMERS, ORDERS]);
    client
}

async fn checksum(c: &Client) -> String {
    c.query_one(
        "SELECT md5(string_agg(o::text, '|' ORDER BY o.id)) || md5(string_agg(c::text, '|' ORDER BY c.id)) \
         FROM orders o FULL JOIN customers c ON false",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

async fn scalar(c: &Client, sql: &str) -> f64 {
    c.query_one(&format!("SELECT ({sql})::float8"), &[]).await.unwrap().get(0)
}

#[test]
fn loads_are_deterministic_realistic_keyed_and_indexed() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cluster = LocalCluster::start(&[]).await.unwrap();
        let one = load_into(&cluster, "one_stream", 7, 1).await;
        let three = load_into(&cluster, "three_streams", 7, 3).await;
        let other = load_into(&cluster, "other_seed", 8, 2).await;

        // Determinism: the seed fixes the data, the number of streams does not.
        let a = checksum(&one).await;
        assert_eq!(a, checksum(&three).await);
        assert_ne!(a, checksum(&other).await);

        let c = &three;
        // Keys: ids 1..=rows, foreign keys within the parent, sequences moved
        // past the loaded keys.
        assert_eq!(scalar(c, "SELECT min(id) FROM orders").await, 1.0);
        assert_eq!(scalar(c, "SELECT max(id) FROM orders").await, ORDERS as f64);
        assert_eq!(scalar(c, "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL").await, 0.0);
        let next: i64 = c
            .query_one("INSERT INTO orders (customer_id, state, status, total, placed_at, ref, paid) VALUES (1, 'new', 'x', 1, now(), gen_random_uuid(), true) RETURNING id", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(next, ORDERS as i64 + 1);
        let next_customer: i32 = c
            .query_one("INSERT INTO customers (name, email, signed_up) VALUES ('x', 'x@y', now()) RETURNING id", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(next_customer, CUSTOMERS as i32 + 1);

        // Distributions as the scenario says.
        let paid = scalar(c, "SELECT avg((status = 'paid')::int) FROM orders WHERE id <= 20000").await;
        assert!((0.22..0.28).contains(&paid), "weighted one_of: {paid}");
        let nulls = scalar(c, "SELECT avg((city IS NULL)::int) FROM customers WHERE id <= 500").await;
        assert!((0.22..0.38).contains(&nulls), "null fraction: {nulls}");
        assert_eq!(scalar(c, "SELECT count(DISTINCT state) FROM orders").await, 3.0, "enum labels inferred");
        assert_eq!(scalar(c, "SELECT count(*) FROM customers WHERE email !~ '^[0-9]+$' AND id <= 500").await, 0.0, "sequence override");
        assert_eq!(scalar(c, "SELECT min(email::int) FROM customers WHERE id <= 500").await, 1000.0);
        assert_eq!(scalar(c, "SELECT count(*) FROM customers WHERE name !~ ' '").await, 1.0, "fake full names (and the one inserted above)");
        assert!(scalar(c, "SELECT max(length(note)) FROM orders").await <= 12.0, "varchar(12) respected");
        assert!(scalar(c, "SELECT count(DISTINCT ref) FROM orders").await >= ORDERS as f64);
        let spread = scalar(c, "SELECT extract(epoch FROM max(placed_at) - min(placed_at)) / 86400 FROM orders").await;
        assert!(spread > 700.0, "timestamps spread over the default two years: {spread} days");

        // Indexes and constraints are back, the FK valid, the tables analyzed
        // with their visibility map set.
        let indexes: Vec<String> = c
            .query("SELECT indexname FROM pg_indexes WHERE tablename IN ('orders', 'customers') ORDER BY 1", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(indexes, ["customers_email_key", "customers_pkey", "orders_pkey", "orders_placed_at"]);
        assert_eq!(scalar(c, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated").await, 1.0);
        for t in ["orders", "customers"] {
            let row = c
                .query_one("SELECT relpages, relallvisible, reltuples FROM pg_class WHERE relname = $1", &[&t])
                .await
                .unwrap();
            let (pages, visible, tuples): (i32, i32, f32) = (row.get(0), row.get(1), row.get(2));
            assert!(pages > 0 && visible == pages, "{t}: {visible} of {pages} pages all-visible");
            assert!(tuples > 0.0, "{t} analyzed");
        }
        drop(cluster);
    });
}

#[test]
fn an_unknown_column_in_columns_is_named() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cluster = LocalCluster::start(&[]).await.unwrap();
        let client = connect(cluster.config(), &Role::Harness).await.unwrap();
        let text = scenario_text(1).replace("city = {", "citty = {");
        let s = scenario::parse(Path::new("bad.toml"), text, &Default::default()).unwrap();
        let err = datagen::load(cluster.config(), "test", &client, &s, &options(1), &Cleanup::new(None, false))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("bad.toml:11:"), "{msg}");
        assert!(msg.contains("no column `citty`"), "{msg}");
        assert_eq!(err.exit_code(), 2);
    });
}
