//! Schemas of real open-source projects (`tests/fixtures/schemas/`, each
//! built from the project's own migrations and dumped with `pg_dump
//! --schema-only`; the headers say from which commit) fill at 100,000 rows
//! a table with every constraint valid and no help from the user: unique
//! foreign keys (1:1), composite unique keys, tsvector columns under GIN
//! indexes, xid8, enums, domains, CHECKs, partitions, self-references.

use std::path::Path;

use rehearse::datagen::{self, LoadOptions};
use rehearse::postgres::{Cleanup, LocalCluster, Role, Server, connect};
use rehearse::scenario::{self, derive, shapes};

use crate::common::{heavy, repo};

const ROWS: u64 = 100_000;

/// Fills every table of `file` with `ROWS` rows; returns the tables and
/// the constraints and indexes that are not valid after the load.
fn fill(file: &str) -> (usize, Vec<String>) {
    let _turn = heavy();
    let path = repo(&format!("tests/fixtures/schemas/{file}"));
    let statements = derive::dump_statements(&path).unwrap();
    let tables: Vec<String> = shapes::tables(statements.iter().map(String::as_str))
        .into_values()
        .filter(|t| !t.partition)
        .map(|t| t.name)
        .collect();
    let rows: Vec<String> = tables.iter().map(|t| format!("{:?} = {ROWS}", t)).collect();
    let text = format!(
        "name = \"real\"\nseed = 1\nschema = {:?}\nrows = {{ {} }}\n\n[workload]\npool_size = 1\npool_timeout = \"1s\"\n\
         [[workload.query]]\nname = \"one\"\nsql = \"SELECT 1\"\nrate = 1\n\n[timeline]\nduration = \"1s\"\n",
        path.display().to_string(),
        rows.join(", ")
    );
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = LocalCluster::start(&[]).await.unwrap();
        let c = connect(cluster.config(), &Role::Harness).await.unwrap();
        let s =
            scenario::parse(Path::new("s.toml"), text, &Default::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let opts = LoadOptions { streams: 2, throwaway: true, ..Default::default() };
        let loaded = datagen::load(cluster.config(), "test", &c, &s, &opts, &Cleanup::new(None, false))
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for t in &loaded {
            let n: i64 = c.query_one(&format!("SELECT count(*) FROM {}", t.name), &[]).await.unwrap().get(0);
            assert_eq!(n as u64, ROWS, "{file}: {}", t.name);
        }
        let invalid = c
            .query(
                "SELECT conrelid::regclass::text || ' ' || conname FROM pg_constraint WHERE NOT convalidated \
                 UNION ALL SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid",
                &[],
            )
            .await
            .unwrap();
        (loaded.len(), invalid.iter().map(|r| r.get(0)).collect())
    })
}

fn every_constraint_valid(file: &str, allowed_not_valid: &[&str]) {
    let (tables, invalid) = fill(file);
    assert!(tables > 3, "{file}: {tables} tables");
    let unexpected: Vec<&String> =
        invalid.iter().filter(|i| !allowed_not_valid.iter().any(|a| i.ends_with(a))).collect();
    assert!(unexpected.is_empty(), "{file}: not valid after the load: {unexpected:?}");
}

#[test]
fn crates_io_fills() {
    // Two of its CHECKs are NOT VALID in the dump itself.
    every_constraint_valid("crates_io.sql", &["versions_num_max_length", "versions_tar_sha256_len"]);
}

#[test]
fn lemmy_fills() {
    every_constraint_valid("lemmy.sql", &[]);
}

#[test]
fn pagila_fills() {
    every_constraint_valid("pagila.sql", &[]);
}

#[test]
fn supabase_auth_fills() {
    every_constraint_valid("supabase_auth.sql", &[]);
}

#[test]
fn tt_rss_fills() {
    every_constraint_valid("tt_rss.sql", &[]);
}

#[test]
fn graphile_worker_fills() {
    every_constraint_valid("graphile_worker.sql", &[]);
}

#[test]
fn postgresql_event_sourcing_fills() {
    every_constraint_valid("postgresql_event_sourcing.sql", &[]);
}
