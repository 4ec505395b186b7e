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

{LOAD_ONLY}"#
    )
}

fn options(streams: usize) -> LoadOptions {
    LoadOptions { streams, throwaway: true, ..Default::default() }
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
        // Indexes and constraints are back, the FK valid, the tables analyzed
        // with their visibility map set. Checked before this test writes a row:
        // an autovacuum or autoanalyze may run at any time after the load (its
        // insert counts reach the statistics a moment later) and would count
        // the page a later INSERT dirtied as not all-visible.
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

/// The sections a scenario needs besides its tables, for load-only tests.
const LOAD_ONLY: &str = r#"
[workload]
pool_size = 1
pool_timeout = "1s"

[timeline]
migrate_at = "1s"
cooldown = "1s"
max_duration = "1s"

[[strategy]]
name = "none"
steps = [{ sql = "SELECT 1" }]
"#;

const SKEWED: &str = r#"name = "generators"
seed = 3

[[table]]
name = "accounts"
rows = 2000
ddl = """
CREATE TABLE accounts (aid int PRIMARY KEY, region text NOT NULL);
"""
bloat = 0.2

[[table]]
name = "events"
rows = 40000
ddl = """
CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  actor int NOT NULL REFERENCES accounts (aid), hot int NOT NULL, created_at timestamptz NOT NULL,
  payload jsonb NOT NULL, tags text[] NOT NULL, scores int[], code char(6) NOT NULL);
"""
columns = { hot = { key_of = "accounts", skew = 1.2 }, payload = { json = { plan = { one_of = ["free", "pro"] }, seats = { int = [1, 50] }, since = "date", trial = "bool" } }, tags = { array = "city", len = [1, 3] }, code = { words = [3, 6] } }

"#;

/// Zipf keys, keys found through the catalog's foreign keys, increasing
/// creation times, JSON objects of a shape, arrays, and char(n) limits,
/// checked in the database by their distributions.
#[test]
fn new_generators_land_with_their_distributions() {
    let _turn = heavy();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = LocalCluster::start(&[]).await.unwrap();
        let c = connect(cluster.config(), &Role::Harness).await.unwrap();
        let s = scenario::parse(Path::new("g.toml"), format!("{SKEWED}{LOAD_ONLY}"), &Default::default()).unwrap();
        let tables =
            datagen::load(cluster.config(), "test", &c, &s, &options(2), &Cleanup::new(None, false)).await.unwrap();

        // bloat = 0.2: about 400 of 2000 rows left dead, and the server sees them.
        let dead = tables[0].dead_tuples;
        assert!((340..460).contains(&dead), "{dead} dead tuples");
        assert_eq!(tables[1].dead_tuples, 0);
        let mut seen = 0.0;
        for _ in 0..50 {
            seen = scalar(&c, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'accounts'").await;
            if seen >= 0.5 * dead as f64 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // The server's own count (ANALYZE's estimate; page pruning may
        // already have reclaimed a few).
        assert!(seen >= 0.5 * dead as f64 && seen <= 1.1 * dead as f64, "n_dead_tup {seen} of {dead}");

        // An int primary key with no generator counts 1..rows: no duplicates.
        assert_eq!(scalar(&c, "SELECT count(DISTINCT aid)::float8 FROM accounts").await, 2000.0);
        assert_eq!(scalar(&c, "SELECT max(aid)::float8 FROM accounts").await, 2000.0);
        // `actor` is not named `*_id`, but its foreign key points into
        // accounts: every value is an existing account (the FK was re-added).
        assert_eq!(
            scalar(
                &c,
                "SELECT count(*)::float8 FROM events e LEFT JOIN accounts a ON a.aid = e.actor WHERE a.aid IS NULL"
            )
            .await,
            0.0
        );
        let fks = scalar(
            &c,
            "SELECT count(*)::float8 FROM pg_constraint WHERE conrelid = 'events'::regclass AND contype = 'f'",
        )
        .await;
        assert_eq!(fks, 1.0);
        // Zipf with skew 1.2 over 2000 keys: key 1 takes 1/H(2000, 1.2) ≈ 25%
        // of the rows, key 2 a fraction 2^-1.2 ≈ 0.435 of key 1's.
        let top = scalar(&c, "SELECT count(*) FILTER (WHERE hot = 1)::float8 / count(*) FROM events").await;
        assert!((0.22..0.28).contains(&top), "share of the hottest key {top}");
        let second = scalar(
            &c,
            "SELECT (count(*) FILTER (WHERE hot = 2))::float8 / count(*) FILTER (WHERE hot = 1) FROM events",
        )
        .await;
        assert!((0.38..0.49).contains(&second), "rank 2 / rank 1 = {second}");
        assert_eq!(scalar(&c, "SELECT count(*)::float8 FROM events WHERE hot NOT BETWEEN 1 AND 2000").await, 0.0);
        // created_at rises with the id.
        let corr = scalar(&c, "SELECT corr(id, extract(epoch FROM created_at)) FROM events").await;
        assert!(corr > 0.999, "corr(id, created_at) = {corr}");
        // The JSON object has its shape and its values their generators.
        let shaped = scalar(
            &c,
            "SELECT count(*)::float8 FROM events WHERE payload->>'plan' IN ('free', 'pro') \
             AND (payload->>'seats')::int BETWEEN 1 AND 50 AND (payload->>'since')::date IS NOT NULL \
             AND jsonb_typeof(payload->'trial') = 'boolean'",
        )
        .await;
        assert_eq!(shaped, 40000.0);
        let pro = scalar(&c, "SELECT avg((payload->>'plan' = 'pro')::int)::float8 FROM events").await;
        assert!((0.47..0.53).contains(&pro), "{pro}");
        // Arrays: named lengths 1..3 of cities; inferred int[] 0..3.
        let (lo, hi) = (
            scalar(&c, "SELECT min(cardinality(tags))::float8 FROM events").await,
            scalar(&c, "SELECT max(cardinality(tags))::float8 FROM events").await,
        );
        assert_eq!((lo, hi), (1.0, 3.0));
        let mean = scalar(&c, "SELECT avg(cardinality(scores))::float8 FROM events").await;
        assert!((1.4..1.6).contains(&mean), "mean length of 0..=3 is 1.5, got {mean}");
        // A named text generator is cut to char(6).
        assert_eq!(scalar(&c, "SELECT max(length(rtrim(code)))::float8 FROM events").await, 6.0);
    });
}

/// Keys, indexes and constraints of the tables below, as the catalog
/// prints them: the load must put back exactly what the DDL declared.
const DECLARED: &str = "SELECT c.relname || ' ' || con.conname || ' ' || con.contype::text || ' ' || pg_get_constraintdef(con.oid) \
      || ' deferrable=' || con.condeferrable || ' deferred=' || con.condeferred || ' valid=' || con.convalidated \
      || ' index=' || coalesce(pg_get_indexdef(con.conindid), '-') \
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
    WHERE c.relname IN ('accounts', 'events', 'events_rest') \
  UNION ALL SELECT indexdef FROM pg_indexes WHERE tablename IN ('accounts', 'events', 'events_rest') \
  ORDER BY 1";

const KEYS_DDL: &str = r#"
CREATE TABLE accounts (id bigint PRIMARY KEY, code text NOT NULL, region int, slot tsrange,
  CONSTRAINT accounts_code_key UNIQUE (code) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT accounts_region_code UNIQUE NULLS NOT DISTINCT (region, code),
  CONSTRAINT accounts_cover UNIQUE (id) INCLUDE (region) WITH (fillfactor = 70),
  CONSTRAINT accounts_no_overlap EXCLUDE USING gist (slot WITH &&));
CREATE INDEX accounts_lower_code ON accounts (lower(code)) WHERE region IS NOT NULL;
"#;

const EVENTS_DDL: &str = r#"
CREATE TABLE events (id bigint NOT NULL, account_id bigint NOT NULL REFERENCES accounts (id),
  at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_rest PARTITION OF events DEFAULT;
CREATE INDEX events_account ON events (account_id);
"#;

/// Rebuilt several at once, keys attached from unique indexes built beside
/// the others: every primary key, unique key (deferrable, NULLS NOT
/// DISTINCT, with INCLUDE and storage options), exclusion constraint,
/// partitioned table's key, expression and partial index and foreign key
/// comes back as declared, and holds.
#[test]
fn keys_and_indexes_come_back_as_declared() {
    let _turn = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cluster = LocalCluster::start(&[]).await.unwrap();
        let admin = connect(cluster.config(), &Role::Harness).await.unwrap();
        let mut declared = Vec::new();
        for db in ["declared", "loaded"] {
            admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
            let mut config = cluster.config().clone();
            config.dbname(db);
            let client = connect(&config, &Role::Harness).await.unwrap();
            if db == "declared" {
                client.batch_execute(&format!("{KEYS_DDL}{EVENTS_DDL}")).await.unwrap();
            } else {
                let toml = format!(
                    "name = \"keys\"\n[[table]]\nname = \"accounts\"\nrows = 3000\nddl = \"\"\"{KEYS_DDL}\"\"\"\n\
                     [[table]]\nname = \"events\"\nrows = 20000\nddl = \"\"\"{EVENTS_DDL}\"\"\"\n{LOAD_ONLY}"
                );
                let s = scenario::parse(Path::new("keys.toml"), toml, &Default::default()).unwrap();
                let opts = options(2);
                datagen::load(&config, "test", &client, &s, &opts, &Cleanup::new(None, false)).await.unwrap();
                assert_eq!(scalar(&client, "SELECT count(*) FROM events").await, 20000.0);
                assert_eq!(scalar(&client, "SELECT count(DISTINCT code) FROM accounts").await, 3000.0);
            }
            let rows = client.query(DECLARED, &[]).await.unwrap();
            declared.push(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>());
        }
        assert!(declared[0].len() >= 10, "{:#?}", declared[0]);
        assert_eq!(declared[1], declared[0], "what the load put back differs from what the DDL declared");
        drop(cluster);
    });
}
