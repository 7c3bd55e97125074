//! The live settings: the part of the configuration that `PUT /api/v1/settings` may
//! change while the daemon runs.
//!
//! Precedence (design.md §5): built-in defaults < daemon.toml < environment < values
//! saved through the API. Saved values live in SQLite; the setup owner (`setup/`, on
//! the one writer's thread) is their only writer and publishes every change on a
//! `tokio::sync::watch` channel.

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
    /// Seconds between polls of polled printers and between Bambu `pushall` refreshes
    /// (those at most once in five minutes: `bambu::PUSHALL_MIN_GAP`).
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
    pub fn is_empty(&self) -> bool {
        self.job_creation_auto_create.is_none() && self.monitoring_interval.is_none()
    }
}

/// A settings change that passed the checks. `parse` is the only way to build one
/// (deserializing one parses too), so whoever holds one — the writer, the store — need
/// not check it again: the API parses the request body into one, the store parses each
/// saved value it reads back, and the config loader parses `monitoring.interval` with
/// the same function.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SettingsPatch", into = "SettingsPatch")]
pub struct SettingsChange(SettingsPatch);

impl SettingsChange {
    /// Checks every value; the message names the key and the accepted range.
    pub fn parse(patch: SettingsPatch) -> Result<Self, String> {
        if let Some(i) = patch.monitoring_interval
            && !(MIN_MONITORING_INTERVAL..=MAX_MONITORING_INTERVAL).contains(&i)
        {
            return Err(format!(
                "monitoring_interval must be between {MIN_MONITORING_INTERVAL} and {MAX_MONITORING_INTERVAL} seconds, got {i}"
            ));
        }
        Ok(Self(patch))
    }

    /// The values it sets, as the wire form.
    pub fn patch(&self) -> &SettingsPatch {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Applies this change on top of `s`.
    pub fn apply(&self, s: &Settings) -> Settings {
        Settings {
            job_creation_auto_create: self
                .0
                .job_creation_auto_create
                .unwrap_or(s.job_creation_auto_create),
            monitoring_interval: self.0.monitoring_interval.unwrap_or(s.monitoring_interval),
        }
    }

    /// Later changes win key by key (both were checked, so the merge is valid too).
    pub fn merge(&mut self, later: &SettingsChange) {
        let (mine, later) = (&mut self.0, &later.0);
        if later.job_creation_auto_create.is_some() {
            mine.job_creation_auto_create = later.job_creation_auto_create;
        }
        if later.monitoring_interval.is_some() {
            mine.monitoring_interval = later.monitoring_interval;
        }
    }
}

impl TryFrom<SettingsPatch> for SettingsChange {
    type Error = String;
    fn try_from(p: SettingsPatch) -> Result<Self, String> {
        Self::parse(p)
    }
}

impl From<SettingsChange> for SettingsPatch {
    fn from(c: SettingsChange) -> Self {
        c.0
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
        let p = SettingsChange::parse(SettingsPatch {
            job_creation_auto_create: Some(false),
            ..Default::default()
        })
        .unwrap();
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
        let interval = |i| {
            SettingsChange::parse(SettingsPatch {
                monitoring_interval: Some(i),
                ..Default::default()
            })
        };
        assert!(interval(0).unwrap_err().contains("monitoring_interval"));
        assert!(interval(3601).unwrap_err().contains("3600"));
        assert!(interval(1).is_ok() && interval(3600).is_ok());
    }

    #[test]
    fn a_change_deserialized_is_a_change_parsed() {
        let e = serde_json::from_str::<SettingsChange>(r#"{"monitoring_interval": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("monitoring_interval must be between"), "{e}");
        let c: SettingsChange =
            serde_json::from_str(r#"{"job_creation_auto_create": false}"#).unwrap();
        assert_eq!(c.patch().job_creation_auto_create, Some(false));
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"job_creation_auto_create":false}"#,
            "unset keys are left out"
        );
    }

    #[test]
    fn a_later_change_wins_key_by_key() {
        let parse = |s: &str| serde_json::from_str::<SettingsChange>(s).unwrap();
        let mut c = parse(r#"{"job_creation_auto_create": false, "monitoring_interval": 5}"#);
        c.merge(&parse(r#"{"monitoring_interval": 7}"#));
        assert_eq!(
            c.patch(),
            &SettingsPatch {
                job_creation_auto_create: Some(false),
                monitoring_interval: Some(7)
            }
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = serde_json::from_str::<SettingsPatch>(r#"{"auto_create": true}"#).unwrap_err();
        assert!(e.to_string().contains("auto_create"));
    }
}
