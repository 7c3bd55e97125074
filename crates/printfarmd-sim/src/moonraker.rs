//! One simulated Klipper printer behind Moonraker, as a plain state machine: the printer
//! objects (`print_stats`, `virtual_sdcard`, `display_status`, `webhooks`, `extruder`,
//! `heater_bed`) and the `history` component, shaped as Moonraker's documentation (v0.9,
//! API 1.5) describes them (protocols.md §5). No sockets here: `moonraker_server.rs`
//! answers the JSON-RPC WebSocket.
//!
//! Reproduced because the daemon must cope with it: `print_stats` keeps the last job's
//! file and state after it ended (quirk 7.4.3); `dismiss` is `SDCARD_RESET_FILE` (back to
//! `standby`); history job ids are zero-padded hex; a failure is `print_stats.state =
//! "error"` with a message and history status `error`.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Action, SimError};

/// History jobs kept (Moonraker keeps thousands; the daemon reads the newest page).
const HISTORY_MAX: usize = 100;

#[derive(Debug, Clone)]
struct Print {
    path: String,
    job_id: String,
    duration: Duration,
    printed: Duration,
    resumed_at: Option<Instant>,
    started: Instant,
}

impl Print {
    fn printed(&self, now: Instant) -> Duration {
        self.printed
            + self
                .resumed_at
                .map(|t| now.saturating_duration_since(t))
                .unwrap_or_default()
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct MoonModel {
    /// `print_stats.state`.
    state: &'static str,
    print: Option<Print>,
    message: String,
    history: VecDeque<Value>,
    next_job: u64,
    notifications: Vec<Value>,
    jobs_started: u64,
}

fn unix_f() -> f64 {
    super::unix_ms() as f64 / 1000.0
}

impl MoonModel {
    pub fn new(first_job: u64) -> Self {
        Self {
            state: "standby",
            print: None,
            message: String::new(),
            history: VecDeque::new(),
            next_job: first_job,
            notifications: Vec::new(),
            jobs_started: 0,
        }
    }

    pub fn state(&self) -> &'static str {
        self.state
    }

    pub fn jobs_started(&self) -> u64 {
        self.jobs_started
    }

    pub fn take_notifications(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.notifications)
    }

    /// (path, job id, progress 0–100) of the print under way.
    pub fn current(&self, now: Instant) -> Option<(&str, &str, f64)> {
        self.print
            .as_ref()
            .filter(|_| matches!(self.state, "printing" | "paused"))
            .map(|p| (p.path.as_str(), p.job_id.as_str(), progress(p, now) * 100.0))
    }

    pub fn advance(&mut self, now: Instant) {
        if self.state == "printing"
            && let Some(p) = &self.print
            && p.printed(now) >= p.duration
        {
            self.end("complete", "completed", now);
        }
    }

    fn history_job(&self, p: &Print, status: &str, now: Instant) -> Value {
        let total = now.saturating_duration_since(p.started).as_secs_f64();
        let start = unix_f() - total;
        let ended = status != "in_progress";
        json!({"job_id": p.job_id, "user": "_TRUSTED_USER_", "filename": p.path, "exists": true,
               "status": status, "start_time": start,
               "end_time": if ended { json!(unix_f()) } else { Value::Null },
               "print_duration": p.printed(now).as_secs_f64(), "total_duration": total,
               "filament_used": 0.0,
               "metadata": {"size": 1_468_987, "estimated_time": p.duration.as_secs(), "slicer": "PrusaSlicer"},
               "auxiliary_data": []})
    }

    fn record(&mut self, action: &str, job: Value) {
        let id = job["job_id"].clone();
        if let Some(slot) = self.history.iter_mut().find(|j| j["job_id"] == id) {
            *slot = job.clone();
        } else {
            self.history.push_front(job.clone());
            self.history.truncate(HISTORY_MAX);
        }
        self.notifications
            .push(json!({"jsonrpc": "2.0", "method": "notify_history_changed",
                                       "params": [{"action": action, "job": job}]}));
    }

    fn end(&mut self, state: &'static str, status: &str, now: Instant) {
        let Some(p) = self.print.as_mut() else { return };
        p.printed = p.printed(now).min(p.duration);
        p.resumed_at = None;
        self.state = state;
        let p = p.clone();
        let job = self.history_job(&p, status, now);
        self.record("finished", job);
    }

    pub fn apply(&mut self, action: &Action, now: Instant) -> Result<(), SimError> {
        self.advance(now);
        let state = self.state;
        let conflict = |what: &str| {
            Err(SimError::Conflict(format!(
                "cannot {what}: print_stats.state is {state}"
            )))
        };
        match action {
            Action::Print {
                file, duration_s, ..
            } => {
                if matches!(state, "printing" | "paused") {
                    return conflict("start a print");
                }
                let job_id = format!("{:06X}", self.next_job);
                self.next_job += 1;
                let p = Print {
                    path: file.trim().trim_start_matches('/').to_string(),
                    job_id,
                    duration: Duration::from_secs(*duration_s),
                    printed: Duration::ZERO,
                    resumed_at: Some(now),
                    started: now,
                };
                self.state = "printing";
                self.message.clear();
                self.jobs_started += 1;
                let job = self.history_job(&p, "in_progress", now);
                self.print = Some(p);
                self.record("added", job);
            }
            Action::Pause => {
                if state != "printing" {
                    return conflict("pause");
                }
                if let Some(p) = self.print.as_mut() {
                    p.printed = p.printed(now);
                    p.resumed_at = None;
                }
                self.state = "paused";
            }
            Action::Resume => {
                if state != "paused" {
                    return conflict("resume");
                }
                if let Some(p) = self.print.as_mut() {
                    p.resumed_at = Some(now);
                }
                self.state = "printing";
            }
            Action::Finish | Action::Cancel | Action::Fail => {
                if !matches!(state, "printing" | "paused") {
                    return conflict(action.name());
                }
                match action {
                    Action::Finish => {
                        if let Some(p) = self.print.as_mut() {
                            p.printed = p.duration;
                            p.resumed_at = None;
                        }
                        self.end("complete", "completed", now)
                    }
                    Action::Cancel => self.end("cancelled", "cancelled", now),
                    _ => {
                        self.message = "Move exceeds maximum extrusion (simulated failure)".into();
                        self.end("error", "error", now)
                    }
                }
            }
            Action::Dismiss => {
                if !matches!(state, "complete" | "cancelled" | "error") {
                    return conflict("dismiss (SDCARD_RESET_FILE)");
                }
                self.state = "standby";
                self.print = None;
                self.message.clear();
            }
            other => {
                return Err(SimError::Unsupported(format!(
                    "{} is handled by the server",
                    other.name()
                )));
            }
        }
        Ok(())
    }

    /// Every subscribable object with all its fields.
    pub fn objects(&self, now: Instant) -> Value {
        let (file, total, printed, prog) = match &self.print {
            Some(p) => (
                p.path.clone(),
                now.saturating_duration_since(p.started).as_secs_f64(),
                p.printed(now).as_secs_f64(),
                progress(p, now),
            ),
            None => (String::new(), 0.0, 0.0, 0.0),
        };
        let hot = matches!(self.state, "printing" | "paused");
        json!({
            "print_stats": {"filename": file, "total_duration": total, "print_duration": printed,
                            "filament_used": printed * 0.5, "state": self.state, "message": self.message,
                            "info": {"total_layer": null, "current_layer": null}},
            "virtual_sdcard": {"file_path": if file.is_empty() { Value::Null } else { json!(format!("/home/pi/printer_data/gcodes/{file}")) },
                               "progress": prog, "is_active": self.state == "printing",
                               "file_position": (prog * 1_468_987.0) as u64, "file_size": 1_468_987},
            "display_status": {"progress": prog, "message": null},
            "webhooks": {"state": "ready", "state_message": "Printer is ready"},
            "extruder": {"temperature": if hot { 214.7 } else { 23.9 }, "target": if hot { 215.0 } else { 0.0 }},
            "heater_bed": {"temperature": if hot { 59.9 } else { 23.1 }, "target": if hot { 60.0 } else { 0.0 }},
        })
    }

    /// `server.history.list` (newest first, `start`/`limit` paging).
    pub fn history_list(&self, start: usize, limit: usize) -> Value {
        let jobs: Vec<&Value> = self.history.iter().skip(start).take(limit).collect();
        json!({"count": self.history.len(), "jobs": jobs})
    }
}

fn progress(p: &Print, now: Instant) -> f64 {
    if p.duration.is_zero() {
        return 1.0;
    }
    (p.printed(now).as_secs_f64() / p.duration.as_secs_f64()).clamp(0.0, 1.0)
}
