//! Reconnect pacing shared by every driver: exponential backoff with jitter that resets
//! after a stable connection (the rathole habit), so a printer that is switched off is
//! asked less and less often, and one that dropped once after a day of service is asked
//! again within a second.
//!
//! Plain values in, durations out: the caller passes the instants, so the tests need no
//! clock.

use std::time::Duration;

use tokio::time::Instant;

/// Exponential backoff: `min`, doubling on every failure up to `max`, each delay
/// scaled by a random factor in `[1 - JITTER, 1]` so that a farm of printers that went
/// down together (a switch rebooted) does not come back in lockstep.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    /// A connection that stayed up this long resets the backoff to `min`.
    stable_after: Duration,
    next: Duration,
    connected_at: Option<Instant>,
}

/// Share of a delay that jitter may take away. A half keeps the mean at three quarters
/// of the nominal delay and still spreads a farm's retries over a wide window.
const JITTER: f64 = 0.5;

impl Backoff {
    pub fn new(min: Duration, max: Duration, stable_after: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            stable_after,
            next: min,
            connected_at: None,
        }
    }

    /// The connection is up (a CONNACK, a first good HTTP answer).
    pub fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// The connection failed or dropped at `now`: how long to wait before trying again.
    /// `jitter` is a random number in `[0, 1)`; `floor` raises the delay (slow retries
    /// after refused credentials or a changed certificate).
    pub fn failed(&mut self, now: Instant, jitter: f64, floor: Duration) -> Duration {
        if let Some(at) = self.connected_at.take()
            && now.saturating_duration_since(at) >= self.stable_after
        {
            self.next = self.min;
        }
        let nominal = self.next.max(floor);
        self.next = (self.next * 2).min(self.max);
        let factor = 1.0 - JITTER * jitter.clamp(0.0, 1.0);
        nominal.mul_f64(factor).max(self.min.min(nominal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> Backoff {
        Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(300),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = b();
        let now = Instant::now();
        let delays: Vec<u64> = (0..12)
            .map(|_| b.failed(now, 0.0, Duration::ZERO).as_secs())
            .collect();
        assert_eq!(
            delays,
            vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
        );
    }

    #[test]
    fn jitter_only_shortens_and_never_below_half() {
        let mut b = b();
        let now = Instant::now();
        for _ in 0..5 {
            b.failed(now, 0.0, Duration::ZERO);
        }
        let d = b.clone().failed(now, 0.999, Duration::ZERO);
        assert!(
            d <= Duration::from_secs(32) && d >= Duration::from_secs(16),
            "{d:?}"
        );
    }

    #[test]
    fn resets_after_a_stable_connection_only() {
        let mut b = b();
        let t0 = Instant::now();
        for _ in 0..6 {
            b.failed(t0, 0.0, Duration::ZERO);
        }
        // Up for ten seconds: not stable, keep backing off.
        b.connected(t0);
        assert_eq!(
            b.failed(t0 + Duration::from_secs(10), 0.0, Duration::ZERO),
            Duration::from_secs(64)
        );
        // Up for two minutes: stable, start again from the minimum.
        b.connected(t0);
        assert_eq!(
            b.failed(t0 + Duration::from_secs(120), 0.0, Duration::ZERO),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn floor_raises_a_short_delay() {
        let mut b = b();
        let d = b.failed(Instant::now(), 0.0, Duration::from_secs(60));
        assert_eq!(d, Duration::from_secs(60));
    }
}
