//! The simulated Bambu printer's print transitions: a job accepted, prepared, its
//! stages, printing, and its end (finish, fail, cancel) with the steps that follow it.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::*;

impl BambuModel {
    pub(super) fn accept_job(
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

    pub(super) fn start_prepare(&mut self, now: Instant) {
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

    pub(super) fn start_stages(&mut self, now: Instant, wall_s: u64) {
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

    pub(super) fn start_printing(&mut self, now: Instant) {
        self.phase = Phase::Printing { resumed_at: now };
        self.set("stg_cur", json!(0));
        self.set("layer_num", json!(1));
        self.dirty = true;
    }

    pub(super) fn finish(&mut self, now: Instant) {
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

    pub(super) fn fail(&mut self, _now: Instant) {
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
    pub(super) fn cancel(&mut self, now: Instant) {
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

    pub(super) fn run_step(&mut self, step: Step) {
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
}
