//! A Bambu printer that plays back recorded reports instead of simulating a lifecycle.
//!
//! The file is JSON lines, one report per line: `{"delay_ms": 1000, "payload": {"print": {...}}}`
//! where `delay_ms` is the wait before this report (after the previous one). Blank lines and
//! lines starting with `#` are skipped. Each payload is published exactly as recorded. A `pushall` is answered with every `print`
//! key seen so far, merged as a delta client would merge them. Playback runs once.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::bambu::report_payload;

/// Largest replay file accepted (it is held in memory).
const MAX_REPLAY_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    delay_ms: u64,
    payload: Value,
}

/// The reports of one recorded printer, and how far playback has got.
#[derive(Debug)]
pub struct ReplayModel {
    lines: Vec<(Duration, Value)>,
    next: usize,
    next_at: Instant,
    merged: Map<String, Value>,
    sequence: u64,
    paused_at: Option<Instant>,
    /// Playback starts with the first subscriber, so a client sees the recording from the top.
    started: bool,
}

impl ReplayModel {
    /// Reads and checks a replay file; errors name the line.
    pub fn load(path: &Path) -> anyhow::Result<Vec<(Duration, Value)>> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("replay file {}", path.display()))?;
        anyhow::ensure!(
            meta.len() <= MAX_REPLAY_BYTES,
            "replay file {} is larger than {MAX_REPLAY_BYTES} bytes",
            path.display()
        );
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading replay file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("replay file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Vec<(Duration, Value)>> {
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed: Line = serde_json::from_str(line).with_context(|| {
                format!(
                    "line {}: expected {{\"delay_ms\": N, \"payload\": {{...}}}}",
                    n + 1
                )
            })?;
            lines.push((Duration::from_millis(parsed.delay_ms), parsed.payload));
        }
        anyhow::ensure!(!lines.is_empty(), "no reports in the file");
        Ok(lines)
    }

    pub fn new(lines: Vec<(Duration, Value)>, now: Instant) -> Self {
        let first = lines.first().map(|(d, _)| *d).unwrap_or_default();
        Self {
            lines,
            next: 0,
            next_at: now + first,
            merged: Map::new(),
            sequence: 0,
            paused_at: None,
            started: false,
        }
    }

    pub fn finished(&self) -> bool {
        self.next >= self.lines.len()
    }

    /// The merged state's value for `key` (for status snapshots).
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.merged.get(key)
    }

    pub fn poll(&mut self, now: Instant, emit: bool) -> Vec<Bytes> {
        let mut frames = Vec::new();
        if self.paused_at.is_some() || (!self.started && !emit) {
            return frames;
        }
        if !self.started {
            self.started = true;
            self.next_at = now + self.lines.first().map(|(d, _)| *d).unwrap_or_default();
        }
        while self.next < self.lines.len() && now >= self.next_at {
            let payload = self.lines[self.next].1.clone();
            if let Some(print) = payload.get("print").and_then(Value::as_object) {
                for (k, v) in print {
                    self.merged.insert(k.clone(), v.clone());
                }
            }
            if emit {
                frames.push(Bytes::from(payload.to_string()));
            }
            self.next += 1;
            if let Some((delay, _)) = self.lines.get(self.next) {
                self.next_at += *delay;
            }
        }
        frames
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        (self.started && !self.finished() && self.paused_at.is_none()).then_some(self.next_at)
    }

    pub fn full_frame(&mut self) -> Bytes {
        self.sequence += 1;
        let mut body = self.merged.clone();
        body.insert("command".into(), json!("push_status"));
        body.insert("msg".into(), json!(0));
        body.insert("sequence_id".into(), json!(self.sequence.to_string()));
        report_payload(body)
    }

    /// Playback stops while the printer is "off" and continues where it was.
    pub fn reboot_begin(&mut self, now: Instant) {
        self.paused_at = Some(now);
    }

    pub fn reboot_end(&mut self, now: Instant) {
        if let Some(at) = self.paused_at.take() {
            self.next_at += now.saturating_duration_since(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_plays_them_in_order_with_their_delays() {
        let text = "# a recording\n{\"delay_ms\": 0, \"payload\": {\"print\": {\"gcode_state\": \"IDLE\", \"command\": \"push_status\"}}}\n\n{\"delay_ms\": 500, \"payload\": {\"print\": {\"gcode_state\": \"PREPARE\"}}}\n";
        let lines = ReplayModel::parse(text).unwrap();
        assert_eq!(lines.len(), 2);
        let t0 = Instant::now();
        let mut m = ReplayModel::new(lines, t0);
        let first = m.poll(t0, true);
        assert_eq!(first.len(), 1);
        let v: Value = serde_json::from_slice(&first[0]).unwrap();
        assert_eq!(v["print"]["gcode_state"], "IDLE");
        assert_eq!(v.as_object().unwrap().len(), 1, "nothing beside print");
        assert!(m.poll(t0 + Duration::from_millis(100), true).is_empty());
        assert_eq!(m.poll(t0 + Duration::from_millis(500), true).len(), 1);
        assert!(m.finished());
        let full: Value = serde_json::from_slice(&m.full_frame()).unwrap();
        assert_eq!(full["print"]["gcode_state"], "PREPARE");
        assert_eq!(full["print"]["msg"], 0);
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = ReplayModel::parse("{\"delay_ms\": 1}\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    }
}
