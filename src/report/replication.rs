//! Replicas in the report: each standby's lag (see
//! [`crate::observe::lag`]), the workload's requests that a standby
//! cancelled for a conflict with recovery, per phase, and the verdict on
//! `max_replica_lag` and `max_replica_lag_bytes`.

use std::fmt::Write;

use serde::Serialize;

use super::terminal::dur;
use super::{Check, Phases, ThresholdsInfo, Violation};
use crate::clock::Phase;
use crate::observe::lag::ReplicaLag;
use crate::workload::Failure;

/// What the replicas went through over the run.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Replication {
    /// Time between lag samples, in milliseconds.
    pub interval_ms: f64,
    /// Each standby measured, in the order they were started.
    pub replicas: Vec<ReplicaLag>,
    /// Per phase, workload requests a standby cancelled for a conflict with
    /// recovery (SQLSTATE 40001): a replayed lock, or a row version a
    /// query still needed that the primary had vacuumed, after
    /// `max_standby_streaming_delay`. They count among their query's errors
    /// too.
    pub conflicts: Vec<PhaseConflicts>,
}

/// Recovery conflicts in one phase.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PhaseConflicts {
    /// The phase, by when the requests were due.
    pub phase: Phase,
    /// Requests cancelled by a conflict with recovery.
    pub requests: u64,
}

/// The CDC slot and its consumer over the run.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Cdc {
    /// The output plugin.
    pub plugin: crate::scenario::CdcPlugin,
    /// The consumer's pace, in changes per second; null for as fast as it
    /// could.
    pub rate: Option<f64>,
    /// What the consumer read, and the most WAL the slot held back.
    pub stats: crate::observe::cdc::CdcStats,
    /// How far the consumer was behind, measured as a replica's lag is
    /// (its confirmed position against the primary's).
    pub lag: ReplicaLag,
}

/// The replication section: `None` when no standby was measured.
pub(super) fn build(interval_ms: f64, replicas: Vec<ReplicaLag>, phases: &Phases) -> Option<Replication> {
    if replicas.is_empty() {
        return None;
    }
    let label = Failure::RecoveryConflict.label();
    let each = [
        (Phase::Baseline, Some(&phases.baseline)),
        (Phase::During, Some(&phases.during)),
        (Phase::After, Some(&phases.after)),
        (Phase::Rollback, phases.rollback.as_ref()),
        (Phase::AfterRollback, phases.after_rollback.as_ref()),
    ];
    let conflicts = each
        .into_iter()
        .filter_map(|(phase, report)| {
            let report = report?;
            let requests = report.queries.0.iter().filter_map(|(_, q)| q.error_kinds.get(&label)).sum();
            Some(PhaseConflicts { phase, requests })
        })
        .collect();
    Some(Replication { interval_ms, replicas, conflicts })
}

/// Violations of the replica-lag thresholds, over the whole run. A limit
/// with no standby measured, or a standby never sampled, fails: nothing
/// was judged.
pub(super) fn judge(th: &ThresholdsInfo, replication: Option<&Replication>) -> Vec<Violation> {
    let limits = [
        (Check::MaxReplicaLag, th.max_replica_lag_ms),
        (Check::MaxReplicaLagBytes, th.max_replica_lag_bytes.map(|b| b as f64)),
    ];
    let mut v = Vec::new();
    for (check, limit) in limits {
        let Some(limit) = limit else { continue };
        let Some(r) = replication else {
            v.push(Violation {
                threshold: check,
                subject: "replica".into(),
                measured: None,
                limit: Some(limit),
                message: format!(
                    "{check} is set, but no replica was measured: start one with [replica] count or --replicas"
                ),
            });
            continue;
        };
        for lag in &r.replicas {
            let measured = match check {
                Check::MaxReplicaLag => lag.max_lag_ms,
                _ => lag.max_lag_bytes.map(|b| b as f64),
            };
            let Some(measured) = measured else {
                v.push(Violation {
                    threshold: check,
                    subject: lag.name.clone(),
                    measured: None,
                    limit: Some(limit),
                    message: format!("{check}: replica {} was never sampled, so its lag is unknown", lag.name),
                });
                continue;
            };
            let tried = lag.samples + lag.failed_samples;
            if lag.failed_samples * 10 > tried {
                v.push(Violation {
                    threshold: check,
                    subject: lag.name.clone(),
                    measured: Some(measured),
                    limit: Some(limit),
                    message: format!(
                        "{check}: {} of {tried} samples of replica {} failed, so its lag is unknown for part of the run",
                        lag.failed_samples, lag.name
                    ),
                });
            }
            if measured > limit {
                let (figure, limit_text) = match check {
                    Check::MaxReplicaLag => (dur(measured), dur(limit)),
                    _ => (bytes(measured as u64), bytes(limit as u64)),
                };
                let at = lag.max_lag_at_s.map(|s| format!(" (at {s:.1}s)")).unwrap_or_default();
                let what = if check == Check::MaxReplicaLag { "lagged" } else { "had WAL left to replay:" };
                v.push(Violation {
                    threshold: check,
                    subject: lag.name.clone(),
                    measured: Some(measured),
                    limit: Some(limit),
                    message: format!("replica {} {what} {figure}{at} (limit {limit_text})", lag.name),
                });
            }
        }
    }
    v
}

/// WAL bytes for people.
pub(super) fn bytes(n: u64) -> String {
    let f = n as f64;
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", f / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", f / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} kiB", f / 1024.0),
        n => format!("{n} B"),
    }
}

pub(super) fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Baseline => "baseline",
        Phase::During => "during",
        Phase::After => "after",
        Phase::Rollback => "rollback",
        Phase::AfterRollback => "after rollback",
    }
}

/// The terminal section: per replica and phase, max and p99 of the lag in
/// time and in bytes; the recovery conflicts per phase.
pub(super) fn render(w: &mut String, r: &Replication) {
    let _ = writeln!(
        w,
        "\nREPLICAS  replay lag: age of what each standby had replayed, and WAL it had left · sampled every {}",
        dur(r.interval_ms)
    );
    for lag in &r.replicas {
        let failed = if lag.failed_samples > 0 { format!(", {} failed", lag.failed_samples) } else { String::new() };
        let _ = writeln!(w, "  {} · {} samples{failed}", lag.name, super::terminal::count(lag.samples));
        for p in &lag.phases {
            let _ = writeln!(
                w,
                "    {:<15} max {:>8}  p99 {:>8}   max {:>10}  p99 {:>10}",
                phase_name(p.phase),
                dur(p.max_lag_ms),
                dur(p.p99_lag_ms),
                bytes(p.max_lag_bytes),
                bytes(p.p99_lag_bytes)
            );
        }
    }
    let conflicts: Vec<String> = r
        .conflicts
        .iter()
        .filter(|c| c.requests > 0)
        .map(|c| format!("{} {}", phase_name(c.phase), super::terminal::count(c.requests)))
        .collect();
    if conflicts.is_empty() {
        let _ = writeln!(w, "  no request was cancelled for a conflict with recovery");
    } else {
        let _ = writeln!(w, "  ⚠ requests cancelled for a conflict with recovery: {}", conflicts.join(", "));
    }
}

/// The WAL section: what the server wrote per phase, its peak rate, and
/// its full-page images.
pub(super) fn render_wal(w: &mut String, wal: &crate::observe::wal::WalReport) {
    let phases: Vec<String> = wal
        .phases
        .iter()
        .map(|p| {
            let fpi = p.full_page_images.map(|n| format!(", {} full-page images", super::terminal::count(n as u64)));
            format!("{} {}{}", phase_name(p.phase), bytes(p.bytes), fpi.unwrap_or_default())
        })
        .collect();
    let _ = writeln!(
        w,
        "\nWAL  written by the server (the load's included), sampled every {} · {}",
        dur(wal.interval_ms),
        phases.join(" · ")
    );
    if let Some(at) = wal.peak_at_s {
        let _ = writeln!(w, "  peak {}/s in the second from {at:.0}s", bytes(wal.peak_bytes_per_s));
    }
}

/// The CDC section: the consumer's pace, what it read, the WAL the slot
/// held back, and its lag per phase.
pub(super) fn render_cdc(w: &mut String, c: &Cdc) {
    let pace = c.rate.map_or_else(|| "as fast as it could".to_string(), |r| format!("at most {r} changes/s"));
    let _ = writeln!(
        w,
        "\nCDC  slot {} ({}), read {pace}: {} changes read · the slot held back at most {} of WAL",
        crate::observe::cdc::SLOT,
        c.plugin.name(),
        super::terminal::count(c.stats.changes),
        bytes(c.stats.max_retained_bytes)
    );
    for p in &c.lag.phases {
        let _ = writeln!(
            w,
            "    {:<15} behind max {:>8}  p99 {:>8}   max {:>10}  p99 {:>10}",
            phase_name(p.phase),
            dur(p.max_lag_ms),
            dur(p.p99_lag_ms),
            bytes(p.max_lag_bytes),
            bytes(p.p99_lag_bytes)
        );
    }
    if c.stats.failed_reads > 0 || c.lag.failed_samples > 0 {
        let _ = writeln!(
            w,
            "  ⚠ {} reads of the slot and {} lag samples failed",
            c.stats.failed_reads, c.lag.failed_samples
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(max_ms: Option<f64>, samples: u64, failed: u64) -> ReplicaLag {
        ReplicaLag {
            name: "r1".into(),
            samples,
            failed_samples: failed,
            max_lag_ms: max_ms,
            max_lag_bytes: max_ms.map(|m| m as u64 * 1000),
            max_lag_at_s: max_ms.map(|_| 12.5),
            phases: Vec::new(),
            series: Vec::new(),
        }
    }

    fn judged(limit_ms: f64, replicas: Option<Vec<ReplicaLag>>) -> Vec<Violation> {
        let th = ThresholdsInfo { max_replica_lag_ms: Some(limit_ms), ..ThresholdsInfo::default() };
        let r = replicas.map(|replicas| Replication { interval_ms: 100.0, replicas, conflicts: Vec::new() });
        judge(&th, r.as_ref())
    }

    #[test]
    fn a_replica_lag_limit_fails_when_exceeded_and_when_nothing_could_be_judged() {
        assert!(judged(1000.0, Some(vec![lag(Some(400.0), 100, 0)])).is_empty());
        let over = judged(1000.0, Some(vec![lag(Some(8300.0), 100, 0)]));
        assert_eq!(over.len(), 1);
        assert_eq!((over[0].measured, over[0].limit), (Some(8300.0), Some(1000.0)));
        assert!(over[0].message.contains("lagged 8.30s (at 12.5s)"), "{}", over[0].message);
        // No replica measured, a replica never sampled, or one whose samples
        // mostly failed: the limit was not judged, and that is not a pass.
        assert_eq!(judged(1000.0, None).len(), 1);
        assert_eq!(judged(1000.0, Some(vec![lag(None, 0, 30)])).len(), 1);
        assert_eq!(judged(1000.0, Some(vec![lag(Some(10.0), 50, 50)])).len(), 1);
        // Without a limit nothing is judged.
        assert!(judge(&ThresholdsInfo::default(), None).is_empty());
    }
}
