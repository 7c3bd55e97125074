//! One `[[printers]]` entry: what it must hold, and when two entries are one device.
//!
//! A printer configured twice (the same Bambu serial, or another type's same host and
//! port under two ids) would have every print recorded twice, so the config file, the
//! start-up and `POST`/`PUT /api/v1/printers` all refuse it with `same_device_as`.

use serde::Deserialize;

use super::Secret;
use crate::domain::{PrinterId, PrinterType};

/// One `[[printers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    pub id: PrinterId,
    #[serde(rename = "type")]
    pub kind: PrinterType,
    /// Display name; the id when absent.
    #[serde(default)]
    pub name: Option<String>,
    pub host: String,
    /// Defaults to the protocol's port (Bambu 8883, PrusaLink 80, OctoPrint 80, Moonraker 7125).
    #[serde(default)]
    pub port: Option<u16>,
    /// Bambu: the printer's serial number (the MQTT topic and the certificate's CN).
    #[serde(default)]
    pub serial: Option<String>,
    /// Bambu: the LAN access code shown on the printer's screen.
    #[serde(default)]
    pub access_code: Option<Secret>,
    /// PrusaLink: Digest user (usually `maker`).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// PrusaLink, OctoPrint, Moonraker: `X-Api-Key`.
    #[serde(default)]
    pub api_key: Option<Secret>,
}

impl PrinterConfig {
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.id.as_str())
    }

    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.kind {
            PrinterType::Bambu => 8883,
            PrinterType::Prusalink | PrinterType::Octoprint => 80,
            PrinterType::Moonraker => 7125,
        })
    }

    /// What this printer needs that types alone cannot say.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.id;
        if !self.kind.has_driver() {
            return Err(format!(
                "printer {id}: type {} has no driver yet; supported types: {}",
                self.kind,
                PrinterType::ALL
                    .iter()
                    .filter(|t| t.has_driver())
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.host.trim().is_empty() {
            return Err(format!("printer {id}: host must not be empty"));
        }
        if self.port == Some(0) {
            return Err(format!("printer {id}: port must not be 0"));
        }
        let present = |s: &Option<Secret>| s.as_ref().is_some_and(|s| !s.is_empty());
        match self.kind {
            PrinterType::Bambu => {
                if self.serial.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    return Err(format!(
                        "printer {id}: a bambu printer needs `serial` (Settings > Device on the printer)"
                    ));
                }
                if !present(&self.access_code) {
                    return Err(format!(
                        "printer {id}: a bambu printer needs `access_code` (the LAN access code on the printer's screen)"
                    ));
                }
            }
            PrinterType::Prusalink => {
                let digest = self.username.is_some() && present(&self.password);
                if !digest && !present(&self.api_key) {
                    return Err(format!(
                        "printer {id}: a prusalink printer needs `username` and `password` (Digest), or `api_key`"
                    ));
                }
            }
            PrinterType::Octoprint => {
                if !present(&self.api_key) {
                    return Err(format!(
                        "printer {id}: an octoprint printer needs `api_key` (OctoPrint: Settings > Application Keys, or the user's API key)"
                    ));
                }
            }
            PrinterType::Moonraker => {}
        }
        Ok(())
    }

    /// The host and port the daemon connects to, as compared for duplicates. None for a
    /// Bambu printer: it is told apart by its serial (one broker may serve several, as
    /// the simulator's does).
    pub(super) fn endpoint(&self) -> Option<(String, u16)> {
        (self.kind != PrinterType::Bambu).then(|| {
            (
                self.host.trim().to_ascii_lowercase(),
                self.port_or_default(),
            )
        })
    }

    /// The Bambu serial, as compared for duplicates.
    pub(super) fn bambu_serial(&self) -> Option<String> {
        (self.kind == PrinterType::Bambu)
            .then(|| {
                self.serial
                    .as_deref()
                    .map(|s| s.trim().to_ascii_uppercase())
            })
            .flatten()
            .filter(|s| !s.is_empty())
    }

    /// Why `other` (another id) is the same device as this entry, if it is: the same
    /// Bambu serial, or (other types) the same host and port. Every print would be
    /// recorded twice.
    pub fn same_device_as(&self, other: &PrinterConfig) -> Option<&'static str> {
        if self.id == other.id {
            return None;
        }
        if self.bambu_serial().is_some() && self.bambu_serial() == other.bambu_serial() {
            return Some("the same serial");
        }
        (self.endpoint().is_some() && self.endpoint() == other.endpoint())
            .then_some("the same host and port")
    }
}

/// The message for two entries that are one device. Names both ids, never a value.
pub fn duplicate_message(a: &PrinterId, b: &PrinterId, why: &str) -> String {
    format!(
        "printers {a} and {b} have {why}: they are one printer, and every print would be recorded twice; keep one of them"
    )
}
