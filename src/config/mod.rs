//! The daemon's configuration: figment layers, validation, and where it came from.
//!
//! Layers, later wins (design.md §5): built-in defaults < `daemon.toml` (path from
//! `--config`, else `PRINTFARMD_CONFIG`, else `./daemon.toml` in the working directory
//! if one is there) < environment (`PRINTFARMD_` prefix, `__` for nesting, plus the
//! seed's bare `JOB_CREATION_AUTO_CREATE`). Values saved through `PUT /api/v1/settings`
//! are applied on top later, from the database (see `settings.rs`).
//!
//! Unknown keys are errors that name the key and the file; after parsing, `validate`
//! checks what types alone cannot (unique ids, required credentials, ranges).

mod secret;
pub mod settings;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

pub use secret::Secret;
pub use settings::{Settings, SettingsPatch};

use crate::domain::{PrinterId, PrinterType};

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "PRINTFARMD_CONFIG";
/// Prefix of the environment overrides: `PRINTFARMD_SERVER__BIND=0.0.0.0:8000`.
pub const ENV_PREFIX: &str = "PRINTFARMD_";
/// The seed's bare variable for the auto-creation toggle.
pub const SEED_AUTO_CREATE_ENV: &str = "JOB_CREATION_AUTO_CREATE";
/// Looked for in the working directory when neither `--config` nor `PRINTFARMD_CONFIG` is set.
pub const DEFAULT_CONFIG_FILE: &str = "daemon.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    #[serde(default)]
    pub job_creation: JobCreationConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub printers: Vec<PrinterConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the REST/WebSocket/dashboard server listens on. Port 0 picks a free port.
    #[serde(default = "default_bind")]
    pub bind: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
        }
    }
}

fn default_bind() -> String {
    "127.0.0.1:8000".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// SQLite file; a relative path is relative to the working directory.
    #[serde(default = "default_db_path")]
    pub path: PathBuf,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            path: default_db_path(),
        }
    }
}

fn default_db_path() -> PathBuf {
    "printfarmd.db".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Seconds; the settings key `monitoring_interval`.
    #[serde(default = "default_interval")]
    pub interval: u64,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            interval: default_interval(),
        }
    }
}

fn default_interval() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobCreationConfig {
    /// The settings key `job_creation_auto_create`.
    #[serde(default = "default_true")]
    pub auto_create: bool,
}

impl Default for JobCreationConfig {
    fn default() -> Self {
        Self { auto_create: true }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// When true, every `/api` request and `/ws` needs one of `api_keys`
    /// (`Authorization: Bearer <key>` or `X-Api-Key: <key>`; `?api_key=` for `/ws`).
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub api_keys: Vec<Secret>,
}

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
}

/// A configuration that could not be loaded. The message names the key and the source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A loaded configuration and the file it came from (if any).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub source: Option<PathBuf>,
}

impl Config {
    /// Loads the layers from an explicit file (`--config`), or as described at the top.
    pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
        let source = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => match std::env::var_os(CONFIG_ENV) {
                Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
                _ => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
            },
        };
        if let Some(p) = &source
            && !p.is_file()
        {
            return Err(ConfigError::Missing(p.clone()));
        }
        let mut fig = Figment::new();
        if let Some(p) = &source {
            fig = fig.merge(Toml::file_exact(p));
        }
        let fig = fig
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .split("__")
                    .ignore(&["config", "log"]),
            )
            .merge(
                Env::raw()
                    .only(&[SEED_AUTO_CREATE_ENV])
                    .map(|_| "job_creation.auto_create".into()),
            );
        Self::from_figment(fig).map(|config| Loaded { config, source })
    }

    /// Parses a TOML document alone (no environment), e.g. for `check-config` tests.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(s)))
    }

    fn from_figment(fig: Figment) -> Result<Config, ConfigError> {
        let config: Config = fig.extract().map_err(|e| {
            ConfigError::Invalid(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        config.validate().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.bind_addr()?;
        if self.database.path.as_os_str().is_empty() {
            return Err("database.path must not be empty".into());
        }
        SettingsPatch {
            monitoring_interval: Some(self.monitoring.interval),
            ..Default::default()
        }
        .validate()
        .map_err(|e| e.replace("monitoring_interval", "monitoring.interval"))?;
        if self.auth.enabled && self.auth.api_keys.iter().all(|k| k.is_empty()) {
            return Err(
                "auth.enabled is true but auth.api_keys is empty; add at least one key".into(),
            );
        }
        let mut seen = HashSet::new();
        for p in &self.printers {
            if !seen.insert(p.id.clone()) {
                return Err(format!("printer id {} appears twice in [[printers]]", p.id));
            }
            p.validate()?;
        }
        Ok(())
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        self.server.bind.parse().map_err(|_| {
            format!(
                "server.bind {:?} is not an address; write it like \"127.0.0.1:8000\"",
                self.server.bind
            )
        })
    }

    /// The live settings as this configuration sets them (before saved values).
    pub fn settings(&self) -> Settings {
        Settings {
            job_creation_auto_create: self.job_creation.auto_create,
            monitoring_interval: self.monitoring.interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_file() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8000");
        assert_eq!(c.monitoring.interval, 30);
        assert!(c.job_creation.auto_create);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml_str("[server]\nbnid = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bnid"), "{e}");
    }

    #[test]
    fn bambu_needs_serial_and_code() {
        let e = Config::from_toml_str(
            "[[printers]]\nid = \"b1\"\ntype = \"bambu\"\nhost = \"10.0.0.2\"\nserial = \"S1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("access_code"), "{e}");
    }

    #[test]
    fn numeric_access_code_keeps_its_digits() {
        let c = Config::from_toml_str(
            "[[printers]]\nid = \"b1\"\ntype = \"bambu\"\nhost = \"h\"\nserial = \"S1\"\naccess_code = 12345678\n",
        )
        .unwrap();
        assert_eq!(
            c.printers[0].access_code.as_ref().unwrap().expose(),
            "12345678"
        );
        assert!(!format!("{:?}", c).contains("12345678"));
    }

    #[test]
    fn duplicate_printer_ids_refused() {
        let one = "[[printers]]\nid = \"p\"\ntype = \"prusalink\"\nhost = \"h\"\napi_key = \"k\"\n";
        let e = Config::from_toml_str(&format!("{one}{one}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn bad_interval_names_the_key() {
        let e = Config::from_toml_str("[monitoring]\ninterval = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("monitoring.interval"), "{e}");
    }

    #[test]
    fn octoprint_needs_an_api_key_and_moonraker_does_not() {
        let printer = |kind: &str, extra: &str| {
            Config::from_toml_str(&format!(
                "[[printers]]\nid = \"p\"\ntype = \"{kind}\"\nhost = \"10.0.0.3\"\n{extra}"
            ))
        };
        let e = printer("octoprint", "").unwrap_err().to_string();
        assert!(e.contains("api_key"), "{e}");
        assert!(printer("octoprint", "api_key = \"\"\n").is_err());
        assert!(printer("octoprint", "api_key = \"K\"\n").is_ok());
        assert!(printer("moonraker", "").is_ok());
    }
}
