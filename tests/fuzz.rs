//! A short fuzz run (see `fuzz_engine.rs`): mutated scenarios through the
//! validator and the generators, none of which may panic. The long run is
//! `cargo bench --bench fuzz`.

use crate::common::repo;
use crate::fuzz_engine::{run, seeds};

#[test]
fn mutated_scenarios_never_panic() {
    let seeds = seeds(&repo(""));
    assert!(seeds.len() >= 3, "seeds from scenarios/, benches/ and tests/fixtures/");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.sql"), "CREATE TABLE t (id int PRIMARY KEY);").unwrap();
    let found = run(&seeds, 3000, 1, dir.path(), false);
    println!("fuzz: {} cases, {} accepted, {} panics", found.cases, found.accepted, found.panic_count);
    assert!(found.accepted > 100, "mutations still reach the generators: {found:?}");
    assert_eq!(found.panic_count, 0, "{:#?}", found.panics);
}
