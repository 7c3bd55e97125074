//! What OctoPrint says, as plain code (protocols.md §4, §6.3, quirks §7.3): parsing
//! `/api/job`, `/api/printer` and the push socket's `current`/`history`/`event` messages,
//! and turning them into [`PrinterStatus`] fields.
//!
//! OctoPrint has no job id, and `/api/job` keeps the last file and its progress after a
//! print ended (quirk 7.3.4). [`OctoState`] therefore remembers the print under way (its
//! file: `job.file.path` + `job.file.date`, which tell a re-uploaded file from the old
//! one) and how the last print ended, and reports that end state for as long as OctoPrint
//! still shows the same file. The push socket's events (`PrintDone`, `PrintCancelled`,
//! `PrintFailed`) say how a print ended; without them (a poll-only session) the end is
//! read from the progress OctoPrint leaves behind: 100 % → done, all-null → cancelled.
//!
//! The REST poll and the socket run side by side, so an answer to a poll sent just before
//! an event can contradict it: for `EVENT_GRACE` after an event, a snapshot that says the
//! opposite (printing vs not) of what the event said is taken as older and skipped.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::printers::status::{PrinterState, PrinterStatus, Temperatures};

/// Longest file path or state text kept from OctoPrint (OctoPrint's own limit on paths
/// is the file system's; a real name is well under this, a confused server's blob is not).
pub const MAX_TEXT_CHARS: usize = 255;
/// How long after an event a contradicting snapshot is taken as older than the event.
/// A poll answer is at most one request timeout old; OctoPrint sends `current` twice a
/// second. Five seconds covers both without hiding a real change for long.
pub const EVENT_GRACE: Duration = Duration::from_secs(5);
/// Longest print time believed (a year): a larger `printTime` is a broken counter.
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Why an answer or message was skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("not JSON ({0})")]
    NotJson(String),
    #[error("unexpected shape ({0})")]
    WrongType(String),
}

/// The file of a print: OctoPrint's identity for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileKey {
    /// `job.file.path` (relative to its origin), capped.
    pub path: String,
    /// `job.file.date` (upload time, unix s); events carry no date.
    pub date: Option<i64>,
}

impl FileKey {
    /// Same file: same path, and same upload date when both are known.
    pub fn same(&self, other: &FileKey) -> bool {
        self.path == other.path
            && match (self.date, other.date) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// One `/api/job` answer or push `current` message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The state text (`Printing`, `Offline (Error: …)`), capped.
    pub state: String,
    pub file: Option<FileKey>,
    /// 0–100.
    pub completion: Option<f64>,
    pub print_time: Option<i64>,
    pub print_time_left: Option<i64>,
    /// Set when the message carried temperatures (`/api/printer`, push `temps`).
    pub temperatures: Option<Temperatures>,
    /// `error` of the job answer or `state.error` of a push message, capped.
    pub error: Option<String>,
}

/// A push event that matters for jobs.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Started {
        path: Option<String>,
    },
    Paused,
    Resumed,
    Done,
    Cancelled,
    /// `PrintFailed`: `cancelled` tells a cancel from an error.
    Failed {
        cancelled: bool,
    },
}

/// One message from the push socket.
#[derive(Clone, Debug, PartialEq)]
pub enum Push {
    Current(Snapshot),
    Event(Event),
    /// The session expired: log in again.
    ReauthRequired,
    /// `connected`, other events, plugin messages: nothing for the status.
    Other,
}

/// OctoPrint's state text, by prefix (quirk 7.3.2: suffixes are common).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Idle,
    Starting,
    Printing,
    Paused,
    Error,
    /// No printer connection (`Offline`, `Connecting`, `Detecting…`).
    Offline,
    Unknown,
}

pub fn kind_of(text: &str) -> Kind {
    let t = text.trim();
    // `get`: a prefix length may fall inside a multi-byte character.
    let starts = |p: &str| t.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    if starts("Offline after error") || starts("Error") {
        Kind::Error
    } else if starts("Operational") || starts("Ready") {
        Kind::Idle
    } else if starts("Starting") {
        Kind::Starting
    } else if starts("Printing")
        || starts("Sending file")
        || starts("Transferring")
        || starts("Resuming")
        || starts("Finishing")
        || starts("Cancelling")
    {
        Kind::Printing
    } else if starts("Paus") {
        Kind::Paused
    } else if starts("Offline") || starts("Opening") || starts("Detecting") || starts("Connecting")
    {
        Kind::Offline
    } else {
        Kind::Unknown
    }
}

fn cap(s: &str) -> String {
    s.trim().chars().take(MAX_TEXT_CHARS).collect()
}

fn secs(v: &Value) -> Option<i64> {
    v.as_f64()
        .filter(|s| s.is_finite() && (0.0..=MAX_SECONDS).contains(s))
        .map(|s| s.round() as i64)
}

fn percent(v: &Value) -> Option<f64> {
    v.as_f64()
        .filter(|p| p.is_finite())
        .map(|p| p.clamp(0.0, 100.0))
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(cap).filter(|s| !s.is_empty())
}

fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, BodyError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(BodyError::WrongType("not a JSON object".into())),
        Err(e) => Err(BodyError::NotJson(e.to_string())),
    }
}

/// The `job` + `progress` members shared by `/api/job` and push `current`.
fn job_fields(snap: &mut Snapshot, job: &Value, progress: &Value) {
    let file = &job["file"];
    snap.file = text(&file["path"])
        .or_else(|| text(&file["name"]))
        .map(|path| FileKey {
            path,
            date: file["date"]
                .as_f64()
                .filter(|d| d.is_finite() && *d >= 0.0 && *d < 1e12)
                .map(|d| d as i64),
        });
    snap.completion = percent(&progress["completion"]);
    snap.print_time = secs(&progress["printTime"]);
    snap.print_time_left = secs(&progress["printTimeLeft"]);
}

/// Parses `/api/job`.
pub fn parse_job(body: &[u8]) -> Result<Snapshot, BodyError> {
    let m = object(body)?;
    let state = m
        .get("state")
        .and_then(Value::as_str)
        .ok_or_else(|| BodyError::WrongType("no `state` string".into()))?;
    let mut snap = Snapshot {
        state: cap(state),
        error: m.get("error").and_then(text),
        ..Snapshot::default()
    };
    job_fields(
        &mut snap,
        m.get("job").unwrap_or(&Value::Null),
        m.get("progress").unwrap_or(&Value::Null),
    );
    Ok(snap)
}

/// Temperatures from a `{"tool0": {"actual", "target"}, "bed": {..}, "chamber": {..}}` object.
fn temps_of(t: &Value) -> Option<Temperatures> {
    if !t.is_object() {
        return None;
    }
    let num = |v: &Value| v.as_f64().filter(|x| x.is_finite());
    Some(Temperatures {
        nozzle: num(&t["tool0"]["actual"]),
        nozzle_target: num(&t["tool0"]["target"]),
        bed: num(&t["bed"]["actual"]),
        bed_target: num(&t["bed"]["target"]),
        chamber: num(&t["chamber"]["actual"]),
    })
}

/// Parses `/api/printer` (200) into its temperatures.
pub fn parse_printer(body: &[u8]) -> Result<Temperatures, BodyError> {
    let m = object(body)?;
    Ok(m.get("temperature").and_then(temps_of).unwrap_or_default())
}

/// Parses one push-socket text frame.
pub fn parse_push(body: &[u8]) -> Result<Push, BodyError> {
    let m = object(body)?;
    if let Some(c) = m.get("current").or_else(|| m.get("history")) {
        let st = &c["state"];
        let state = st["text"]
            .as_str()
            .ok_or_else(|| BodyError::WrongType("`current` without `state.text`".into()))?;
        let mut snap = Snapshot {
            state: cap(state),
            error: text(&st["error"]),
            ..Snapshot::default()
        };
        job_fields(&mut snap, &c["job"], &c["progress"]);
        snap.temperatures = c["temps"]
            .as_array()
            .and_then(|a| a.last())
            .and_then(temps_of);
        return Ok(Push::Current(snap));
    }
    if let Some(ev) = m.get("event") {
        let payload = &ev["payload"];
        let e = match ev["type"].as_str().unwrap_or("") {
            "PrintStarted" => Event::Started {
                path: text(&payload["path"]).or_else(|| text(&payload["name"])),
            },
            "PrintPaused" => Event::Paused,
            "PrintResumed" => Event::Resumed,
            "PrintDone" => Event::Done,
            "PrintCancelled" => Event::Cancelled,
            "PrintFailed" => Event::Failed {
                cancelled: payload["reason"].as_str() == Some("cancelled"),
            },
            _ => return Ok(Push::Other),
        };
        return Ok(Push::Event(e));
    }
    if m.contains_key("reauthRequired") {
        return Ok(Push::ReauthRequired);
    }
    Ok(Push::Other)
}

/// Strips folders (`parts/bracket.gcode` → `bracket.gcode`).
pub fn base_name(path: &str) -> Option<String> {
    let b = path.trim().rsplit(['/', '\\']).next().unwrap_or("").trim();
    (!b.is_empty()).then(|| b.to_owned())
}

/// What the driver remembers across answers (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct OctoState {
    snap: Snapshot,
    temperatures: Temperatures,
    /// The print under way.
    current: Option<FileKey>,
    /// How the last print ended, and its file.
    ended: Option<(FileKey, PrinterState)>,
    /// The last event: when, and whether it said a print is under way.
    event: Option<(Instant, bool)>,
}

fn active(k: Kind) -> bool {
    matches!(k, Kind::Starting | Kind::Printing | Kind::Paused)
}

impl OctoState {
    /// A snapshot from a poll or a push `current`. Returns false when it was skipped as
    /// older than the last event.
    pub fn apply_snapshot(&mut self, snap: Snapshot, now: Instant) -> bool {
        let kind = kind_of(&snap.state);
        if let Some((at, was_active)) = self.event
            && now.saturating_duration_since(at) < EVENT_GRACE
            && matches!(
                kind,
                Kind::Idle | Kind::Starting | Kind::Printing | Kind::Paused
            )
            && active(kind) != was_active
        {
            return false;
        }
        if let Some(t) = &snap.temperatures {
            self.temperatures = t.clone();
        }
        match kind {
            Kind::Starting | Kind::Printing | Kind::Paused => {
                if let Some(f) = &snap.file {
                    if !self.current.as_ref().is_some_and(|c| c.same(f)) {
                        self.current = Some(f.clone());
                    } else if let Some(c) = self.current.as_mut()
                        && c.date.is_none()
                    {
                        // Learn the upload date the start event did not carry.
                        c.date = f.date;
                    }
                    self.ended = None;
                }
            }
            Kind::Idle => {
                if let Some(cur) = self.current.take() {
                    // The print ended and no event said how (a poll-only session).
                    let end = if snap.completion.is_some_and(|c| c >= 100.0) {
                        Some(PrinterState::Finished)
                    } else if snap.completion.is_none() && snap.print_time.is_none() {
                        Some(PrinterState::Cancelled)
                    } else {
                        None
                    };
                    self.ended = end.map(|e| (cur, e));
                } else if self.ended.is_none()
                    && let Some(f) = &snap.file
                    && snap.completion.is_some_and(|c| c >= 100.0)
                    && snap.print_time_left == Some(0)
                {
                    // A print that ended before this driver first looked (the daemon was
                    // down): OctoPrint's done fingerprint.
                    self.ended = Some((f.clone(), PrinterState::Finished));
                }
                if let Some((k, _)) = &self.ended
                    && snap.file.as_ref().is_some_and(|f| !k.same(f))
                {
                    // Another file is selected: the end screen is gone.
                    self.ended = None;
                }
            }
            Kind::Error => {
                if let Some(cur) = self.current.take() {
                    self.ended = Some((cur, PrinterState::Failed));
                }
            }
            Kind::Offline | Kind::Unknown => {}
        }
        self.snap = snap;
        true
    }

    /// An event from the push socket.
    pub fn apply_event(&mut self, e: Event, now: Instant) {
        let s = &mut self.snap;
        let end = |this: &mut Self, st: PrinterState| {
            let key = this.current.take().or_else(|| this.snap.file.clone());
            if let Some(k) = key {
                // A cancel is reported as PrintCancelled and then PrintFailed(cancelled):
                // the second must not turn it into a failure.
                let already = matches!(&this.ended, Some((ek, _)) if ek.same(&k));
                if !already || st != PrinterState::Failed {
                    this.ended = Some((k, st));
                }
            }
        };
        match e {
            Event::Started { path } => {
                s.state = "Printing".into();
                if let Some(p) = path {
                    let date = s.file.as_ref().filter(|f| f.path == p).and_then(|f| f.date);
                    s.file = Some(FileKey { path: p, date });
                }
                s.completion = Some(0.0);
                s.print_time = Some(0);
                s.print_time_left = None;
                self.current = s.file.clone();
                self.ended = None;
                self.event = Some((now, true));
            }
            Event::Paused => {
                s.state = "Paused".into();
                self.event = Some((now, true));
            }
            Event::Resumed => {
                s.state = "Printing".into();
                self.event = Some((now, true));
            }
            Event::Done => {
                s.state = "Operational".into();
                s.completion = Some(100.0);
                s.print_time_left = Some(0);
                end(self, PrinterState::Finished);
                self.event = Some((now, false));
            }
            Event::Cancelled | Event::Failed { cancelled: true } => {
                s.state = "Operational".into();
                end(self, PrinterState::Cancelled);
                self.event = Some((now, false));
            }
            Event::Failed { cancelled: false } => {
                s.state = "Error".into();
                end(self, PrinterState::Failed);
                self.event = Some((now, false));
            }
        }
    }

    /// Writes the job, state and temperature fields of `s`.
    pub fn fill(&self, s: &mut PrinterStatus) {
        let snap = &self.snap;
        let kind = kind_of(&snap.state);
        let name = |k: &FileKey| base_name(&k.path);
        s.printer_job_id = None;
        s.printer_start_time = None;
        s.job_name = None;
        s.layer = None;
        s.total_layers = None;
        s.error = snap.error.clone();
        s.temperatures = self.temperatures.clone();
        let (state, file) = match kind {
            Kind::Starting => (PrinterState::Preparing, snap.file.as_ref()),
            Kind::Printing => (PrinterState::Printing, snap.file.as_ref()),
            Kind::Paused => (PrinterState::Paused, snap.file.as_ref()),
            Kind::Idle => match &self.ended {
                Some((k, st)) => (*st, Some(k)),
                None => (PrinterState::Idle, None),
            },
            Kind::Error => match &self.ended {
                Some((k, PrinterState::Failed)) => (PrinterState::Failed, Some(k)),
                _ => (PrinterState::Error, None),
            },
            Kind::Offline | Kind::Unknown => (PrinterState::Unknown, self.current.as_ref()),
        };
        if kind == Kind::Offline && s.error.is_none() {
            s.error = Some(format!(
                "OctoPrint is not connected to the printer ({})",
                snap.state
            ));
        }
        if kind == Kind::Error && s.error.is_none() {
            s.error = Some(format!("OctoPrint reports {}", snap.state));
        }
        s.state = state;
        s.filename = file.and_then(name);
        let printing = matches!(
            state,
            PrinterState::Preparing | PrinterState::Printing | PrinterState::Paused
        );
        s.progress = match state {
            PrinterState::Finished => Some(100.0),
            _ if printing => snap.completion,
            _ => None,
        };
        s.elapsed_s = if printing || state == PrinterState::Finished {
            snap.print_time
        } else {
            None
        };
        s.remaining_s = match state {
            _ if printing => snap.print_time_left,
            PrinterState::Finished => Some(0),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests;
