//! `[monitoring]`: the poll interval and PrusaLink's fast status probe.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Seconds; the settings key `monitoring_interval`.
    #[serde(default = "default_interval")]
    pub interval: u64,
    /// Seconds between PrusaLink's fast status probes (`GET /api/v1/status` alone)
    /// between two polls; a change of state or job is polled at once. 0 turns it off.
    #[serde(default = "default_status_probe")]
    pub status_probe_s: u64,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            status_probe_s: DEFAULT_STATUS_PROBE_S,
        }
    }
}

/// `monitoring.status_probe_s` when not set.
pub const DEFAULT_STATUS_PROBE_S: u64 = 5;
/// Longest `monitoring.status_probe_s` accepted; longer is a typo (use 0 for off).
pub const MAX_STATUS_PROBE_S: u64 = 300;

fn default_status_probe() -> u64 {
    DEFAULT_STATUS_PROBE_S
}

impl MonitoringConfig {
    /// The probe period, `None` when off.
    pub fn status_probe(&self) -> Option<std::time::Duration> {
        (self.status_probe_s > 0).then(|| std::time::Duration::from_secs(self.status_probe_s))
    }
}

fn default_interval() -> u64 {
    30
}
