//! The formats' readers on files written here and on the fixture folders:
//! statement cutting, directives, names and transactions. No server: the
//! rehearsals of the fixture folders are in `tests/migration_folders.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::steps::keyword;
use super::*;
use crate::scenario::source::SourceFile;
use crate::scenario::{StepTx, TxControl};

fn source(name: &str, text: &str) -> Arc<SourceFile> {
    SourceFile::new(Path::new(name), text.to_string())
}

fn texts(src: &Arc<SourceFile>, ranges: &[std::ops::Range<usize>]) -> Vec<String> {
    ranges.iter().map(|r| src.text[r.clone()].to_string()).collect()
}

fn fixture(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/migrations").join(dir)
}

#[test]
fn statements_are_cut_where_the_server_cuts_them() {
    let text = "-- leading comment; not a statement\n\
        CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END; $body$;\n\
        CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n\
        CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));\n\
        /* nested /* comment; */ still comment; */ SELECT E'it\\'s; fine', 'a;b', \"x;y\" FROM t;\n\
        SELECT 3";
    let src = source("m.sql", text);
    let got = texts(&src, &split::statements(&src, 0..text.len()).unwrap());
    assert_eq!(got.len(), 5, "{got:#?}");
    assert!(got[0].starts_with("CREATE FUNCTION f()") && got[0].ends_with("$body$"), "{}", got[0]);
    assert!(got[1].ends_with("SELECT 2; END"), "{}", got[1]);
    assert!(got[2].ends_with("VALUES (2))"), "{}", got[2]);
    assert!(got[3].starts_with("SELECT E'it"), "comments before a statement are not part of it: {}", got[3]);
    assert_eq!(got[4], "SELECT 3");
}

#[test]
fn a_syntax_error_and_a_psql_meta_command_are_refused_at_their_line() {
    let src = source("m.sql", "SELECT 1;\nALTER TABEL t ADD c int;\n");
    let e = split::statements(&src, 0..src.text.len()).unwrap_err().to_string();
    assert!(e.starts_with("m.sql:2:7: syntax error"), "{e}");
    let src = source("m.sql", "SELECT 1;\n\\set ON_ERROR_STOP on\nSELECT 2;\n");
    let e = split::statements(&src, 0..src.text.len()).unwrap_err().to_string();
    assert!(e.starts_with("m.sql:2:1:") && e.contains("psql meta-command"), "{e}");
}

#[test]
fn steps_are_named_by_their_first_keywords() {
    assert_eq!(keyword("create unique index concurrently i on t (c)"), "CREATE UNIQUE INDEX");
    assert_eq!(keyword("CREATE OR REPLACE FUNCTION f() ..."), "CREATE OR REPLACE FUNCTION");
    assert_eq!(keyword("ALTER TABLE orders ADD COLUMN x int"), "ALTER TABLE");
    assert_eq!(keyword("INSERT INTO t VALUES (1)"), "INSERT");
    assert_eq!(keyword("DROP INDEX CONCURRENTLY i"), "DROP INDEX");
}

#[test]
fn goose_statements_end_at_a_semicolon_at_the_end_of_a_line() {
    let text = "-- +goose Up\nSELECT 1; -- a comment after\nSELECT 'a',\n 'b';\n-- +goose StatementBegin\nDO $$ BEGIN PERFORM 1; END $$;\nSELECT 2;\n-- +goose StatementEnd\n\n-- +goose Down\nSELECT 3;\n";
    let (up, down) = goose::parts(&source("1_x.sql", text)).unwrap();
    assert_eq!(up.sending, Sending::Transaction);
    let pieces: Vec<usize> = up.pieces.iter().map(|p| p.statements.len()).collect();
    // The block between StatementBegin and StatementEnd is one piece of two
    // statements.
    assert_eq!(pieces, vec![1, 1, 2]);
    assert_eq!(down.unwrap().pieces.len(), 1);
    let e = goose::parts(&source("1_x.sql", "-- +goose Up\nSELECT 1\n")).unwrap_err().to_string();
    assert!(e.contains("1_x.sql:2:1") && e.contains("does not end with `;`"), "{e}");
    // goose is blind to quotes: a line ending in `;` inside one ends the
    // statement, and the server would refuse the piece.
    let e = goose::parts(&source("1_x.sql", "-- +goose Up\nSELECT 'a;\nb';\n")).unwrap_err().to_string();
    assert!(e.contains("1_x.sql:2:8") && e.contains("StatementBegin"), "{e}");
    let (up, _) = goose::parts(&source("1_x.sql", "-- +goose Up\n-- +goose NO TRANSACTION\nSELECT 1;\n")).unwrap();
    assert_eq!(up.sending, Sending::Separately);
}

#[test]
fn dbmate_sections_and_their_transaction_option() {
    let text =
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (c);\n-- migrate:down\nDROP INDEX i;\n";
    let (up, down) = dbmate::parts(&source("1_x.sql", text)).unwrap();
    assert_eq!(up.sending, Sending::Separately);
    assert_eq!(up.pieces.len(), 1);
    assert_eq!(down.unwrap().sending, Sending::Transaction);
    assert!(dbmate::parts(&source("1_x.sql", "SELECT 1;\n")).is_err());
}

#[test]
fn flyway_versions_compare_as_numbers() {
    assert_eq!(numeric_key("1"), numeric_key("1.0"));
    assert_eq!(numeric_key("001"), numeric_key("1_0_0"));
    assert!(numeric_key("1.10") > numeric_key("1.9"));
    assert_eq!(flyway::parse_name("V1_2__add.sql"), Some(('V', "1_2", "add")));
    assert_eq!(flyway::parse_name("R__views.sql"), Some(('R', "", "views")));
    assert_eq!(flyway::parse_name("V__x.sql"), None);
}

#[test]
fn each_fixture_folder_is_detected_as_its_format() {
    let cases = [
        ("plain", Format::Plain),
        ("sqlx/migrations", Format::Sqlx),
        ("refinery", Format::Refinery),
        ("flyway", Format::Flyway),
        ("golang-migrate/migrations", Format::GolangMigrate),
        ("goose", Format::Goose),
        ("dbmate", Format::Dbmate),
        ("diesel", Format::Diesel),
        ("prisma/migrations", Format::Prisma),
        ("atlas", Format::Atlas),
    ];
    for (dir, want) in cases {
        let (got, why) = detect(&fixture(dir)).unwrap();
        assert_eq!(got, want, "{dir}: {why}");
        let catalog = read(&fixture(dir), None).unwrap();
        assert!(catalog.migrations.len() >= 3, "{dir}");
        assert!(catalog.migrations[0].path.to_string_lossy().contains("create_accounts"), "{dir}: first in order");
    }
}

#[test]
fn a_file_that_opens_a_transaction_shares_it_until_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1_x.sql");
    std::fs::write(
        &path,
        "BEGIN;\nALTER TABLE t ADD c int;\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (c);\nSELECT 1;\n",
    )
    .unwrap();
    let folder = from_files(std::slice::from_ref(&path), None).unwrap();
    let tx: Vec<StepTx> = folder.strategy.steps.iter().map(|s| s.tx).collect();
    let shared = |control| StepTx::Shared(crate::scenario::SharedTx { id: 1, begin: false, commit: false, control });
    assert_eq!(
        tx,
        vec![shared(Some(TxControl::Begin)), shared(None), shared(Some(TxControl::End)), StepTx::Alone, StepTx::Own]
    );
    let names: Vec<&str> = folder.strategy.steps.iter().map(|s| s.name.as_deref().unwrap()).collect();
    assert_eq!(names[3], "1_x.sql:4 CREATE INDEX");
    std::fs::write(&path, "BEGIN;\nALTER TABLE t ADD c int;\n").unwrap();
    let e = from_files(&[path], None).unwrap_err().to_string();
    assert!(e.contains("never ends"), "{e}");
}

#[test]
fn the_runners_transaction_opens_before_the_first_statement_and_commits_after_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1_x.sql");
    std::fs::write(&path, "ALTER TABLE t ADD c int;\nCREATE INDEX i ON t (c);\n").unwrap();
    let folder = from_files(&[path], Some(Format::Sqlx)).unwrap();
    let tx: Vec<StepTx> = folder.strategy.steps.iter().map(|s| s.tx).collect();
    let shared = |begin, commit| StepTx::Shared(crate::scenario::SharedTx { id: 1, begin, commit, control: None });
    assert_eq!(tx, vec![shared(true, false), shared(false, true)]);
}

#[test]
fn the_candidate_is_the_last_or_from_a_version_and_the_rest_is_the_schema() {
    let dir = fixture("goose");
    let last = from_folder(&dir, None, &Selection::Last).unwrap();
    assert_eq!(last.strategy.files.len(), 1);
    assert!(last.strategy.files[0].file.starts_with("20240104"));
    let schema = last.schema.unwrap();
    assert!(schema.statements.iter().any(|s| s.text.starts_with("CREATE TABLE accounts")));
    let from = from_folder(&dir, None, &Selection::From("20240103000000".into())).unwrap();
    assert_eq!(from.strategy.files.len(), 2);
    assert!(from_folder(&dir, None, &Selection::From("20990101000000".into())).is_err());
}

#[test]
fn changed_since_a_commit_picks_the_files_a_pull_request_adds() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q"]);
    let m = dir.path().join("migrations");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("001_a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    std::fs::write(m.join("002_b.sql"), "CREATE TABLE b (id int);\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "base"]);
    // The pull request: a new migration, not yet committed.
    std::fs::write(m.join("003_c.sql"), "ALTER TABLE a ADD c int;\n").unwrap();
    let folder = from_folder(&m, Some(Format::Plain), &Selection::ChangedSince("HEAD".into())).unwrap();
    let files: Vec<&str> = folder.strategy.files.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(files, ["003_c.sql"]);
    assert_eq!(folder.schema.unwrap().statements.len(), 2, "the earlier ones build the schema");
    let e = from_folder(&m, Some(Format::Plain), &Selection::ChangedSince("no-such-ref".into())).unwrap_err();
    assert!(e.to_string().contains("git"), "{e}");
}

#[test]
fn a_broken_down_migration_does_not_stop_the_up() {
    // crates.io keeps a down.sql with a missing `;` it never runs.
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("2017-01-01-000000_x");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("up.sql"), "CREATE TABLE t (id int);\n").unwrap();
    std::fs::write(m.join("down.sql"), "ALTER TABLE t DROP COLUMN a\nALTER TABLE t ADD b int;\n").unwrap();
    // Old undashed and newer dashed versions interleave as diesel orders them.
    for (d, sql) in [
        ("20170804200817_add_email", "CREATE TABLE e (id int);"),
        ("2017-09-23-182408_use_email", "ALTER TABLE e ADD u int;"),
    ] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
        std::fs::write(dir.path().join(d).join("up.sql"), sql).unwrap();
    }
    let catalog = read(dir.path(), Some(Format::Diesel)).unwrap();
    let order: Vec<&str> = catalog.migrations.iter().map(|m| m.version.as_str()).collect();
    assert_eq!(order, ["2017-01-01-000000", "20170804200817", "2017-09-23-182408"]);
    assert!(catalog.migrations[0].down.is_none());
    assert_eq!(catalog.migrations[0].up.pieces.len(), 1);
}
