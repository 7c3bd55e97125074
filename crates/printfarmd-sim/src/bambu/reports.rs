//! What the simulated Bambu printer sends, and when: the poll that advances the job
//! clock and emits reports, the next deadline, and the full, delta and version frames.

use bytes::Bytes;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::*;

impl BambuModel {
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

    pub(super) fn update_progress(&mut self, now: Instant) {
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

    pub(super) fn float(&self, key: &str) -> f64 {
        self.fields.get(key).and_then(Value::as_f64).unwrap_or(0.0)
    }

    /// The next report frame: the full object (X1) or the delta (P1).
    pub(super) fn frame(&mut self, rng: &mut StdRng) -> Bytes {
        if matches!(self.phase, Phase::Printing { .. }) {
            // A heater holds its target to a few tenths of a degree, and the reading
            // moves from report to report (protocols.md §2.5's delta carries
            // `"nozzle_temper": 219.8`): most reports of a print carry a new reading.
            let mut near = |target: f64| target + f64::from(rng.random_range(-3i8..=3)) / 10.0;
            let (nozzle, bed) = (near(220.0), near(60.0));
            self.set("nozzle_temper", json!(nozzle));
            self.set("bed_temper", json!(bed));
        }
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

    pub(super) fn delta_frame(&mut self) -> Bytes {
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

    pub(super) fn envelope(&mut self, mut body: Map<String, Value>, msg: u64) -> Bytes {
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
