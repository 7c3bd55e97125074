//! One simulated Bambu Lab printer as a plain state machine: what it reports, and when.
//!
//! No sockets and no clock of its own: the caller passes `now` (and the wall clock, for
//! `gcode_start_time`), so the lifecycle of protocols.md §2.7 is
//! unit-tested here frame by frame. The broker (`broker.rs`) moves the frames.
//!
//! The model keeps the printer's whole `print` object in `fields`, exactly as a full
//! (`pushall`) answer would carry it. An X1-style printer sends all of it on every report;
//! a P1/A1-style printer sends only the keys whose value changed since its last report
//! (`last_sent`), plus the keys a step forces (the cancel sequence repeats
//! `print_error` twice with the same value, as the real firmware does).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{Action, SimError, Style};

/// `print_error` of a cancelled task (`0x0300400C`, protocols.md §2.10).
pub const CANCEL_PRINT_ERROR: u64 = 50_348_044;
/// `print_error` and HMS entry of the simulated hardware failure, as a real printer
/// reports a heatbed thermistor fault: `0300_8009` "Heatbed temperature malfunction"
/// with HMS `0300_0100_0001_0007` "the sensor may have an open circuit" (both in
/// Bambu's tables; protocols.md §2.7 h's own numbers are only illustrative).
pub const FAIL_PRINT_ERROR: u64 = 0x0300_8009;
const FAIL_HMS_ATTR: u64 = 50_331_904;
const FAIL_HMS_CODE: u64 = 65_543;
/// Report cadence while a job is underway ("about once a second", §2.9).
pub const ACTIVE_REPORT_EVERY: Duration = Duration::from_secs(1);
/// Cadence when idle: P1/A1 send `wifi_signal` deltas every few seconds (§7.1 20).
pub const IDLE_REPORT_EVERY: Duration = Duration::from_secs(5);
/// How long the cancel `print_error` stays before it is reset to 0 ("a few seconds", §2.7 g).
const CANCEL_ERROR_CLEARS_AFTER: Duration = Duration::from_secs(3);
/// Gap between the frames of the cancel sequence.
const CANCEL_FRAME_GAP: Duration = Duration::from_millis(150);
/// Preparation stages of a job once it is `RUNNING` (§2.7 c): preheat bed, home, level, clean.
const PREP_STAGES: [i64; 4] = [2, 13, 1, 14];

/// Where the printer is in its lifecycle. The reported `gcode_state` lives in `fields`.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// No job: `IDLE`, or the lingering `FINISH`/`FAILED` of the last one.
    Idle,
    /// A new job was accepted but the printer still reports the old `FINISH` (§7.1 9).
    Handover { until: Instant },
    /// `PREPARE`: the file is fetched (`gcode_file_prepare_percent` rises).
    Prepare { since: Instant, until: Instant },
    /// `RUNNING` with preparation stages (`stg_cur` ≠ 0), progress still 0.
    Stages { since: Instant, until: Instant },
    /// `RUNNING`, printing (`stg_cur` 0).
    Printing { resumed_at: Instant },
    /// `PAUSE` (`stg_cur` 16, paused by the user).
    Paused,
}

/// A job the printer is working on (or has just ended).
#[derive(Debug, Clone)]
struct Job {
    duration: Duration,
    layers: u32,
    /// Printing time accumulated before the current `Printing` stretch.
    printed: Duration,
}

/// One-off steps the model runs at a set time (the multi-frame end sequences).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// The first and second frame of a cancel: `print_error` = cancel code.
    CancelError,
    /// The cancel lands: `FAILED`, counters zeroed.
    CancelFailed,
    /// `print_error` back to 0 a few seconds after a cancel.
    ClearError,
    /// P1S drops `total_layer_num` to 0 after a finish (§2.7 f).
    DropTotalLayers,
}

/// The simulated printer. See the module documentation.
#[derive(Debug)]
pub struct BambuModel {
    style: Style,
    serial: String,
    phase: Phase,
    job: Option<Job>,
    fields: Map<String, Value>,
    last_sent: Map<String, Value>,
    forced: Vec<&'static str>,
    scheduled: VecDeque<(Instant, Step)>,
    /// A state change or step happened that should be reported now.
    dirty: bool,
    next_report: Instant,
    sequence: u64,
    next_task_id: u64,
    prepare: Duration,
    stale_finish: Duration,
    jobs_started: u64,
    rebooted_at: Option<Instant>,
    /// Name and `gcode_file` of an accepted job, reported once `PREPARE` starts.
    pending_identity: Option<(String, String)>,
}

impl BambuModel {
    pub fn new(
        style: Style,
        serial: &str,
        prepare: Duration,
        stale_finish: Duration,
        now: Instant,
        task_id_base: u64,
    ) -> Self {
        let mut m = Self {
            style,
            serial: serial.to_string(),
            phase: Phase::Idle,
            job: None,
            fields: Map::new(),
            last_sent: Map::new(),
            forced: Vec::new(),
            scheduled: VecDeque::new(),
            dirty: false,
            next_report: now + IDLE_REPORT_EVERY,
            sequence: 0,
            next_task_id: task_id_base.max(1),
            prepare,
            stale_finish,
            jobs_started: 0,
            rebooted_at: None,
            pending_identity: None,
        };
        m.reset_fields();
        m
    }

    pub fn style(&self) -> Style {
        self.style
    }

    /// The `print` object of a freshly booted, idle printer (§2.7 a).
    fn reset_fields(&mut self) {
        let idle_stage = self.idle_stage();
        let mut f = json!({
            "gcode_state": "IDLE", "print_type": "idle",
            "subtask_name": "", "gcode_file": "", "gcode_file_prepare_percent": "0",
            "task_id": "0", "subtask_id": "0", "project_id": "0", "profile_id": "0",
            "mc_percent": 0, "mc_remaining_time": 0, "layer_num": 0, "total_layer_num": 0,
            "stg": [], "stg_cur": idle_stage, "mc_print_stage": "1", "mc_print_sub_stage": 0,
            "print_error": 0, "mc_print_error_code": "0", "fail_reason": "0", "hms": [],
            "nozzle_temper": 25.0, "nozzle_target_temper": 0.0,
            "bed_temper": 24.5, "bed_target_temper": 0.0,
            "spd_lvl": 2, "wifi_signal": "-45dBm", "s_obj": [],
            "lights_report": [{"node": "chamber_light", "mode": "on"}],
        });
        let obj = f.as_object_mut().expect("a JSON object literal");
        if self.style == Style::X1 {
            obj.insert("gcode_start_time".into(), json!("0"));
            obj.insert("chamber_temper".into(), json!(26.0));
            obj.insert(
                "ams".into(),
                json!({"ams": [{"id": "0", "humidity": "4", "temp": "24.5",
                                "tray": [{"id": "0", "tray_type": "PLA", "tray_color": "FFFFFFFF"}]}],
                       "ams_exist_bits": "1", "tray_now": "255", "version": 4}),
            );
        }
        self.fields = std::mem::take(obj);
    }

    fn idle_stage(&self) -> i64 {
        match self.style {
            Style::X1 => -1,
            Style::P1 => 255,
        }
    }

    fn set(&mut self, key: &str, value: Value) {
        self.fields.insert(key.to_string(), value);
    }

    fn str_field(&self, key: &str) -> &str {
        self.fields.get(key).and_then(Value::as_str).unwrap_or("")
    }

    fn int_field(&self, key: &str) -> i64 {
        self.fields.get(key).and_then(Value::as_i64).unwrap_or(0)
    }

    pub fn gcode_state(&self) -> &str {
        self.str_field("gcode_state")
    }

    /// True while a job is accepted and not yet ended (including the stale-FINISH hand-over).
    pub fn is_active(&self) -> bool {
        self.phase != Phase::Idle
    }

    pub fn jobs_started(&self) -> u64 {
        self.jobs_started
    }

    /// The job name as reported (`subtask_name`; stale after the job ended, like the real one).
    pub fn subtask_name(&self) -> &str {
        self.str_field("subtask_name")
    }

    pub fn task_id(&self) -> &str {
        self.str_field("task_id")
    }

    pub fn progress(&self) -> i64 {
        self.int_field("mc_percent")
    }

    pub fn layers(&self) -> (i64, i64) {
        (
            self.int_field("layer_num"),
            self.int_field("total_layer_num"),
        )
    }

    /// Applies a print-lifecycle action. Connection actions (disconnect, silence, garbage,
    /// reboot) belong to the printer cell, not to this model.
    pub fn apply(&mut self, action: &Action, now: Instant, wall_s: u64) -> Result<(), SimError> {
        let state = self.gcode_state().to_string();
        let busy = || {
            SimError::Conflict(format!(
                "the printer is busy (gcode_state {state}); finish, fail or cancel the current print first"
            ))
        };
        let not_printing = |what: &str| {
            SimError::Conflict(format!(
                "cannot {what}: no print is underway (gcode_state {state})"
            ))
        };
        match action {
            Action::Print {
                file,
                duration_s,
                layers,
            } => {
                if self.is_active() {
                    return Err(busy());
                }
                self.accept_job(file, *duration_s, *layers, now, wall_s);
            }
            Action::Pause => match self.phase {
                Phase::Printing { resumed_at } => {
                    if let Some(job) = &mut self.job {
                        job.printed += now.saturating_duration_since(resumed_at);
                    }
                    self.phase = Phase::Paused;
                    self.set("gcode_state", json!("PAUSE"));
                    self.set("stg_cur", json!(16));
                    self.dirty = true;
                }
                _ => {
                    return Err(SimError::Conflict(format!(
                        "cannot pause: the printer is not printing (gcode_state {state})"
                    )));
                }
            },
            Action::Resume => match self.phase {
                Phase::Paused => {
                    self.phase = Phase::Printing { resumed_at: now };
                    self.set("gcode_state", json!("RUNNING"));
                    self.set("stg_cur", json!(0));
                    self.dirty = true;
                }
                _ => {
                    return Err(SimError::Conflict(format!(
                        "cannot resume: the printer is not paused (gcode_state {state})"
                    )));
                }
            },
            Action::Finish => {
                if !self.is_active() {
                    return Err(not_printing("finish"));
                }
                self.finish(now);
            }
            Action::Fail => {
                if !self.is_active() {
                    return Err(not_printing("fail"));
                }
                self.fail(now);
            }
            Action::Cancel => {
                if !self.is_active() {
                    return Err(not_printing("cancel"));
                }
                self.cancel(now);
            }
            Action::Dismiss => {
                return Err(SimError::Unsupported(
                    "dismiss is a PrusaLink action; a Bambu printer keeps FINISH/FAILED until its next print".into(),
                ));
            }
            Action::Reboot
            | Action::Disconnect
            | Action::Silence { .. }
            | Action::Garbage
            | Action::Refuse { .. } => {
                return Err(SimError::Unsupported(
                    "connection actions are handled by the printer cell".into(),
                ));
            }
        }
        Ok(())
    }

    /// A power cycle began: the job clock stops until `reboot_end`.
    pub fn reboot_begin(&mut self, now: Instant) {
        if let (Phase::Printing { resumed_at }, Some(job)) = (&self.phase, &mut self.job) {
            job.printed += now.saturating_duration_since(*resumed_at);
        }
        self.rebooted_at = Some(now);
    }

    /// The printer is back. An idle printer forgets its last job (the stale name survives only
    /// until a power cycle, §7.1 17); a job underway carries on (power-loss recovery) with
    /// `gcode_start_time` "0" (§7.1 1). The message counter restarts.
    pub fn reboot_end(&mut self, now: Instant) {
        let Some(began) = self.rebooted_at.take() else {
            return;
        };
        let off = now.saturating_duration_since(began);
        self.sequence = 0;
        match &mut self.phase {
            Phase::Idle => {
                self.job = None;
                self.scheduled.clear();
                self.reset_fields();
            }
            Phase::Handover { until } => *until += off,
            Phase::Prepare { since, until } | Phase::Stages { since, until } => {
                *since += off;
                *until += off;
            }
            Phase::Printing { resumed_at } => *resumed_at = now,
            Phase::Paused => {}
        }
        for (at, _) in &mut self.scheduled {
            *at += off;
        }
        if self.style == Style::X1 {
            self.set("gcode_start_time", json!("0"));
        }
        self.last_sent.clear();
        self.dirty = true;
    }
}

/// `{"print": {...}}` and nothing else, exactly what a printer sends: third-party clients
/// (`bambulabs_api`) die on unknown top-level keys. The load harness learns send times
/// from the simulator's report log instead (`GET /printers/{id}/sent`).
pub fn report_payload(print: Map<String, Value>) -> Bytes {
    let mut top = Map::new();
    top.insert("print".into(), Value::Object(print));
    Bytes::from(Value::Object(top).to_string())
}

/// The display name of a file as `subtask_name` shows it: folders and the
/// `.gcode.3mf`/`.3mf`/`.gcode` extension stripped (§2.11).
pub fn display_name(file: &str) -> &str {
    let base = base_name(file);
    for ext in [".gcode.3mf", ".3mf", ".gcode"] {
        if let Some(stem) = base.strip_suffix(ext) {
            return stem;
        }
    }
    base
}

fn base_name(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

fn minutes_ceil(d: Duration) -> u64 {
    d.as_secs().div_ceil(60)
}

fn fraction(now: Instant, since: Instant, until: Instant) -> f64 {
    let total = until.saturating_duration_since(since).as_secs_f64();
    if total <= 0.0 {
        return 1.0;
    }
    (now.saturating_duration_since(since).as_secs_f64() / total).clamp(0.0, 1.0)
}

fn approach(from: f64, to: f64, f: f64) -> f64 {
    ((from + (to - from) * f.clamp(0.0, 1.0)) * 10.0).round() / 10.0
}

mod reports;
#[cfg(test)]
mod tests;
mod transitions;
