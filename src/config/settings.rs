//! The live settings: the part of the configuration that `PUT /api/v1/settings` may
//! change while the daemon runs.
//!
//! Precedence (design.md §5): built-in defaults < daemon.toml < environment < values
//! saved through the API. Saved values live in SQLite; the JobCreator is their only
//! writer and publishes every change on a `tokio::sync::watch` channel.

use serde::{Deserialize, Serialize};

/// Bounds of `monitoring_interval` in seconds. Below one second a poller would load
/// small printer boards (PrusaLink runs on the printer's own MCU); above an hour a
/// print could start and end unseen between polls.
pub const MIN_MONITORING_INTERVAL: u64 = 1;
pub const MAX_MONITORING_INTERVAL: u64 = 3600;

/// The flat object `GET /api/v1/settings` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Create a job automatically when a print starts on a printer.
    pub job_creation_auto_create: bool,
    /// Seconds between polls of polled printers and between Bambu `pushall` refreshes.
    pub monitoring_interval: u64,
}

/// A partial update (`PUT /api/v1/settings`). Unknown keys are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_creation_auto_create: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring_interval: Option<u64>,
}

impl SettingsPatch {
    /// Checks every value; the message names the key and the accepted range.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(i) = self.monitoring_interval
            && !(MIN_MONITORING_INTERVAL..=MAX_MONITORING_INTERVAL).contains(&i)
        {
            return Err(format!(
                "monitoring_interval must be between {MIN_MONITORING_INTERVAL} and {MAX_MONITORING_INTERVAL} seconds, got {i}"
            ));
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.job_creation_auto_create.is_none() && self.monitoring_interval.is_none()
    }

    /// Applies this patch on top of `s`.
    pub fn apply(&self, s: &Settings) -> Settings {
        Settings {
            job_creation_auto_create: self
                .job_creation_auto_create
                .unwrap_or(s.job_creation_auto_create),
            monitoring_interval: self.monitoring_interval.unwrap_or(s.monitoring_interval),
        }
    }

    /// Later patches win key by key.
    pub fn merge(&mut self, later: &SettingsPatch) {
        if later.job_creation_auto_create.is_some() {
            self.job_creation_auto_create = later.job_creation_auto_create;
        }
        if later.monitoring_interval.is_some() {
            self.monitoring_interval = later.monitoring_interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_applies_only_given_keys() {
        let s = Settings {
            job_creation_auto_create: true,
            monitoring_interval: 30,
        };
        let p = SettingsPatch {
            job_creation_auto_create: Some(false),
            ..Default::default()
        };
        assert_eq!(
            p.apply(&s),
            Settings {
                job_creation_auto_create: false,
                monitoring_interval: 30
            }
        );
    }

    #[test]
    fn interval_bounds_are_checked() {
        let p = SettingsPatch {
            monitoring_interval: Some(0),
            ..Default::default()
        };
        assert!(p.validate().unwrap_err().contains("monitoring_interval"));
        let p = SettingsPatch {
            monitoring_interval: Some(10),
            ..Default::default()
        };
        assert!(p.validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = serde_json::from_str::<SettingsPatch>(r#"{"auto_create": true}"#).unwrap_err();
        assert!(e.to_string().contains("auto_create"));
    }
}
