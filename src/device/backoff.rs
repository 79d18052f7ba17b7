//! When a device dials again, and how long it was away: pure bookkeeping, told the times, so the
//! rules are tested without a socket.
//!
//! - [`Backoff`]: exponential backoff with seeded jitter. The attempt count resets only once a
//!   connection has *lasted* ([`Backoff::connected`] alone does not), so a broker that accepts
//!   and then drops a client draws ever longer waits instead of a reconnect every 100 ms. After
//!   a connection that lasted drops, the first attempt is spread over a window that grows with
//!   the fleet, so a broker blip is not followed by every device dialling in the same instant.
//! - [`Downtime`]: when the connection went and whether a fault did it, so the report can tell
//!   time lost to the broker from outages on purpose.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::events::Back;

/// The first retry after a failed attempt waits up to this, doubling each time.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest wait between two attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A connection that lasted this long (or one keepalive, when shorter) was a good one: the
/// attempt count starts over when it drops.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// How many devices a second the fleet's reconnects are spread at after a broker blip; the
/// initial dial-in manages about 3,000-5,000 a second on Mosquitto.
pub const RECONNECTS_PER_SECOND: u32 = 4000;
/// The reconnect window is never shorter than this, so even a small fleet does not redial in
/// the very instant the broker dropped it.
const MIN_WINDOW: Duration = Duration::from_millis(100);

/// The window a fleet of `devices` spreads its first reconnect attempts over.
pub fn reconnect_window(devices: usize) -> Duration {
    let spread = Duration::from_secs(1).mul_f64(devices as f64 / f64::from(RECONNECTS_PER_SECOND));
    spread.max(MIN_WINDOW)
}

#[derive(Debug, Clone)]
pub struct Backoff {
    /// Attempts in a row that failed, or whose connection did not last.
    attempts: u32,
    window: Duration,
    stable_after: Duration,
    up_since: Option<Instant>,
}

impl Backoff {
    /// `window`: see [`reconnect_window`]. `keepalive`: a connection that outlived one (or
    /// [`STABLE_AFTER`], when shorter) counts as good.
    pub fn new(window: Duration, keepalive: Duration) -> Self {
        let stable_after = if keepalive.is_zero() {
            STABLE_AFTER
        } else {
            keepalive.min(STABLE_AFTER)
        };
        Self {
            attempts: 0,
            window,
            stable_after,
            up_since: None,
        }
    }

    /// Attempts in a row that failed (or did not last).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The broker accepted a connection (CONNACK): it has yet to prove it lasts.
    pub fn connected(&mut self, now: Instant) {
        self.up_since = Some(now);
    }

    /// An attempt failed before CONNACK: how long to wait before the next one.
    pub fn failed(&mut self, rng: &mut impl Rng) -> Duration {
        self.up_since = None;
        self.attempts = self.attempts.saturating_add(1);
        self.delay(rng)
    }

    /// An accepted connection dropped: how long to wait before dialling again. One that
    /// lasted starts the count over, with a wait spread over the reconnect window; one that
    /// did not counts as a failed attempt.
    pub fn dropped(&mut self, now: Instant, rng: &mut impl Rng) -> Duration {
        let lasted = self
            .up_since
            .take()
            .is_some_and(|since| now.saturating_duration_since(since) >= self.stable_after);
        if lasted {
            self.attempts = 0;
            return self.window.mul_f64(rng.random_range(0.0..=1.0));
        }
        self.attempts = self.attempts.saturating_add(1);
        self.delay(rng)
    }

    /// A fault kept the device away on purpose and is over: dial at once, counting afresh.
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.up_since = None;
    }

    /// Half to all of `BACKOFF_START x 2^attempts`, capped at `BACKOFF_MAX`.
    fn delay(&self, rng: &mut impl Rng) -> Duration {
        let exp = self.attempts.min(16);
        let cap = BACKOFF_START.saturating_mul(1 << exp).min(BACKOFF_MAX);
        cap.mul_f64(rng.random_range(0.5..=1.0))
    }
}

/// Whether a device is disconnected, since when, and whether a fault did it; what it was away
/// is counted only while the run is on (from [`Downtime::begin`]).
#[derive(Debug, Clone, Default)]
pub struct Downtime {
    down_since: Option<(Instant, bool)>,
    counting_from: Option<Instant>,
    /// Connected since the last [`Downtime::up`] (the timeline counts each going down once).
    up: bool,
}

impl Downtime {
    /// The run starts: time disconnected counts from now.
    pub fn begin(&mut self, now: Instant) {
        self.counting_from = Some(now);
    }

    /// The connection went; `planned` when a fault did it. A second call before the device is
    /// back changes nothing: the outage began with the first. True when a connected device
    /// just went down (not when a connection that never came up failed again).
    pub fn down(&mut self, now: Instant, planned: bool) -> bool {
        if self.down_since.is_none() {
            self.down_since = Some((now, planned));
        }
        std::mem::take(&mut self.up)
    }

    /// Connected again (or for the first time: then None).
    pub fn up(&mut self, now: Instant) -> Option<Back> {
        self.up = true;
        let outage = self.outage(now);
        self.down_since = None;
        outage
    }

    /// The outage going on at `now`, if the device is down.
    pub fn outage(&self, now: Instant) -> Option<Back> {
        let (since, planned) = self.down_since?;
        let unplanned = match self.counting_from {
            Some(from) if !planned => now.saturating_duration_since(since.max(from)),
            _ => Duration::ZERO,
        };
        Some(Back { planned, unplanned })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn backoff() -> (Backoff, SmallRng, Instant) {
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(30));
        (b, SmallRng::seed_from_u64(1), Instant::now())
    }

    #[test]
    fn connections_that_do_not_last_back_off_to_the_cap() {
        let (mut b, mut rng, mut now) = backoff();
        let mut waits = Vec::new();
        for _ in 0..12 {
            b.connected(now);
            now += Duration::from_millis(50);
            let wait = b.dropped(now, &mut rng);
            waits.push(wait);
            now += wait;
        }
        assert_eq!(b.attempts(), 12, "a CONNACK alone resets nothing");
        // Attempt n waits half to all of 100 ms x 2^n, capped at 5 s.
        assert!(waits[0] >= Duration::from_millis(100) && waits[0] <= Duration::from_millis(200));
        assert!(waits[11] >= Duration::from_millis(2500) && waits[11] <= BACKOFF_MAX);
        let total: Duration = waits.iter().sum();
        assert!(total > Duration::from_secs(20), "{waits:?}");
    }

    #[test]
    fn a_connection_that_lasted_starts_over_within_the_window() {
        let (mut b, mut rng, now) = backoff();
        for _ in 0..5 {
            b.failed(&mut rng);
        }
        b.connected(now);
        let later = now + Duration::from_secs(11);
        let wait = b.dropped(later, &mut rng);
        assert_eq!(b.attempts(), 0);
        assert!(wait <= Duration::from_secs(2), "{wait:?}");
    }

    #[test]
    fn the_window_spreads_a_fleet_and_grows_with_it() {
        assert_eq!(reconnect_window(1), MIN_WINDOW);
        assert_eq!(reconnect_window(8000), Duration::from_secs(2));
        let mut rng = SmallRng::seed_from_u64(9);
        let now = Instant::now();
        let waits: Vec<Duration> = (0..1000)
            .map(|_| {
                let mut b = Backoff::new(reconnect_window(8000), Duration::from_secs(5));
                b.connected(now);
                b.dropped(now + Duration::from_secs(6), &mut rng)
            })
            .collect();
        let early = waits
            .iter()
            .filter(|w| **w < Duration::from_millis(100))
            .count();
        // Uniform over 2 s: about 5 % in the first 100 ms, not all of them.
        assert!(early < 100, "{early} of 1000 within 100 ms");
        assert!(waits.iter().any(|w| *w > Duration::from_millis(1900)));
    }

    #[test]
    fn failures_before_connack_count_and_reset_clears_them() {
        let (mut b, mut rng, _) = backoff();
        b.failed(&mut rng);
        b.failed(&mut rng);
        assert_eq!(b.attempts(), 2);
        b.reset();
        assert_eq!(b.attempts(), 0);
    }

    #[test]
    fn a_keepalive_shorter_than_ten_seconds_is_proof_enough() {
        let mut b = Backoff::new(MIN_WINDOW, Duration::from_secs(2));
        let mut rng = SmallRng::seed_from_u64(3);
        let now = Instant::now();
        b.failed(&mut rng);
        b.connected(now);
        b.dropped(now + Duration::from_secs(3), &mut rng);
        assert_eq!(b.attempts(), 0);
    }

    #[test]
    fn downtime_counts_unplanned_time_during_the_run_only() {
        let mut d = Downtime::default();
        let t0 = Instant::now();
        assert_eq!(d.up(t0), None, "a first connection ends no outage");
        d.down(t0, false);
        d.begin(t0 + Duration::from_secs(1));
        // A second drop report does not move the start of the outage.
        d.down(t0 + Duration::from_secs(2), true);
        let back = d.up(t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(back.unplanned, Duration::from_secs(3));
        assert!(!back.planned);
        d.down(t0 + Duration::from_secs(5), true);
        let planned = d.outage(t0 + Duration::from_secs(9)).unwrap();
        assert_eq!((planned.planned, planned.unplanned), (true, Duration::ZERO));
        assert!(d.up(t0 + Duration::from_secs(9)).is_some());
        assert_eq!(d.outage(t0 + Duration::from_secs(10)), None);
    }
}
