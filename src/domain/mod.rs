//! Typed domain values shared by every part of the daemon, at the bottom of the import
//! graph: this module imports nothing of the daemon but `time`.
//!
//! Printer and job ids, job statuses and printer types travel through the config, the
//! store, the actors and the API. Giving them types (instead of bare strings) means a
//! printer id can never be passed where a job id is expected, and a status can only be
//! one of the seven the contract names (design.md §2). The job (`job.rs`), the
//! normalised printer status (`printer.rs`) and the event names (`event.rs`) live here
//! too, so that the store, the drivers, the job book and the broadcaster share them
//! without importing each other.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod event;
pub mod job;
mod printer;

pub use event::EventKind;
pub use job::{END_REASON_API_CANCEL, Job, JobPatch, MAX_END_REASON_LEN, MAX_NAME_LEN, NewJob};
pub use printer::{BadData, ConnectionState, PrinterState, PrinterStatus, Temperatures};

/// Longest printer id accepted. Ids appear in URLs, log lines and WebSocket filters;
/// 64 characters is plenty for `bambu_x1c_rack3_slot12` style names.
pub const MAX_PRINTER_ID_LEN: usize = 64;

/// A printer's id as configured (`[[printers]] id = ".."`): 1–64 characters of
/// `A-Z a-z 0-9 _ - .`, so it is safe in a URL path segment without escaping.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, pattern = r"^[A-Za-z0-9_.\-]{1,64}$", example = "bambu_001")]
pub struct PrinterId(String);

impl PrinterId {
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.is_empty() || s.len() > MAX_PRINTER_ID_LEN {
            return Err(format!(
                "printer id must be 1 to {MAX_PRINTER_ID_LEN} characters long, got {} characters",
                s.len()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(format!(
                "printer id {s:?} contains {c:?}; use only letters, digits, '_', '-' and '.'"
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PrinterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PrinterId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PrinterId::new(s).map_err(serde::de::Error::custom)
    }
}

/// A job's id: `job_` followed by a UUIDv7 in simple form. UUIDv7 is time-ordered and
/// random in its low bits, so ids stay unique across restarts and across hosts without
/// consulting the database.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "job_0193a8f2c4e07c3d9a1b2c3d4e5f6a7b")]
pub struct JobId(String);

impl JobId {
    pub fn generate() -> Self {
        Self(format!("job_{}", uuid::Uuid::now_v7().simple()))
    }

    /// Wraps an id read from the database or a URL. Any string is accepted: an id that
    /// does not exist is simply not found.
    pub fn from_string(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job stands (design.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Created by hand, not yet seen on a printer.
    Pending,
    Running,
    Paused,
    Completed,
    Failed,
    Cancelled,
    /// It ended while printfarmd could not see it, so the outcome is not known.
    Unknown,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Paused,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Paused => "paused",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Unknown => "unknown",
        }
    }

    /// Open jobs are the ones a printer is working on; at most one per printer.
    pub fn is_open(self) -> bool {
        matches!(self, JobStatus::Running | JobStatus::Paused)
    }

    /// Ended jobs have an outcome (or know they have none) and an `end_time`.
    pub fn is_ended(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled | JobStatus::Unknown
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown job status {s:?}; expected one of {}",
                    JobStatus::ALL.map(|s| s.as_str()).join(", ")
                )
            })
    }
}

/// The protocol family a printer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrinterType {
    Bambu,
    Prusalink,
    Octoprint,
    Moonraker,
}

impl PrinterType {
    pub const ALL: [PrinterType; 4] = [
        PrinterType::Bambu,
        PrinterType::Prusalink,
        PrinterType::Octoprint,
        PrinterType::Moonraker,
    ];

    /// Whether the daemon can watch printers of this type. The one place to change when
    /// a driver is added: a type without a driver is refused by `check-config`, at start
    /// and by `POST /api/v1/printers`, instead of failing at run time.
    pub fn has_driver(self) -> bool {
        match self {
            PrinterType::Bambu
            | PrinterType::Prusalink
            | PrinterType::Octoprint
            | PrinterType::Moonraker => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PrinterType::Bambu => "bambu",
            PrinterType::Prusalink => "prusalink",
            PrinterType::Octoprint => "octoprint",
            PrinterType::Moonraker => "moonraker",
        }
    }
}

impl fmt::Display for PrinterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PrinterType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bambu" => Ok(PrinterType::Bambu),
            "prusalink" => Ok(PrinterType::Prusalink),
            "octoprint" => Ok(PrinterType::Octoprint),
            "moonraker" => Ok(PrinterType::Moonraker),
            other => Err(format!(
                "unknown printer type {other:?}; expected bambu, prusalink, octoprint or moonraker"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_ids_are_url_safe() {
        assert!(PrinterId::new("bambu_001").is_ok());
        assert!(PrinterId::new("prusa-core.one").is_ok());
        assert!(PrinterId::new("").is_err());
        assert!(PrinterId::new("a/b").is_err());
        assert!(PrinterId::new("x".repeat(65)).is_err());
    }

    #[test]
    fn job_ids_are_prefixed_and_unique() {
        let a = JobId::generate();
        let b = JobId::generate();
        assert!(a.as_str().starts_with("job_"));
        assert_ne!(a, b);
    }

    #[test]
    fn statuses_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
        }
        assert!("done".parse::<JobStatus>().is_err());
        assert!(JobStatus::Running.is_open() && JobStatus::Paused.is_open());
        assert!(!JobStatus::Pending.is_open() && !JobStatus::Pending.is_ended());
    }
}
