//! The daemon's configuration: figment layers, validation, and where it came from.
//!
//! Layers, later wins (design.md §5): built-in defaults < `daemon.toml` (path from
//! `--config`, else `PRINTFARMD_CONFIG`, else `./daemon.toml` in the working directory
//! if one is there) < environment (`PRINTFARMD_` prefix, `__` for nesting, plus the
//! seed's bare `JOB_CREATION_AUTO_CREATE`). Values saved through `PUT /api/v1/settings`
//! are applied on top later, from the database (see `settings.rs`).
//!
//! Unknown keys are errors that name the key and the file; after parsing, `validate`
//! checks what types alone cannot (unique ids, one entry per device, a driver for the
//! type, required credentials, ranges). Errors never quote a value (`errors.rs`); the
//! environment layer reads only the keys the config defines (`env.rs`).

pub mod access;
pub mod env;
pub mod errors;
#[cfg(test)]
mod fuzz;
mod monitoring;
pub mod notify;
pub mod ops;
mod printer;
mod secret;
pub mod settings;
mod valid;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;

pub use access::{ConfigKey, Role};
pub use monitoring::{DEFAULT_STATUS_PROBE_S, MAX_STATUS_PROBE_S, MonitoringConfig};
pub use ops::{BackupConfig, LogConfig, LogFormat, RetentionConfig};
pub use printer::{PrinterConfig, duplicate_message};
pub use secret::Secret;
pub use settings::{Settings, SettingsChange, SettingsPatch};
pub use valid::ValidPrinter;

use crate::domain::PrinterId;

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "PRINTFARMD_CONFIG";
/// Prefix of the environment overrides: `PRINTFARMD_SERVER__BIND=0.0.0.0:8000`.
pub const ENV_PREFIX: &str = "PRINTFARMD_";
/// The seed's bare variable for the auto-creation toggle.
pub const SEED_AUTO_CREATE_ENV: &str = "JOB_CREATION_AUTO_CREATE";
/// Looked for in the working directory when neither `--config` nor `PRINTFARMD_CONFIG` is set.
pub const DEFAULT_CONFIG_FILE: &str = "daemon.toml";
/// Largest config file read: ~2,000 printers take ~400 KB; a bigger file is a mistake
/// (a log or a binary passed as `--config`), not a farm.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

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
    pub log: LogConfig,
    #[serde(default)]
    pub backup: BackupConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub printers: Vec<PrinterConfig>,
    /// `[[webhooks]]` and `[mqtt]` (src/notify).
    #[serde(default)]
    pub webhooks: Vec<crate::config::notify::WebhookConfig>,
    #[serde(default)]
    pub mqtt: Option<crate::config::notify::MqttConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the REST/WebSocket/dashboard server listens on. Port 0 picks a free port.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Most HTTP connections open at once, WebSockets included (`api::serve`); beyond it
    /// new connections wait until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Host names (or host:port) browsers may reach the daemon by, besides the bind
    /// address and localhost; any other `Host` gets 421 (DNS rebinding). See access.rs.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://dash.example.com`) of pages served elsewhere that may call the
    /// API (CORS) and open `/ws`. Empty: CORS off, `/ws` same-origin only.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            max_connections: default_max_connections(),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
        }
    }
}

/// Room for a thousand dashboards and WebSocket clients plus the REST traffic, well under
/// the service's file-descriptor limit (`LimitNOFILE=65536`, with a socket per printer).
fn default_max_connections() -> usize {
    4096
}

/// Bounds of `server.max_connections`: at least one connection; at most what a process's
/// file descriptors can hold beside the printers' sockets.
pub const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<usize> = 1..=60_000;

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// When true, every `/api` request and `/ws` needs a key: one of `api_keys` or one
    /// made by `printfarmd key add` (`Authorization: Bearer <key>` or `X-Api-Key: <key>`).
    #[serde(default)]
    pub enabled: bool,
    /// Keys written in the file: a bare string is an admin key, `{key, role}` any role.
    #[serde(default)]
    pub api_keys: Vec<ConfigKey>,
    /// Wrong keys one address may send in a minute before it gets 429.
    #[serde(default = "access::default_failed_keys_per_minute")]
    pub failed_keys_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api_keys: Vec::new(),
            failed_keys_per_minute: access::DEFAULT_FAILED_KEYS_PER_MINUTE,
        }
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
    /// Loads the layers from an explicit file (`--config`), or as described at the top,
    /// with the process's environment.
    pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
        Self::load_with_env(explicit, std::env::vars_os())
    }

    /// `load` with the environment given (tests).
    pub fn load_with_env(
        explicit: Option<&Path>,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Loaded, ConfigError> {
        let vars: Vec<(OsString, OsString)> = vars.into_iter().collect();
        let from_env = vars
            .iter()
            .find(|(k, _)| k.as_os_str() == CONFIG_ENV)
            .map(|(_, v)| v.clone());
        let source = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => match from_env {
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
            let text = read_config_file(p)?;
            if let Some(e) = errors::toml_syntax(&text, p) {
                return Err(ConfigError::Invalid(e));
            }
            fig = fig.merge(Toml::file_exact(p));
        }
        for key in env::config_keys(vars).map_err(ConfigError::Invalid)? {
            fig = fig.merge(key);
        }
        Self::from_figment(fig).map(|config| Loaded { config, source })
    }

    /// Parses a TOML document alone (no environment), e.g. for `check-config` tests.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        if let Some(e) = errors::toml_syntax(s, Path::new("<string>")) {
            return Err(ConfigError::Invalid(e));
        }
        Self::from_figment(Figment::from(Toml::string(s)))
    }

    fn from_figment(fig: Figment) -> Result<Config, ConfigError> {
        let config: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(errors::describe(e)))?;
        config.validate().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.bind_addr()?;
        if !MAX_CONNECTIONS_RANGE.contains(&self.server.max_connections) {
            return Err(format!(
                "server.max_connections must be {} to {}",
                MAX_CONNECTIONS_RANGE.start(),
                MAX_CONNECTIONS_RANGE.end()
            ));
        }
        if self.database.path.as_os_str().is_empty() {
            return Err("database.path must not be empty".into());
        }
        SettingsChange::parse(SettingsPatch {
            monitoring_interval: Some(self.monitoring.interval),
            ..Default::default()
        })
        .map_err(|e| e.replace("monitoring_interval", "monitoring.interval"))?;
        if self.monitoring.status_probe_s > MAX_STATUS_PROBE_S {
            return Err(format!(
                "monitoring.status_probe_s must be 0 (off) to {MAX_STATUS_PROBE_S} seconds, got {}",
                self.monitoring.status_probe_s
            ));
        }
        access::validate_keys(&self.auth.api_keys, self.auth.failed_keys_per_minute)?;
        access::validate_hosts(&self.server.allowed_hosts)?;
        access::validate_origins(&self.server.allowed_origins)?;
        self.backup.validate()?;
        self.retention.validate()?;
        let mut seen = HashSet::new();
        let mut serials: HashMap<String, &PrinterId> = HashMap::new();
        let mut endpoints: HashMap<(String, u16), &PrinterId> = HashMap::new();
        for p in &self.printers {
            if !seen.insert(p.id.clone()) {
                return Err(format!("printer id {} appears twice in [[printers]]", p.id));
            }
            ValidPrinter::parse(p.clone())?;
            if let Some(serial) = p.bambu_serial()
                && let Some(first) = serials.insert(serial, &p.id)
            {
                return Err(duplicate_message(first, &p.id, "the same serial"));
            }
            if let Some(endpoint) = p.endpoint()
                && let Some(first) = endpoints.insert(endpoint, &p.id)
            {
                return Err(duplicate_message(first, &p.id, "the same host and port"));
            }
        }
        crate::config::notify::validate(&self.webhooks, self.mqtt.as_ref())?;
        Ok(())
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        self.server.bind.parse().map_err(|_| {
            "server.bind is not an address; write it like \"127.0.0.1:8000\" (an IP address and a port)"
                .to_owned()
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

/// The config file's text, refused if it is bigger than any farm's.
fn read_config_file(p: &Path) -> Result<String, ConfigError> {
    let cannot = |e: std::io::Error| {
        ConfigError::Invalid(format!("cannot read config file {}: {e}", p.display()))
    };
    let mut text = String::new();
    std::fs::File::open(p)
        .map_err(cannot)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::Invalid(format!(
            "config file {} is bigger than {} MiB; is it the right file?",
            p.display(),
            MAX_CONFIG_BYTES / (1024 * 1024)
        )));
    }
    Ok(text)
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
    fn status_probe_defaults_to_five_seconds_and_is_bounded() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(
            c.monitoring.status_probe(),
            Some(std::time::Duration::from_secs(5))
        );
        let c = Config::from_toml_str("[monitoring]\nstatus_probe_s = 0").unwrap();
        assert_eq!(c.monitoring.status_probe(), None);
        let e = Config::from_toml_str("[monitoring]\nstatus_probe_s = 301")
            .unwrap_err()
            .to_string();
        assert!(e.contains("monitoring.status_probe_s"), "{e}");
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
