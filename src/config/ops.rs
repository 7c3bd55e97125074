//! The configuration of the service side (`[log]`, `[backup]`, `[retention]`): how the
//! daemon logs, when it backs its database up and how long it keeps finished jobs.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json` (one JSON object a line). `PRINTFARMD_LOG_FORMAT`
    /// wins over it.
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    /// Parses `PRINTFARMD_LOG_FORMAT`.
    pub fn parse(s: &str) -> Result<LogFormat, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "PRINTFARMD_LOG_FORMAT {s:?} is not a log format; use \"text\" or \"json\""
            )),
        }
    }
}

/// Longest backup interval accepted (a year): a larger number is a typo.
pub const MAX_BACKUP_INTERVAL_HOURS: u32 = 24 * 366;
/// Most scheduled backups kept; beyond that the disk use is the operator's surprise.
pub const MAX_BACKUP_KEEP: u32 = 1000;
/// Longest retention accepted (100 years): a larger number overflows date arithmetic
/// for nothing.
pub const MAX_KEEP_DAYS: u32 = 36_500;

/// `[backup]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Where scheduled backups and `POST /api/v1/backup` write. Default: `backups`
    /// beside the database file.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Hours between scheduled backups; 0 (default) turns them off.
    #[serde(default)]
    pub interval_hours: u32,
    /// Scheduled and API backups kept in `dir`; older ones are deleted.
    #[serde(default = "default_keep")]
    pub keep: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: None,
            interval_hours: 0,
            keep: default_keep(),
        }
    }
}

fn default_keep() -> u32 {
    7
}

impl BackupConfig {
    /// The backup directory for a database at `db`.
    pub fn dir_for(&self, db: &Path) -> PathBuf {
        match &self.dir {
            Some(d) => d.clone(),
            None => db
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join("backups"),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.interval_hours > MAX_BACKUP_INTERVAL_HOURS {
            return Err(format!(
                "backup.interval_hours {} is more than a year ({MAX_BACKUP_INTERVAL_HOURS}); use 0 to turn scheduled backups off",
                self.interval_hours
            ));
        }
        if self.keep == 0 || self.keep > MAX_BACKUP_KEEP {
            return Err(format!(
                "backup.keep {} must be between 1 and {MAX_BACKUP_KEEP}",
                self.keep
            ));
        }
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err("backup.dir must not be empty; leave it out for the default".into());
        }
        Ok(())
    }
}

/// `[retention]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Finished jobs that ended more than this many days ago are deleted. Unset (the
    /// default): kept for ever.
    #[serde(default)]
    pub keep_days: Option<u32>,
}

impl RetentionConfig {
    pub fn validate(&self) -> Result<(), String> {
        match self.keep_days {
            Some(d) if d == 0 || d > MAX_KEEP_DAYS => Err(format!(
                "retention.keep_days {d} must be between 1 and {MAX_KEEP_DAYS}; leave it out to keep every job"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn sections_parse_and_bad_values_name_the_key() {
        let c = Config::from_toml_str(
            "[log]\nformat = \"json\"\n[backup]\ndir = \"/b\"\ninterval_hours = 24\nkeep = 3\n[retention]\nkeep_days = 90\n",
        )
        .unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.backup.keep, 3);
        assert_eq!(c.retention.keep_days, Some(90));
        for (toml, key) in [
            ("[log]\nformat = \"xml\"", "format"),
            ("[backup]\nkeep = 0", "backup.keep"),
            ("[backup]\ninterval_hours = 100000", "backup.interval_hours"),
            ("[retention]\nkeep_days = 0", "retention.keep_days"),
        ] {
            let e = Config::from_toml_str(toml).unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
        let d = Config::from_toml_str("").unwrap();
        assert_eq!(d.log.format, LogFormat::Text);
        assert_eq!(d.backup.interval_hours, 0);
        assert_eq!(d.retention.keep_days, None);
        assert_eq!(
            d.backup.dir_for(Path::new("/var/lib/p/printfarmd.db")),
            Path::new("/var/lib/p/backups")
        );
        assert_eq!(
            d.backup.dir_for(Path::new("printfarmd.db")),
            Path::new("./backups")
        );
    }
}
