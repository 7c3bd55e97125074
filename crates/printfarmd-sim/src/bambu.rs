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
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{Action, SimError, Style};

/// `print_error` of a cancelled task (`0x0300400C`, protocols.md §2.10).
pub const CANCEL_PRINT_ERROR: u64 = 50_348_044;
/// `print_error` and HMS entry of the simulated hardware failure (protocols.md §2.7 h).
pub const FAIL_PRINT_ERROR: u64 = 117_473_280;
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

    fn accept_job(
        &mut self,
        file: &str,
        duration_s: u64,
        layers: Option<u32>,
        now: Instant,
        _wall_s: u64,
    ) {
        let duration = Duration::from_secs(duration_s.max(1));
        let layers = layers
            .unwrap_or_else(|| (duration_s / 5).clamp(1, 500) as u32)
            .max(1);
        self.job = Some(Job {
            duration,
            layers,
            printed: Duration::ZERO,
        });
        self.jobs_started += 1;
        self.scheduled.clear();
        // Keep the next job's identity ready; it is reported when PREPARE starts.
        let lingering = matches!(self.gcode_state(), "FINISH" | "FAILED");
        let name = display_name(file).to_string();
        let gcode_file = match self.style {
            Style::X1 => "/data/Metadata/plate_1.gcode".to_string(),
            Style::P1 => {
                if file.ends_with(".3mf") || file.ends_with(".gcode") {
                    base_name(file).to_string()
                } else {
                    format!("{name}.gcode.3mf")
                }
            }
        };
        self.pending_identity = Some((name, gcode_file));
        if lingering && !self.stale_finish.is_zero() {
            self.phase = Phase::Handover {
                until: now + self.stale_finish,
            };
            // The printer reports at once, still with the old state (§7.1 9).
            self.dirty = true;
        } else {
            self.start_prepare(now);
        }
    }

    fn start_prepare(&mut self, now: Instant) {
        let half = self.prepare / 2;
        self.phase = Phase::Prepare {
            since: now,
            until: now + half,
        };
        let (name, gcode_file) = self.pending_identity.take().unwrap_or_default();
        let (task_id, subtask_id) = match self.style {
            Style::X1 => {
                let id = self.next_task_id;
                self.next_task_id += 2;
                (id.to_string(), (id + 1).to_string())
            }
            Style::P1 => ("0".to_string(), "0".to_string()),
        };
        self.set("gcode_state", json!("PREPARE"));
        self.set("print_type", json!("local"));
        self.set("subtask_name", json!(name));
        self.set("gcode_file", json!(gcode_file));
        self.set("task_id", json!(task_id));
        self.set("subtask_id", json!(subtask_id));
        self.set("gcode_file_prepare_percent", json!("0"));
        self.set("mc_percent", json!(0));
        self.set("mc_remaining_time", json!(0));
        self.set("layer_num", json!(0));
        self.set("print_error", json!(0));
        self.set("hms", json!([]));
        self.set("stg", json!([]));
        self.set("stg_cur", json!(self.idle_stage()));
        self.set("mc_print_stage", json!("1"));
        self.dirty = true;
    }

    fn start_stages(&mut self, now: Instant, wall_s: u64) {
        let half = self.prepare - self.prepare / 2;
        self.phase = Phase::Stages {
            since: now,
            until: now + half,
        };
        let (layers, remaining_min) = match &self.job {
            Some(j) => (j.layers, minutes_ceil(j.duration)),
            None => (1, 0),
        };
        self.set("gcode_state", json!("RUNNING"));
        self.set("gcode_file_prepare_percent", json!("100"));
        self.set("mc_print_stage", json!("2"));
        self.set("stg", json!(PREP_STAGES));
        self.set("stg_cur", json!(PREP_STAGES[0]));
        self.set("total_layer_num", json!(layers));
        self.set("mc_remaining_time", json!(remaining_min));
        self.set("bed_target_temper", json!(60.0));
        self.set("nozzle_target_temper", json!(220.0));
        if self.style == Style::X1 {
            self.set("gcode_start_time", json!(wall_s.to_string()));
        }
        self.dirty = true;
    }

    fn start_printing(&mut self, now: Instant) {
        self.phase = Phase::Printing { resumed_at: now };
        self.set("stg_cur", json!(0));
        self.set("layer_num", json!(1));
        self.dirty = true;
    }

    fn finish(&mut self, now: Instant) {
        self.phase = Phase::Idle;
        self.scheduled.clear();
        let total = self.job.as_ref().map(|j| j.layers).unwrap_or(0);
        self.set("gcode_state", json!("FINISH"));
        self.set("mc_percent", json!(100));
        self.set("mc_remaining_time", json!(0));
        self.set("layer_num", json!(total));
        self.set("stg_cur", json!(self.idle_stage()));
        self.set("mc_print_stage", json!("1"));
        self.set("print_error", json!(0));
        self.set("gcode_file_prepare_percent", json!("100"));
        self.set("bed_target_temper", json!(0.0));
        self.set("nozzle_target_temper", json!(0.0));
        if self.style == Style::P1 {
            self.set("print_type", json!("idle"));
            self.scheduled
                .push_back((now + ACTIVE_REPORT_EVERY, Step::DropTotalLayers));
        }
        self.dirty = true;
    }

    fn fail(&mut self, _now: Instant) {
        self.phase = Phase::Idle;
        self.scheduled.clear();
        self.set("gcode_state", json!("FAILED"));
        self.set("print_error", json!(FAIL_PRINT_ERROR));
        self.set(
            "hms",
            json!([{"attr": FAIL_HMS_ATTR, "code": FAIL_HMS_CODE}]),
        );
        self.set("stg_cur", json!(self.idle_stage()));
        self.set("mc_print_stage", json!("1"));
        self.set("mc_remaining_time", json!(0));
        self.set("bed_target_temper", json!(0.0));
        self.set("nozzle_target_temper", json!(0.0));
        self.dirty = true;
    }

    /// The cancel sequence of §2.7 g: the cancel `print_error` in two frames, then
    /// `FAILED` with progress and layers zeroed, then `print_error` back to 0.
    fn cancel(&mut self, now: Instant) {
        self.phase = Phase::Idle;
        self.scheduled.clear();
        self.scheduled.push_back((now, Step::CancelError));
        self.scheduled
            .push_back((now + CANCEL_FRAME_GAP, Step::CancelError));
        self.scheduled
            .push_back((now + CANCEL_FRAME_GAP * 2, Step::CancelFailed));
        self.scheduled.push_back((
            now + CANCEL_FRAME_GAP * 2 + CANCEL_ERROR_CLEARS_AFTER,
            Step::ClearError,
        ));
    }

    fn run_step(&mut self, step: Step) {
        match step {
            Step::CancelError => {
                self.set("print_error", json!(CANCEL_PRINT_ERROR));
                self.forced.push("print_error");
            }
            Step::CancelFailed => {
                self.set("gcode_state", json!("FAILED"));
                self.set("mc_percent", json!(0));
                self.set("layer_num", json!(0));
                self.set("mc_remaining_time", json!(0));
                self.set("stg_cur", json!(255));
                self.set("mc_print_stage", json!("1"));
                self.set("bed_target_temper", json!(0.0));
                self.set("nozzle_target_temper", json!(0.0));
            }
            Step::ClearError => self.set("print_error", json!(0)),
            Step::DropTotalLayers => self.set("total_layer_num", json!(0)),
        }
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

    /// Runs everything due at `now` and returns the report frames to publish. `emit` false
    /// (no subscriber, or a silenced printer) advances the state without building frames;
    /// a delta printer then reports the accumulated change in its next frame.
    pub fn poll(&mut self, now: Instant, wall_ms: u64, emit: bool, rng: &mut StdRng) -> Vec<Bytes> {
        let mut frames = Vec::new();
        let wall_s = wall_ms / 1000;
        // Phase transitions.
        loop {
            match self.phase.clone() {
                Phase::Handover { until } if now >= until => self.start_prepare(until),
                Phase::Prepare { until, .. } if now >= until => self.start_stages(until, wall_s),
                Phase::Stages { until, .. } if now >= until => self.start_printing(until),
                Phase::Printing { resumed_at } => {
                    let job = self.job.as_ref().expect("a printing phase has a job");
                    if job.printed + now.saturating_duration_since(resumed_at) >= job.duration {
                        let end = resumed_at + (job.duration - job.printed.min(job.duration));
                        self.finish(end);
                    }
                    break;
                }
                _ => break,
            }
        }
        self.update_progress(now);
        // Scheduled steps each make a frame of their own (the cancel sequence needs that).
        while let Some(&(at, step)) = self.scheduled.front() {
            if at > now {
                break;
            }
            self.scheduled.pop_front();
            self.run_step(step);
            if emit {
                frames.push(self.frame(rng));
            }
            self.dirty = false;
        }
        if self.dirty || now >= self.next_report {
            if emit {
                frames.push(self.frame(rng));
            }
            self.dirty = false;
        }
        if now >= self.next_report || !frames.is_empty() {
            let every = if self.is_active() {
                ACTIVE_REPORT_EVERY
            } else {
                IDLE_REPORT_EVERY
            };
            self.next_report = now + every;
        }
        frames
    }

    /// When `poll` next has something to do.
    pub fn next_deadline(&self) -> Instant {
        let mut next = self.next_report;
        match self.phase {
            Phase::Handover { until }
            | Phase::Prepare { until, .. }
            | Phase::Stages { until, .. } => {
                // Preparation progress is reported as it moves, a few times per stage.
                next = next.min(until);
            }
            _ => {}
        }
        if let Some(&(at, _)) = self.scheduled.front() {
            next = next.min(at);
        }
        next
    }

    fn update_progress(&mut self, now: Instant) {
        match self.phase.clone() {
            Phase::Prepare { since, until } => {
                let pct = fraction(now, since, until) * 100.0;
                // Downloads on P1 are known to stall at 99 (§2.4); report whole percents.
                self.set(
                    "gcode_file_prepare_percent",
                    json!(format!("{}", pct.floor() as u64)),
                );
            }
            Phase::Stages { since, until } => {
                let f = fraction(now, since, until);
                let idx = ((f * PREP_STAGES.len() as f64) as usize).min(PREP_STAGES.len() - 1);
                self.set("stg_cur", json!(PREP_STAGES[idx]));
                let bed = approach(self.float("bed_temper"), 60.0, f);
                self.set("bed_temper", json!(bed));
                let nozzle = approach(self.float("nozzle_temper"), 220.0, f);
                self.set("nozzle_temper", json!(nozzle));
            }
            Phase::Printing { resumed_at } => {
                let Some(job) = &self.job else { return };
                let printed = job.printed + now.saturating_duration_since(resumed_at);
                let f = (printed.as_secs_f64() / job.duration.as_secs_f64()).min(1.0);
                let pct = ((f * 100.0) as i64).min(99);
                let layer = ((f * job.layers as f64).ceil() as i64).clamp(1, job.layers as i64);
                let remaining = job.duration.saturating_sub(printed);
                self.set("mc_percent", json!(pct));
                self.set("layer_num", json!(layer));
                self.set("mc_remaining_time", json!(minutes_ceil(remaining)));
                self.set("bed_temper", json!(60.0));
                self.set("nozzle_temper", json!(220.0));
            }
            Phase::Idle | Phase::Paused | Phase::Handover { .. } => {
                if self.gcode_state() != "PAUSE" {
                    let bed = approach(self.float("bed_temper"), 24.5, 0.2);
                    self.set("bed_temper", json!(bed));
                    let nozzle = approach(self.float("nozzle_temper"), 25.0, 0.2);
                    self.set("nozzle_temper", json!(nozzle));
                }
            }
        }
    }

    fn float(&self, key: &str) -> f64 {
        self.fields.get(key).and_then(Value::as_f64).unwrap_or(0.0)
    }

    /// The next report frame: the full object (X1) or the delta (P1).
    fn frame(&mut self, rng: &mut StdRng) -> Bytes {
        if self.style == Style::P1 {
            // The A1/P1 Wi-Fi reading jitters; that alone makes a delta frame (§7.1 20).
            let dbm: i64 = rng.random_range(-60..=-40);
            self.set("wifi_signal", json!(format!("{dbm}dBm")));
        }
        match self.style {
            Style::X1 => self.full_frame(),
            Style::P1 => self.delta_frame(),
        }
    }

    /// The answer to `pushall`: the whole object with `msg` 0. Afterwards a delta printer
    /// reports changes relative to it.
    pub fn full_frame(&mut self) -> Bytes {
        self.forced.clear();
        self.last_sent = self.fields.clone();
        let body = self.fields.clone();
        self.envelope(body, 0)
    }

    fn delta_frame(&mut self) -> Bytes {
        let mut body = Map::new();
        for (k, v) in &self.fields {
            let forced = self.forced.iter().any(|f| f == k);
            if forced || self.last_sent.get(k) != Some(v) {
                body.insert(k.clone(), v.clone());
                self.last_sent.insert(k.clone(), v.clone());
            }
        }
        self.forced.clear();
        self.envelope(body, 1)
    }

    fn envelope(&mut self, mut body: Map<String, Value>, msg: u64) -> Bytes {
        self.sequence += 1;
        body.insert("command".into(), json!("push_status"));
        body.insert("msg".into(), json!(msg));
        body.insert("sequence_id".into(), json!(self.sequence.to_string()));
        report_payload(body)
    }

    /// The answer to `{"info": {"command": "get_version"}}` (§2.3).
    pub fn version_frame(&self, sequence_id: &str) -> Bytes {
        let (product, board, hw) = match self.style {
            Style::X1 => ("Bambu Lab X1 Carbon", "rv1126", "AP05"),
            Style::P1 => ("Bambu Lab P1S", "esp32", "AP04"),
        };
        let payload = json!({"info": {
        "command": "get_version", "sequence_id": sequence_id, "result": "success",
        "module": [
            {"name": "ota", "sw_ver": "01.08.00.00", "hw_ver": "", "sn": self.serial, "product_name": product},
            {"name": board, "sw_ver": "00.00.32.14", "hw_ver": hw, "sn": self.serial, "project_name": "C12"},
        ]}});
        Bytes::from(payload.to_string())
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

#[cfg(test)]
mod tests;
