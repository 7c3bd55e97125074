//! What Moonraker says, as plain code (protocols.md §5, §6.4, quirks §7.4): the printer
//! objects (`print_stats`, `virtual_sdcard`, `display_status`, `webhooks`) merged from the
//! subscription's full answer and its `notify_status_update` deltas, the `history` jobs
//! (`notify_history_changed`, `server.history.list`), and the [`PrinterStatus`] they make.
//!
//! Identity is Moonraker's history `job_id` (opaque text). The end state comes from the
//! history when it has the job (`completed`, `cancelled`, `error`, `klippy_shutdown`, …),
//! else from `print_stats.state`; `print_stats` keeps the last job's values after it ended
//! (quirk 7.4.3), so `complete` with the old file is the normal idle screen.

use serde_json::{Map, Value};

use crate::domain::{PrinterState, PrinterStatus, Temperatures};
use crate::time::Timestamp;

/// Longest file name or message kept.
pub const MAX_TEXT_CHARS: usize = 255;
/// Longest duration believed (a year).
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;
/// Members kept per printer object: a confused server cannot grow the merged state
/// without bound (the subscribed objects have about a dozen each).
pub const MAX_FIELDS: usize = 64;

/// One job of Moonraker's history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryJob {
    pub job_id: String,
    pub filename: Option<String>,
    /// `in_progress`, `completed`, `cancelled`, `error`, `klippy_shutdown`, …
    pub status: String,
    pub start_time: Option<Timestamp>,
}

fn cap(s: &str) -> String {
    s.trim().chars().take(MAX_TEXT_CHARS).collect()
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(cap).filter(|s| !s.is_empty())
}

fn secs(v: &Value) -> Option<f64> {
    v.as_f64()
        .filter(|s| s.is_finite() && (0.0..=MAX_SECONDS).contains(s))
}

/// A history job object (`server.history.list` entry, `notify_history_changed` job).
pub fn parse_job(v: &Value) -> Option<HistoryJob> {
    let job_id = match &v["job_id"] {
        Value::String(s) => cap(s),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if job_id.is_empty() {
        return None;
    }
    let start_time = v["start_time"]
        .as_f64()
        .filter(|t| t.is_finite() && *t > 0.0 && *t < 1e11)
        .and_then(|t| chrono::DateTime::from_timestamp_millis((t * 1000.0) as i64));
    Some(HistoryJob {
        job_id,
        filename: text(&v["filename"]),
        status: text(&v["status"]).unwrap_or_default(),
        start_time,
    })
}

/// Strips folders (`parts/bracket.gcode` → `bracket.gcode`).
pub fn base_name(path: &str) -> Option<String> {
    let b = path.trim().rsplit(['/', '\\']).next().unwrap_or("").trim();
    (!b.is_empty()).then(|| b.to_owned())
}

/// See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct MoonState {
    objects: Map<String, Value>,
    /// The newest history job seen (the one under way, or the last one).
    job: Option<HistoryJob>,
    /// Klippy's state from `server.info` / notifications when objects cannot say it.
    klippy: Option<String>,
}

impl MoonState {
    /// Merges a `status` object (subscribe answer or `notify_status_update` delta).
    /// Returns false when it was not an object.
    pub fn merge(&mut self, status: &Value) -> bool {
        let Some(m) = status.as_object() else {
            return false;
        };
        for (name, fields) in m {
            if !matches!(
                name.as_str(),
                "print_stats"
                    | "virtual_sdcard"
                    | "display_status"
                    | "webhooks"
                    | "extruder"
                    | "heater_bed"
            ) {
                continue;
            }
            let Some(fields) = fields.as_object() else {
                continue;
            };
            let entry = self
                .objects
                .entry(name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(obj) = entry.as_object_mut() {
                for (k, v) in fields {
                    if obj.len() < MAX_FIELDS || obj.contains_key(k) {
                        obj.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        true
    }

    /// Forgets the merged objects (a new subscription answers in full).
    pub fn reset_objects(&mut self) {
        self.objects.clear();
    }

    pub fn set_klippy(&mut self, state: &str) {
        self.klippy = Some(cap(state));
    }

    /// A history job (added, finished, or listed).
    pub fn history(&mut self, job: HistoryJob) {
        self.job = Some(job);
    }

    pub fn job(&self) -> Option<&HistoryJob> {
        self.job.as_ref()
    }

    fn obj(&self, name: &str) -> &Value {
        self.objects.get(name).unwrap_or(&Value::Null)
    }

    /// Writes the job, state and temperature fields of `s`.
    pub fn fill(&self, s: &mut PrinterStatus) {
        let ps = self.obj("print_stats");
        let klippy = text(&self.obj("webhooks")["state"]).or_else(|| self.klippy.clone());
        let ps_state = text(&ps["state"]).unwrap_or_default();
        let file = text(&ps["filename"]);
        // The history job is this print's when it names the same file (or none).
        let job = self.job.as_ref().filter(|j| match (&j.filename, &file) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        });
        let by_history = job.and_then(|j| match j.status.as_str() {
            "completed" => Some(PrinterState::Finished),
            "cancelled" => Some(PrinterState::Cancelled),
            "error" | "klippy_shutdown" | "klippy_disconnect" => Some(PrinterState::Failed),
            _ => None,
        });
        let mut state = match ps_state.as_str() {
            "printing" => PrinterState::Printing,
            "paused" => PrinterState::Paused,
            // Anycubic firmware says `completed` (quirk 7.4.1).
            "complete" | "completed" => PrinterState::Finished,
            "cancelled" => PrinterState::Cancelled,
            "error" => PrinterState::Failed,
            "standby" => PrinterState::Idle,
            _ => PrinterState::Unknown,
        };
        let ended = matches!(
            state,
            PrinterState::Finished
                | PrinterState::Cancelled
                | PrinterState::Failed
                | PrinterState::Idle
        );
        if ended && let Some(h) = by_history {
            state = h;
        }
        if ended && job.is_some_and(|j| j.status == "in_progress") {
            // The history says a print began and `print_stats` has not caught up (the
            // two arrive as separate notifications): neither an end nor idle yet.
            state = PrinterState::Unknown;
        }
        s.error = None;
        match klippy.as_deref() {
            None | Some("ready") => {}
            Some(k) => {
                let msg = text(&self.obj("webhooks")["state_message"]).unwrap_or_default();
                s.error = Some(cap(&format!("Klippy is {k}: {msg}")));
                state = match (k, by_history) {
                    (_, Some(h)) => h,
                    ("shutdown" | "error", _)
                        if file.is_some() && matches!(ps_state.as_str(), "printing" | "paused") =>
                    {
                        PrinterState::Failed
                    }
                    ("shutdown" | "error", _) => PrinterState::Error,
                    _ => PrinterState::Unknown,
                };
            }
        }
        // Klipper's message when it gave one (`print_stats.message`), else what the
        // history's status says; a cancel is CANCEL_PRINT, a person's.
        if state == PrinterState::Failed && s.error.is_none() {
            let history = job.map(|j| j.status.as_str());
            s.error = text(&ps["message"])
                .filter(|m| !m.trim().is_empty())
                .map(|m| cap(&m))
                .or_else(|| {
                    Some(
                        match history {
                            Some("klippy_shutdown") => "Klipper shut down during the print",
                            Some("klippy_disconnect") => "Klipper disconnected during the print",
                            _ => "the print ended with an error",
                        }
                        .into(),
                    )
                });
        }
        if state == PrinterState::Cancelled && s.error.is_none() {
            s.error = Some("cancelled by user".into());
        }
        let has_print = state != PrinterState::Idle && state != PrinterState::Error;
        s.state = state;
        s.filename = if has_print {
            file.as_deref().and_then(base_name)
        } else {
            None
        };
        s.job_name = None;
        // While printing, only a job in progress is this print's (the history's `added`
        // may come a moment after `print_stats` says printing).
        let job = job.filter(|j| {
            has_print
                && (j.status == "in_progress"
                    || !matches!(state, PrinterState::Printing | PrinterState::Paused))
        });
        s.printer_job_id = job.map(|j| j.job_id.clone());
        s.printer_start_time = job.and_then(|j| j.start_time);
        let progress = self.obj("display_status")["progress"]
            .as_f64()
            .or_else(|| self.obj("virtual_sdcard")["progress"].as_f64())
            .filter(|p| p.is_finite())
            .map(|p| (p * 100.0).clamp(0.0, 100.0));
        let total = secs(&ps["total_duration"]);
        let printing = secs(&ps["print_duration"]);
        let active = matches!(state, PrinterState::Printing | PrinterState::Paused);
        s.progress = match state {
            PrinterState::Finished => Some(100.0),
            _ if has_print => progress,
            _ => None,
        };
        s.elapsed_s = if has_print {
            total.map(|t| t.round() as i64)
        } else {
            None
        };
        s.remaining_s = match (active, progress, printing) {
            (true, Some(p), Some(d)) if p > 0.0 => {
                let left = d * (100.0 - p) / p;
                (left.is_finite() && left <= MAX_SECONDS).then(|| left.round() as i64)
            }
            _ if state == PrinterState::Finished => Some(0),
            _ => None,
        };
        let layer = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
        s.layer = if has_print {
            layer(&ps["info"]["current_layer"])
        } else {
            None
        };
        s.total_layers = if has_print {
            layer(&ps["info"]["total_layer"])
        } else {
            None
        };
        let num = |v: &Value| v.as_f64().filter(|x| x.is_finite());
        s.temperatures = Temperatures {
            nozzle: num(&self.obj("extruder")["temperature"]),
            nozzle_target: num(&self.obj("extruder")["target"]),
            bed: num(&self.obj("heater_bed")["temperature"]),
            bed_target: num(&self.obj("heater_bed")["target"]),
            chamber: None,
        };
    }
}

#[cfg(test)]
mod tests;
