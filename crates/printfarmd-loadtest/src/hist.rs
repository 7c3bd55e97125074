//! A fixed-bucket latency histogram: constant memory however many samples (a 2,000-printer
//! run with 100 WebSocket clients records ~200,000 samples a second), mergeable, exact max.

use serde::Serialize;

/// Buckets per histogram; values past the last bucket are counted in it (the max stays exact).
const BUCKETS: usize = 20_000;

#[derive(Clone)]
pub struct Hist {
    /// Bucket width in microseconds.
    width_us: u64,
    counts: Vec<u64>,
    n: u64,
    max_us: u64,
}

/// What the summary shows of a histogram, in milliseconds.
#[derive(Serialize, Clone, Copy, Debug, Default)]
pub struct Quantiles {
    pub n: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Hist {
    /// `width_us` is the resolution: 1,000 for values that come from millisecond stamps.
    pub fn new(width_us: u64) -> Self {
        Self {
            width_us,
            counts: vec![0; BUCKETS],
            n: 0,
            max_us: 0,
        }
    }

    pub fn record_us(&mut self, us: u64) {
        let b = ((us / self.width_us) as usize).min(BUCKETS - 1);
        self.counts[b] += 1;
        self.n += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Milliseconds; a negative value (millisecond stamps truncated on both sides) is 0.
    pub fn record_ms(&mut self, ms: i64) {
        self.record_us(ms.max(0) as u64 * 1000);
    }

    pub fn merge(&mut self, o: &Hist) {
        debug_assert_eq!(self.width_us, o.width_us);
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.max_us = self.max_us.max(o.max_us);
    }

    /// The value at or below which a share `q` of the samples lie (bucket lower bound).
    fn quantile_us(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (i as u64 * self.width_us).min(self.max_us);
            }
        }
        self.max_us
    }

    pub fn quantiles(&self) -> Quantiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Quantiles {
            n: self.n,
            p50: ms(self.quantile_us(0.50)),
            p99: ms(self.quantile_us(0.99)),
            p999: ms(self.quantile_us(0.999)),
            max: ms(self.max_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Hist::new(1000);
        for ms in 1..=100 {
            h.record_ms(ms);
        }
        let q = h.quantiles();
        assert_eq!((q.n, q.p50, q.p99, q.max), (100, 50.0, 99.0, 100.0));
        let mut g = Hist::new(1000);
        g.record_ms(-3);
        g.record_ms(50_000);
        h.merge(&g);
        let q = h.quantiles();
        assert_eq!((q.n, q.max), (102, 50_000.0));
    }
}
