//! Parsing what OctoPrint sends (protocols.md §4): `/api/job`, `/api/printer` and the push
//! socket's `current`/`history`/`event` messages, into plain values for [`super::state`].
//! Every value is checked where it enters: strings capped, times bounded, non-finite or
//! out-of-range numbers dropped; a body of the wrong shape is an error, never a panic.

use serde_json::Value;

use crate::domain::Temperatures;

/// Longest file path or state text kept from OctoPrint (OctoPrint's own limit on paths
/// is the file system's; a real name is well under this, a confused server's blob is not).
pub const MAX_TEXT_CHARS: usize = 255;
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
