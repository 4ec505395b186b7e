//! When requests are due: the open-loop schedule.
//!
//! A pacer hands out due times (offsets from the start of the load); one
//! pacing loop, [`pace`], sleeps until each is due and issues it. The loop
//! never waits for a request to finish, so a stalled database shows as
//! requests piling up with growing latency, never as fewer requests
//! (coordinated omission). If the loop itself falls behind, it issues the
//! late requests at once, and their latency still counts from when they
//! were due.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// A schedule of due times.
pub trait Pacer: Send + 'static {
    /// The next due time, as an offset from the start; never decreasing.
    fn next_due(&mut self) -> Duration;
}

/// Evenly spaced requests at a fixed rate.
#[derive(Debug, Clone)]
pub struct FixedRate {
    period_secs: f64,
    issued: u64,
}

impl FixedRate {
    /// `rate` requests per second.
    pub fn new(rate: f64) -> Self {
        Self { period_secs: 1.0 / rate, issued: 0 }
    }
}

impl Pacer for FixedRate {
    fn next_due(&mut self) -> Duration {
        // Computed from the count, not accumulated, so rounding never drifts.
        let due = Duration::from_secs_f64(self.issued as f64 * self.period_secs);
        self.issued += 1;
        due
    }
}

/// Issues requests on `pacer`'s schedule from `start` until `stop` fires.
/// `issue` receives each due time and the request's sequence number.
pub async fn pace<P: Pacer>(
    start: Instant,
    mut pacer: P,
    stop: CancellationToken,
    mut issue: impl FnMut(Instant, u64),
) {
    let mut n = 0u64;
    loop {
        let due = start + pacer.next_due();
        if due > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = stop.cancelled() => return,
            }
        }
        if stop.is_cancelled() {
            return;
        }
        issue(due, n);
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_rate_spaces_requests_evenly_without_drift() {
        let mut p = FixedRate::new(400.0);
        let dues: Vec<Duration> = (0..4001).map(|_| p.next_due()).collect();
        assert_eq!(dues[0], Duration::ZERO);
        assert_eq!(dues[1], Duration::from_micros(2500));
        assert_eq!(dues[4000], Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn pace_issues_on_schedule_and_stops() {
        let stop = CancellationToken::new();
        let start = Instant::now();
        let mut issued = Vec::new();
        let s = stop.clone();
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1005)).await;
            s.cancel();
        });
        pace(start, FixedRate::new(100.0), stop, |due, _| issued.push(due)).await;
        stopper.await.unwrap();
        // due times 0, 10ms, ..., 1000ms: 101 requests
        assert_eq!(issued.len(), 101);
    }
}
