//! One simulated OctoPrint server (with its printer) as a plain state machine, and the
//! JSON it serves: `/api/job`, `/api/printer`, and the push socket's `current` messages
//! and events (protocols.md §4, as OctoPrint 1.11 documents and behaves). No sockets
//! here: `octoprint_server.rs` answers HTTP and the WebSocket.
//!
//! What it reproduces because the daemon must cope with it: `/api/job` keeps the last
//! file and its progress after a print (100 % after done, all-null after a cancel); an
//! error leaves `Offline after error` until the printer is reconnected (`dismiss`);
//! `/api/printer` answers 409 while no printer is connected; a cancel sends
//! `PrintCancelling`, `PrintCancelled` and `PrintFailed` with `reason: "cancelled"`.
//! Time is evaluated lazily: a print that has run its course is done at the next look.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Action, SimError};

/// OctoPrint's version as the simulator reports it.
pub const OCTOPRINT_VERSION: &str = "1.11.2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OctoState {
    Operational,
    Printing,
    Paused,
    /// After a failure: no printer connection until `dismiss`.
    OfflineAfterError,
}

impl OctoState {
    pub fn as_str(self) -> &'static str {
        match self {
            OctoState::Operational => "Operational",
            OctoState::Printing => "Printing",
            OctoState::Paused => "Paused",
            OctoState::OfflineAfterError => "Offline after error",
        }
    }
}

/// How the last print ended, for what `/api/job` shows afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Done,
    Cancelled,
    Failed,
}

#[derive(Debug, Clone)]
struct OctoJob {
    path: String,
    /// Upload time (unix s).
    date: u64,
    size: u64,
    duration: Duration,
    printed: Duration,
    resumed_at: Option<Instant>,
    ended: Option<Ended>,
}

impl OctoJob {
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
pub struct OctoModel {
    state: OctoState,
    /// The selected file and its last print (kept after the print ended).
    job: Option<OctoJob>,
    /// Events not yet sent to the push-socket clients.
    events: Vec<Value>,
    jobs_started: u64,
}

fn unix_s() -> u64 {
    super::unix_ms() / 1000
}

impl Default for OctoModel {
    fn default() -> Self {
        Self::new()
    }
}

impl OctoModel {
    pub fn new() -> Self {
        Self {
            state: OctoState::Operational,
            job: None,
            events: Vec::new(),
            jobs_started: 0,
        }
    }

    pub fn state(&self) -> OctoState {
        self.state
    }

    pub fn jobs_started(&self) -> u64 {
        self.jobs_started
    }

    /// Takes the events produced since the last call.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    fn event(&mut self, kind: &str, payload: Value) {
        self.events
            .push(json!({"event": {"type": kind, "payload": payload}}));
    }

    /// Runs the clock up to `now`: a print that has run its course is done.
    pub fn advance(&mut self, now: Instant) {
        if self.state == OctoState::Printing
            && let Some(job) = &self.job
            && job.printed(now) >= job.duration
        {
            self.end(Ended::Done, now);
        }
    }

    fn end(&mut self, how: Ended, now: Instant) {
        let Some(job) = self.job.as_mut() else { return };
        job.printed = job.printed(now).min(job.duration);
        job.resumed_at = None;
        job.ended = Some(how);
        let time = job.printed.as_secs_f64();
        let file =
            json!({"name": base(&job.path), "path": job.path, "origin": "local", "size": job.size});
        match how {
            Ended::Done => {
                self.state = OctoState::Operational;
                self.event("PrintDone", with(file, json!({"time": time})));
            }
            Ended::Cancelled => {
                self.state = OctoState::Operational;
                self.event("PrintCancelling", file.clone());
                self.event("PrintCancelled", with(file.clone(), json!({"time": time})));
                self.event(
                    "PrintFailed",
                    with(file, json!({"time": time, "reason": "cancelled"})),
                );
            }
            Ended::Failed => {
                self.state = OctoState::OfflineAfterError;
                self.event(
                    "PrintFailed",
                    with(file, json!({"time": time, "reason": "error"})),
                );
                self.event(
                    "Error",
                    json!({"error": "Printer halted (simulated failure)"}),
                );
            }
        }
    }

    /// (path, progress 0–100) of the print underway.
    pub fn current(&self, now: Instant) -> Option<(&str, f64)> {
        self.job
            .as_ref()
            .filter(|_| matches!(self.state, OctoState::Printing | OctoState::Paused))
            .map(|j| (j.path.as_str(), completion(j, now)))
    }

    pub fn apply(&mut self, action: &Action, now: Instant) -> Result<(), SimError> {
        self.advance(now);
        let state = self.state.as_str();
        let conflict = |what: &str| {
            Err(SimError::Conflict(format!(
                "cannot {what}: the printer is {state}"
            )))
        };
        match action {
            Action::Print {
                file, duration_s, ..
            } => {
                if self.state != OctoState::Operational {
                    return conflict("start a print");
                }
                let path = file.trim().trim_start_matches('/').to_string();
                let size = 50_000 + path.len() as u64 * 1000;
                self.job = Some(OctoJob {
                    path: path.clone(),
                    date: unix_s().saturating_sub(3600),
                    size,
                    duration: Duration::from_secs(*duration_s),
                    printed: Duration::ZERO,
                    resumed_at: Some(now),
                    ended: None,
                });
                self.state = OctoState::Printing;
                self.jobs_started += 1;
                self.event(
                    "PrintStarted",
                    json!({"name": base(&path), "path": path, "origin": "local", "size": size, "owner": "sim", "user": "sim"}),
                );
            }
            Action::Pause => {
                if self.state != OctoState::Printing {
                    return conflict("pause");
                }
                if let Some(j) = self.job.as_mut() {
                    j.printed = j.printed(now);
                    j.resumed_at = None;
                }
                self.state = OctoState::Paused;
                self.event("PrintPaused", json!({}));
            }
            Action::Resume => {
                if self.state != OctoState::Paused {
                    return conflict("resume");
                }
                if let Some(j) = self.job.as_mut() {
                    j.resumed_at = Some(now);
                }
                self.state = OctoState::Printing;
                self.event("PrintResumed", json!({}));
            }
            Action::Finish | Action::Cancel | Action::Fail => {
                if !matches!(self.state, OctoState::Printing | OctoState::Paused) {
                    return conflict(action.name());
                }
                if *action == Action::Finish
                    && let Some(j) = self.job.as_mut()
                {
                    j.printed = j.duration;
                    j.resumed_at = None;
                }
                let how = match action {
                    Action::Finish => Ended::Done,
                    Action::Cancel => Ended::Cancelled,
                    _ => Ended::Failed,
                };
                self.end(how, now);
            }
            Action::Dismiss => {
                if self.state != OctoState::OfflineAfterError {
                    return conflict("dismiss (reconnect the printer)");
                }
                self.state = OctoState::Operational;
            }
            other => {
                return Err(SimError::Unsupported(format!(
                    "{} is handled by the server, not the model",
                    other.name()
                )));
            }
        }
        Ok(())
    }

    /// The `job` and `progress` members as `/api/job` and `current` give them.
    fn job_and_progress(&self, now: Instant) -> (Value, Value) {
        let nulls = json!({"completion": null, "filepos": null, "printTime": null, "printTimeLeft": null, "printTimeLeftOrigin": null});
        let Some(j) = &self.job else {
            let file = json!({"name": null, "display": null, "path": null, "origin": null, "size": null, "date": null});
            return (
                json!({"file": file, "estimatedPrintTime": null, "lastPrintTime": null, "averagePrintTime": null, "filament": null, "user": null}),
                nulls,
            );
        };
        let file = json!({"name": base(&j.path), "display": base(&j.path), "path": j.path,
                          "origin": "local", "size": j.size, "date": j.date});
        let job = json!({"file": file, "estimatedPrintTime": j.duration.as_secs_f64(),
                         "lastPrintTime": null, "averagePrintTime": null,
                         "filament": {"tool0": {"length": 810.2, "volume": 5.36}}, "user": "sim"});
        let printed = j.printed(now);
        let progress = match j.ended {
            Some(Ended::Cancelled) => nulls,
            Some(Ended::Done) => {
                json!({"completion": 100.0, "filepos": j.size, "printTime": j.duration.as_secs(),
                                        "printTimeLeft": 0, "printTimeLeftOrigin": null})
            }
            _ => {
                let c = completion(j, now);
                json!({"completion": c, "filepos": (j.size as f64 * c / 100.0) as u64,
                       "printTime": printed.as_secs(),
                       "printTimeLeft": j.duration.saturating_sub(printed).as_secs(),
                       "printTimeLeftOrigin": "estimate"})
            }
        };
        (job, progress)
    }

    fn error_text(&self) -> &'static str {
        if self.state == OctoState::OfflineAfterError {
            "Printer halted (simulated failure)"
        } else {
            ""
        }
    }

    /// `GET /api/job`.
    pub fn job_body(&self, now: Instant) -> Value {
        let (job, progress) = self.job_and_progress(now);
        let mut v = json!({"job": job, "progress": progress, "state": self.state.as_str()});
        if self.state == OctoState::OfflineAfterError {
            v["error"] = json!(self.error_text());
        }
        v
    }

    fn flags(&self) -> Value {
        let s = self.state;
        let connected = s != OctoState::OfflineAfterError;
        json!({"operational": connected, "printing": s == OctoState::Printing,
               "paused": s == OctoState::Paused, "pausing": false, "cancelling": false,
               "sdReady": false, "error": !connected, "ready": s == OctoState::Operational,
               "closedOrError": !connected, "finishing": false, "resuming": false})
    }

    fn temps(&self) -> Value {
        let hot = matches!(self.state, OctoState::Printing | OctoState::Paused);
        let (tool, bed) = if hot { (215.0, 60.0) } else { (0.0, 0.0) };
        json!({"tool0": {"actual": if hot { 214.6 } else { 24.1 }, "target": tool, "offset": 0},
               "bed": {"actual": if hot { 59.8 } else { 23.5 }, "target": bed, "offset": 0}})
    }

    /// `GET /api/printer`; `None` is OctoPrint's 409 (no printer connection).
    pub fn printer_body(&self) -> Option<Value> {
        (self.state != OctoState::OfflineAfterError).then(|| {
            json!({"temperature": self.temps(),
                   "sd": {"ready": false},
                   "state": {"text": self.state.as_str(), "flags": self.flags(), "error": ""}})
        })
    }

    /// A push `current` message (`history` for the first one after `auth`).
    pub fn current_message(&self, now: Instant, key: &str) -> Value {
        let (job, progress) = self.job_and_progress(now);
        let mut temps = self.temps();
        temps["time"] = json!(unix_s());
        json!({key: {
            "state": {"text": self.state.as_str(), "flags": self.flags(), "error": self.error_text()},
            "job": job, "progress": progress, "currentZ": null, "offsets": {},
            "temps": [temps], "logs": [], "messages": [], "busyFiles": [],
            "serverTime": super::unix_ms() as f64 / 1000.0}})
    }
}

fn completion(j: &OctoJob, now: Instant) -> f64 {
    if j.duration.is_zero() {
        return 100.0;
    }
    (j.printed(now).as_secs_f64() / j.duration.as_secs_f64() * 100.0).clamp(0.0, 100.0)
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn with(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}
