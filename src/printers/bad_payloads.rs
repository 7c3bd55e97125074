//! Counting what a printer sends that cannot be used (malformed, oversized or wrongly
//! typed payloads), and logging it at most once a minute per printer: a printer that
//! sends garbage ten times a second must not flood the daemon's log, and must stay
//! monitored (the payload is skipped, the connection kept).

use std::time::Duration;

use tokio::time::Instant;

/// At most one log line per printer in this window.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Longest payload excerpt quoted in a log line. Long enough to recognise what went
/// wrong, short enough that a 1 MiB blob does not end up in the journal.
pub const EXCERPT_CHARS: usize = 80;

#[derive(Debug, Default)]
pub struct BadPayloads {
    /// For `printfarmd_printer_payloads_skipped_total{type}` on /metrics.
    kind: Option<crate::domain::PrinterType>,
    total: u64,
    since_log: u64,
    last_log: Option<Instant>,
}

impl BadPayloads {
    /// A counter for a printer of this type (its skipped payloads show on /metrics).
    pub fn new(kind: crate::domain::PrinterType) -> Self {
        Self {
            kind: Some(kind),
            ..Self::default()
        }
    }

    /// Records one bad payload. Returns `Some(n)` when this one should be logged, `n`
    /// being how many bad payloads arrived since the previous log line (this one
    /// included).
    pub fn record(&mut self, now: Instant) -> Option<u64> {
        self.total += 1;
        self.since_log += 1;
        if let Some(kind) = self.kind {
            crate::metrics::global().payload_skipped(kind);
        }
        let due = self
            .last_log
            .is_none_or(|at| now.saturating_duration_since(at) >= LOG_EVERY);
        if due {
            self.last_log = Some(now);
            let n = self.since_log;
            self.since_log = 0;
            Some(n)
        } else {
            None
        }
    }

    /// Every bad payload since the driver started.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// The first few characters of a payload, printable, for a log line.
pub fn excerpt(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT_CHARS * 4)]);
    let mut out: String = s
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    if s.chars().count() > EXCERPT_CHARS || bytes.len() > EXCERPT_CHARS * 4 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_a_minute_with_the_count() {
        let mut b = BadPayloads::default();
        let t0 = Instant::now();
        assert_eq!(b.record(t0), Some(1));
        assert_eq!(b.record(t0 + Duration::from_secs(1)), None);
        assert_eq!(b.record(t0 + Duration::from_secs(59)), None);
        assert_eq!(b.record(t0 + Duration::from_secs(60)), Some(3));
        assert_eq!(b.total(), 4);
    }

    #[test]
    fn excerpt_is_short_and_printable() {
        assert_eq!(excerpt(b"ab\ncd"), "ab.cd");
        let long = vec![b'x'; 1000];
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
    }
}
