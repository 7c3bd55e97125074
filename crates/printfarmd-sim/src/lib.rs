//! The printer simulator: Bambu Lab and PrusaLink printers that speak the real protocols
//! over real sockets (design.md §7), for tests, the demo and the benchmarks.
//!
//! - Bambu printers share one embedded MQTT 3.1.1 broker with TLS (`broker.rs`, `tls.rs`),
//!   built on rumqttc's packet codec. Each printer is a plain state machine (`bambu.rs`) in a
//!   cell (`bambu_printer.rs`) driven by one tokio task that sleeps until its next deadline.
//! - PrusaLink printers are one small HTTP server each (`prusa_server.rs`) over a plain model
//!   (`prusa.rs`), with Digest and `X-Api-Key` auth (`digest.rs`).
//! - OctoPrint servers likewise (`octoprint_server.rs` over `octoprint.rs`): REST with
//!   `X-Api-Key` and the push socket (`/sockjs/websocket`).
//! - Klipper printers behind Moonraker (`moonraker_server.rs` over `moonraker.rs`): the
//!   JSON-RPC WebSocket with subscriptions and history.
//! - A farm (`farm.rs`) owns them all; it is driven in-process through [`SimFarm::control`],
//!   over HTTP through the control API (`control.rs`), by itself (`auto.rs`), or from a
//!   recorded file (`replay.rs`). `printfarmd simulate` is `cli.rs`.

mod auto;
pub mod bambu;
mod bambu_printer;
mod broker;
pub mod cli;
mod control;
mod digest;
mod farm;
mod http_serve;
pub mod moonraker;
mod moonraker_server;
pub mod octoprint;
mod octoprint_server;
pub mod prusa;
mod prusa_server;
mod replay;
mod tls;

use serde::{Deserialize, Serialize};

pub use farm::{SentReport, SimFarm, SimFarmBuilder, SimPrinterInfo, SimStatus};

/// How a simulated Bambu printer reports (protocols.md §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// X1-class: the whole `print` object in every report, `gcode_start_time`, non-zero task ids.
    X1,
    /// P1/A1-class: only changed keys after a full answer to `pushall`, task ids "0", no start time.
    P1,
}

/// Something a test, the control API or the auto driver makes a printer do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a print (accepted only when no print is underway).
    Print {
        file: String,
        duration_s: u64,
        layers: Option<u32>,
    },
    Pause,
    Resume,
    /// End the current print successfully now.
    Finish,
    /// End the current print with an error (Bambu `FAILED` + HMS; PrusaLink `ERROR`).
    Fail,
    /// The user stops the print (Bambu cancel sequence; PrusaLink `STOPPED`).
    Cancel,
    /// Power-cycle: connections drop, the printer is unreachable for a moment.
    Reboot,
    /// Drop every client connection now.
    Disconnect,
    /// Keep connections open but send nothing (answer nothing) for a while.
    Silence {
        seconds: u64,
    },
    /// Send one malformed payload (Bambu report) or response (PrusaLink status).
    Garbage,
    /// PrusaLink: leave the end-of-print screen (`FINISHED`/`STOPPED`/`ERROR` → `IDLE`).
    Dismiss,
    /// Bambu: for a while, answer every `print` control command (`pause`, `resume`,
    /// `stop`) with `result: "fail"`, as 2025 firmware does to unsigned commands outside
    /// Developer Mode (protocols.md §2.12); reports and `pushall` still work.
    Refuse {
        seconds: u64,
    },
}

/// Longest print the control API accepts (a week), so a typo cannot overflow a clock.
pub const MAX_PRINT_SECONDS: u64 = 7 * 24 * 3600;
/// Longest silence the control API accepts.
pub const MAX_SILENCE_SECONDS: u64 = 24 * 3600;

impl Action {
    /// The action's name in the control API (`POST /printers/{id}/{name}`).
    pub fn name(&self) -> &'static str {
        match self {
            Action::Print { .. } => "print",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Finish => "finish",
            Action::Fail => "fail",
            Action::Cancel => "cancel",
            Action::Reboot => "reboot",
            Action::Disconnect => "disconnect",
            Action::Silence { .. } => "silence",
            Action::Garbage => "garbage",
            Action::Dismiss => "dismiss",
            Action::Refuse { .. } => "refuse",
        }
    }

    /// Every action name, for error messages.
    pub const NAMES: &'static [&'static str] = &[
        "print",
        "pause",
        "resume",
        "finish",
        "fail",
        "cancel",
        "reboot",
        "disconnect",
        "silence",
        "garbage",
        "dismiss",
        "refuse",
    ];

    /// Builds an action from its control-API name and JSON body (empty for most actions).
    pub fn parse(name: &str, body: &[u8]) -> Result<Action, SimError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PrintBody {
            file: String,
            duration_s: u64,
            #[serde(default)]
            layers: Option<u32>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct SilenceBody {
            seconds: u64,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Empty {}

        fn json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, SimError> {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(SimError::BadBody(format!("{what} needs a JSON body")));
            }
            serde_json::from_slice(body).map_err(|e| SimError::BadBody(e.to_string()))
        }

        let action = match name {
            "print" => {
                let b: PrintBody = json(
                    body,
                    r#"print (e.g. {"file": "bracket.gcode.3mf", "duration_s": 60})"#,
                )?;
                if b.file.trim().is_empty() {
                    return Err(SimError::BadBody("`file` must not be empty".into()));
                }
                if b.duration_s == 0 || b.duration_s > MAX_PRINT_SECONDS {
                    return Err(SimError::BadBody(format!(
                        "`duration_s` must be between 1 and {MAX_PRINT_SECONDS}"
                    )));
                }
                if b.layers == Some(0) {
                    return Err(SimError::BadBody("`layers` must be at least 1".into()));
                }
                Action::Print {
                    file: b.file,
                    duration_s: b.duration_s,
                    layers: b.layers,
                }
            }
            "silence" | "refuse" => {
                let b: SilenceBody = json(body, &format!(r#"{name} (e.g. {{"seconds": 30}})"#))?;
                if b.seconds == 0 || b.seconds > MAX_SILENCE_SECONDS {
                    return Err(SimError::BadBody(format!(
                        "`seconds` must be between 1 and {MAX_SILENCE_SECONDS}"
                    )));
                }
                if name == "refuse" {
                    Action::Refuse { seconds: b.seconds }
                } else {
                    Action::Silence { seconds: b.seconds }
                }
            }
            other => {
                let action = match other {
                    "pause" => Action::Pause,
                    "resume" => Action::Resume,
                    "finish" => Action::Finish,
                    "fail" => Action::Fail,
                    "cancel" => Action::Cancel,
                    "reboot" => Action::Reboot,
                    "disconnect" => Action::Disconnect,
                    "garbage" => Action::Garbage,
                    "dismiss" => Action::Dismiss,
                    _ => return Err(SimError::UnknownAction(other.to_string())),
                };
                if !body.iter().all(u8::is_ascii_whitespace) {
                    let _: Empty = serde_json::from_slice(body).map_err(|e| {
                        SimError::BadBody(format!("{other} takes no parameters: {e}"))
                    })?;
                }
                action
            }
        };
        Ok(action)
    }
}

/// Why the simulator refused an action. The control API maps each to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("no simulated printer with id {0:?}")]
    UnknownPrinter(String),
    #[error(
        "unknown action {0:?}; one of: print, pause, resume, finish, fail, cancel, reboot, disconnect, silence, garbage, dismiss, refuse"
    )]
    UnknownAction(String),
    #[error("invalid request body: {0}")]
    BadBody(String),
    /// The action does not fit the printer's current state (e.g. pause while idle).
    #[error("{0}")]
    Conflict(String),
    /// The printer kind does not have this action (e.g. dismiss on a Bambu printer).
    #[error("{0}")]
    Unsupported(String),
}

impl SimError {
    /// The machine-readable code used in the control API's error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            SimError::UnknownPrinter(_) => "printer_not_found",
            SimError::UnknownAction(_) => "unknown_action",
            SimError::BadBody(_) => "invalid_body",
            SimError::Conflict(_) => "invalid_state",
            SimError::Unsupported(_) => "unsupported_action",
        }
    }
}

/// Milliseconds since the Unix epoch (send times in the report log).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
