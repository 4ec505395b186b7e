//! When requests are due, and the one loop that issues them.
//!
//! A [`Pacer`] hands out due times (offsets from the start of the load);
//! [`pace`] sleeps until each is due and issues it. Both shapes of load go
//! through it:
//!
//! - **open loop** ([`OpenSchedule`]): due times follow a rate profile
//!   (constant or ramped), evenly spaced or as a Poisson process. `issue`
//!   spawns the request and returns at once, so the loop never waits for a
//!   request to finish: a stalled database shows as requests piling up
//!   with growing latency, never as fewer requests (coordinated omission).
//!   If the loop itself falls behind, it issues the late requests at once,
//!   and their latency still counts from when they were due. Each shard
//!   paces its [`Share`] of the schedule and waits with [`TimerFdWait`],
//!   to the microsecond: tokio's timers tick in whole milliseconds, which
//!   would add up to a millisecond of the harness's own lateness to every
//!   request's latency.
//! - **closed loop** ([`ThinkTime`]): `issue` runs the request to its end,
//!   and the next one is due `think_time` after it finished, as a user
//!   who waits for each answer.
//!
//! The loop reads the clock once per request; a wait for a time already
//! past returns without reading it again.

use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use rand::RngExt;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::signal::Signal;
use crate::datagen::{DataRng, rng_for};
use crate::scenario::{Arrival, RateProfile};

/// A schedule of due times.
pub trait Pacer: Send + 'static {
    /// The next due time as an offset from the start, never decreasing;
    /// `now` is the current offset. `None` when no request is ever due
    /// again (a ramp down to 0).
    fn next_due(&mut self, now: Duration) -> Option<Duration>;

    /// The number in the whole schedule of the pacer's `n`-th request (a
    /// [`Share`] paces only some of them).
    fn number(&self, n: u64) -> u64 {
        n
    }
}

/// Open-loop due times: request n is due when the integral of the rate
/// reaches the n-th arrival, which is n itself for even spacing and a sum
/// of exponential gaps for Poisson arrivals (time rescaling). Computed
/// from the count, never accumulated, so a constant rate does not drift.
pub struct OpenSchedule {
    segments: Vec<Segment>,
    /// Index of the segment the last due time fell in, and the integral
    /// of the rate before it.
    at: usize,
    before: f64,
    arrival: Arrival,
    rng: DataRng,
    /// Arrivals so far (uniform) or the running sum of gaps (Poisson).
    work: f64,
    issued: u64,
}

/// A stretch of the profile where the rate moves linearly from `from` to
/// `to` over `len` seconds (`len` infinite for the last).
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: f64,
    len: f64,
    from: f64,
    to: f64,
}

impl Segment {
    fn area(&self) -> f64 {
        if self.len.is_infinite() {
            if self.from > 0.0 { f64::INFINITY } else { 0.0 }
        } else {
            (self.from + self.to) / 2.0 * self.len
        }
    }

    /// The time into the segment at which the integral reaches `rem`.
    fn solve(&self, rem: f64) -> f64 {
        if self.len.is_infinite() {
            return rem / self.from;
        }
        // from·t + k/2·t² = rem, in the form that stays exact as k → 0.
        let k = (self.to - self.from) / self.len;
        let disc = (self.from * self.from + 2.0 * k * rem).max(0.0);
        let denom = self.from + disc.sqrt();
        if denom <= 0.0 { 0.0 } else { (2.0 * rem / denom).min(self.len) }
    }
}

impl OpenSchedule {
    /// A schedule for `profile`; Poisson gaps are drawn from `seed`.
    pub fn new(profile: &RateProfile, arrival: Arrival, seed: u64) -> Self {
        let p = &profile.points;
        let mut segments = Vec::with_capacity(p.len() + 1);
        let (t0, r0) = (p[0].0.as_secs_f64(), p[0].1);
        if t0 > 0.0 {
            segments.push(Segment { start: 0.0, len: t0, from: r0, to: r0 });
        }
        for w in p.windows(2) {
            let (a, b) = (w[0].0.as_secs_f64(), w[1].0.as_secs_f64());
            segments.push(Segment { start: a, len: b - a, from: w[0].1, to: w[1].1 });
        }
        let (tl, rl) = (p[p.len() - 1].0.as_secs_f64(), p[p.len() - 1].1);
        segments.push(Segment { start: tl, len: f64::INFINITY, from: rl, to: rl });
        Self { segments, at: 0, before: 0.0, arrival, rng: rng_for(seed, 0, 0), work: 0.0, issued: 0 }
    }
}

impl Pacer for OpenSchedule {
    fn next_due(&mut self, _now: Duration) -> Option<Duration> {
        let work = match self.arrival {
            Arrival::Uniform => self.issued as f64,
            Arrival::Poisson => {
                // Exp(1) by inversion; 1 - u is in (0, 1].
                let u: f64 = self.rng.random();
                self.work += -(1.0 - u).ln();
                self.work
            }
        };
        self.issued += 1;
        loop {
            let seg = self.segments[self.at];
            let area = seg.area();
            if work <= self.before + area {
                let t = seg.start + seg.solve(work - self.before);
                return Some(Duration::from_secs_f64(t));
            }
            if self.at + 1 == self.segments.len() {
                return None;
            }
            self.before += area;
            self.at += 1;
        }
    }
}

/// Closed-loop due times: the first at once, each next one `think` after
/// the previous request finished.
pub struct ThinkTime {
    think: Duration,
    first: bool,
}

impl ThinkTime {
    /// A user who pauses `think` between an answer and the next request.
    pub fn new(think: Duration) -> Self {
        Self { think, first: true }
    }
}

impl Pacer for ThinkTime {
    fn next_due(&mut self, now: Duration) -> Option<Duration> {
        if std::mem::take(&mut self.first) { Some(now) } else { Some(now + self.think) }
    }
}

/// One shard's share of a schedule that several shards pace: of `inner`'s
/// due times, every `step`-th from the `first`-th (zero-based). Request n
/// of the share is request `n * step + first` of the schedule.
pub struct Share<P> {
    inner: P,
    step: u64,
    first: u64,
    started: bool,
}

impl<P: Pacer> Share<P> {
    /// Share `first` of `step`.
    pub fn new(inner: P, step: usize, first: usize) -> Self {
        Self { inner, step: step.max(1) as u64, first: first as u64, started: false }
    }
}

impl<P: Pacer> Pacer for Share<P> {
    fn number(&self, n: u64) -> u64 {
        n * self.step + self.first
    }

    fn next_due(&mut self, now: Duration) -> Option<Duration> {
        let skip = if std::mem::replace(&mut self.started, true) { self.step - 1 } else { self.first };
        for _ in 0..skip {
            self.inner.next_due(now)?;
        }
        self.inner.next_due(now)
    }
}

/// How the pacing loop waits for a due time.
pub trait Wait {
    /// Waits until `due`, the clock having read `now` just before; false
    /// if `stop` fired first.
    fn until(&mut self, due: Instant, now: Instant, stop: &Signal) -> impl Future<Output = bool> + Send;
}

/// Waits on tokio's timer (millisecond ticks): for closed loops, whose
/// requests count from when they are sent.
pub struct TokioWait;

impl Wait for TokioWait {
    async fn until(&mut self, due: Instant, now: Instant, stop: &Signal) -> bool {
        if due > now {
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = stop.fired() => return false,
            }
        }
        !stop.is_fired()
    }
}

/// Waits on a timer of the runtime's reactor (a timerfd), to within the
/// kernel's wake-up latency: for open loops, whose requests count from
/// when they were due. tokio's own timers tick in whole milliseconds,
/// which would add up to a millisecond of the harness's own lateness to
/// every request; a thread of its own that sleeps instead would hand each
/// request to the load's threads, one wake-up more on its way.
pub struct TimerFdWait {
    /// `None` where no timerfd could be made: tokio's timer instead.
    fd: Option<AsyncFd<Timer>>,
}

/// A timerfd as the reactor takes it.
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl TimerFdWait {
    /// A timer of the current runtime's reactor.
    pub fn new() -> std::io::Result<Self> {
        let fd = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)?;
        // SAFETY: the `Timer` owns its descriptor (an `OwnedFd` inside the
        // `TimerFd`) and gives the same one until it is dropped with the
        // `AsyncFd`.
        let fd = unsafe { AsyncFd::register_with_interest(Timer(fd), Interest::READABLE) }?;
        Ok(Self { fd: Some(fd) })
    }

    /// tokio's timer, to the millisecond.
    pub fn coarse() -> Self {
        Self { fd: None }
    }
}

/// Completes when `fd` has expired, reading its count.
async fn expired(fd: &AsyncFd<Timer>) -> std::io::Result<()> {
    loop {
        let mut ready = fd.readable().await?;
        // Not expired yet (a stale readiness): the read would block, and
        // `try_io` clears the readiness.
        if let Ok(read) = ready.try_io(|fd| fd.get_ref().0.wait().map_err(std::io::Error::from)) {
            return read;
        }
    }
}

impl Wait for TimerFdWait {
    async fn until(&mut self, due: Instant, now: Instant, stop: &Signal) -> bool {
        if due > now {
            let armed = self.fd.as_ref().filter(|fd| {
                let after = TimeSpec::from_duration(due - now);
                fd.get_ref().0.set(Expiration::OneShot(after), TimerSetTimeFlags::empty()).is_ok()
            });
            tokio::select! {
                biased;
                _ = stop.fired() => return false,
                _ = async {
                    match armed {
                        Some(fd) if expired(fd).await.is_ok() => {}
                        _ => tokio::time::sleep_until(due.into()).await,
                    }
                } => {}
            }
        }
        !stop.is_fired()
    }
}

/// What the pacing loop does with each due request.
pub trait Issue {
    /// Issues request number `n` of the schedule, due at `due`. The loop
    /// awaits the future before it asks for the next due time: an
    /// open-loop issuer spawns the request and returns at once (`None`), a
    /// closed-loop one runs it and returns when it finished, which is the
    /// loop's clock for the next due time.
    fn issue(&mut self, due: Instant, n: u64) -> impl Future<Output = Option<Instant>>;
}

impl<F: FnMut(Instant, u64) -> Fut, Fut: Future<Output = ()>> Issue for F {
    fn issue(&mut self, due: Instant, n: u64) -> impl Future<Output = Option<Instant>> {
        let request = self(due, n);
        async move {
            request.await;
            None
        }
    }
}

/// A due time that never comes (about a year away).
const FAR_SECS: u64 = 365 * 86_400;

/// Issues requests on `pacer`'s schedule from `start` until `stop` fires.
pub async fn pace<P: Pacer, W: Wait>(start: Instant, mut pacer: P, mut wait: W, stop: &Signal, mut issuer: impl Issue) {
    let mut n = 0u64;
    let mut finished = None;
    loop {
        // tokio's clock: the same as std's, but paused in tests.
        let now = finished.unwrap_or_else(|| tokio::time::Instant::now().into_std());
        // A schedule that has ended (a ramp down to 0) waits for the stop.
        let far = now + Duration::from_secs(FAR_SECS);
        let due = pacer.next_due(now.saturating_duration_since(start)).map_or(far, |offset| start + offset);
        if !wait.until(due, now, stop).await {
            return;
        }
        finished = issuer.issue(due, pacer.number(n)).await;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dues(p: &mut impl Pacer, n: usize) -> Vec<f64> {
        (0..n).map(|_| p.next_due(Duration::ZERO).unwrap().as_secs_f64()).collect()
    }

    #[test]
    fn a_constant_rate_spaces_requests_evenly_without_drift() {
        let mut p = OpenSchedule::new(&RateProfile::constant(400.0), Arrival::Uniform, 1);
        let d = dues(&mut p, 4001);
        assert_eq!(d[0], 0.0);
        assert!((d[1] - 0.0025).abs() < 1e-12);
        assert!((d[4000] - 10.0).abs() < 1e-9, "{}", d[4000]);
    }

    #[test]
    fn poisson_arrivals_keep_the_rate_with_exponential_gaps() {
        let mut p = OpenSchedule::new(&RateProfile::constant(1000.0), Arrival::Poisson, 7);
        let d = dues(&mut p, 100_001);
        let rate = 100_000.0 / (d[100_000] - d[0]);
        assert!((rate - 1000.0).abs() < 10.0, "rate {rate}");
        let gaps: Vec<f64> = d.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        // exponential: standard deviation equals the mean
        assert!((var.sqrt() / mean - 1.0).abs() < 0.02, "cv {}", var.sqrt() / mean);
        // and P(gap > mean) = e^-1
        let over = gaps.iter().filter(|g| **g > mean).count() as f64 / gaps.len() as f64;
        assert!((over - (-1.0f64).exp()).abs() < 0.01, "{over}");
    }

    #[test]
    fn a_ramp_issues_the_integral_of_its_rate() {
        // 100/s for 10 s, rising linearly to 300/s at 20 s, then steady.
        let profile = RateProfile {
            points: vec![(Duration::ZERO, 100.0), (Duration::from_secs(10), 100.0), (Duration::from_secs(20), 300.0)],
        };
        let mut p = OpenSchedule::new(&profile, Arrival::Uniform, 1);
        let d = dues(&mut p, 6000);
        let by = |t: f64| d.iter().filter(|x| **x < t).count();
        assert_eq!(by(10.0), 1000);
        // ∫ over 10..20 s = (100 + 300) / 2 · 10 = 2000
        assert!((by(20.0) as i64 - 3000).abs() <= 1, "{}", by(20.0));
        // at 15 s the rate is 200/s: 150·5 = 750 more than at 10 s
        assert!((by(15.0) as i64 - 1750).abs() <= 1, "{}", by(15.0));
        // then 300/s
        assert!((by(25.0) as i64 - 4500).abs() <= 1, "{}", by(25.0));
        assert!(d.windows(2).all(|w| w[1] >= w[0]));
    }

    #[test]
    fn a_ramp_down_to_zero_stops_issuing() {
        let profile = RateProfile { points: vec![(Duration::ZERO, 100.0), (Duration::from_secs(2), 0.0)] };
        let mut p = OpenSchedule::new(&profile, Arrival::Uniform, 1);
        let issued = (0..1000).take_while(|_| p.next_due(Duration::ZERO).is_some()).count();
        assert!((issued as i64 - 100).abs() <= 1, "{issued}");
    }

    #[test]
    fn think_time_follows_the_previous_answer() {
        let mut p = ThinkTime::new(Duration::from_millis(50));
        assert_eq!(p.next_due(Duration::from_millis(3)), Some(Duration::from_millis(3)));
        assert_eq!(p.next_due(Duration::from_millis(10)), Some(Duration::from_millis(60)));
    }

    #[tokio::test(start_paused = true)]
    async fn pace_issues_on_schedule_and_stops() {
        let stop = Signal::new();
        let start = Instant::now();
        let mut issued = Vec::new();
        let s = stop.clone();
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1005)).await;
            s.fire();
        });
        let p = OpenSchedule::new(&RateProfile::constant(100.0), Arrival::Uniform, 1);
        pace(start, p, TokioWait, &stop, |due, _| {
            issued.push(due);
            async {}
        })
        .await;
        stopper.await.unwrap();
        // due times 0, 10ms, ..., 1000ms: 101 requests
        assert_eq!(issued.len(), 101);
    }

    #[test]
    fn a_timerfd_wait_wakes_on_time_and_stops() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let stop = Signal::new();
            let mut wait = TimerFdWait::new().unwrap();
            let mut late = Vec::new();
            for _ in 0..20 {
                let due = Instant::now() + Duration::from_micros(700);
                assert!(wait.until(due, Instant::now(), &stop).await);
                let now = Instant::now();
                assert!(now >= due, "woke {:?} early", due - now);
                late.push(now - due);
            }
            // Never early, and woken at all. How soon after its due time is
            // the machine's to say: a loaded runner delays any wake-up, so
            // the precision (tens of microseconds, against tokio's timer's
            // millisecond) is a figure of `cargo bench --bench load`, and
            // the bound here only catches a lost wake-up.
            assert!(late.iter().all(|l| *l < Duration::from_secs(2)), "{late:?}");
            let s = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                s.fire();
            });
            let far = Instant::now() + Duration::from_secs(60);
            let asked = Instant::now();
            assert!(!wait.until(far, Instant::now(), &stop).await);
            assert!(asked.elapsed() < Duration::from_secs(5));
        });
    }

    #[test]
    fn shares_of_a_schedule_interleave_into_the_whole() {
        let whole = dues(&mut OpenSchedule::new(&RateProfile::constant(1000.0), Arrival::Poisson, 3), 30);
        let mut a = Share::new(OpenSchedule::new(&RateProfile::constant(1000.0), Arrival::Poisson, 3), 3, 0);
        let mut b = Share::new(OpenSchedule::new(&RateProfile::constant(1000.0), Arrival::Poisson, 3), 3, 2);
        for n in 0..10u64 {
            assert_eq!(a.next_due(Duration::ZERO).unwrap().as_secs_f64(), whole[a.number(n) as usize]);
            assert_eq!(b.next_due(Duration::ZERO).unwrap().as_secs_f64(), whole[b.number(n) as usize]);
        }
        assert_eq!((a.number(4), b.number(4)), (12, 14));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_loop_waits_for_each_request() {
        let stop = Signal::new();
        let start = Instant::now();
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            s.fire();
        });
        let mut n = 0;
        // each request takes 40 ms, then the user thinks 10 ms: 20 in 1 s
        pace(start, ThinkTime::new(Duration::from_millis(10)), TokioWait, &stop, |_, _| {
            n += 1;
            tokio::time::sleep(Duration::from_millis(40))
        })
        .await;
        assert_eq!(n, 20);
    }
}
