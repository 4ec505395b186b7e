//! Three PostgreSQL majors side by side, in containers built by
//! `scripts/build-postgres-image --major N` from Debian's suites (13 from
//! bullseye, 15 from bookworm, 17 from trixie): each report carries its
//! server's version, and a behaviour that differs between them shows.
//! Skipped without Docker or the images, unless `REHEARSE_REQUIRE_DOCKER=1`
//! (CI builds them).

use std::process::Command;

use serde_json::Value;

use crate::common::{Sandbox, heavy, text};

pub const MAJORS: [u32; 3] = [13, 15, 17];

/// The three images, or `None` (skip).
pub fn images() -> Option<Vec<String>> {
    let required = std::env::var("REHEARSE_REQUIRE_DOCKER").as_deref() == Ok("1");
    let images: Vec<String> = MAJORS.iter().map(|m| format!("rehearse/postgres:{m}")).collect();
    let missing: Vec<&String> = images
        .iter()
        .filter(|i| !Command::new("docker").args(["image", "inspect", i]).output().is_ok_and(|o| o.status.success()))
        .collect();
    if missing.is_empty() {
        return Some(images);
    }
    let problem = format!("missing images {missing:?}: scripts/build-postgres-image --major N builds them");
    assert!(!required, "REHEARSE_REQUIRE_DOCKER=1 but {problem}");
    eprintln!("skipped: {problem}");
    None
}

/// A range-partitioned table whose older partition is detached
/// concurrently (outside a transaction, as it must be): PostgreSQL 14
/// added `DETACH PARTITION … CONCURRENTLY`, which takes SHARE UPDATE
/// EXCLUSIVE on the parent instead of ACCESS EXCLUSIVE.
const DETACH: &str = r#"name = "detach-partition"
seed = 2

[[table]]
name = "events"
rows = 20000
ddl = """
CREATE TABLE events (id bigint NOT NULL PRIMARY KEY, note text) PARTITION BY RANGE (id);
CREATE TABLE events_old PARTITION OF events FOR VALUES FROM (MINVALUE) TO (10001);
CREATE TABLE events_new PARTITION OF events FOR VALUES FROM (10001) TO (MAXVALUE);
"""

[workload]
pool_size = 4
pool_timeout = "2s"

[[workload.query]]
name = "get_event"
sql = "SELECT * FROM events WHERE id = $1"
params = [{ int = [1, 20000] }]
rate = 30

[timeline]
migrate_at = "2s"
cooldown = "2s"
max_duration = "30s"

[[strategy]]
name = "detach-concurrently"
steps = [{ sql = "ALTER TABLE events DETACH PARTITION events_old CONCURRENTLY", transaction = false }]

[thresholds]
max_p99 = "5s"
"#;

#[test]
fn three_majors_side_by_side_each_with_its_version_and_detach_concurrently_only_from_14() {
    let Some(images) = images() else { return };
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let path = sandbox.write("detach.toml", DETACH);
    let mut args = vec!["run", path.to_str().unwrap(), "--backend", "docker", "--quiet", "--json", "r.json"];
    for image in &images {
        args.extend(["--pg-image", image.as_str()]);
    }
    let out = sandbox.run(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // 13 fails the migration: the verdict is FAIL.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(sandbox.path().join("r.json")).unwrap()).unwrap();
    let reports = r["reports"].as_array().expect("one report per server");
    assert_eq!(reports.len(), 3);
    for ((report, image), major) in reports.iter().zip(&images).zip(MAJORS) {
        assert_eq!(report["postgres"]["image"], image.as_str());
        let version = report["postgres"]["version"].as_str().unwrap();
        assert!(version.starts_with(&format!("PostgreSQL {major}.")), "{image}: {version}");
        let m = &report["migration"];
        let step = &m["steps"][0];
        if major < 14 {
            assert_eq!(m["outcome"], "failed", "{image}: {m}");
            assert_eq!(step["error"]["sqlstate"], "42601", "{image}: a syntax error before 14: {step}");
        } else {
            assert_eq!(m["outcome"], "ok", "{image}: {m}");
            let exclusive = step["locks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["relation"] == "events" && l["mode"] == "AccessExclusiveLock");
            assert!(!exclusive, "{image}: the parent is not locked exclusively: {step}");
            assert_eq!(report["verdict"]["pass"], true, "{image}: {}", report["verdict"]);
        }
    }
    // Side by side: one column per server, each named.
    let header = stdout.lines().find(|l| l.contains("rehearse/postgres:13")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(header.contains("rehearse/postgres:15") && header.contains("rehearse/postgres:17"), "{header}");
}
