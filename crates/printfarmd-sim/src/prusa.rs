//! One simulated PrusaLink (Buddy firmware) printer as a plain state machine, and the JSON
//! bodies it serves (protocols.md §3.3–3.7). No sockets here: `prusa_server.rs` answers HTTP.
//!
//! Time is evaluated lazily: every read passes `now`, and a print that has run its course
//! turns `FINISHED` at that moment. `FINISHED`, `STOPPED` and `ERROR` stay until dismissed or
//! until the next print. The job id is a 16-bit counter that survives reboots (EEPROM) and
//! wraps from 65535 to 0.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Action, SimError};

/// `printer.state` of `/api/v1/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrusaState {
    Idle,
    Printing,
    Paused,
    Finished,
    Stopped,
    Error,
}

impl PrusaState {
    pub fn as_str(self) -> &'static str {
        match self {
            PrusaState::Idle => "IDLE",
            PrusaState::Printing => "PRINTING",
            PrusaState::Paused => "PAUSED",
            PrusaState::Finished => "FINISHED",
            PrusaState::Stopped => "STOPPED",
            PrusaState::Error => "ERROR",
        }
    }

    fn has_job(self) -> bool {
        matches!(self, PrusaState::Printing | PrusaState::Paused)
    }
}

#[derive(Debug, Clone)]
struct PrusaJob {
    id: u16,
    display_name: String,
    short_name: String,
    size: u64,
    duration: Duration,
    printed: Duration,
    /// Set while printing (not paused).
    resumed_at: Option<Instant>,
}

impl PrusaJob {
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
pub struct PrusaModel {
    state: PrusaState,
    job: Option<PrusaJob>,
    /// The id the next print gets.
    next_job_id: u16,
    jobs_started: u64,
    hostname: String,
    serial: String,
    off_since: Option<Instant>,
}

impl PrusaModel {
    pub fn new(serial: &str, hostname: &str, first_job_id: u64) -> Self {
        Self {
            state: PrusaState::Idle,
            job: None,
            next_job_id: (first_job_id % 65_536) as u16,
            jobs_started: 0,
            hostname: hostname.to_string(),
            serial: serial.to_string(),
            off_since: None,
        }
    }

    /// Runs the clock up to `now`: a print that has run its course is `FINISHED`.
    pub fn advance(&mut self, now: Instant) {
        if self.state == PrusaState::Printing
            && let Some(job) = &self.job
            && job.printed(now) >= job.duration
        {
            self.state = PrusaState::Finished;
            self.job = None;
        }
    }

    pub fn state(&self) -> PrusaState {
        self.state
    }

    pub fn jobs_started(&self) -> u64 {
        self.jobs_started
    }

    /// (job id, display name, progress 0–100) of the print underway.
    pub fn current(&self, now: Instant) -> Option<(u16, &str, f64)> {
        self.job
            .as_ref()
            .map(|j| (j.id, j.display_name.as_str(), progress(j, now)))
    }

    pub fn apply(&mut self, action: &Action, now: Instant) -> Result<(), SimError> {
        self.advance(now);
        let state = self.state.as_str();
        match action {
            Action::Print {
                file, duration_s, ..
            } => {
                if self.state.has_job() {
                    return Err(SimError::Conflict(format!(
                        "the printer is busy ({state}); finish, fail or cancel the current print first"
                    )));
                }
                let id = self.next_job_id;
                self.next_job_id = self.next_job_id.wrapping_add(1);
                self.jobs_started += 1;
                let display_name = file.rsplit('/').next().unwrap_or(file).to_string();
                self.job = Some(PrusaJob {
                    id,
                    short_name: short_name(&display_name),
                    size: 200_000 + (duration_s % 1_000) * 1_500,
                    display_name,
                    duration: Duration::from_secs((*duration_s).max(1)),
                    printed: Duration::ZERO,
                    resumed_at: Some(now),
                });
                self.state = PrusaState::Printing;
            }
            Action::Pause => {
                let Some(job) = self
                    .job
                    .as_mut()
                    .filter(|_| self.state == PrusaState::Printing)
                else {
                    return Err(SimError::Conflict(format!(
                        "cannot pause: the printer is not printing ({state})"
                    )));
                };
                job.printed = job.printed(now);
                job.resumed_at = None;
                self.state = PrusaState::Paused;
            }
            Action::Resume => {
                let Some(job) = self
                    .job
                    .as_mut()
                    .filter(|_| self.state == PrusaState::Paused)
                else {
                    return Err(SimError::Conflict(format!(
                        "cannot resume: the printer is not paused ({state})"
                    )));
                };
                job.resumed_at = Some(now);
                self.state = PrusaState::Printing;
            }
            Action::Finish | Action::Cancel | Action::Fail => {
                if !self.state.has_job() {
                    return Err(SimError::Conflict(format!(
                        "cannot {}: no print is underway ({state})",
                        action.name()
                    )));
                }
                self.job = None;
                self.state = match action {
                    Action::Finish => PrusaState::Finished,
                    Action::Cancel => PrusaState::Stopped,
                    _ => PrusaState::Error,
                };
            }
            Action::Dismiss => {
                if !matches!(
                    self.state,
                    PrusaState::Finished | PrusaState::Stopped | PrusaState::Error
                ) {
                    return Err(SimError::Conflict(format!(
                        "nothing to dismiss: the printer shows no end-of-print screen ({state})"
                    )));
                }
                self.state = PrusaState::Idle;
            }
            Action::Refuse { .. } => {
                return Err(SimError::Unsupported(
                    "refuse is a Bambu action (2025 firmware refusing unsigned commands)".into(),
                ));
            }
            Action::Reboot | Action::Disconnect | Action::Silence { .. } | Action::Garbage => {
                return Err(SimError::Unsupported(
                    "connection actions are handled by the printer's server".into(),
                ));
            }
        }
        Ok(())
    }

    /// Power goes off: the job clock stops.
    pub fn reboot_begin(&mut self, now: Instant) {
        self.advance(now);
        if let Some(job) = &mut self.job {
            job.printed = job.printed(now);
            job.resumed_at = None;
        }
        self.off_since = Some(now);
    }

    /// Power is back: an end-of-print screen is gone; a print underway carries on (power-panic
    /// recovery) with the same job id; the id counter is kept.
    pub fn reboot_end(&mut self, now: Instant) {
        self.off_since = None;
        match self.state {
            PrusaState::Finished | PrusaState::Stopped | PrusaState::Error | PrusaState::Idle => {
                self.state = PrusaState::Idle
            }
            PrusaState::Printing => {
                if let Some(job) = &mut self.job {
                    job.resumed_at = Some(now);
                }
            }
            PrusaState::Paused => {}
        }
    }

    pub fn version_body(&self) -> Value {
        json!({"api": "2.0.0", "server": "2.1.2", "nozzle_diameter": 0.40, "text": "PrusaLink",
               "hostname": self.hostname, "capabilities": {"upload-by-put": true}})
    }

    pub fn info_body(&self) -> Value {
        json!({"nozzle_diameter": 0.40, "mmu": false, "serial": self.serial,
               "hostname": self.hostname, "min_extrusion_temp": 170})
    }

    /// `GET /api/v1/status`: `job` only while a print is underway.
    pub fn status_body(&self, now: Instant) -> Value {
        let printing = self.state.has_job();
        let (bed, nozzle) = if printing {
            ((60.0, 60.0), (215.1, 215.0))
        } else {
            ((24.0, 0.0), (25.3, 0.0))
        };
        let mut printer = json!({
            "state": self.state.as_str(),
            "temp_bed": bed.0, "target_bed": bed.1,
            "temp_nozzle": nozzle.0, "target_nozzle": nozzle.1,
            "axis_z": if printing { 4.2 } else { 12.0 }, "flow": 100, "speed": 100,
            "fan_hotend": if printing { 5200 } else { 0 }, "fan_print": if printing { 3900 } else { 0 },
        });
        if !printing {
            printer["axis_x"] = json!(242.0);
            printer["axis_y"] = json!(-9.0);
        }
        let mut body = json!({
            "storage": {"path": "/usb/", "name": "usb", "read_only": false},
            "printer": printer,
        });
        if let Some(job) = self.job.as_ref().filter(|_| printing) {
            let printed = job.printed(now);
            body["job"] = json!({
                "id": job.id,
                "progress": progress(job, now),
                "time_remaining": job.duration.saturating_sub(printed).as_secs(),
                "time_printing": printed.as_secs(),
            });
        }
        body
    }

    /// `GET /api/v1/job`: `None` means 204 No Content.
    pub fn job_body(&self, now: Instant) -> Option<Value> {
        let job = self.job.as_ref().filter(|_| self.state.has_job())?;
        let printed = job.printed(now);
        let path = "/usb";
        Some(json!({
            "id": job.id, "state": self.state.as_str(), "progress": progress(job, now),
            "time_remaining": job.duration.saturating_sub(printed).as_secs(),
            "time_printing": printed.as_secs(),
            "file": {
                "refs": {"icon": format!("/thumb/s{path}/{}", job.short_name),
                         "thumbnail": format!("/thumb/l{path}/{}", job.short_name),
                         "download": format!("{path}/{}", job.short_name)},
                "name": job.short_name, "display_name": job.display_name, "path": path,
                "size": job.size, "m_timestamp": 1_738_671_500u64,
            }
        }))
    }

    /// Legacy `GET /api/job` (§3.6): `job: null` whenever nothing prints, outcome invisible.
    pub fn legacy_job_body(&self, now: Instant) -> Value {
        let Some(job) = self.job.as_ref().filter(|_| self.state.has_job()) else {
            return json!({"state": "Operational", "job": null, "progress": null});
        };
        let printed = job.printed(now);
        let remaining = job.duration.saturating_sub(printed).as_secs();
        json!({
            "state": if self.state == PrusaState::Paused { "Paused" } else { "Printing" },
            "job": {"estimatedPrintTime": printed.as_secs() + remaining,
                    "file": {"name": job.display_name, "path": format!("/usb/{}", job.short_name), "display": job.display_name}},
            "progress": {"printTimeLeft": remaining, "completion": progress(job, now) / 100.0, "printTime": printed.as_secs()},
        })
    }

    /// Legacy `GET /api/printer`.
    pub fn legacy_printer_body(&self) -> Value {
        let printing = self.state.has_job();
        let paused = self.state == PrusaState::Paused;
        let (bed, nozzle) = if printing {
            (60.0, 215.1)
        } else {
            (24.0, 25.3)
        };
        let mut flags = json!({
            "operational": !printing, "paused": paused, "printing": printing && !paused,
            "cancelling": false, "pausing": false, "error": self.state == PrusaState::Error,
            "sdReady": false, "closedOnError": false, "ready": !printing, "busy": false,
        });
        if self.state != PrusaState::Idle {
            flags["link_state"] = json!(self.state.as_str());
        }
        json!({
            "telemetry": {"temp-bed": bed, "temp-nozzle": nozzle, "print-speed": 100, "z-height": 4.2, "material": "PETG"},
            "temperature": {"tool0": {"actual": nozzle, "target": if printing { 215.0 } else { 0.0 }, "display": if printing { 215.0 } else { 0.0 }, "offset": 0},
                            "bed": {"actual": bed, "target": if printing { 60.0 } else { 0.0 }, "offset": 0}},
            "state": {"text": if printing { "Printing" } else { "Operational" }, "flags": flags},
        })
    }

    /// The id of the print underway, for the v1 job control endpoints.
    pub fn current_job_id(&self) -> Option<u16> {
        self.job
            .as_ref()
            .filter(|_| self.state.has_job())
            .map(|j| j.id)
    }
}

fn progress(job: &PrusaJob, now: Instant) -> f64 {
    let f = (job.printed(now).as_secs_f64() / job.duration.as_secs_f64()).clamp(0.0, 1.0);
    (f * 10_000.0).round() / 100.0
}

/// An 8.3 short name as Buddy shows in `file.name` (`BRACKE~1.BGC`).
fn short_name(display: &str) -> String {
    let stem: String = display
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect::<String>()
        .to_uppercase();
    let ext = if display.ends_with(".bgcode") {
        "BGC"
    } else {
        "GCO"
    };
    format!(
        "{}~1.{ext}",
        if stem.is_empty() {
            "PRINT".into()
        } else {
            stem
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(file: &str, s: u64) -> Action {
        Action::Print {
            file: file.into(),
            duration_s: s,
            layers: None,
        }
    }

    #[test]
    fn a_print_runs_to_finished_and_stays_until_dismissed() {
        let t0 = Instant::now();
        let mut m = PrusaModel::new("SN", "mk4", 297);
        assert!(m.job_body(t0).is_none());
        m.apply(&print("bracket.bgcode", 10), t0).unwrap();
        let s = m.status_body(t0 + Duration::from_secs(5));
        assert_eq!(s["printer"]["state"], "PRINTING");
        assert_eq!(s["job"]["id"], 297);
        assert_eq!(s["job"]["progress"], 50.0);
        assert_eq!(
            m.job_body(t0).unwrap()["file"]["display_name"],
            "bracket.bgcode"
        );
        m.advance(t0 + Duration::from_secs(11));
        assert_eq!(m.state(), PrusaState::Finished);
        let s = m.status_body(t0 + Duration::from_secs(11));
        assert!(s.get("job").is_none());
        assert!(m.job_body(t0 + Duration::from_secs(11)).is_none());
        assert_eq!(m.legacy_job_body(t0)["job"], Value::Null);
        m.apply(&Action::Dismiss, t0 + Duration::from_secs(12))
            .unwrap();
        assert_eq!(m.state(), PrusaState::Idle);
    }

    #[test]
    fn pause_stops_the_clock_and_the_id_counter_wraps() {
        let t0 = Instant::now();
        let mut m = PrusaModel::new("SN", "mk4", 65_535);
        m.apply(&print("a.bgcode", 100), t0).unwrap();
        m.apply(&Action::Pause, t0 + Duration::from_secs(10))
            .unwrap();
        let s = m.status_body(t0 + Duration::from_secs(50));
        assert_eq!(s["job"]["time_printing"], 10);
        assert_eq!(s["printer"]["state"], "PAUSED");
        m.apply(&Action::Cancel, t0 + Duration::from_secs(51))
            .unwrap();
        assert_eq!(m.state(), PrusaState::Stopped);
        m.apply(&print("b.bgcode", 100), t0 + Duration::from_secs(52))
            .unwrap();
        assert_eq!(m.current_job_id(), Some(0));
    }

    #[test]
    fn the_counter_survives_a_reboot_and_an_end_screen_does_not() {
        let t0 = Instant::now();
        let mut m = PrusaModel::new("SN", "mk4", 5);
        m.apply(&print("a.bgcode", 1), t0).unwrap();
        m.reboot_begin(t0 + Duration::from_secs(2));
        m.reboot_end(t0 + Duration::from_secs(3));
        assert_eq!(m.state(), PrusaState::Idle);
        m.apply(&print("b.bgcode", 10), t0 + Duration::from_secs(4))
            .unwrap();
        assert_eq!(m.current_job_id(), Some(6));
        assert!(m.apply(&print("c.bgcode", 10), t0).is_err(), "busy");
        assert!(m.apply(&Action::Resume, t0).is_err(), "not paused");
    }
}
