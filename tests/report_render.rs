//! What a user sees: the terminal summary (snapshot-tested from a fixed
//! report model) and the JSON field names the README documents.

use std::collections::BTreeMap;

use rehearse::clock::Phase;
use rehearse::datagen::LoadedTable;
use rehearse::interference::{InterferenceOutcome, InterferenceReport};
use rehearse::migration::{LockMode, LockTaken, MigrationReport, Outcome, StepReport, TransactionKind};
use rehearse::observe::{BlockEdge, Gap, GapSummary, LockSummary};
use rehearse::postgres::{BackendKind, FaultKind, SqlError};
use rehearse::report::{
    Check, FaultReport, Judged, LoopKind, Named, PhaseReport, Phases, PostgresInfo, QueryInfo, QueryKind, Report,
    ThresholdsInfo, Timeline, Verdict, WorkloadInfo, evaluate, render, render_side_by_side, to_json_many,
};
use rehearse::scenario::{Arrival, Target};
use rehearse::workload::{PoolPoint, PoolStats, QueryPhaseStats, SeriesPoint};

fn stats(count: u64, errors: u64, p50: f64, p99: f64, max: f64, kinds: &[(&str, u64)]) -> QueryPhaseStats {
    QueryPhaseStats {
        count,
        errors,
        error_kinds: kinds.iter().map(|(k, n)| (k.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        p50_ms: Some(p50),
        p90_ms: Some(p99 * 0.9),
        p99_ms: Some(p99),
        p999_ms: Some(max),
        max_ms: Some(max),
        failed_p99_ms: (errors > 0).then_some(2001.0),
        failed_max_ms: (errors > 0).then_some(2004.5),
    }
}

fn phase(start: f64, end: f64, get: QueryPhaseStats, new: QueryPhaseStats) -> PhaseReport {
    PhaseReport {
        start_s: start,
        end_s: end,
        seconds: end - start,
        queries: Named(vec![("get_order".into(), get), ("new_order".into(), new)]),
    }
}

/// The naive strategy's outage, as a fixed model.
pub(crate) fn naive() -> Report {
    let phases = Phases {
        baseline: phase(0.0, 10.0, stats(4000, 0, 1.4, 3.1, 13.6, &[]), stats(500, 0, 2.6, 5.7, 13.6, &[])),
        during: phase(
            10.0,
            20.2,
            stats(4080, 3236, 1126.4, 10220.0, 10230.1, &[("pool_timeout", 3236)]),
            stats(510, 404, 1205.2, 10210.0, 10220.0, &[("pool_timeout", 404)]),
        ),
        after: phase(20.2, 30.2, stats(4000, 0, 1.5, 4.7, 183.3, &[]), stats(500, 0, 2.6, 35.8, 177.4, &[])),
        rollback: None,
        after_rollback: None,
    };
    let migration = MigrationReport {
        outcome: Outcome::Ok,
        started_s: 10.01,
        ended_s: 20.22,
        total_ms: 10210.0,
        lock_wait_ms: 10190.0,
        steps: vec![StepReport {
            wal_bytes: None,
            index: 1,
            name: None,
            sql: "ALTER TABLE orders ADD COLUMN status_v2 varchar(50) DEFAULT 'pending' NOT NULL".into(),
            transactional: true,
            transaction: TransactionKind::Own,
            transaction_id: None,
            held_until_s: None,
            file: None,
            line: None,
            started_s: 10.01,
            ended_s: 20.22,
            duration_ms: 10210.0,
            lock_wait_ms: 10190.0,
            unsampled_ms: 0.0,
            held_ms: 20.0,
            attempts: 1,
            batches: None,
            batches_series: vec![],
            progress: None,
            rows: 0,
            locks: vec![LockTaken { relation: "orders".into(), mode: LockMode::AccessExclusive }],
            rewrote: vec![],
            error: None,
        }],
        files: vec![],
        source: None,
    };
    let edge = |waiter: &str, blocker: &str, mode: &str, n: usize, ms: f64, q: &str| BlockEdge {
        waiter: waiter.into(),
        blocker: blocker.into(),
        relation: "orders".into(),
        mode: mode.into(),
        max_waiters: n,
        longest_wait_ms: ms,
        longest_began_s: 10.0,
        first_s: 10.0,
        last_s: 20.2,
        blocker_query: q.into(),
        max_blockers: 1,
    };
    let locks = LockSummary {
        interval_ms: 20.0,
        samples: 1510,
        failed_samples: 0,
        gaps: GapSummary::default(),
        longest_wait_ms: 10180.0,
        longest_wait_role: Some("migration".into()),
        longest_wait_spans_gap: false,
        longest_wait_lower_bound: false,
        workload_longest_wait_ms: 10170.0,
        max_waiting: 51,
        max_waiting_at_s: Some(10.1),
        longest_wait_by_role: BTreeMap::from([("migration".into(), 10180.0), ("workload".into(), 10170.0)]),
        blocking: vec![
            edge(
                "migration",
                "interference cs-report",
                "AccessExclusiveLock",
                1,
                10180.0,
                "SELECT status, count(*) FROM orders, pg_sleep(15) GROUP BY status",
            ),
            edge(
                "workload",
                "migration",
                "AccessShareLock",
                44,
                10170.0,
                "ALTER TABLE orders ADD COLUMN status_v2 varchar(50) DEFAULT 'pending' NOT NULL",
            ),
            edge(
                "workload",
                "migration",
                "RowExclusiveLock",
                6,
                10170.0,
                "ALTER TABLE orders ADD COLUMN status_v2 varchar(50) DEFAULT 'pending' NOT NULL",
            ),
        ],
        waiting_series: vec![],
    };
    let thresholds = ThresholdsInfo {
        max_lock_wait_ms: Some(1000.0),
        max_p99_ms: Some(250.0),
        max_error_rate: Some(0.001),
        max_p99_ratio: None,
        max_broken_queries: 0,
        max_lost_writes: 0,
        max_replica_lag_ms: None,
        max_replica_lag_bytes: None,
        max_regression: None,
        defaults: false,
    };
    let mut r = Report {
        scenario: "add-column-default".into(),
        strategy: Some("naive".into()),
        seed: 42,
        scale: 1.0,
        postgres: PostgresInfo {
            backend: BackendKind::Local,
            chosen: "local, as --backend local asks".into(),
            image: None,
            version: "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu".into(),
            version_num: 150018,
            deadlock_timeout_ms: 1000.0,
            target: "postgres://postgres@127.0.0.1:45071/postgres".into(),
            settings: Named(vec![("max_connections".into(), "200".into())]),
            settings_applied: true,
        },
        tables: vec![LoadedTable {
            name: "orders".into(),
            rows: 2_000_000,
            heap_bytes: 184_942_592,
            total_bytes: 245_891_072,
            load_seconds: 3.2,
            copy_seconds: 2.1,
            index_seconds: 0.9,
            vacuum_seconds: 0.5,
            dead_tuples: 0,
            reused: false,
        }],
        workload: WorkloadInfo {
            pool_size: 50,
            pool_timeout_ms: 2000.0,
            replica: None,
            queries: vec![
                open_query("get_order", QueryKind::Read, 400.0),
                open_query("new_order", QueryKind::Write, 50.0),
            ],
        },
        timeline: Timeline {
            migrate_at_s: Some(10.0),
            duration_s: None,
            end_s: 30.2,
            interference: vec![InterferenceReport {
                name: "cs-report".into(),
                started_s: Some(5.0),
                ended_s: Some(20.2),
                outcome: InterferenceOutcome::Ok,
                error: None,
                optional: false,
            }],
        },
        phases,
        pool: PoolStats {
            size: 50,
            max_in_use: 50,
            full_seconds: 10.2,
            timeouts: 3640,
            replans: 50,
            series: (0..31)
                .map(|second| {
                    let stalled = (10..=20).contains(&second);
                    let (max_in_use, max_queued) = if stalled { (50, 300) } else { (4, 0) };
                    PoolPoint { second, max_in_use, max_queued }
                })
                .collect(),
        },
        migration: Some(migration),
        rollback: None,
        locks,
        broken: vec![],
        checks: vec![],
        plans: None,
        wal: None,
        replication: None,
        cdc: None,
        ledger: None,
        pooler: None,
        regressions: None,
        series: Named(vec![(
            "get_order".into(),
            vec![SeriesPoint {
                second: 10,
                count: 400,
                errors: 351,
                p50_ms: Some(10092.5),
                p99_ms: Some(10158.0),
                max_ms: Some(10160.2),
            }],
        )]),
        thresholds,
        fault: None,
        verdict: Verdict { pass: true, violations: vec![] },
        warnings: vec![],
    };
    r.verdict = judge(&r);
    r
}

/// The verdict on `r` as it stands.
pub(crate) fn judge(r: &Report) -> Verdict {
    evaluate(&Judged {
        thresholds: &r.thresholds,
        migration: r.migration.as_ref(),
        has_strategy: r.strategy.is_some(),
        rollback: r.rollback.as_ref(),
        locks: &r.locks,
        phases: &r.phases,
        interference: &r.timeline.interference,
        fault: r.fault.as_ref(),
        replication: r.replication.as_ref(),
        broken: &r.broken,
        ledger: r.ledger.as_ref(),
    })
}

fn open_query(name: &str, kind: QueryKind, rate: f64) -> QueryInfo {
    QueryInfo {
        name: name.into(),
        kind,
        loop_kind: LoopKind::Open,
        rate: Some(rate),
        peak_rate: Some(rate),
        arrival: Some(Arrival::Uniform),
        clients: None,
        think_time_ms: None,
        statements: 1,
        target: Target::Primary,
        statement_timeout_ms: None,
        timeout_ms: None,
        source: None,
    }
}

#[test]
fn terminal_summary_of_the_outage() {
    insta::assert_snapshot!("naive_outage", render(&naive()));
}

/// The outage on two servers: as it was, and on a server where the
/// report ended sooner, so that the columns differ.
pub(crate) fn two_servers() -> Vec<Report> {
    let mut a = naive();
    a.postgres.backend = BackendKind::Docker;
    a.postgres.image = Some("postgres:12".into());
    a.postgres.version = "PostgreSQL 12.22 on x86_64-pc-linux-gnu".into();
    let mut b = naive();
    b.postgres.backend = BackendKind::Docker;
    b.postgres.image = Some("rehearse/postgres:15".into());
    let m = b.migration.as_mut().unwrap();
    m.lock_wait_ms = 1_200.0;
    m.total_ms = 1_250.0;
    b.locks.workload_longest_wait_ms = 1_190.0;
    b.pool.timeouts = 0;
    b.verdict = judge(&b);
    vec![a, b]
}

#[test]
fn terminal_side_by_side_of_two_servers() {
    insta::assert_snapshot!("two_servers", render_side_by_side(&two_servers()));
}

#[test]
fn the_json_of_several_servers_holds_one_report_each() {
    let v: serde_json::Value = serde_json::from_str(&to_json_many(&two_servers())).unwrap();
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["postgres"]["image"], "postgres:12");
    assert_eq!(reports[1]["postgres"]["image"], "rehearse/postgres:15");
    assert_eq!(reports[1]["postgres"]["backend"], "docker");
    assert_eq!(reports[1]["migration"]["lock_wait_ms"], 1_200.0);
}

#[test]
fn terminal_summary_of_a_failed_step() {
    let mut r = naive();
    let m = r.migration.as_mut().unwrap();
    m.outcome = Outcome::Failed;
    m.steps[0].error = Some(SqlError {
        sqlstate: Some("42704".into()),
        message: "type \"nosuchtype\" does not exist".into(),
        position: Some(42),
        detail: None,
        hint: None,
    });
    r.verdict = judge(&r);
    let text = render(&r);
    assert!(text.contains("MIGRATION  FAILED"));
    assert!(text.contains("error: ERROR 42704: type \"nosuchtype\" does not exist (at character 42)"));
    assert!(text.contains("✗ migration: the migration failed at step 1: ERROR 42704"));
}

/// The outage, then its rollback (`--rollback`): a DROP COLUMN that
/// waited behind the report and held up every request for 3 s, then
/// failed on a second statement.
fn with_rollback() -> Report {
    let mut r = naive();
    r.timeline.end_s = 45.0;
    r.phases.after.end_s = 30.2;
    let slow = stats(1200, 0, 900.0, 3020.0, 3050.0, &[]);
    r.phases.rollback = Some(phase(30.2, 33.3, slow.clone(), slow));
    let calm = stats(4000, 0, 1.4, 3.3, 20.0, &[]);
    r.phases.after_rollback = Some(phase(33.3, 45.0, calm.clone(), calm));
    let mut back = r.migration.clone().unwrap();
    back.outcome = Outcome::Failed;
    (back.started_s, back.ended_s, back.total_ms, back.lock_wait_ms) = (30.2, 33.3, 3100.0, 3050.0);
    let step = &mut back.steps[0];
    step.name = Some("0002_status.down.sql:1 ALTER TABLE".into());
    step.sql = "ALTER TABLE orders DROP COLUMN status_v2".into();
    (step.started_s, step.ended_s, step.duration_ms, step.lock_wait_ms) = (30.2, 33.3, 3100.0, 3050.0);
    step.error = Some(SqlError {
        sqlstate: Some("42703".into()),
        message: "column \"status_v2\" of relation \"orders\" does not exist".into(),
        position: None,
        detail: None,
        hint: None,
    });
    r.rollback = Some(back);
    r.verdict = judge(&r);
    r
}

#[test]
fn terminal_summary_with_a_rollback() {
    let r = with_rollback();
    let text = render(&r);
    insta::assert_snapshot!("with_rollback", text);
    let checks: Vec<String> = r.verdict.violations.iter().map(|v| format!("{}: {}", v.threshold, v.message)).collect();
    // The rollback's failure and its latency are findings of their own.
    assert!(
        checks.iter().any(|c| c.starts_with("rollback: the rollback failed at step 1 (0002_status.down.sql:1")),
        "{checks:?}"
    );
    assert!(checks.iter().any(|c| c.contains("p99 during the rollback was 3.02s")), "{checks:?}");
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["rollback"]["outcome"], "failed");
    assert_eq!(v["phases"]["rollback"]["start_s"], 30.2);
    assert_eq!(v["phases"]["after_rollback"]["end_s"], 45.0);
    // Without --rollback the fields are absent, not null.
    let plain = serde_json::to_value(naive()).unwrap();
    assert!(plain.get("rollback").is_none() && plain["phases"].get("rollback").is_none());
}

#[test]
fn the_json_has_every_documented_field() {
    let v = serde_json::to_value(naive()).unwrap();
    let has = |path: &str| {
        let mut cur = &v;
        for part in path.split('.') {
            cur = cur.get(part).unwrap_or_else(|| panic!("missing {path}"));
        }
        cur.clone()
    };
    for path in [
        "scenario",
        "strategy",
        "postgres.backend",
        "postgres.chosen",
        "postgres.image",
        "postgres.version",
        "locks.longest_wait_ms",
        "locks.max_waiting",
        "verdict.pass",
        "migration.outcome",
        "migration.total_ms",
    ] {
        has(path);
    }
    assert_eq!(has("postgres.backend"), "local");
    let t = &has("tables")[0];
    for k in ["name", "rows", "heap_bytes", "load_seconds"] {
        assert!(t.get(k).is_some(), "tables[].{k}");
    }
    for p in ["baseline", "during", "after"] {
        assert!(has(&format!("phases.{p}.seconds")).is_number());
        let q = has(&format!("phases.{p}.queries.get_order"));
        for k in ["count", "errors", "p50_ms", "p99_ms", "max_ms"] {
            assert!(q.get(k).is_some(), "phases.{p}.queries.get_order.{k}");
        }
    }
    let s = &has("migration.steps")[0];
    for k in ["sql", "duration_ms", "lock_wait_ms", "attempts", "locks", "rewrote", "error"] {
        assert!(s.get(k).is_some(), "migration.steps[].{k}");
    }
    assert_eq!(s["locks"][0], serde_json::json!({"relation": "orders", "mode": "AccessExclusiveLock"}));
    assert!(s["error"].is_null());
    assert_eq!(has("migration.outcome"), "ok");
    assert!(has("verdict.violations").as_array().unwrap().len() >= 3);
}

/// The outage cut short: the server killed during the migration, the
/// report interference failed, and samples missing.
fn cut_short() -> Report {
    let mut r = naive();
    r.fault = Some(FaultReport {
        kind: FaultKind::ServerStopped,
        at_s: 14.2,
        phase: Phase::During,
        during_migration: true,
        detail: "the postmaster exited (signal: 9 (SIGKILL))".into(),
    });
    let m = r.migration.as_mut().unwrap();
    m.outcome = Outcome::Interrupted;
    m.steps[0].error = Some(SqlError::harness("the server stopped while the statement ran; it was abandoned"));
    m.steps[0].unsampled_ms = 4200.0;
    r.locks.failed_samples = 3;
    r.locks.gaps =
        GapSummary { count: 1, seconds: 4.2, longest_s: 4.2, longest: vec![Gap { start_s: 10.0, end_s: 14.2 }] };
    r.locks.longest_wait_lower_bound = true;
    let i = &mut r.timeline.interference[0];
    i.outcome = InterferenceOutcome::Failed;
    i.error = Some(SqlError {
        sqlstate: Some("42703".into()),
        message: "column \"stauts\" does not exist".into(),
        position: Some(8),
        detail: None,
        hint: None,
    });
    r.verdict = judge(&r);
    r
}

#[test]
fn terminal_summary_of_a_run_the_server_cut_short() {
    let r = cut_short();
    assert!(!r.verdict.pass);
    let checks: Vec<Check> = r.verdict.violations.iter().map(|v| v.threshold).collect();
    assert!(checks.contains(&Check::Server) && checks.contains(&Check::Interference), "{checks:?}");
    insta::assert_snapshot!("cut_short", render(&r));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["fault"]["kind"], "server_stopped");
    assert_eq!(v["fault"]["phase"], "during");
    assert_eq!(v["migration"]["outcome"], "interrupted");
    assert_eq!(v["timeline"]["interference"][0]["outcome"], "failed");
    assert_eq!(v["locks"]["gaps"]["count"], 1);
}

#[test]
fn an_optional_interference_that_fails_does_not_fail_the_verdict() {
    let mut r = cut_short();
    r.fault = None;
    r.migration = naive().migration;
    r.timeline.interference[0].optional = true;
    let checks: Vec<Check> = judge(&r).violations.iter().map(|v| v.threshold).collect();
    assert!(!checks.contains(&Check::Interference), "{checks:?}");
    r.timeline.interference[0].optional = false;
    let checks: Vec<Check> = judge(&r).violations.iter().map(|v| v.threshold).collect();
    assert!(checks.contains(&Check::Interference), "{checks:?}");
}

/// A query the migration broke, and the replicas section: each standby's
/// lag per phase, and the requests a standby cancelled for a conflict with
/// recovery.
#[test]
fn terminal_summary_with_a_broken_query_and_a_lagging_replica() {
    use rehearse::observe::lag::{LagPhase, LagPoint, ReplicaLag};
    use rehearse::report::{BrokenQuery, PhaseConflicts, Replication, StepRef};
    let mut r = naive();
    r.broken = vec![BrokenQuery {
        query: "get_order".into(),
        sql: "SELECT status FROM orders WHERE id = $1".into(),
        sqlstate: "42703".into(),
        message: "column \"status\" does not exist".into(),
        first_s: 20.31,
        errors: 3998,
        after_step: Some(StepRef {
            migration: "migration".into(),
            index: 2,
            name: Some("drop status".into()),
            sql: "ALTER TABLE orders DROP COLUMN status".into(),
            file: Some("migrations/0002_drop_status.sql".into()),
            line: Some(3),
        }),
    }];
    let phase = |phase, max_ms, p99_ms, max_b, p99_b| LagPhase {
        phase,
        samples: 100,
        max_lag_ms: max_ms,
        p99_lag_ms: p99_ms,
        max_lag_bytes: max_b,
        p99_lag_bytes: p99_b,
    };
    r.replication = Some(Replication {
        interval_ms: 100.0,
        replicas: vec![ReplicaLag {
            name: "postgres://postgres@127.0.0.1:36323/postgres".into(),
            samples: 300,
            failed_samples: 0,
            max_lag_ms: Some(8285.0),
            max_lag_bytes: Some(278_600_000),
            max_lag_at_s: Some(40.6),
            phases: vec![
                phase(Phase::Baseline, 0.0, 0.0, 0, 0),
                phase(Phase::During, 8260.0, 8180.0, 278_600_000, 277_000_000),
                phase(Phase::After, 8285.0, 8260.0, 257_000_000, 253_200_000),
            ],
            series: vec![LagPoint { second: 40, max_lag_ms: 8285.0, max_lag_bytes: 278_600_000 }],
        }],
        conflicts: vec![
            PhaseConflicts { phase: Phase::Baseline, requests: 0 },
            PhaseConflicts { phase: Phase::During, requests: 3 },
            PhaseConflicts { phase: Phase::After, requests: 0 },
        ],
    });
    r.plans = Some(rehearse::observe::plans::PlanCheck {
        checked: 2,
        changed: vec![rehearse::observe::plans::PlanChange {
            query: "by_sku".into(),
            statement: 1,
            sql: "SELECT * FROM items WHERE sku = $1".into(),
            before: Some(rehearse::observe::plans::Plan {
                nodes: vec!["Index Scan using items_sku_idx on items".into()],
                cost: 8.3,
            }),
            after: Some(rehearse::observe::plans::Plan { nodes: vec!["Seq Scan on items".into()], cost: 413.0 }),
            error: None,
            indexes_lost: vec!["items_sku_idx".into()],
            new_seq_scans: vec!["items".into()],
        }],
    });
    use rehearse::observe::wal::{WalPhase, WalPoint, WalReport};
    let wal_phase = |phase, bytes, fpi| WalPhase { phase, bytes, full_page_images: Some(fpi) };
    r.wal = Some(WalReport {
        interval_ms: 250.0,
        samples: 200,
        bytes: 560_000_000,
        peak_bytes_per_s: 21_000_000,
        peak_at_s: Some(31.0),
        phases: vec![
            wal_phase(Phase::Baseline, 300_000, 12),
            wal_phase(Phase::During, 540_000_000, 24_000),
            wal_phase(Phase::After, 19_700_000, 310),
        ],
        series: vec![WalPoint { second: 31, bytes: 21_000_000 }],
    });
    let mut slot = r.replication.as_ref().unwrap().replicas[0].clone();
    slot.name = "slot rehearse_cdc (pgoutput)".into();
    r.cdc = Some(rehearse::report::Cdc {
        plugin: rehearse::scenario::CdcPlugin::Pgoutput,
        rate: Some(5000.0),
        stats: rehearse::observe::cdc::CdcStats { changes: 120_000, max_retained_bytes: 270_000_000, failed_reads: 0 },
        lag: slot,
    });
    use rehearse::ledger::{LedgerQuery, LedgerReport, Untracked, WriteKind};
    r.ledger = Some(LedgerReport {
        writes: 12_400,
        keys: 12_380,
        lost: 144,
        altered: 72,
        changed_by_migration: 40,
        queries: vec![
            LedgerQuery {
                query: "new_order".into(),
                statement: 1,
                table: "orders".into(),
                kind: WriteKind::Insert,
                writes: 9_000,
                lost: 144,
                altered: 0,
                changed_by_migration: 40,
                examples: vec!["lost id=501005".into(), "lost id=501006".into()],
            },
            LedgerQuery {
                query: "pay_order".into(),
                statement: 1,
                table: "orders".into(),
                kind: WriteKind::Update,
                writes: 3_400,
                lost: 0,
                altered: 72,
                changed_by_migration: 0,
                examples: vec!["altered id=110304".into()],
            },
        ],
        untracked: vec![Untracked {
            query: "log_visit".into(),
            reason: "visits has no primary key or unique NOT NULL key".into(),
        }],
        errors: vec![],
        notes: vec![],
        file_bytes: 400_000,
        verify_ms: 310.0,
    });
    r.thresholds.max_replica_lag_ms = Some(1000.0);
    r.verdict = judge(&r);
    let text = render(&r);
    let section = &text[text.find("BROKEN").expect("a broken-queries section")..];
    insta::assert_snapshot!("broken_and_lagging_replica", section);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["replication"]["replicas"][0]["phases"][1]["phase"], "during");
    assert_eq!(v["thresholds"]["max_replica_lag_ms"], 1000.0);
    assert_eq!(v["ledger"]["queries"][0]["kind"], "insert");
    assert_eq!(v["thresholds"]["max_lost_writes"], 0);
}
