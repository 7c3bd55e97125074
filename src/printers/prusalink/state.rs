//! What PrusaLink's answers mean (protocols.md §3), as plain code: parsing the v1
//! `/api/v1/status` and `/api/v1/job` bodies and the legacy `/api/job` + `/api/printer`
//! ones into one [`Poll`], and turning polls into [`PrinterStatus`] fields.
//!
//! The one thing a single answer cannot say: which print a terminal state belongs to.
//! `FINISHED`, `STOPPED` and `ERROR` come without a `job` object (§3.7, quirk 7.2.2), so
//! [`PrusaState`] remembers the last print it saw and attributes the end state to it
//! until the printer is idle again or another print appears.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{PrinterState, Temperatures};

mod memory;
pub use memory::PrusaState;

/// Why an answer was skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("not JSON ({0})")]
    NotJson(String),
    #[error("unexpected shape ({0})")]
    WrongType(String),
}

/// One poll's worth of what the printer said, whichever API said it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Poll {
    /// The v1 `printer.state` (`IDLE`, `PRINTING`, …), or a legacy state mapped to it.
    pub state: String,
    pub temperatures: Temperatures,
    pub job: Option<JobInfo>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobInfo {
    pub id: Option<String>,
    /// 0–100.
    pub progress: Option<f64>,
    pub remaining_s: Option<i64>,
    pub elapsed_s: Option<i64>,
    /// The long file name (`display_name`), folders stripped.
    pub filename: Option<String>,
    pub display_name: Option<String>,
}

/// A number or a string holding one, as some firmware sends ids.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Id {
    N(u64),
    S(String),
}

impl Id {
    fn text(self) -> Option<String> {
        let s = match self {
            Id::N(n) => n.to_string(),
            Id::S(s) => s.trim().to_owned(),
        };
        (!s.is_empty()).then_some(s)
    }
}

#[derive(Debug, Deserialize)]
struct V1Status {
    #[serde(default)]
    job: Option<V1Job>,
    printer: V1Printer,
}

#[derive(Debug, Deserialize)]
struct V1Printer {
    state: String,
    #[serde(default)]
    temp_nozzle: Option<f64>,
    #[serde(default)]
    target_nozzle: Option<f64>,
    #[serde(default)]
    temp_bed: Option<f64>,
    #[serde(default)]
    target_bed: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct V1Job {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default)]
    progress: Option<f64>,
    #[serde(default)]
    time_remaining: Option<f64>,
    #[serde(default)]
    time_printing: Option<f64>,
    #[serde(default)]
    file: Option<V1File>,
}

#[derive(Debug, Deserialize)]
struct V1File {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
    if !v.is_object() {
        return Err(BodyError::WrongType("not a JSON object".into()));
    }
    serde_json::from_value(v).map_err(|e| BodyError::WrongType(e.to_string()))
}

/// Seconds as a whole number. The cast saturates (a `time_printing` of 1e300 becomes
/// `i64::MAX`), so the boundary check sees an absurd value and drops it, counted.
fn secs(v: Option<f64>) -> Option<i64> {
    v.filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| s.round() as i64)
}

/// Progress as the printer said it; out of 0–100 is dropped (and counted) by the
/// boundary check (`sanitize.rs`), not clamped.
fn percent(v: Option<f64>) -> Option<f64> {
    v.filter(|p| p.is_finite())
}

/// Strips folders (`/usb/x.bgcode` → `x.bgcode`).
pub fn base_name(s: &str) -> Option<String> {
    let b = s.trim().rsplit(['/', '\\']).next().unwrap_or("").trim();
    (!b.is_empty()).then(|| b.to_owned())
}

/// Parses `/api/v1/status`.
pub fn parse_v1_status(body: &[u8]) -> Result<Poll, BodyError> {
    let s: V1Status = parse(body)?;
    let p = s.printer;
    Ok(Poll {
        state: p.state.trim().to_ascii_uppercase(),
        temperatures: Temperatures {
            nozzle: p.temp_nozzle,
            nozzle_target: p.target_nozzle,
            bed: p.temp_bed,
            bed_target: p.target_bed,
            chamber: None,
        },
        // The status's job object names no file; `/api/v1/job` does.
        job: s.job.map(|j| JobInfo {
            filename: None,
            display_name: None,
            ..j.info()
        }),
    })
}

/// Parses `/api/v1/job` (200) into the job it describes.
pub fn parse_v1_job(body: &[u8]) -> Result<JobInfo, BodyError> {
    Ok(parse::<V1Job>(body)?.info())
}

impl V1Job {
    fn info(self) -> JobInfo {
        let (display, short) = self
            .file
            .map(|f| (f.display_name, f.name))
            .unwrap_or_default();
        let long = display
            .filter(|d| !d.trim().is_empty())
            .or(short)
            .and_then(|n| base_name(&n));
        JobInfo {
            id: self.id.and_then(Id::text),
            progress: percent(self.progress),
            remaining_s: secs(self.time_remaining),
            elapsed_s: secs(self.time_printing),
            filename: long.clone(),
            display_name: long,
        }
    }
}

/// Adds what `/api/v1/job` says to the job `/api/v1/status` showed.
pub fn merge_job(status_job: Option<JobInfo>, job: Option<JobInfo>) -> Option<JobInfo> {
    match (status_job, job) {
        (Some(s), Some(j)) if s.id.is_none() || j.id.is_none() || s.id == j.id => Some(JobInfo {
            id: s.id.or(j.id),
            progress: s.progress.or(j.progress),
            remaining_s: s.remaining_s.or(j.remaining_s),
            elapsed_s: s.elapsed_s.or(j.elapsed_s),
            filename: j.filename,
            display_name: j.display_name,
        }),
        // The job changed between the two requests: trust the newer one.
        (Some(_), Some(j)) => Some(j),
        (s, j) => s.or(j),
    }
}

#[derive(Debug, Deserialize)]
struct LegacyJob {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    job: Option<LegacyJobJob>,
    #[serde(default)]
    progress: Option<LegacyProgress>,
}

#[derive(Debug, Deserialize)]
struct LegacyJobJob {
    #[serde(default)]
    file: Option<LegacyFile>,
}

#[derive(Debug, Deserialize)]
struct LegacyFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    display: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LegacyProgress {
    #[serde(default)]
    completion: Option<f64>,
    #[serde(rename = "printTimeLeft", default)]
    print_time_left: Option<f64>,
    #[serde(rename = "printTime", default)]
    print_time: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct LegacyPrinter {
    #[serde(default)]
    temperature: Option<LegacyTemps>,
    #[serde(default)]
    state: Option<LegacyPrinterState>,
}

#[derive(Debug, Deserialize)]
struct LegacyTemps {
    #[serde(default)]
    tool0: Option<LegacyTemp>,
    #[serde(default)]
    bed: Option<LegacyTemp>,
}

#[derive(Debug, Deserialize)]
struct LegacyTemp {
    #[serde(default)]
    actual: Option<f64>,
    #[serde(default)]
    target: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct LegacyPrinterState {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    flags: Option<LegacyFlags>,
}

#[derive(Debug, Deserialize)]
struct LegacyFlags {
    #[serde(default)]
    link_state: Option<String>,
}

/// Parses the legacy `/api/job` and (when it answered) `/api/printer` bodies. The legacy
/// API cannot tell how a print ended (quirk 7.2.1): a print that is gone reads idle.
pub fn parse_legacy(job: &[u8], printer: Option<&[u8]>) -> Result<Poll, BodyError> {
    let j: LegacyJob = parse(job)?;
    let p: LegacyPrinter = match printer {
        Some(b) => parse(b)?,
        None => LegacyPrinter::default(),
    };
    let file = j.job.and_then(|jj| jj.file);
    let name = file
        .and_then(|f| {
            [f.display, f.name, f.path]
                .into_iter()
                .flatten()
                .find(|n| !n.trim().is_empty())
        })
        .and_then(|n| base_name(&n));
    let has_job = name.is_some();
    let link_state = p
        .state
        .as_ref()
        .and_then(|s| s.flags.as_ref())
        .and_then(|f| f.link_state.clone())
        .filter(|s| !s.trim().is_empty());
    let text = j
        .state
        .or_else(|| p.state.as_ref().and_then(|s| s.text.clone()))
        .unwrap_or_default();
    let state = match link_state {
        Some(s) => s.trim().to_ascii_uppercase(),
        None => legacy_state(&text, has_job).to_owned(),
    };
    let job = has_job.then(|| {
        let pr = j.progress.as_ref();
        JobInfo {
            id: None,
            progress: percent(pr.and_then(|p| p.completion).map(|c| c * 100.0)),
            remaining_s: secs(pr.and_then(|p| p.print_time_left)),
            elapsed_s: secs(pr.and_then(|p| p.print_time)),
            filename: name.clone(),
            display_name: name,
        }
    });
    let temps = p.temperature.unwrap_or(LegacyTemps {
        tool0: None,
        bed: None,
    });
    Ok(Poll {
        state,
        temperatures: Temperatures {
            nozzle: temps.tool0.as_ref().and_then(|t| t.actual),
            nozzle_target: temps.tool0.as_ref().and_then(|t| t.target),
            bed: temps.bed.as_ref().and_then(|t| t.actual),
            bed_target: temps.bed.as_ref().and_then(|t| t.target),
            chamber: None,
        },
        job,
    })
}

/// Legacy (OctoPrint-style) state text → the v1 state it stands for (§3.6).
fn legacy_state(text: &str, has_job: bool) -> &'static str {
    let t = text.trim();
    let starts = |p: &str| t.len() >= p.len() && t[..p.len()].eq_ignore_ascii_case(p);
    if starts("Printing") || starts("Resuming") || starts("Cancelling") || starts("Finishing") {
        "PRINTING"
    } else if starts("Paused") || starts("Pausing") {
        "PAUSED"
    } else if starts("Operational") || starts("Busy") || starts("Ready") {
        "IDLE"
    } else if starts("Error") {
        // Buddy reports ATTENTION and pre-print questions as "Error".
        if has_job { "ATTENTION" } else { "ERROR" }
    } else {
        "UNKNOWN"
    }
}

/// v1 `printer.state` → the daemon's state (before end-state attribution).
pub fn map_state(state: &str) -> PrinterState {
    match state {
        "IDLE" | "READY" | "BUSY" => PrinterState::Idle,
        "PRINTING" => PrinterState::Printing,
        "PAUSED" | "ATTENTION" => PrinterState::Paused,
        "FINISHED" => PrinterState::Finished,
        "STOPPED" => PrinterState::Cancelled,
        "ERROR" => PrinterState::Error,
        _ => PrinterState::Unknown,
    }
}

#[cfg(test)]
mod tests;
