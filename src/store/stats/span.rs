//! One job's span and print time by the rules of `agg.rs` (shared by the scan and the
//! rollup).

use super::agg::{CANCELLED, COMPLETED, FAILED, PENDING, Row, UNKNOWN, overlap};

/// A job's time on the printer as the statistics read it (the module's rules).
pub(super) struct Span {
    pub start: i64,
    pub end: i64,
    /// It started (a pending or never-started job has no print time).
    pub printed: bool,
    /// An ended job's duration, for the mean and the p90.
    pub duration: Option<u32>,
}

impl Span {
    pub fn of(r: &Row, now: i64) -> Option<Span> {
        let start = r.start.or(r.created)?;
        let open = matches!(r.status, 4..=6);
        let end = if open {
            now
        } else {
            r.end
                .or(r
                    .start
                    .zip(r.duration)
                    .map(|(s, d)| s.saturating_add(d.max(0))))
                .or(r.updated)
                .unwrap_or(start)
        }
        .max(start);
        let duration = match r.status {
            COMPLETED | FAILED | CANCELLED | UNKNOWN => r
                .duration
                .filter(|d| *d >= 0)
                .or(r
                    .start
                    .zip(r.end)
                    .map(|(s, e)| e.saturating_sub(s))
                    .filter(|d| *d >= 0))
                .map(|d| u32::try_from(d).unwrap_or(u32::MAX)),
            _ => None,
        };
        Some(Span {
            start,
            end,
            printed: r.status != PENDING && r.start.is_some(),
            duration,
        })
    }

    /// Print seconds inside `[lo, hi)`; None when the job is not in a group spanning it.
    pub fn print_in(&self, lo: i64, hi: i64) -> Option<i64> {
        if self.start >= hi || self.end < lo {
            return None;
        }
        Some(if self.printed {
            overlap(self.start, self.end, lo, hi)
        } else {
            0
        })
    }
}
