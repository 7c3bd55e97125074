//! A Bambu printer's state as its reports build it up, and its normalisation into a
//! [`PrinterStatus`] (protocols.md §2.4–2.11). Plain code: JSON in, fields out.
//!
//! X1-class printers send the whole `print` object in every report; P1/A1 send only what
//! changed (§2.5). One path serves both: every `push_status` is merged into a document
//! (keys overwrite, `null` changes nothing), and the status is read from the document.
//! Other `print` messages (command acks) and other subsystems (`info`, `system`) carry no
//! state and are left out.
//!
//! What the document alone cannot say is remembered per print (`JobMemory`): that a
//! cancel code was seen (the printer clears `print_error` a few seconds after `FAILED`,
//! §2.7 g), and the last non-zero progress and layer counters (zeroed on cancel, and
//! `total_layer_num` may be sent only once, §7.1 quirk 11), and the previous print's
//! `gcode_start_time`, which an X1 keeps reporting through the next print's PREPARE: a
//! start time equal to it is not this print's (protocols.md §10: "only if non-zero and
//! different from the previous job's value").
//!
//! A report whose known fields have the wrong type is refused as a whole, so the
//! document only ever holds values of the documented types. And it holds only those
//! fields (`FIELDS`): a real X1's report carries up to 40 KB of AMS, HMS, camera and
//! network detail that no status reads, and a farm keeps one document per printer.

use serde_json::{Map, Value};

use super::errors;
pub use super::errors::{CANCEL_CODES, error_code};
use crate::domain::{PrinterState, PrinterStatus, Temperatures};

/// HMS entries remembered per print: a failing printer raises a few; a report with
/// hundreds is not worth keeping whole.
const MAX_HMS_KEPT: usize = 8;

/// Task ids clamped to the signed 32-bit maximum are not unique (§7.1 quirk 8).
pub const CLAMPED_TASK_ID: &str = "2147483647";

/// Why a report was skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("not JSON ({0})")]
    NotJson(String),
    #[error("not a JSON object")]
    NotObject,
    #[error("field `{0}` has the wrong type")]
    WrongType(String),
    #[error("{size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
}

/// What a report was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A `push_status`, merged into the state.
    Status,
    /// Anything else (command acks, `info`, `system`): nothing to merge.
    Other,
}

/// How a field of `push_status` must look for the report to be used.
#[derive(Clone, Copy)]
enum Kind {
    /// A JSON string.
    Text,
    /// A string or a number (ids and times are strings, but some firmware sends numbers).
    TextOrNumber,
    /// A number, or a string holding one.
    Number,
    Array,
}

/// The fields the daemon reads, with their types: checked in every report, and the only
/// ones kept in the document.
const FIELDS: &[(&str, Kind)] = &[
    ("command", Kind::Text),
    ("gcode_state", Kind::Text),
    ("subtask_name", Kind::Text),
    ("gcode_file", Kind::Text),
    ("gcode_start_time", Kind::TextOrNumber),
    ("task_id", Kind::TextOrNumber),
    ("subtask_id", Kind::TextOrNumber),
    ("mc_percent", Kind::Number),
    ("mc_remaining_time", Kind::Number),
    ("layer_num", Kind::Number),
    ("total_layer_num", Kind::Number),
    ("nozzle_temper", Kind::Number),
    ("nozzle_target_temper", Kind::Number),
    ("bed_temper", Kind::Number),
    ("bed_target_temper", Kind::Number),
    ("chamber_temper", Kind::Number),
    ("print_error", Kind::Number),
    ("hms", Kind::Array),
];

/// What is remembered about the print under way (or the one that just ended).
#[derive(Clone, Debug, Default, PartialEq)]
struct JobMemory {
    /// Whether the last known `gcode_state` was an active one.
    active: Option<bool>,
    /// The identity of the active print, to notice a new print that follows unseen.
    key: Option<String>,
    cancel_seen: bool,
    /// Last non-zero `print_error` of this print.
    error: Option<u64>,
    /// Last non-empty HMS list of this print (`attr`, `code`): the printer may clear it
    /// before the daemon reads why the print ended.
    hms: Vec<(u32, u32)>,
    progress: Option<f64>,
    layer: Option<u32>,
    total_layers: Option<u32>,
    /// The `gcode_start_time` the printer reported before this print began, when a
    /// previous print (or an idle printer) was known: the previous print's, not this one's.
    stale_start: Option<String>,
}

/// One printer's merged report document.
#[derive(Clone, Debug, Default)]
pub struct BambuState {
    doc: Map<String, Value>,
    complete: bool,
    memory: JobMemory,
}

impl BambuState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything: a new connection starts from an unknown state (protocols.md
    /// §2.5: "do not derive transitions from the pre-snapshot state").
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Whether a full snapshot (a report with the state and the print's name) has been
    /// merged since the last reset. Until then the status is not worth sending: a delta
    /// printer's first frames may carry only `wifi_signal`.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Parses and applies one MQTT payload, refusing anything over `limit` bytes.
    pub fn apply_bytes(&mut self, payload: &[u8], limit: usize) -> Result<Applied, ReportError> {
        if payload.len() > limit {
            return Err(ReportError::TooLarge {
                size: payload.len(),
                limit,
            });
        }
        // Names may hold non-UTF-8 bytes on some firmware: decode lossily (§2.11).
        let report: Report = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) if e.is_syntax() || e.is_eof() => {
                let text = String::from_utf8_lossy(payload);
                serde_json::from_str(&text).map_err(report_error)?
            }
            Err(e) => return Err(report_error(e)),
        };
        self.apply_report(report)
    }

    fn apply_report(&mut self, report: Report) -> Result<Applied, ReportError> {
        let print = match report.print {
            None => return Ok(Applied::Other),
            Some(Print::NotObject) => return Err(ReportError::WrongType("print".into())),
            Some(Print::Fields(print)) => print,
        };
        if print.get("command").and_then(Value::as_str) != Some("push_status") {
            return Ok(Applied::Other);
        }
        validate(&print)?;
        let full = print.contains_key("gcode_state")
            && (print.contains_key("gcode_file") || print.contains_key("subtask_name"));
        let start_before = self.text("gcode_start_time");
        merge(&mut self.doc, print);
        self.complete |= full;
        self.remember(start_before);
        Ok(Applied::Status)
    }

    fn text(&self, key: &str) -> Option<String> {
        self.doc.get(key).and_then(text)
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.doc.get(key).and_then(number)
    }

    fn count(&self, key: &str) -> Option<u32> {
        self.number(key)
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(|n| n.min(u32::MAX as f64) as u32)
    }

    /// The HMS entries of the document (`attr`, `code`), at most `MAX_HMS_KEPT`;
    /// entries that are not two 32-bit numbers are skipped.
    fn hms(&self) -> Vec<(u32, u32)> {
        let Some(Value::Array(list)) = self.doc.get("hms") else {
            return Vec::new();
        };
        let int = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
        list.iter()
            .filter_map(|e| Some((int(e.get("attr")?)?, int(e.get("code")?)?)))
            .take(MAX_HMS_KEPT)
            .collect()
    }

    fn print_error(&self) -> u64 {
        self.number("print_error")
            .filter(|n| n.is_finite() && *n > 0.0)
            .map(|n| n as u64)
            .unwrap_or(0)
    }

    /// The `gcode_state` as the daemon understands it; `None` before any report said.
    fn gcode_state(&self) -> Option<PrinterState> {
        let s = self.text("gcode_state")?;
        Some(match s.as_str() {
            "IDLE" => PrinterState::Idle,
            "PREPARE" | "SLICING" | "INIT" => PrinterState::Preparing,
            "RUNNING" => PrinterState::Printing,
            "PAUSE" => PrinterState::Paused,
            "FINISH" => PrinterState::Finished,
            "FAILED" => {
                if self.memory.cancel_seen || CANCEL_CODES.contains(&self.print_error()) {
                    PrinterState::Cancelled
                } else {
                    PrinterState::Failed
                }
            }
            _ => PrinterState::Unknown,
        })
    }

    fn job_key(&self) -> Option<String> {
        job_id(self.text("subtask_id"), self.text("task_id")).or_else(|| {
            filename(
                self.text("gcode_file").as_deref(),
                self.text("subtask_name").as_deref(),
            )
        })
    }

    /// Updates the per-print memory after a merge; `start_before` is the
    /// `gcode_start_time` the document held before it.
    fn remember(&mut self, start_before: Option<String>) {
        let state = self.gcode_state();
        let active = match state {
            Some(PrinterState::Preparing | PrinterState::Printing | PrinterState::Paused) => {
                Some(true)
            }
            Some(
                PrinterState::Idle
                | PrinterState::Finished
                | PrinterState::Failed
                | PrinterState::Cancelled,
            ) => Some(false),
            _ => None,
        };
        if active == Some(true) {
            let key = self.job_key();
            let new_print = self.memory.active != Some(true)
                || matches!((&self.memory.key, &key), (Some(a), Some(b)) if a != b);
            if new_print {
                // A print or an idle printer was known before this one: the start time
                // it reported belongs to that print until the printer sets a new one.
                let known_before = self.memory.active.is_some();
                self.memory = JobMemory::default();
                if known_before {
                    self.memory.stale_start = start_before.map(|t| t.trim().to_owned());
                }
            }
            if key.is_some() {
                self.memory.key = key;
            }
        }
        if active.is_some() {
            self.memory.active = active;
        }
        let err = self.print_error();
        if err != 0 {
            self.memory.error = Some(err);
            if CANCEL_CODES.contains(&err) {
                self.memory.cancel_seen = true;
            }
        }
        let hms = self.hms();
        if !hms.is_empty() {
            self.memory.hms = hms;
        }
        if active == Some(true) {
            if let Some(p) = self
                .number("mc_percent")
                .filter(|p| *p > 0.0 && *p <= 100.0)
            {
                self.memory.progress = Some(p);
            }
            if let Some(l) = self.count("layer_num").filter(|l| *l > 0) {
                self.memory.layer = Some(l);
            }
        }
        if let Some(t) = self.count("total_layer_num").filter(|t| *t > 0) {
            self.memory.total_layers = Some(t);
        }
    }

    /// Writes what the document says into `s` (the job and temperature fields);
    /// connection fields and times are the driver's.
    pub fn fill(&self, s: &mut PrinterStatus) {
        let state = self.gcode_state().unwrap_or(PrinterState::Unknown);
        let ended = matches!(state, PrinterState::Failed | PrinterState::Cancelled);
        s.state = state;
        s.filename = filename(
            self.text("gcode_file").as_deref(),
            self.text("subtask_name").as_deref(),
        );
        s.job_name = self
            .text("subtask_name")
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        s.printer_job_id = job_id(self.text("subtask_id"), self.text("task_id"));
        s.printer_start_time = self
            .text("gcode_start_time")
            .filter(|t| self.memory.stale_start.as_deref() != Some(t.trim()))
            .and_then(|t| start_time(&t));
        s.elapsed_s = None;
        // Out of 0–100 is dropped (and counted) by the boundary check, not clamped.
        let progress = self.number("mc_percent");
        s.progress = match progress {
            Some(p) if p == 0.0 && ended => self.memory.progress.or(Some(0.0)),
            other => other,
        };
        s.remaining_s = self
            .number("mc_remaining_time")
            .filter(|m| m.is_finite())
            .map(|m| (m.max(0.0) * 60.0).round() as i64);
        let layer = self.count("layer_num");
        s.layer = match layer {
            Some(0) if ended => self.memory.layer.or(Some(0)),
            other => other,
        };
        s.total_layers = match self.count("total_layer_num") {
            Some(t) if t > 0 => Some(t),
            _ if state != PrinterState::Idle => self.memory.total_layers,
            _ => None,
        };
        s.temperatures = Temperatures {
            nozzle: self.number("nozzle_temper"),
            nozzle_target: self.number("nozzle_target_temper"),
            bed: self.number("bed_temper"),
            bed_target: self.number("bed_target_temper"),
            chamber: self.number("chamber_temper"),
        };
        // Why the print stopped, in words (errors.rs): the printer's code, else the one
        // it reported during this print, and its HMS alerts (the last ones of the print
        // once it ended, as the printer may have cleared them).
        let err = self.print_error();
        let code = match err {
            0 if ended => self.memory.error.unwrap_or(0),
            e => e,
        };
        s.error = if code != 0 || ended {
            let mut hms = self.hms();
            if hms.is_empty() && ended {
                hms = self.memory.hms.clone();
            }
            errors::describe(code, &hms)
        } else {
            None
        };
    }
}

fn validate(print: &Map<String, Value>) -> Result<(), ReportError> {
    for (key, kind) in FIELDS {
        let Some(v) = print.get(*key) else { continue };
        let ok = match (kind, v) {
            (_, Value::Null) => true,
            (Kind::Text, Value::String(_)) => true,
            (Kind::TextOrNumber, Value::String(_) | Value::Number(_)) => true,
            (Kind::Number, v) => number(v).is_some(),
            (Kind::Array, Value::Array(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(ReportError::WrongType((*key).into()));
        }
    }
    Ok(())
}

/// Merges `delta` into `doc`: keys overwrite, `null` changes nothing. (The fields kept
/// are scalars and arrays, so there is nothing nested to merge.)
fn merge(doc: &mut Map<String, Value>, delta: Map<String, Value>) {
    for (k, v) in delta {
        if !v.is_null() {
            doc.insert(k, v);
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

mod identity;
#[cfg(test)]
mod tests;
mod wire;

pub use identity::{filename, job_id, start_time};
use wire::{Print, Report, report_error};
