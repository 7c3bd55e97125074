//! The no-data watchdog of a connected Bambu printer (protocols.md §2.9, §7.1 quirks 3
//! and 14): P1/A1 firmware sometimes keeps the MQTT session open and stops publishing.
//! A printer that has sent nothing for `SILENT_INTERVALS` report intervals is asked for
//! a full report (`pushall`, and `pushing/start`); if another interval passes without a
//! word, the session is dropped and a fresh one made.
//!
//! Plain values: the driver passes the instants and the current interval (which the
//! operator may change at any time).

use std::time::Duration;

use tokio::time::Instant;

/// Intervals of silence before the printer is nudged.
pub const SILENT_INTERVALS: u32 = 3;

/// What the watchdog asks for when its deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bark {
    /// Ask the printer for a full report.
    Nudge,
    /// It did not answer the nudge: reconnect.
    Reconnect,
}

#[derive(Clone, Debug)]
pub struct Watchdog {
    last_data: Instant,
    nudged_at: Option<Instant>,
}

impl Watchdog {
    pub fn new(now: Instant) -> Self {
        Self {
            last_data: now,
            nudged_at: None,
        }
    }

    /// Something arrived from the printer.
    pub fn data(&mut self, now: Instant) {
        self.last_data = now;
        self.nudged_at = None;
    }

    /// When to look again.
    pub fn deadline(&self, interval: Duration) -> Instant {
        match self.nudged_at {
            None => self.last_data + interval * SILENT_INTERVALS,
            Some(at) => at + interval,
        }
    }

    /// Called at (or after) the deadline.
    pub fn fire(&mut self, now: Instant, interval: Duration) -> Option<Bark> {
        if now < self.deadline(interval) {
            return None;
        }
        if self.nudged_at.is_none() {
            self.nudged_at = Some(now);
            Some(Bark::Nudge)
        } else {
            Some(Bark::Reconnect)
        }
    }

    /// How long the printer has been silent.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_secs(30);

    #[test]
    fn nudges_after_three_intervals_then_reconnects_after_one_more() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0);
        assert_eq!(w.deadline(I), t0 + I * 3);
        assert_eq!(w.fire(t0 + I * 2, I), None);
        assert_eq!(w.fire(t0 + I * 3, I), Some(Bark::Nudge));
        assert_eq!(w.deadline(I), t0 + I * 4);
        assert_eq!(w.fire(t0 + I * 3 + I / 2, I), None);
        assert_eq!(w.fire(t0 + I * 4, I), Some(Bark::Reconnect));
        assert_eq!(w.silent_for(t0 + I * 4), I * 4);
    }

    #[test]
    fn data_after_a_nudge_calms_it() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0);
        assert_eq!(w.fire(t0 + I * 3, I), Some(Bark::Nudge));
        w.data(t0 + I * 3 + Duration::from_secs(1));
        assert_eq!(w.fire(t0 + I * 4, I), None);
        assert_eq!(w.deadline(I), t0 + I * 6 + Duration::from_secs(1));
    }

    #[test]
    fn a_shorter_interval_takes_effect_at_once() {
        let t0 = Instant::now();
        let w = Watchdog::new(t0);
        assert_eq!(
            w.deadline(Duration::from_secs(1)),
            t0 + Duration::from_secs(3)
        );
    }
}
